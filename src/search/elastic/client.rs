//! The HTTP side of the Elasticsearch backend. Every call is one of [`Call`], named as
//! Elastic's REST API specification names the API, and goes out through the
//! `elasticsearch` crate's typed endpoint for it: that code is generated from the same
//! specification, so the path, the method, the query parameters and whether a body goes
//! along are Elastic's, not ours. Calls are plain data, so tests pin the exact JSON sent
//! and type-check every body against Elastic's request types. One function sends them
//! and sorts failures into "retry", "stop the worker" and "the request is wrong".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::cluster::ClusterHealthParts;
use elasticsearch::cluster::{ClusterGetComponentTemplateParts, ClusterPutComponentTemplateParts};
use elasticsearch::http::Url;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesForcemergeParts, IndicesGetAliasParts, IndicesGetIndexTemplateParts,
    IndicesGetMappingParts, IndicesGetSettingsParts, IndicesPutIndexTemplateParts, IndicesPutSettingsParts, IndicesRefreshParts,
    IndicesStatsParts,
};
use elasticsearch::nodes::NodesStatsParts;
use elasticsearch::security::SecurityHasPrivilegesParts;
use elasticsearch::{BulkParts, CountParts, Elasticsearch, GetParts, OpenPointInTimeParts, SearchParts};
use serde_json::{Value, json};

use crate::error::{Code, Error};

/// What a `_bulk` answer is cut down to: only what [`super::bulk::judge`] reads.
pub const BULK_FILTER: &[&str] = &["errors", "items.*.status", "items.*.error.type", "items.*.error.reason"];
/// What the doctor reads of each node's file systems.
pub const NODE_FS_FILTER: &[&str] = &["nodes.*.name", "nodes.*.fs.total"];

/// What the operator's view reads of an index: its documents, store and segments.
pub const INDEX_STATS_METRICS: &[&str] = &["docs", "store", "segments"];
/// The index settings the doctor reads: the blocks an index may carry.
pub const BLOCK_SETTINGS: &str = "index.blocks.*";
/// The setting that tells one creation of an index name from another (a name can be
/// deleted and created again, by another release, with another mapping).
pub const UUID_SETTING: &str = "index.uuid";
/// A call that changes the cluster's state may take the master's queue time
/// (`master_timeout`, 30 s by default) and then the acknowledgement wait (`timeout`,
/// 30 s by default) before Elasticsearch answers; the client waits longer than both, so
/// it never gives up on a change the cluster goes on to make (an index created after
/// the client timed out would be left behind as a write target).
pub const CLUSTER_STATE_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a force merge may take before the client stops waiting for it (the node
/// goes on merging): a rebuild's merge of 200,000 accounts took 4.7 and 6.2 s on this node.
pub const FORCE_MERGE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One call to Elasticsearch. Names and fields follow the REST API specification
/// (`api` is the specification's endpoint name); nothing here is a path or a method.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `info`: the cluster's name and version.
    Info,
    /// `cluster.health` of the indices `index` names (the deployment's own: another
    /// deployment's yellow or red index on a shared cluster is not this one's trouble).
    ClusterHealth {
        index: String,
    },
    /// `security.has_privileges` for the user the client signs in as.
    HasPrivileges {
        body: Value,
    },
    PutComponentTemplate {
        name: String,
        body: Value,
    },
    GetComponentTemplate {
        name: String,
    },
    PutIndexTemplate {
        name: String,
        body: Value,
    },
    GetIndexTemplate {
        name: String,
    },
    CreateIndex {
        index: String,
        body: Value,
    },
    DeleteIndex {
        index: String,
    },
    PutSettings {
        index: String,
        body: Value,
    },
    /// `indices.update_aliases`: every action in one atomic step.
    UpdateAliases {
        body: Value,
    },
    /// `indices.get_alias` by alias name: the indices behind it.
    GetAlias {
        name: String,
    },
    /// `indices.get_alias` by index (a pattern may stand for many): their aliases.
    IndexAliases {
        index: String,
    },
    /// `indices.refresh`, which takes no body.
    Refresh {
        index: String,
    },
    /// `indices.forcemerge` down to `max_num_segments` a shard, answered when the merge
    /// has ended (it may take minutes: [`FORCE_MERGE_TIMEOUT`]).
    ForceMerge {
        index: String,
        max_num_segments: u64,
    },
    /// `indices.get_mapping`: the mappings of the indices a name or pattern stands for.
    GetMapping {
        index: String,
    },
    /// `indices.get_settings` of [`BLOCK_SETTINGS`] on an index pattern.
    GetBlocks {
        index: String,
    },
    /// `indices.get_settings` of [`UUID_SETTING`] on an alias or name: the indices it
    /// stands for, each with its uuid.
    GetUuids {
        index: String,
    },
    /// `cluster.get_settings` with defaults, flat (`cluster.routing.allocation.disk.
    /// watermark.low` is both a value and the parent of its `max_headroom`, which only
    /// the flat form shows as two keys), for the disk watermarks.
    GetWatermarks,
    /// `nodes.stats` of the `fs` metric, cut down to [`NODE_FS_FILTER`].
    NodesFs,
    /// `indices.stats` of [`INDEX_STATS_METRICS`] of the indices an alias stands for.
    IndexStats {
        index: String,
    },
    /// `bulk`: action and source lines, answered cut down to [`BULK_FILTER`].
    Bulk {
        lines: Vec<Value>,
    },
    /// `search` on an index or alias; `preference` keeps every page of one search on
    /// the same shard copies.
    Search {
        index: String,
        body: Value,
        preference: Option<String>,
    },
    /// `search` through a point in time, which names no index (the PIT holds it).
    SearchPit {
        body: Value,
    },
    Count {
        index: String,
        body: Value,
    },
    OpenPit {
        index: String,
        keep_alive: &'static str,
    },
    ClosePit {
        id: String,
    },
    /// `get` of a document's metadata (no `_source`) as searches see it
    /// (`realtime=false`: from the last refresh, not the translog).
    GetDocVersion {
        index: String,
        id: String,
    },
}

