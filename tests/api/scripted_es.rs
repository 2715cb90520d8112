//! A scripted HTTP server that answers like Elasticsearch 8: each test gives it a
//! function from request to response (bodies shaped as the reference documents them)
//! and reads back every request it received.
//!
//! It is at least as strict as Elasticsearch's REST layer: before a script sees a
//! request, [`refusal`] refuses what a real cluster refuses, each with the answer
//! Elasticsearch gives and the rule it follows (see [`API`] for the endpoints, their
//! methods, whether they read a body and their query parameters, from Elastic's REST API
//! specification). The server also keeps the cluster's indices, aliases and documents
//! ([`Indices`]), which scripts may change and the rules that depend on them read: the
//! external versions a bulk item must be above, and what a search finds
//! (`scripted_search`).
//!
//! The credentials it is sent hold the role the repository ships
//! (`index-templates/elasticsearch-role.json`), and nothing more: a request the role
//! does not grant is refused as Elasticsearch's security layer refuses it, so the
//! behaviour tests check the role file against what the backend asks of a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value, json};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query string.
    pub path: String,
    pub body: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub at: Instant,
    /// Why the server refused it before any script saw it, as Elasticsearch would.
    pub refused: Option<String>,
}

impl Received {
    /// The JSON body (`Null` when there is none; [`refusal`] refuses a body that is
    /// not JSON before a script sees it).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", self.method, self.path))
    }

    /// The lines of an ndjson body.
    pub fn lines(&self) -> Vec<Value> {
        self.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Ids of the documents of a `_bulk` body.
    pub fn bulk_ids(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.pointer("/index/_id").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// The path without the query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The query parameters, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        self.path
            .split_once('?')
            .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default()
    }

    /// The specification's name of the API this request calls (after [`refusal`]
    /// accepted it).
    pub fn api(&self) -> &'static str {
        route(&self.method, self.route()).map_or("", |(api, _)| api.name)
    }
}

/// A document the cluster holds: its external version and source.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub version: i64,
    pub source: Value,
}

/// Every index the cluster holds, with its aliases (the map it dereferences to), and
/// the documents each index holds by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Indices {
    aliases: BTreeMap<String, BTreeSet<String>>,
    pub docs: BTreeMap<String, BTreeMap<String, Stored>>,
}

impl Deref for Indices {
    type Target = BTreeMap<String, BTreeSet<String>>;
    fn deref(&self) -> &Self::Target {
        &self.aliases
    }
}

impl DerefMut for Indices {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.aliases
    }
}

impl IntoIterator for Indices {
    type Item = (String, BTreeSet<String>);
    type IntoIter = std::collections::btree_map::IntoIter<String, BTreeSet<String>>;
    fn into_iter(self) -> Self::IntoIter {
        self.aliases.into_iter()
    }
}

impl FromIterator<(String, BTreeSet<String>)> for Indices {
    fn from_iter<I: IntoIterator<Item = (String, BTreeSet<String>)>>(iter: I) -> Self {
        Self {
            aliases: iter.into_iter().collect(),
            docs: BTreeMap::new(),
        }
    }
}

impl Indices {
    /// The index a write to `name` goes to: the index itself, or the one index behind
    /// an alias.
    pub fn write_index(&self, name: &str) -> Option<String> {
        if self.aliases.contains_key(name) {
            return Some(name.to_owned());
        }
        let behind: Vec<&String> = self.aliases.iter().filter(|(_, a)| a.contains(name)).map(|(i, _)| i).collect();
        match behind[..] {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// The indices a search of `name` reads: an index, those behind an alias, or those
    /// a trailing-`*` pattern matches.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        self.aliases
            .iter()
            .filter(|(index, aliases)| match name.strip_suffix('*') {
                Some(prefix) => index.starts_with(prefix),
                None => *index == name || aliases.contains(name),
            })
            .map(|(index, _)| index.clone())
            .collect()
    }

    /// Drops an index with its documents.
    pub fn drop_index(&mut self, index: &str) -> Option<BTreeSet<String>> {
        self.docs.remove(index);
        self.aliases.remove(index)
    }
}

type Script = Box<dyn FnMut(&Received, &mut Indices) -> (u16, Value) + Send>;

pub struct ScriptedEs {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    indices: Arc<Mutex<Indices>>,
    /// How long the server takes to answer calls of an API, as a busy master does.
    delays: Arc<Mutex<BTreeMap<&'static str, std::time::Duration>>>,
}

impl ScriptedEs {
    /// A cluster with no index.
    pub async fn start(script: impl FnMut(&Received, &mut Indices) -> (u16, Value) + Send + 'static) -> Self {
        Self::with_indices(&[], script).await
    }

    /// A cluster holding these indices and aliases.
    pub async fn with_indices(
        indices: &[(&str, &[&str])],
        script: impl FnMut(&Received, &mut Indices) -> (u16, Value) + Send + 'static,
    ) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let state: Arc<Mutex<Indices>> = Arc::new(Mutex::new(
            indices
                .iter()
                .map(|(index, aliases)| (index.to_string(), aliases.iter().map(|a| a.to_string()).collect()))
                .collect(),
        ));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        let (log, cluster) = (received.clone(), state.clone());
        let delays: Arc<Mutex<BTreeMap<&'static str, std::time::Duration>>> = Arc::default();
        let delay_of = delays.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and_then(
                move |method: warp::http::Method, path: warp::path::FullPath, query: String, headers: HeaderMap, body: bytes::Bytes| {
                    let api = route(method.as_str(), path.as_str()).map(|(api, _)| api.name);
                    let delay = api.and_then(|api| delay_of.lock().unwrap().get(api).copied());
                    async move {
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, warp::Rejection>((method, path, query, headers, body))
                    }
                },
            )
            .untuple_one()
            .map(
                move |method: warp::http::Method, path: warp::path::FullPath, query: String, headers: HeaderMap, body: bytes::Bytes| {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let path = if query.is_empty() {
                        path.as_str().to_owned()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let mut request = Received {
                        method: method.to_string(),
                        path,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        accept: header("accept"),
                        at: Instant::now(),
                        refused: None,
                    };
                    let mut indices = cluster.lock().unwrap();
                    let role = Role::shipped();
                    let (status, body) = match refusal(&request, &indices, &role) {
                        Some(refused) => {
                            request.refused = Some(refused.1.to_string());
                            refused
                        }
                        None => {
                            let (status, mut body) = (script.lock().unwrap())(&request, &mut indices);
                            if request.api() == "bulk" {
                                apply_bulk_items(&request, &mut indices, &role, &mut body);
                            }
                            (status, body)
                        }
                    };
                    log.lock().unwrap().push(request);
                    warp::reply::with_status(warp::reply::json(&body), StatusCode::from_u16(status).unwrap())
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Self {
            url,
            received,
            indices: state,
            delays,
        }
    }

    /// Answers calls of `api` (the specification's name) only after `delay`.
    pub fn delay(&self, api: &'static str, delay: std::time::Duration) {
        self.delays.lock().unwrap().insert(api, delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `_bulk` requests received, in order.
    pub fn bulks(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.api() == "bulk").collect()
    }

    /// The requests refused as a real cluster would refuse them.
    pub fn refused(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.refused.is_some()).collect()
    }

    /// The cluster's indices and aliases now.
    pub fn indices(&self) -> Indices {
        self.indices.lock().unwrap().clone()
    }
}

/// Whether a body may, must or must not come with a call of an API.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Body {
    None,
    Optional,
    Required,
}

/// One endpoint of Elastic's REST API specification
/// (`rest-api-spec/src/main/resources/rest-api-spec/api/{name}.json`): its paths (`{x}`
/// is a path part), methods, body and query parameters.
pub struct Api {
    name: &'static str,
    methods: &'static [&'static str],
    paths: &'static [&'static str],
    body: Body,
    params: &'static [&'static str],
}

