//! A scripted HTTP server that answers like Elasticsearch 8: each test gives it a
//! function from request to response (bodies shaped as the reference documents them)
//! and reads back every request it received.
//!
//! It is at least as strict as Elasticsearch's REST layer: before a script sees a
//! request, [`refusal`] refuses what a real cluster refuses, each with the answer
//! Elasticsearch gives and the rule it follows (see [`API`] for the endpoints, their
//! methods, whether they read a body and their query parameters, from Elastic's REST API
//! specification). The server also keeps the cluster's indices and aliases
//! ([`Indices`]), which scripts may change and the rules that depend on them read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
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
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
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

/// Every index the cluster holds, with its aliases.
pub type Indices = BTreeMap<String, BTreeSet<String>>;

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
                    let (status, body) = match refusal(&request, &indices) {
                        Some(refused) => {
                            request.refused = Some(refused.1.to_string());
                            refused
                        }
                        None => {
                            let (status, mut body) = (script.lock().unwrap())(&request, &mut indices);
                            if request.api() == "bulk" {
                                refuse_missing_aliases(&request, &indices, &mut body);
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

fn compatible_with(media_type: Option<&str>) -> Option<&str> {
    media_type?
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("compatible-with="))
}

/// What Elasticsearch's REST layer refuses before the API runs.
pub fn refusal(r: &Received, indices: &Indices) -> Option<(u16, Value)> {
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
    // BaseRestHandler: a body on an API that reads none, or none where one is required.
    if with_body && api.body == Body::None {
        let reason = format!("request [{} {}] does not support having a body", r.method, r.route());
        return Some((400, error("illegal_argument_exception", &reason, 400)));
    }
    if !with_body && api.body == Body::Required {
        return Some((400, error("parse_exception", "request body is required", 400)));
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
    None
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

/// A bulk item with `require_alias` whose target is not an alias fails on its own
/// (TransportBulkAction: "[require_alias] request flag is [true] and [x] is not an
/// alias"), whatever the script answered for it.
fn refuse_missing_aliases(r: &Received, indices: &Indices, answer: &mut Value) {
    let Some(items) = answer.get_mut("items").and_then(Value::as_array_mut) else {
        return;
    };
    let actions = r.lines().into_iter().step_by(2);
    let mut refused = false;
    for (item, action) in items.iter_mut().zip(actions) {
        let Some((kind, spec)) = action.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let target = spec.get("_index").and_then(Value::as_str).unwrap_or_default();
        let required = spec.get("require_alias") == Some(&json!(true));
        if required && !indices.values().any(|aliases| aliases.contains(target)) {
            let reason = format!("[{target}] is not an alias, and [require_alias] request flag is [true]");
            *item = json!({ kind: {
                "_index": target,
                "status": 404,
                "error": { "type": "index_not_found_exception", "reason": reason, "index": target }
            } });
            refused = true;
        }
    }
    if refused {
        answer["errors"] = json!(true);
    }
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

    #[test]
    fn refusals_follow_the_rest_layer() {
        let json = Some("application/json");
        let compat = Some("application/vnd.elasticsearch+x-ndjson; compatible-with=8");
        let none = Indices::new();
        let refused = |r: Received| refusal(&r, &none).map(|(status, body)| (status, body.to_string()));
        let (status, body) = refused(received("POST", "/_bulk", "{}\n", compat, json)).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("compatible version is required on both"), "{body}");
        assert!(refused(received("POST", "/_bulk", "{}\n", Some("application/x-ndjson"), json)).is_none());
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
        let (_, body) = refusal(&received("GET", "/a/_doc/1", "", None, json), &two).unwrap();
        assert!(body.to_string().contains("more than one index"), "{body}");
    }
}
