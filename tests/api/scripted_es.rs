//! A scripted HTTP server that answers like Elasticsearch 8: each test gives it a
//! function from request to response (bodies shaped as the reference documents them)
//! and reads back every request it received.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use warp::Filter;
use warp::http::StatusCode;

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query string.
    pub path: String,
    pub body: String,
    pub authorization: Option<String>,
    pub at: Instant,
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
}

type Script = Box<dyn FnMut(&Received) -> (u16, Value) + Send>;

pub struct ScriptedEs {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl ScriptedEs {
    pub async fn start(script: impl FnMut(&Received) -> (u16, Value) + Send + 'static) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        let log = received.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method, path: warp::path::FullPath, query: String, authorization, body: bytes::Bytes| {
                    let path = if query.is_empty() {
                        path.as_str().to_owned()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let request = Received {
                        method: method.to_string(),
                        path,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        authorization,
                        at: Instant::now(),
                    };
                    let (status, body) = (script.lock().unwrap())(&request);
                    log.lock().unwrap().push(request);
                    warp::reply::with_status(warp::reply::json(&body), StatusCode::from_u16(status).unwrap())
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Self { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `_bulk` requests received, in order.
    pub fn bulks(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path.starts_with("/_bulk")).collect()
    }
}

/// `GET /_alias/{alias}` as Elasticsearch answers it for one index.
pub fn alias_of(index: &str, alias: &str) -> Value {
    json!({ index: { "aliases": { alias: {} } } })
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

/// An error response as Elasticsearch shapes it.
pub fn error(kind: &str, reason: &str, status: u16) -> Value {
    json!({
        "error": { "root_cause": [{ "type": kind, "reason": reason }], "type": kind, "reason": reason },
        "status": status
    })
}