/// Parameters every API takes (the specification's `_common.json`).
const COMMON: &[&str] = &["pretty", "human", "error_trace", "source", "filter_path"];
const WILDCARDS: &[&str] = &["ignore_unavailable", "allow_no_indices", "expand_wildcards"];
/// What `indices.get_alias` and `indices.get_mapping` both take.
const INDEX_METADATA: &[&str] = &[
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "local",
    "master_timeout",
];

/// The endpoints the backend calls, as the specification defines them.
pub const API: &[Api] = &[
    Api {
        name: "info",
        methods: &["GET"],
        paths: &["/"],
        body: Body::None,
        params: &[],
    },
    Api {
        name: "cluster.health",
        methods: &["GET"],
        paths: &["/_cluster/health", "/_cluster/health/{index}"],
        body: Body::None,
        params: &[
            "expand_wildcards",
            "level",
            "local",
            "master_timeout",
            "timeout",
            "wait_for_active_shards",
            "wait_for_nodes",
            "wait_for_events",
            "wait_for_no_relocating_shards",
            "wait_for_no_initializing_shards",
            "wait_for_status",
        ],
    },
    Api {
        name: "security.has_privileges",
        methods: &["GET", "POST"],
        paths: &["/_security/user/_has_privileges", "/_security/user/{user}/_has_privileges"],
        body: Body::Required,
        params: &[],
    },
    Api {
        name: "cluster.put_component_template",
        methods: &["PUT", "POST"],
        paths: &["/_component_template/{name}"],
        body: Body::Required,
        params: &["create", "cause", "master_timeout"],
    },
    Api {
        name: "cluster.get_component_template",
        methods: &["GET"],
        paths: &["/_component_template", "/_component_template/{name}"],
        body: Body::None,
        params: &["master_timeout", "local", "include_defaults", "flat_settings", "settings_filter"],
    },
    Api {
        name: "indices.put_index_template",
        methods: &["PUT", "POST"],
        paths: &["/_index_template/{name}"],
        body: Body::Required,
        params: &["create", "cause", "master_timeout"],
    },
    Api {
        name: "indices.get_index_template",
        methods: &["GET"],
        paths: &["/_index_template", "/_index_template/{name}"],
        body: Body::None,
        params: &["flat_settings", "master_timeout", "local", "include_defaults"],
    },
    Api {
        name: "indices.update_aliases",
        methods: &["POST"],
        paths: &["/_aliases"],
        body: Body::Required,
        params: &["timeout", "master_timeout"],
    },
    Api {
        name: "indices.get_alias",
        methods: &["GET"],
        paths: &["/_alias", "/_alias/{name}", "/{index}/_alias/{name}", "/{index}/_alias"],
        body: Body::None,
        params: INDEX_METADATA,
    },
    Api {
        name: "indices.refresh",
        methods: &["POST", "GET"],
        paths: &["/_refresh", "/{index}/_refresh"],
        body: Body::None,
        params: WILDCARDS,
    },
    Api {
        name: "indices.forcemerge",
        methods: &["POST"],
        paths: &["/_forcemerge", "/{index}/_forcemerge"],
        body: Body::None,
        params: &[
            "flush",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "max_num_segments",
            "only_expunge_deletes",
            "wait_for_completion",
        ],
    },
    Api {
        name: "indices.stats",
        methods: &["GET"],
        paths: &["/_stats", "/_stats/{metric}", "/{index}/_stats", "/{index}/_stats/{metric}"],
        body: Body::None,
        params: &[
            "completion_fields",
            "fielddata_fields",
            "fields",
            "groups",
            "level",
            "include_segment_file_sizes",
            "include_unloaded_segments",
            "expand_wildcards",
            "forbid_closed_indices",
        ],
    },
    Api {
        name: "indices.get_mapping",
        methods: &["GET"],
        paths: &["/_mapping", "/{index}/_mapping"],
        body: Body::None,
        params: INDEX_METADATA,
    },
    Api {
        name: "indices.get_settings",
        methods: &["GET"],
        paths: &["/_settings", "/{index}/_settings", "/{index}/_settings/{name}", "/_settings/{name}"],
        body: Body::None,
        params: &[
            "master_timeout",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "flat_settings",
            "local",
            "include_defaults",
        ],
    },
    Api {
        name: "cluster.get_settings",
        methods: &["GET"],
        paths: &["/_cluster/settings"],
        body: Body::None,
        params: &["flat_settings", "master_timeout", "timeout", "include_defaults"],
    },
    Api {
        name: "nodes.stats",
        methods: &["GET"],
        paths: &[
            "/_nodes/stats",
            "/_nodes/{node_id}/stats",
            "/_nodes/stats/{metric}",
            "/_nodes/{node_id}/stats/{metric}",
            "/_nodes/stats/{metric}/{index_metric}",
            "/_nodes/{node_id}/stats/{metric}/{index_metric}",
        ],
        body: Body::None,
        params: &[
            "completion_fields",
            "fielddata_fields",
            "fields",
            "groups",
            "level",
            "types",
            "timeout",
            "include_segment_file_sizes",
            "include_unloaded_segments",
        ],
    },
    Api {
        name: "indices.put_settings",
        methods: &["PUT"],
        paths: &["/_settings", "/{index}/_settings"],
        body: Body::Required,
        params: &[
            "master_timeout",
            "timeout",
            "preserve_existing",
            "reopen",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "flat_settings",
        ],
    },
    Api {
        name: "bulk",
        methods: &["POST", "PUT"],
        paths: &["/_bulk", "/{index}/_bulk"],
        body: Body::Required,
        params: &[
            "wait_for_active_shards",
            "refresh",
            "routing",
            "timeout",
            "type",
            "_source",
            "_source_excludes",
            "_source_includes",
            "pipeline",
            "require_alias",
            "require_data_stream",
            "list_executed_pipelines",
            "include_source_on_error",
        ],
    },
    Api {
        name: "search",
        methods: &["GET", "POST"],
        paths: &["/_search", "/{index}/_search"],
        body: Body::Optional,
        params: &[
            "analyzer",
            "analyze_wildcard",
            "ccs_minimize_roundtrips",
            "default_operator",
            "df",
            "explain",
            "stored_fields",
            "docvalue_fields",
            "from",
            "force_synthetic_source",
            "ignore_unavailable",
            "ignore_throttled",
            "allow_no_indices",
            "expand_wildcards",
            "lenient",
            "preference",
            "q",
            "routing",
            "scroll",
            "search_type",
            "size",
            "sort",
            "_source",
            "_source_excludes",
            "_source_includes",
            "terminate_after",
            "stats",
            "suggest_field",
            "suggest_mode",
            "suggest_size",
            "suggest_text",
            "timeout",
            "track_scores",
            "track_total_hits",
            "allow_partial_search_results",
            "typed_keys",
            "version",
            "seq_no_primary_term",
            "request_cache",
            "batched_reduce_size",
            "max_concurrent_shard_requests",
            "pre_filter_shard_size",
            "rest_total_hits_as_int",
            "min_compatible_shard_node",
            "include_named_queries_score",
        ],
    },
    Api {
        name: "count",
        methods: &["POST", "GET"],
        paths: &["/_count", "/{index}/_count"],
        body: Body::Optional,
        params: &[
            "ignore_unavailable",
            "ignore_throttled",
            "allow_no_indices",
            "expand_wildcards",
            "min_score",
            "preference",
            "routing",
            "q",
            "analyzer",
            "analyze_wildcard",
            "default_operator",
            "df",
            "lenient",
            "terminate_after",
        ],
    },
    Api {
        name: "open_point_in_time",
        methods: &["POST"],
        paths: &["/{index}/_pit"],
        body: Body::Optional,
        params: &[
            "preference",
            "routing",
            "ignore_unavailable",
            "expand_wildcards",
            "keep_alive",
            "allow_partial_search_results",
            "max_concurrent_shard_requests",
        ],
    },
    Api {
        name: "close_point_in_time",
        methods: &["DELETE"],
        paths: &["/_pit"],
        body: Body::Required,
        params: &[],
    },
    Api {
        name: "get",
        methods: &["GET", "HEAD"],
        paths: &["/{index}/_doc/{id}"],
        body: Body::None,
        params: &[
            "force_synthetic_source",
            "stored_fields",
            "preference",
            "realtime",
            "refresh",
            "routing",
            "_source",
            "_source_excludes",
            "_source_includes",
            "version",
            "version_type",
        ],
    },
    Api {
        name: "indices.create",
        methods: &["PUT"],
        paths: &["/{index}"],
        body: Body::Optional,
        params: &["wait_for_active_shards", "timeout", "master_timeout"],
    },
    Api {
        name: "indices.delete",
        methods: &["DELETE"],
        paths: &["/{index}"],
        body: Body::None,
        params: &[
            "timeout",
            "master_timeout",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
        ],
    },
];