impl Call {
    /// A search of `index`; a relevance-sorted one carries the [`dsl::preference`] of its
    /// body so every page of it is answered by the same shard copies.
    ///
    /// [`dsl::preference`]: super::dsl::preference
    pub fn search(index: String, body: Value, by_relevance: bool) -> Call {
        let preference = by_relevance.then(|| super::dsl::preference(&body));
        Call::Search { index, body, preference }
    }

    /// The endpoint's name in Elastic's REST API specification.
    pub fn api(&self) -> &'static str {
        match self {
            Call::Info => "info",
            Call::ClusterHealth { .. } => "cluster.health",
            Call::HasPrivileges { .. } => "security.has_privileges",
            Call::PutComponentTemplate { .. } => "cluster.put_component_template",
            Call::GetComponentTemplate { .. } => "cluster.get_component_template",
            Call::PutIndexTemplate { .. } => "indices.put_index_template",
            Call::GetIndexTemplate { .. } => "indices.get_index_template",
            Call::CreateIndex { .. } => "indices.create",
            Call::DeleteIndex { .. } => "indices.delete",
            Call::PutSettings { .. } => "indices.put_settings",
            Call::UpdateAliases { .. } => "indices.update_aliases",
            Call::GetAlias { .. } | Call::IndexAliases { .. } => "indices.get_alias",
            Call::Refresh { .. } => "indices.refresh",
            Call::ForceMerge { .. } => "indices.forcemerge",
            Call::GetMapping { .. } => "indices.get_mapping",
            Call::GetBlocks { .. } | Call::GetUuids { .. } => "indices.get_settings",
            Call::GetWatermarks => "cluster.get_settings",
            Call::NodesFs => "nodes.stats",
            Call::IndexStats { .. } => "indices.stats",
            Call::Bulk { .. } => "bulk",
            Call::Search { .. } | Call::SearchPit { .. } => "search",
            Call::Count { .. } => "count",
            Call::OpenPit { .. } => "open_point_in_time",
            Call::ClosePit { .. } => "close_point_in_time",
            Call::GetDocVersion { .. } => "get",
        }
    }

    /// The path part the call is about, named as the specification names it (`index`
    /// or `name`), and its value; `None` for cluster-wide calls.
    pub fn target(&self) -> Option<(&'static str, &str)> {
        match self {
            Call::PutComponentTemplate { name, .. }
            | Call::GetComponentTemplate { name }
            | Call::PutIndexTemplate { name, .. }
            | Call::GetIndexTemplate { name }
            | Call::GetAlias { name } => Some(("name", name)),
            Call::CreateIndex { index, .. }
            | Call::DeleteIndex { index }
            | Call::PutSettings { index, .. }
            | Call::IndexAliases { index }
            | Call::Refresh { index }
            | Call::ForceMerge { index, .. }
            | Call::GetMapping { index }
            | Call::GetBlocks { index }
            | Call::GetUuids { index }
            | Call::IndexStats { index }
            | Call::Search { index, .. }
            | Call::Count { index, .. }
            | Call::OpenPit { index, .. }
            | Call::GetDocVersion { index, .. } => Some(("index", index)),
            _ => None,
        }
    }

    /// The request body, as the specification's request type holds it (`None` for an
    /// API that reads none). A bulk body is its lines.
    pub fn body(&self) -> Option<Value> {
        match self {
            Call::HasPrivileges { body }
            | Call::PutComponentTemplate { body, .. }
            | Call::PutIndexTemplate { body, .. }
            | Call::CreateIndex { body, .. }
            | Call::PutSettings { body, .. }
            | Call::UpdateAliases { body }
            | Call::Search { body, .. }
            | Call::SearchPit { body }
            | Call::Count { body, .. } => Some(body.clone()),
            Call::ClosePit { id } => Some(json!({ "id": id })),
            Call::Bulk { lines } => Some(Value::Array(lines.clone())),
            _ => None,
        }
    }

    /// The call as the golden fixtures hold it: the API, its path parts and parameters
    /// as the specification names them, and the body.
    pub fn to_json(&self) -> Value {
        let mut out = json!({ "api": self.api() });
        if let Some((part, value)) = self.target() {
            out[part] = json!(value);
        }
        match self {
            Call::OpenPit { keep_alive, .. } => out["keep_alive"] = json!(keep_alive),
            Call::GetDocVersion { id, .. } => {
                out["id"] = json!(id);
                out["_source"] = json!(false);
                out["realtime"] = json!(false);
            }
            Call::Search {
                preference: Some(preference),
                ..
            } => out["preference"] = json!(preference),
            Call::Bulk { .. } => out["filter_path"] = json!(BULK_FILTER),
            Call::GetBlocks { .. } => out["name"] = json!(BLOCK_SETTINGS),
            Call::GetUuids { .. } => out["name"] = json!(UUID_SETTING),
            Call::GetWatermarks => {
                out["include_defaults"] = json!(true);
                out["flat_settings"] = json!(true);
            }
            Call::NodesFs => {
                out["metric"] = json!(["fs"]);
                out["filter_path"] = json!(NODE_FS_FILTER);
            }
            Call::IndexStats { .. } => out["metric"] = json!(INDEX_STATS_METRICS),
            Call::ForceMerge { max_num_segments, .. } => out["max_num_segments"] = json!(max_num_segments),
            _ => {}
        }
        if let Some(body) = self.body() {
            out[if matches!(self, Call::Bulk { .. }) { "ndjson" } else { "body" }] = body;
        }
        out
    }

    /// Whether the call changes the cluster's state (and so may wait for the master
    /// and for acknowledgements before it is answered).
    fn changes_cluster_state(&self) -> bool {
        matches!(
            self,
            Call::PutComponentTemplate { .. }
                | Call::PutIndexTemplate { .. }
                | Call::CreateIndex { .. }
                | Call::DeleteIndex { .. }
                | Call::PutSettings { .. }
                | Call::UpdateAliases { .. }
        )
    }
}