/// A path part stands for one segment that is not an API name (those start with `_`,
/// which no index, alias or template name may).
fn path_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path) = (pattern.trim_end_matches('/'), path.trim_end_matches('/'));
    let (want, got): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    want.len() == got.len()
        && want.iter().zip(&got).all(|(w, g)| {
            if w.starts_with('{') {
                !g.is_empty() && !g.starts_with('_')
            } else {
                w == g
            }
        })
}

/// The API a method and path call, and whether the method is one it takes.
fn route(method: &str, path: &str) -> Option<(&'static Api, bool)> {
    let apis = API.iter().filter(|api| api.paths.iter().any(|p| path_matches(p, path)));
    let mut found = None;
    for api in apis {
        if api.methods.contains(&method) {
            return Some((api, true));
        }
        found.get_or_insert((api, false));
    }
    found
}

/// An error answer as Elasticsearch shapes it.
pub fn error(kind: &str, reason: &str, status: u16) -> Value {
    json!({
        "error": { "root_cause": [{ "type": kind, "reason": reason }], "type": kind, "reason": reason },
        "status": status
    })
}

/// A search on a point in time whose index was deleted since it opened, answered as
/// Elasticsearch 8.19.21 answers it (seen on the node `bin/elasticsearch` starts: the
/// shard is gone, not the index name).
pub fn pit_index_gone(index: &str) -> (u16, Value) {
    let cause = json!({ "type": "no_shard_available_action_exception", "reason": null });
    (
        503,
        json!({
            "error": {
                "root_cause": [cause],
                "type": "search_phase_execution_exception",
                "reason": "all shards failed",
                "phase": "query",
                "grouped": true,
                "failed_shards": [{ "shard": 0, "index": index, "node": null, "reason": cause }]
            },
            "status": 503
        }),
    )
}

fn compatible_with(media_type: Option<&str>) -> Option<&str> {
    media_type?
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("compatible-with="))
}

/// The media types whose bodies Elasticsearch parses as JSON (`XContentType.JSON` and
/// `VND_JSON`: `application/json`, `application/x-ndjson` and the vendor types).
const JSON_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/vnd.elasticsearch+json",
    "application/vnd.elasticsearch+x-ndjson",
];
/// Media types Elasticsearch also reads (`XContentType` SMILE, CBOR, YAML), which the
/// scripted cluster cannot parse and the backend never sends.
const OTHER_MEDIA_TYPES: &[&str] = &["application/smile", "application/cbor", "application/yaml"];

/// What Elasticsearch's REST layer, and then its security layer, refuses before the
/// API runs, with `role` the role of the user the credentials name.
pub fn refusal(r: &Received, indices: &Indices, role: &Role) -> Option<(u16, Value)> {
    // RestCompatibleVersionHelper: when a request has a body, a compatible version on
    // one of Content-Type and Accept must be on the other too (and the same).
    let (content, accept) = (compatible_with(r.content_type.as_deref()), compatible_with(r.accept.as_deref()));
    let with_body = !r.body.is_empty();
    if with_body && content != accept {
        let reason = format!(
            "A compatible version is required on both Content-Type and Accept headers if either one has requested a \
             compatible version. Accept={}, Content-Type={}",
            r.accept.as_deref().unwrap_or("null"),
            r.content_type.as_deref().unwrap_or("null")
        );
        return Some((400, error("media_type_header_exception", &reason, 400)));
    }
    // RestController: a path no handler serves, or a method it does not take.
    let Some((api, method_ok)) = route(&r.method, r.route()) else {
        return Some((
            400,
            json!({ "error": format!("no handler found for uri [{}] and method [{}]", r.route(), r.method), "status": 400 }),
        ));
    };
    if !method_ok {
        let reason = format!(
            "Incorrect HTTP method for uri [{}] and method [{}], allowed: {:?}",
            r.route(),
            r.method,
            api.methods
        );
        return Some((405, json!({ "error": reason, "status": 405 })));
    }
    // RestController.dispatchRequest: a request with a body must say what it is in a
    // Content-Type Elasticsearch parses ("strict content-type checking"; the browser
    // safelisted types such as text/plain are refused too):
    // sendContentTypeErrorMessage answers 406 with a simple error.
    if with_body && let Some(refused) = content_type_refusal(r.content_type.as_deref()) {
        return Some(refused);
    }
    // BaseRestHandler: a body on an API that reads none, or none where one is required.
    if with_body && api.body == Body::None {
        let reason = format!("request [{} {}] does not support having a body", r.method, r.route());
        return Some((400, error("illegal_argument_exception", &reason, 400)));
    }
    if !with_body && api.body == Body::Required {
        return Some((400, error("parse_exception", "request body is required", 400)));
    }
    if with_body && let Some(refused) = body_refusal(r, api) {
        return Some(refused);
    }
    // BaseRestHandler: every query parameter must be one the API consumes.
    let unknown: Vec<String> = r
        .params()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !COMMON.contains(&name.as_str()) && !api.params.contains(&name.as_str()))
        .collect();
    if !unknown.is_empty() {
        let reason = format!(
            "request [{}] contains unrecognized parameter{}: [{}]",
            r.route(),
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", ")
        );
        return Some((400, error("illegal_argument_exception", &reason, 400)));
    }
    if let Some(refused) = settings_refusal(r, api) {
        return Some(refused);
    }
    if api.name == "indices.create" {
        let index = r.route().trim_start_matches('/');
        if let Some(reason) = invalid_index_name(index) {
            return Some((
                400,
                error(
                    "invalid_index_name_exception",
                    &format!("Invalid index name [{index}], {reason}"),
                    400,
                ),
            ));
        }
    }
    // A single-document operation through an alias needs exactly one index behind it.
    if api.name == "get" {
        let name = r.route().trim_start_matches('/').split('/').next().unwrap_or_default();
        let behind: Vec<&String> = indices
            .iter()
            .filter(|(_, aliases)| aliases.contains(name))
            .map(|(i, _)| i)
            .collect();
        if behind.len() > 1 {
            let reason = format!(
                "alias [{name}] has more than one index associated with it [{}], can't execute a single index op",
                behind.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
            return Some((400, error("illegal_argument_exception", &reason, 400)));
        }
    }
    privilege_refusal(r, api, role)
}

/// RestController.sendContentTypeErrorMessage: "Content-Type header is missing", or
/// "Content-Type header [x] is not supported" for a type that is not one of
/// `XContentType` or is browser-safelisted (`isContentTypeDisallowed`), both 406.
fn content_type_refusal(content_type: Option<&str>) -> Option<(u16, Value)> {
    let Some(header) = content_type else {
        return Some((406, json!({ "error": "Content-Type header is missing", "status": 406 })));
    };
    let media_type = header.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if JSON_MEDIA_TYPES.contains(&media_type.as_str()) {
        return None;
    }
    if OTHER_MEDIA_TYPES.contains(&media_type.as_str()) {
        let reason = format!("the scripted cluster reads JSON bodies only, not [{header}]");
        return Some((400, error("scripted_cluster_unsupported", &reason, 400)));
    }
    let reason = format!("Content-Type header [{header}] is not supported");
    Some((406, json!({ "error": reason, "status": 406 })))
}

/// A body Elasticsearch cannot parse. JSON bodies: the handler's XContentParser throws
/// an XContentParseException ("[line:column] ..."), which ExceptionsHelper answers 400.
/// Bulk bodies (BulkRequestParser): the last line must end with a newline ("The bulk
/// request must be terminated by a newline [\n]"), and each action line must be an
/// object naming one of create, delete, index or update ("Malformed action/metadata
/// line [n], ..."), both IllegalArgumentException, 400.
fn body_refusal(r: &Received, api: &Api) -> Option<(u16, Value)> {
    let unparsable = |e: serde_json::Error| {
        let reason = format!("[{}:{}] {e}", e.line(), e.column());
        Some((400, error("x_content_parse_exception", &reason, 400)))
    };
    if api.name != "bulk" {
        return serde_json::from_str::<Value>(&r.body).err().and_then(unparsable);
    }
    if !r.body.ends_with('\n') {
        let reason = "The bulk request must be terminated by a newline [\\n]";
        return Some((400, error("illegal_argument_exception", reason, 400)));
    }
    let mut lines = r.body.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let action: Value = match serde_json::from_str(line) {
            Ok(action) => action,
            Err(e) => return unparsable(e),
        };
        let malformed = |expected: String| {
            let reason = format!("Malformed action/metadata line [{}], {expected}", n + 1);
            Some((400, error("illegal_argument_exception", &reason, 400)))
        };
        let Some(kind) = action.as_object().and_then(|o| o.keys().next()) else {
            return malformed("expected START_OBJECT or END_OBJECT".into());
        };
        match kind.as_str() {
            "delete" => {}
            "create" | "index" | "update" => match lines.next() {
                Some((_, source)) => {
                    if let Err(e) = serde_json::from_str::<Value>(source) {
                        return unparsable(e);
                    }
                }
                None => {
                    let reason = format!("Validation Failed: 1: no requests added;  action line [{}] has no source", n + 1);
                    return Some((400, error("action_request_validation_exception", &reason, 400)));
                }
            },
            other => {
                return malformed(format!(
                    "expected field [create], [delete], [index] or [update] but found [{other}]"
                ));
            }
        }
    }
    None
}

/// Index settings the scripted cluster knows (from IndexScopedSettings'
/// BUILT_IN_INDEX_SETTINGS), each with whether it is dynamic (updatable on an open
/// index, `index-modules` "Dynamic index settings").
const INDEX_SETTINGS: &[(&str, bool)] = &[
    ("index.number_of_shards", false),
    ("index.number_of_routing_shards", false),
    ("index.codec", false),
    ("index.hidden", true),
    ("index.number_of_replicas", true),
    ("index.auto_expand_replicas", true),
    ("index.refresh_interval", true),
    ("index.max_result_window", true),
    ("index.max_inner_result_window", true),
    ("index.max_ngram_diff", true),
    ("index.max_shingle_diff", true),
    ("index.max_terms_count", true),
    ("index.mapping.total_fields.limit", true),
    ("index.mapping.depth.limit", true),
    ("index.mapping.nested_fields.limit", true),
    ("index.blocks.read_only", true),
    ("index.blocks.read_only_allow_delete", true),
    ("index.blocks.read", true),
    ("index.blocks.write", true),
    ("index.blocks.metadata", true),
    ("index.translog.durability", true),
];

/// Group settings: every key under these prefixes is a setting (analysis is static).
const INDEX_SETTING_GROUPS: &[(&str, bool)] = &[("index.analysis.", false), ("index.routing.allocation.", true)];

/// Settings as Elasticsearch reads them: nested objects flattened to dotted keys, and
/// `index.` put in front of a key without it (Settings.Builder.normalizePrefix).
fn flat_settings(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(object) => {
            for (k, v) in object {
                flat_settings(v, &format!("{prefix}{k}."), out);
            }
        }
        None => {
            let key = prefix.trim_end_matches('.');
            out.push(if key.starts_with("index.") {
                key.to_owned()
            } else {
                format!("index.{key}")
            });
        }
    }
}