/// Why a request failed, sorted by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EsError {
    /// Worth retrying later: 429, 5xx (including the temporary cluster blocks: state not
    /// recovered, no master, the flood-stage disk block that Elasticsearch lifts itself),
    /// timeouts, refused connections, and a 401 within [`ClientConfig::auth_grace`].
    #[error("elasticsearch is unavailable: {0}")]
    Transient(String),
    /// Credentials refused for longer than [`ClientConfig::auth_grace`], privileges
    /// missing (403), or a block only an operator clears (a read-only or write-blocked
    /// index): nothing works until someone acts, so a sync worker waits and tries again
    /// only now and then.
    #[error("elasticsearch refuses this client: {0}")]
    Fatal(String),
    /// The request was wrong (another 4xx): a bug or a mapping out of step.
    #[error("elasticsearch rejected the request ({status}): {reason}")]
    Rejected { status: u16, reason: String },
}

impl EsError {
    pub fn is_fatal(err: &Error) -> bool {
        matches!(err, Error::Internal(e) if matches!(e.downcast_ref::<EsError>(), Some(EsError::Fatal(_))))
    }
}

impl From<EsError> for Error {
    fn from(err: EsError) -> Self {
        match err {
            EsError::Transient(reason) => {
                tracing::warn!(reason = %reason, "elasticsearch unavailable");
                Error::new(Code::ServiceUnavailable, "the search index is unavailable; try again shortly")
                    .with_retry_after(Duration::from_secs(1))
                    .with_cause(reason)
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// A response with its status; bodies that are not JSON become `Value::Null`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Ok` for a 2xx, the failure otherwise.
    pub fn success(self) -> Result<Value, EsError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(classify(self.status, &self.body))
        }
    }
}

/// The error object's `type` (top level or first root cause).
pub fn error_type(body: &Value) -> &str {
    body.pointer("/error/type")
        .or_else(|| body.pointer("/error/root_cause/0/type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn error_reason(body: &Value) -> String {
    match body.pointer("/error/reason").and_then(Value::as_str) {
        Some(reason) => reason.to_owned(),
        None => body.get("error").map(Value::to_string).unwrap_or_else(|| body.to_string()),
    }
}

/// Sorts a failed status (of a response or of one bulk item) into what to do next.
/// A `cluster_block_exception` carries the status of its blocks: 503 (state not
/// recovered, no master) and 429 (flood-stage disk watermark) pass by themselves; a
/// 403 block (read-only or write-blocked index) stays until an operator lifts it.
pub fn classify(status: u16, body: &Value) -> EsError {
    let kind = error_type(body);
    let reason = error_reason(body);
    let described = format!("{status} {kind}: {reason}");
    if status == 401 || status == 403 {
        return EsError::Fatal(described);
    }
    if status == 429 || status >= 500 {
        return EsError::Transient(described);
    }
    if kind == "cluster_block_exception" {
        return EsError::Fatal(described);
    }
    EsError::Rejected {
        status,
        reason: format!("{kind}: {reason}"),
    }
}

/// The failure types of a search on a point in time whose index is gone.
const PIT_GONE_CAUSES: [&str; 3] = [
    "no_shard_available_action_exception",
    "search_context_missing_exception",
    "index_not_found_exception",
];

/// Whether a failed search read a point in time whose index is gone. Elasticsearch
/// 8.19 answers 503 `search_phase_execution_exception` ("all shards failed"), each
/// shard failing with `no_shard_available_action_exception` (seen on the node
/// bin/elasticsearch starts); earlier 8.x releases answer 404, the same exception over
/// `search_context_missing_exception` (the reader context was freed with the index),
/// or `index_not_found_exception` itself.
pub fn pit_index_gone(status: u16, body: &Value) -> bool {
    if status != 404 && status != 503 {
        return false;
    }
    let kind = body.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
    if kind != "search_phase_execution_exception" {
        return status == 404 && PIT_GONE_CAUSES.contains(&kind);
    }
    let causes = body.pointer("/error/root_cause").and_then(Value::as_array);
    causes.is_some_and(|causes| {
        !causes.is_empty()
            && causes
                .iter()
                .all(|cause| PIT_GONE_CAUSES.contains(&cause.get("type").and_then(Value::as_str).unwrap_or_default()))
    })
}

/// Whether a transient failure of a whole request asks for smaller ones: 413 (too
/// large) or 429 (the cluster's queues are full: Elastic's advice is to back off and
/// send smaller bulks). [`classify`] and the bulk writer start the reason with the
/// status.
pub fn asks_for_smaller_requests(reason: &str) -> bool {
    reason.starts_with("413 ") || reason.starts_with("429 ")
}

/// Connection settings (from `Settings`).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An encoded API key (`id:key` in base64), as Kibana shows it.
    pub api_key: Option<String>,
    /// PEM file of the CA that signed the cluster's certificate.
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
    /// How long a 401 counts as transient. While a cluster restarts (or a rolling
    /// upgrade moves its security index) it refuses valid credentials; Kibana retries
    /// through that, and so do we, until 401s have lasted this long.
    pub auth_grace: Duration,
}

/// Since when every answer has been a 401 (none since the last other answer).
#[derive(Debug, Default)]
struct Refusals {
    since: Mutex<Option<Instant>>,
}

impl Refusals {
    /// How long 401s have lasted, counting this one.
    fn refused(&self) -> Duration {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now).elapsed()
    }

    fn answered(&self) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[derive(Clone)]
pub struct Client {
    es: Elasticsearch,
    timeout: Duration,
    auth_grace: Duration,
    refusals: Arc<Refusals>,
}

impl Client {
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let mut url = config.url.clone();
        let mut credentials = None;
        if !url.username().is_empty() {
            let user = url.username().to_owned();
            let password = url.password().unwrap_or_default().to_owned();
            credentials = Some(Credentials::Basic(user, password));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        if let Some(user) = &config.username {
            credentials = Some(Credentials::Basic(user.clone(), config.password.clone().unwrap_or_default()));
        }
        if let Some(key) = &config.api_key {
            credentials = Some(Credentials::EncodedApiKey(key.clone()));
        }
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(config.timeout)
            .disable_proxy();
        if let Some(credentials) = credentials {
            builder = builder.auth(credentials);
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading ELASTICSEARCH_CA_FILE {}", path.display()))?;
            let ca = Certificate::from_pem(&pem).map_err(|e| anyhow::anyhow!("ELASTICSEARCH_CA_FILE {}: {e}", path.display()))?;
            builder = builder.cert_validation(CertificateValidation::Full(ca));
        }
        let transport = builder.build().context("building the elasticsearch client")?;
        Ok(Self {
            es: Elasticsearch::new(transport),
            timeout: config.timeout,
            auth_grace: config.auth_grace,
            refusals: Arc::default(),
        })
    }

    /// Sends a call through its typed endpoint. Auth failures, cluster blocks, 429 and
    /// 5xx come back as errors; every other status comes back as a reply for the caller
    /// to judge.
    pub async fn send(&self, call: &Call) -> Result<Reply, EsError> {
        let es = &self.es;
        let timeout = if call.changes_cluster_state() {
            self.timeout.max(CLUSTER_STATE_TIMEOUT)
        } else if matches!(call, Call::ForceMerge { .. }) {
            self.timeout.max(FORCE_MERGE_TIMEOUT)
        } else {
            self.timeout
        };
        let sent = match call {
            Call::Info => es.info().request_timeout(timeout).send().await,
            Call::ClusterHealth { index } => {
                es.cluster()
                    .health(ClusterHealthParts::Index(&[index]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::HasPrivileges { body } => {
                es.security()
                    .has_privileges(SecurityHasPrivilegesParts::None)
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::PutComponentTemplate { name, body } => {
                es.cluster()
                    .put_component_template(ClusterPutComponentTemplateParts::Name(name))
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetComponentTemplate { name } => {
                es.cluster()
                    .get_component_template(ClusterGetComponentTemplateParts::Name(&[name]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::PutIndexTemplate { name, body } => {
                es.indices()
                    .put_index_template(IndicesPutIndexTemplateParts::Name(name))
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetIndexTemplate { name } => {
                es.indices()
                    .get_index_template(IndicesGetIndexTemplateParts::Name(name))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::CreateIndex { index, body } => {
                es.indices()
                    .create(IndicesCreateParts::Index(index))
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::DeleteIndex { index } => {
                es.indices()
                    .delete(IndicesDeleteParts::Index(&[index]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::PutSettings { index, body } => {
                es.indices()
                    .put_settings(IndicesPutSettingsParts::Index(&[index]))
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::UpdateAliases { body } => es.indices().update_aliases().body(body).request_timeout(timeout).send().await,
            Call::GetAlias { name } => {
                es.indices()
                    .get_alias(IndicesGetAliasParts::Name(&[name]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::IndexAliases { index } => {
                es.indices()
                    .get_alias(IndicesGetAliasParts::Index(&[index]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::Refresh { index } => {
                es.indices()
                    .refresh(IndicesRefreshParts::Index(&[index]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::ForceMerge { index, max_num_segments } => {
                es.indices()
                    .forcemerge(IndicesForcemergeParts::Index(&[index]))
                    .max_num_segments(i64::try_from(*max_num_segments).unwrap_or(i64::MAX))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::Bulk { lines } => {
                es.bulk(BulkParts::None)
                    .body(lines.iter().map(JsonBody::new).collect())
                    // The bulk API reads newline-delimited JSON. No compatible-with
                    // parameter: Elasticsearch wants one on both Content-Type and Accept
                    // or on neither, and the crate's Accept has none.
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))
                    .filter_path(BULK_FILTER)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::Search { index, body, preference } => {
                let indices = [index.as_str()];
                let search = es.search(SearchParts::Index(&indices)).body(body).request_timeout(timeout);
                match preference {
                    Some(preference) => search.preference(preference).send().await,
                    None => search.send().await,
                }
            }
            Call::GetMapping { index } => {
                es.indices()
                    .get_mapping(IndicesGetMappingParts::Index(&[index]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetBlocks { index } => {
                es.indices()
                    .get_settings(IndicesGetSettingsParts::IndexName(&[index], &[BLOCK_SETTINGS]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetUuids { index } => {
                es.indices()
                    .get_settings(IndicesGetSettingsParts::IndexName(&[index], &[UUID_SETTING]))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetWatermarks => {
                es.cluster()
                    .get_settings()
                    .include_defaults(true)
                    .flat_settings(true)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::NodesFs => {
                es.nodes()
                    .stats(NodesStatsParts::Metric(&["fs"]))
                    .filter_path(NODE_FS_FILTER)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::IndexStats { index } => {
                es.indices()
                    .stats(IndicesStatsParts::IndexMetric(&[index], INDEX_STATS_METRICS))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::SearchPit { body } => es.search(SearchParts::None).body(body).request_timeout(timeout).send().await,
            Call::Count { index, body } => {
                es.count(CountParts::Index(&[index]))
                    .body(body)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::OpenPit { index, keep_alive } => {
                es.open_point_in_time(OpenPointInTimeParts::Index(&[index]))
                    .keep_alive(keep_alive)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::ClosePit { id } => {
                es.close_point_in_time()
                    .body(json!({ "id": id }))
                    .request_timeout(timeout)
                    .send()
                    .await
            }
            Call::GetDocVersion { index, id } => {
                es.get(GetParts::IndexId(index, id))
                    ._source(&["false"])
                    .realtime(false)
                    .request_timeout(timeout)
                    .send()
                    .await
            }
        };
        let response = sent.map_err(|e| EsError::Transient(format!("{} {}: {e}", call.api(), call.target().map_or("", |(_, t)| t))))?;
        let status = response.status_code().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| EsError::Transient(format!("reading the answer to {}: {e}", call.api())))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 401 {
            let refused = self.refusals.refused();
            let described = format!("{status} {}: {}", error_type(&body), error_reason(&body));
            return Err(if refused < self.auth_grace {
                EsError::Transient(format!(
                    "{described} (credentials refused for {} s; retried until {} s, as while the cluster restarts)",
                    refused.as_secs(),
                    self.auth_grace.as_secs()
                ))
            } else {
                EsError::Fatal(format!("{described} (credentials refused for {} s)", refused.as_secs()))
            });
        }
        self.refusals.answered();
        // Not a cluster in trouble: the scan that sent it goes on in the new generation.
        if matches!(call, Call::SearchPit { .. }) && pit_index_gone(status, &body) {
            return Ok(Reply { status, body });
        }
        if status == 403 || status == 429 || status >= 500 || error_type(&body) == "cluster_block_exception" {
            return Err(classify(status, &body));
        }
        Ok(Reply { status, body })
    }
}