/// AbstractScopedSettings.validate: an index setting it does not know is refused, 400
/// "unknown setting [x] please check that any required plugins are installed, or check
/// the breaking changes documentation for removed settings"; and
/// MetadataUpdateSettingsService: a static setting cannot change on an open index, 400
/// "Can't update non dynamic settings [[x]] for open indices [[index]]".
fn settings_refusal(r: &Received, api: &Api) -> Option<(u16, Value)> {
    if !matches!(
        api.name,
        "indices.create" | "cluster.put_component_template" | "indices.put_index_template" | "indices.put_settings"
    ) {
        return None;
    }
    let body = r.json();
    let settings = match api.name {
        "indices.create" => body.get("settings")?,
        "cluster.put_component_template" | "indices.put_index_template" => body.pointer("/template/settings")?,
        "indices.put_settings" => body.get("settings").unwrap_or(&body),
        _ => return None,
    };
    let mut keys = Vec::new();
    flat_settings(settings, "", &mut keys);
    let known = |key: &str| {
        INDEX_SETTINGS
            .iter()
            .chain(INDEX_SETTING_GROUPS)
            .find(|(name, _)| if name.ends_with('.') { key.starts_with(name) } else { key == *name })
            .map(|(_, dynamic)| *dynamic)
    };
    if let Some(unknown) = keys.iter().find(|k| known(k).is_none()) {
        let reason = format!(
            "unknown setting [{unknown}] please check that any required plugins are installed, or check the breaking \
             changes documentation for removed settings"
        );
        return Some((400, error("illegal_argument_exception", &reason, 400)));
    }
    let fixed: Vec<&String> = keys.iter().filter(|k| known(k) == Some(false)).collect();
    if api.name == "indices.put_settings" && !fixed.is_empty() {
        let index = r.route().trim_start_matches('/').split('/').next().unwrap_or_default();
        let names: Vec<&str> = fixed.iter().map(|k| k.as_str()).collect();
        let reason = format!(
            "Can't update non dynamic settings [[{}]] for open indices [[{index}]]",
            names.join(", ")
        );
        return Some((400, error("illegal_argument_exception", &reason, 400)));
    }
    None
}

/// A role as the security API takes it (`PUT _security/role`): cluster privileges, and
/// index privileges per list of name patterns.
pub struct Role {
    cluster: Vec<String>,
    indices: Vec<(Vec<String>, Vec<String>)>,
}

impl Role {
    /// The role the repository ships for the backend's user.
    pub fn shipped() -> Self {
        let file = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/index-templates/elasticsearch-role.json"));
        Self::from_json(&serde_json::from_str(file).unwrap())
    }

    pub fn from_json(role: &Value) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        Self {
            cluster: strings(&role["cluster"]),
            indices: role["indices"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|group| (strings(&group["names"]), strings(&group["privileges"])))
                .collect(),
        }
    }

    /// The `_security/user/_has_privileges` answer for what `asked` asks: a privilege
    /// is held when the role names it or one that includes it.
    pub fn has_privileges(&self, asked: &Value) -> Value {
        let cluster: Map<String, Value> = asked["cluster"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| (p.to_owned(), json!(self.grants_cluster(&including(p, CLUSTER_INCLUDED)))))
            .collect();
        let index: Map<String, Value> = asked["index"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|entry| {
                let names: Vec<String> = entry["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                names.into_iter().map(|name| {
                    let held: Map<String, Value> = entry["privileges"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|p| (p.to_owned(), json!(self.grants_index(Some(&name), &including(p, INDEX_INCLUDED)))))
                        .collect();
                    (name, Value::Object(held))
                })
            })
            .collect();
        let all = cluster
            .values()
            .chain(index.values().flat_map(|v| v.as_object().unwrap().values()))
            .all(|v| v == &json!(true));
        json!({ "username": "arrears", "has_all_requested": all, "cluster": cluster, "index": index, "application": {} })
    }

    fn grants_cluster(&self, privileges: &[&str]) -> bool {
        self.cluster.iter().any(|p| privileges.contains(&p.as_str()))
    }

    /// Whether a privilege granting the action is held on `name` (any index when
    /// `None`).
    fn grants_index(&self, name: Option<&str>, privileges: &[&str]) -> bool {
        self.indices.iter().any(|(names, held)| {
            name.is_none_or(|name| names.iter().any(|pattern| glob(pattern, name))) && held.iter().any(|p| privileges.contains(&p.as_str()))
        })
    }
}

/// Which privileges include another (`security-privileges`): `all` includes every
/// privilege, cluster `manage` the cluster's monitoring and templates, index `manage`
/// the index's metadata, monitoring, creation, deletion and maintenance, `write` the
/// document privileges.
const CLUSTER_INCLUDED: &[(&str, &[&str])] = &[("manage", &["monitor", "manage_index_templates"])];
const INDEX_INCLUDED: &[(&str, &[&str])] = &[
    (
        "manage",
        &["view_index_metadata", "monitor", "create_index", "delete_index", "maintenance"],
    ),
    ("write", &["index", "create", "create_doc", "delete"]),
    ("index", &["create", "create_doc"]),
    ("create", &["create_doc"]),
];

/// A privilege with the privileges that include it.
fn including<'a>(privilege: &'a str, included: &[(&'a str, &[&str])]) -> Vec<&'a str> {
    let mut out = vec![privilege, "all"];
    out.extend(included.iter().filter(|(_, under)| under.contains(&privilege)).map(|(p, _)| *p));
    out
}

/// A role's index name pattern (`*` stands for any run of characters).
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| name.is_char_boundary(head.len() + i) && glob(tail, &name[head.len() + i..]))
        }
    }
}

/// The privileges that grant each action, from Elastic's "Security privileges" page
/// (`security-privileges`): a cluster action (`None`) or an index action on a name.
/// Each list holds the named privilege and those that include it (`all` includes
/// every privilege; cluster `manage` includes `monitor` and `manage_index_templates`;
/// index `manage` includes `view_index_metadata`, `create_index`, `delete_index` and
/// refresh; `write` includes `index`).
mod privileges {
    pub const MONITOR: &[&str] = &["monitor", "manage", "all"];
    pub const TEMPLATES: &[&str] = &["manage_index_templates", "manage", "all"];
    pub const READ: &[&str] = &["read", "all"];
    pub const INDEX: &[&str] = &["index", "write", "all"];
    pub const CREATE_DOC: &[&str] = &["create_doc", "create", "index", "write", "all"];
    pub const DELETE_DOC: &[&str] = &["delete", "write", "all"];
    pub const VIEW_METADATA: &[&str] = &["view_index_metadata", "manage", "all"];
    pub const SETTINGS_GET: &[&str] = &["view_index_metadata", "monitor", "manage", "all"];
    pub const MANAGE: &[&str] = &["manage", "all"];
    /// Refresh, flush and force merge.
    pub const MAINTENANCE: &[&str] = &["maintenance", "manage", "all"];
    pub const MONITOR_INDEX: &[&str] = &["monitor", "manage", "all"];
    pub const CREATE_INDEX: &[&str] = &["create_index", "manage", "all"];
    pub const DELETE_INDEX: &[&str] = &["delete_index", "manage", "all"];
}

/// What a request needs: (index name or `None` for a cluster action, action name, the
/// privileges granting it). Names with a wildcard need nothing: Elasticsearch expands
/// them to the authorized indices only.
fn needs(r: &Received, api: &Api) -> Vec<(Option<String>, &'static str, &'static [&'static str])> {
    use privileges::*;
    let first = r.route().trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
    let on_path = |action: &'static str, privileges: &'static [&'static str]| {
        if first.starts_with('_') || first.contains('*') {
            Vec::new()
        } else {
            vec![(Some(first.clone()), action, privileges)]
        }
    };
    let cluster = |action: &'static str, privileges: &'static [&'static str]| vec![(None, action, privileges)];
    match api.name {
        "info" => cluster("cluster:monitor/main", MONITOR),
        "cluster.health" => cluster("cluster:monitor/health", MONITOR),
        "cluster.get_settings" => cluster("cluster:monitor/settings", MONITOR),
        "nodes.stats" => cluster("cluster:monitor/nodes/stats", MONITOR),
        // Any user may ask which privileges it holds.
        "security.has_privileges" => Vec::new(),
        "cluster.put_component_template" => cluster("cluster:admin/component_template/put", TEMPLATES),
        "cluster.get_component_template" => cluster("cluster:admin/component_template/get", TEMPLATES),
        "indices.put_index_template" => cluster("indices:admin/index_template/put", TEMPLATES),
        "indices.get_index_template" => cluster("indices:admin/index_template/get", TEMPLATES),
        // Adding or removing an alias needs `manage` on the index and on the alias
        // (the aliases API's prerequisites).
        "indices.update_aliases" => r.json()["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|action| action.as_object()?.values().next().cloned())
            .flat_map(|spec| [spec["index"].as_str().map(str::to_owned), spec["alias"].as_str().map(str::to_owned)])
            .flatten()
            .map(|name| (Some(name), "indices:admin/aliases", MANAGE))
            .collect(),
        "indices.get_alias" => on_path("indices:admin/aliases/get", VIEW_METADATA),
        "indices.get_mapping" => on_path("indices:admin/mappings/get", VIEW_METADATA),
        "indices.get_settings" => on_path("indices:monitor/settings/get", SETTINGS_GET),
        "indices.put_settings" => on_path("indices:admin/settings/update", MANAGE),
        "indices.refresh" => on_path("indices:admin/refresh", MAINTENANCE),
        "indices.forcemerge" => on_path("indices:admin/forcemerge", MAINTENANCE),
        "indices.stats" => on_path("indices:monitor/stats", MONITOR_INDEX),
        "search" | "count" => on_path("indices:data/read/search", READ),
        "open_point_in_time" => on_path("indices:data/read/open_point_in_time", READ),
        "get" => on_path("indices:data/read/get", READ),
        "close_point_in_time" => vec![(None, "indices:data/read/close_point_in_time", READ)],
        // "A create index request may contain aliases to be added to the index once
        // created. In that case the request requires the manage privilege as well, on
        // both the index and the aliases names" (`create_index`).
        "indices.create" => {
            let mut needs = on_path("indices:admin/create", CREATE_INDEX);
            let aliases = r.json()["aliases"]
                .as_object()
                .map(|a| a.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            if !aliases.is_empty() {
                needs.push((Some(first.clone()), "indices:admin/aliases", MANAGE));
                needs.extend(aliases.into_iter().map(|a| (Some(a), "indices:admin/aliases", MANAGE)));
            }
            needs
        }
        "indices.delete" => on_path("indices:admin/delete", DELETE_INDEX),
        // Each bulk item is authorized on its own (`apply_bulk_items`).
        _ => Vec::new(),
    }
}

/// The user the credentials name (Basic), for the security layer's messages.
fn user(r: &Received) -> String {
    use base64::Engine;
    r.authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split(':').next().map(str::to_owned))
        .unwrap_or_else(|| "arrears".into())
}

/// The security layer's refusal (AuthorizationService.denialException): 403
/// `security_exception`, "action [a] is unauthorized for user [u] with effective roles
/// [r] on indices [i], this action is granted by the index privileges [p]".
fn unauthorized(user: &str, action: &str, index: Option<&str>, kind: &str, privileges: &[&str]) -> Value {
    let reason = match index {
        Some(index) => format!(
            "action [{action}] is unauthorized for user [{user}] with effective roles [arrears] on indices [{index}], \
             this action is granted by the index privileges [{}]",
            privileges.join(",")
        ),
        None => format!(
            "action [{action}] is unauthorized for user [{user}] with effective roles [arrears], this action is granted \
             by the {kind} privileges [{}]",
            privileges.join(",")
        ),
    };
    error("security_exception", &reason, 403)
}

/// What the role does not grant this request.
fn privilege_refusal(r: &Received, api: &Api, role: &Role) -> Option<(u16, Value)> {
    needs(r, api).into_iter().find_map(|(index, action, privileges)| {
        let (granted, kind) = match &index {
            Some(name) => (role.grants_index(Some(name), privileges), "index"),
            None if api.name == "close_point_in_time" => (role.grants_index(None, privileges), "index"),
            None => (role.grants_cluster(privileges), "cluster"),
        };
        (!granted).then(|| (403, unauthorized(&user(r), action, index.as_deref(), kind, privileges)))
    })
}

/// MetadataCreateIndexService.validateIndexOrAliasName and validateIndexName.
fn invalid_index_name(index: &str) -> Option<&'static str> {
    if index.starts_with(['_', '-', '+']) {
        Some("must not start with '_', '-', or '+'")
    } else if index != index.to_lowercase() {
        Some("must be lowercase")
    } else if index.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        Some("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?, #, :]")
    } else if index.len() > 255 {
        Some("index name is too long, must be no longer than 255 bytes")
    } else {
        None
    }
}

/// What the cluster does with each item of a bulk the script accepted, whatever the
/// script answered for it:
/// - an item the role does not grant fails on its own, 403 `security_exception`
///   (bulk items are authorized one by one: `index` for an index action, `create_doc`
///   for create, `delete` for delete);
/// - an item with `require_alias` whose target is not an alias fails on its own
///   (TransportBulkAction: "[x] is not an alias, and [require_alias] request flag is
///   [true]", 404 `index_not_found_exception`);
/// - an item with `version_type=external` whose version is not above the stored
///   document's fails with 409 `version_conflict_engine_exception` ("[id]: version
///   conflict, current version [a] is higher or equal to the one provided [b]",
///   `docs-index_` "Versioning": external versions must be greater than the stored one);
/// - an item the script answered 2xx that passes these is stored in the index the
///   target resolves to, and searches find it.
fn apply_bulk_items(r: &Received, indices: &mut Indices, role: &Role, answer: &mut Value) {
    let lines = r.lines();
    let mut actions = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let delete = lines[at].get("delete").is_some();
        actions.push((&lines[at], if delete { None } else { lines.get(at + 1) }));
        at += if delete { 1 } else { 2 };
    }
    let path_index = r.route().trim_start_matches('/').split('/').next().filter(|p| !p.starts_with('_'));
    let Some(items) = answer.get_mut("items").and_then(Value::as_array_mut) else {
        return;
    };
    let user = user(r);
    let mut failed = false;
    for (item, (action, source)) in items.iter_mut().zip(actions) {
        let Some((kind, spec)) = action.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let target = spec
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index)
            .unwrap_or_default()
            .to_owned();
        let id = spec.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let (action_name, privileges) = match kind.as_str() {
            "delete" => ("indices:data/write/delete", privileges::DELETE_DOC),
            "create" => ("indices:data/write/index", privileges::CREATE_DOC),
            _ => ("indices:data/write/index", privileges::INDEX),
        };
        let answered = item
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v["status"].as_u64())
            .unwrap_or(0);
        let refused = if !role.grants_index(Some(&target), privileges) {
            Some((
                403,
                unauthorized(&user, action_name, Some(&target), "index", privileges)["error"].clone(),
            ))
        } else if spec.get("require_alias") == Some(&json!(true)) && !indices.values().any(|aliases| aliases.contains(&target)) {
            let reason = format!("[{target}] is not an alias, and [require_alias] request flag is [true]");
            Some((
                404,
                json!({ "type": "index_not_found_exception", "reason": reason, "index": target }),
            ))
        } else if let Some(refused) = source.and_then(|s| unmapped_refusal(indices, &target, s)) {
            Some(refused)
        } else if (200..300).contains(&answered) {
            store(indices, &target, &id, kind, spec, source)
        } else {
            None
        };
        if let Some((status, error)) = refused {
            *item = json!({ kind: { "_index": target, "_id": id, "status": status, "error": error } });
            failed = true;
        }
    }
    if failed {
        answer["errors"] = json!(true);
    }
}

/// The refusal of a document with a field its index's mapping (this build's, for an
/// index of the `arrears` family) does not map, where the object holding it is
/// `dynamic: strict`, as Elasticsearch refuses it (`dynamic`: "strict: ... an exception
/// is thrown and the document is rejected"). Under an object mapped `dynamic: true` a
/// new field is mapped (by a matching dynamic template, or by its JSON type).
fn unmapped_refusal(indices: &Indices, target: &str, source: &Value) -> Option<(u16, Value)> {
    let index = indices.write_index(target).unwrap_or_else(|| target.to_owned());
    let entity = arrears::search::elastic::templates::Names::new("arrears").entity_of(&index)?;
    let mappings = arrears::search::elastic::templates::mappings(entity);
    let strict = mappings["dynamic"] == "strict";
    let (field, within) = unmapped(source, &mappings, "", strict)?;
    let reason = format!("[1:1] mapping set to strict, dynamic introduction of [{field}] within [{within}] is not allowed");
    Some((400, json!({ "type": "strict_dynamic_mapping_exception", "reason": reason })))
}

/// The first field of `value`, an object at `path` mapped by `node` (strict or not),
/// that a strict object does not map: its name and the object's path (`_doc` at the top).
fn unmapped(value: &Value, node: &Value, path: &str, strict: bool) -> Option<(String, String)> {
    let object = value.as_object()?;
    for (name, child) in object {
        if child.is_null() {
            continue;
        }
        let full = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        match node.get("properties").and_then(|p| p.get(name)) {
            Some(mapped) if mapped.get("type").and_then(Value::as_str) == Some("flattened") => {}
            Some(mapped) => {
                let strict = match mapped.get("dynamic") {
                    Some(dynamic) => dynamic == "strict",
                    None => strict,
                };
                let objects: Vec<&Value> = match child {
                    Value::Array(items) => items.iter().filter(|i| i.is_object()).collect(),
                    Value::Object(_) => vec![child],
                    _ => Vec::new(),
                };
                for object in objects {
                    if let Some(found) = unmapped(object, mapped, &full, strict) {
                        return Some(found);
                    }
                }
            }
            None if strict => {
                let within = if path.is_empty() { "_doc".to_owned() } else { path.to_owned() };
                return Some((name.clone(), within));
            }
            None => {}
        }
    }
    None
}

/// Applies one accepted bulk action to the index `target` resolves to, or the version
/// conflict that refuses it.
fn store(indices: &mut Indices, target: &str, id: &str, kind: &str, spec: &Value, source: Option<&Value>) -> Option<(u16, Value)> {
    let index = indices.write_index(target).unwrap_or_else(|| target.to_owned());
    let docs = indices.docs.entry(index.clone()).or_default();
    let current = docs.get(id).map(|d| d.version);
    let external = spec.get("version_type").and_then(Value::as_str) == Some("external");
    let version = match (external, spec.get("version").and_then(Value::as_i64)) {
        (true, Some(version)) => {
            if let Some(current) = current.filter(|c| *c >= version) {
                let reason =
                    format!("[{id}]: version conflict, current version [{current}] is higher or equal to the one provided [{version}]");
                return Some((
                    409,
                    json!({ "type": "version_conflict_engine_exception", "reason": reason, "index": index, "shard": "0" }),
                ));
            }
            version
        }
        _ => current.unwrap_or(0) + 1,
    };
    match (kind, source) {
        ("delete", _) => {
            docs.remove(id);
        }
        (_, Some(source)) => {
            docs.insert(
                id.to_owned(),
                Stored {
                    version,
                    source: source.clone(),
                },
            );
        }
        _ => {}
    }
    None
}

/// A bulk response whose items have these statuses (errors shaped as the bulk API
/// documents them).
pub fn bulk_response(statuses: &[u16]) -> Value {
    let items: Vec<Value> = statuses
        .iter()
        .map(|status| {
            let mut result = json!({ "_index": "arrears-accounts-g1", "status": status });
            let error = match status {
                200 | 201 => None,
                409 => Some((
                    "version_conflict_engine_exception",
                    "version conflict, current version [12] is higher or equal to the one provided [11]",
                )),
                429 => Some(("es_rejected_execution_exception", "rejected execution of coordinating operation")),
                400 => Some((
                    "document_parsing_exception",
                    "[1:120] failed to parse field [current_balance] of type [scaled_float]",
                )),
                403 => Some((
                    "cluster_block_exception",
                    "index [arrears-accounts-g1] blocked by: [FORBIDDEN/8/index write (api)];",
                )),
                _ => Some(("unavailable_shards_exception", "primary shard is not active")),
            };
            if let Some((kind, reason)) = error {
                result["error"] = json!({ "type": kind, "reason": reason });
            }
            json!({ "index": result })
        })
        .collect();
    json!({ "took": 3, "errors": statuses.iter().any(|s| *s >= 300), "items": items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(method: &str, path: &str, body: &str, content_type: Option<&str>, accept: Option<&str>) -> Received {
        Received {
            method: method.into(),
            path: path.into(),
            body: body.into(),
            authorization: None,
            content_type: content_type.map(str::to_owned),
            accept: accept.map(str::to_owned),
            at: Instant::now(),
            refused: None,
        }
    }

    fn everything() -> Role {
        Role::from_json(&json!({ "cluster": ["all"], "indices": [{ "names": ["*"], "privileges": ["all"] }] }))
    }

    #[test]
    fn refusals_follow_the_rest_layer() {
        let json = Some("application/json");
        let compat = Some("application/vnd.elasticsearch+x-ndjson; compatible-with=8");
        let none = Indices::default();
        let role = everything();
        let refused = |r: Received| refusal(&r, &none, &role).map(|(status, body)| (status, body.to_string()));
        let (status, body) = refused(received("POST", "/_bulk", "{}\n", compat, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("compatible version is required on both"), "{body}");
        let bulk = "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{}\n";
        assert!(refused(received("POST", "/_bulk", bulk, Some("application/x-ndjson"), json)).is_none());
        let (status, body) = refused(received("POST", "/a/_refresh", "{}", json, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("does not support having a body"), "{body}");
        assert!(refused(received("POST", "/a/_refresh", "", json, json)).is_none());
        let (_, body) = refused(received("POST", "/a/_search?scroll_size=2", "{}", json, json)).unwrap();
        assert!(body.contains("unrecognized parameter: [scroll_size]"), "{body}");
        assert!(refused(received("POST", "/a/_search?filter_path=hits", "{}", json, json)).is_none());
        let (status, _) = refused(received("PUT", "/_bulk_x/y/z", "{}", json, json)).unwrap();
        assert_eq!(status, 400, "no handler");
        let (status, _) = refused(received("DELETE", "/a/_search", "", json, json)).unwrap();
        assert_eq!(status, 405);
        let (_, body) = refused(received("PUT", "/-a", "{}", json, json)).unwrap();
        assert!(body.contains("invalid_index_name_exception"), "{body}");
        let two: Indices = [("g1", "a"), ("g2", "a")]
            .into_iter()
            .map(|(i, a)| (i.to_owned(), BTreeSet::from([a.to_owned()])))
            .collect();
        let (_, body) = refusal(&received("GET", "/a/_doc/1", "", None, json), &two, &role).unwrap();
        assert!(body.to_string().contains("more than one index"), "{body}");
    }

    #[test]
    fn bodies_are_refused_as_elasticsearch_refuses_them() {
        let json = Some("application/json");
        let none = Indices::default();
        let role = everything();
        let refused = |r: Received| refusal(&r, &none, &role).map(|(status, body)| (status, body.to_string()));
        let (status, body) = refused(received("POST", "/a/_search", "{}", None, json)).unwrap();
        assert_eq!(
            (status, body.as_str()),
            (406, r#"{"error":"Content-Type header is missing","status":406}"#)
        );
        let (status, body) = refused(received("POST", "/a/_search", "{}", Some("text/plain"), json)).unwrap();
        assert_eq!(status, 406);
        assert!(body.contains("Content-Type header [text/plain] is not supported"), "{body}");
        assert!(refused(received("POST", "/a/_search", "{}", Some("application/json; charset=UTF-8"), json)).is_none());
        assert!(
            refused(received("POST", "/a/_refresh", "", None, json)).is_none(),
            "no body, no content type needed"
        );
        let (status, body) = refused(received("POST", "/a/_search", "{\"query\":", json, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("x_content_parse_exception"), "{body}");
        let ndjson = Some("application/x-ndjson");
        let unterminated = "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{}";
        let (status, body) = refused(received("POST", "/_bulk", unterminated, ndjson, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains(r"The bulk request must be terminated by a newline [\\n]"), "{body}");
        let (_, body) = refused(received("POST", "/_bulk", "{\"upsert\":{}}\n", ndjson, json)).unwrap();
        assert!(body.contains("Malformed action/metadata line [1]"), "{body}");
        let unknown = r#"{"settings":{"index":{"number_of_shards":1,"refresh_intervall":"1s"}}}"#;
        let (status, body) = refused(received("PUT", "/a", unknown, json, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("unknown setting [index.refresh_intervall]"), "{body}");
        let analysis = r#"{"settings":{"number_of_shards":1,"analysis":{"analyzer":{"x":{"type":"standard"}}}}}"#;
        assert!(refused(received("PUT", "/a", analysis, json, json)).is_none());
        let (_, body) = refused(received("PUT", "/a/_settings", r#"{"index":{"number_of_shards":2}}"#, json, json)).unwrap();
        assert!(
            body.contains("Can't update non dynamic settings [[index.number_of_shards]]"),
            "{body}"
        );
    }

    #[test]
    fn the_shipped_role_is_what_the_cluster_grants() {
        let json = Some("application/json");
        let none = Indices::default();
        let shipped = Role::shipped();
        let refused = |r: Received, role: &Role| refusal(&r, &none, role).map(|(status, body)| (status, body.to_string()));
        assert!(refused(received("POST", "/arrears-accounts/_search", "{}", json, json), &shipped).is_none());
        let (status, body) = refused(received("POST", "/other/_search", "{}", json, json), &shipped).unwrap();
        assert_eq!(status, 403);
        assert!(
            body.contains("action [indices:data/read/search] is unauthorized") && body.contains("[read,all]"),
            "{body}"
        );
        let read_only =
            Role::from_json(&json!({ "cluster": ["monitor"], "indices": [{ "names": ["arrears-*"], "privileges": ["read"] }] }));
        let create = r#"{"aliases":{"arrears-accounts":{}}}"#;
        let (status, body) = refused(received("PUT", "/arrears-accounts-g1", create, json, json), &read_only).unwrap();
        assert_eq!(status, 403);
        assert!(body.contains("indices:admin/create"), "{body}");
        let template = r#"{"template":{}}"#;
        let (_, body) = refused(
            received("PUT", "/_index_template/arrears-accounts", template, json, json),
            &read_only,
        )
        .unwrap();
        assert!(body.contains("cluster privileges [manage_index_templates,manage,all]"), "{body}");

        let mut cluster: Indices = [(
            "arrears-accounts-g1".to_owned(),
            BTreeSet::from(["arrears-accounts-g1-write".to_owned()]),
        )]
        .into_iter()
        .collect();
        let line = |version: i64| {
            format!(
                "{{\"index\":{{\"_index\":\"arrears-accounts-g1-write\",\"_id\":\"1\",\"version\":{version},\"version_type\":\"external\"}}}}\n{{\"search_version\":{version}}}\n"
            )
        };
        let bulk = |body: String, cluster: &mut Indices, role: &Role| {
            let mut answer = bulk_response(&[201]);
            apply_bulk_items(
                &received("POST", "/_bulk", &body, Some("application/x-ndjson"), json),
                cluster,
                role,
                &mut answer,
            );
            answer
        };
        assert_eq!(bulk(line(5), &mut cluster, &shipped)["errors"], json!(false));
        assert_eq!(cluster.docs["arrears-accounts-g1"]["1"].source, json!({ "search_version": 5 }));
        let stale = bulk(line(5), &mut cluster, &shipped);
        assert_eq!(stale["items"][0]["index"]["status"], 409);
        assert_eq!(
            stale["items"][0]["index"]["error"]["reason"],
            "[1]: version conflict, current version [5] is higher or equal to the one provided [5]"
        );
        assert_eq!(bulk(line(6), &mut cluster, &shipped)["errors"], json!(false));
        let refused = bulk(line(7), &mut cluster, &read_only);
        assert_eq!(refused["items"][0]["index"]["status"], 403);
        assert_eq!(refused["items"][0]["index"]["error"]["type"], "security_exception");
        assert_eq!(cluster.docs["arrears-accounts-g1"]["1"].version, 6);
    }
}
