//! The connection loop: connection caps and timeouts, request ids, rate limits, access
//! logs, client address, graceful shutdown.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method};
use warp::reply::Response;

use crate::error::Error;
use crate::http::compress;
use crate::http::filters::{ClientAddr, client_of};
use crate::http::headers;
use crate::http::limits::{BodyPace, Connections, Paced};
use crate::http::openapi;
use crate::http::recover::Unrouted;
use crate::http::throttle;
use crate::http::ws;
use crate::state::AppState;
use crate::telemetry::{self, metrics};

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a handler; one that panics answers a 500 problem with the request id (the panic
/// itself is logged by the panic hook) instead of resetting the connection.
async fn guarded(handler: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::Internal(anyhow::anyhow!("a handler panicked: {what}")).into_response()
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let settings = state.settings();
    let connections = Connections::new(settings.max_connections, settings.max_connections_per_address);
    let pace = BodyPace {
        grace: Duration::from_secs(settings.http_body_grace_s),
        min_bytes_per_sec: settings.http_body_min_bytes_per_s,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout also bounds how long an idle keep-alive connection waits for
    // its next request: hyper starts it when it begins to read a request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(settings.http_header_timeout_s.max(1)));
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = connections.admit(remote.ip()) else {
            // Closed at once: a client holding its share (or a full server) gets no
            // file descriptor more.
            metrics::connection_refused();
            drop(stream);
            continue;
        };
        metrics::connections_open(connections.open());
        let warp_service = warp::service(routes.clone());
        let state = state.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let mut warp_service = warp_service.clone();
            let state = state.clone();
            let hsts_max_age = state.settings().hsts_max_age_secs;
            request.extensions_mut().insert(ClientAddr(remote));
            let accepted = compress::negotiate(request.headers());
            let request_id = telemetry::new_request_id();
            let client_request_id = telemetry::client_request_id(request.headers().get("x-request-id").and_then(|v| v.to_str().ok()));
            let served = telemetry::Request {
                id: request_id.clone(),
                client: client_of(&state, remote.ip(), request.headers()),
            };
            let span = tracing::info_span!("request", request_id = %request_id, client_request_id = client_request_id.as_deref(),
                method = %request.method(), path = %request.uri().path());
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            async move {
                let started = Instant::now();
                let quota = throttle::spend(&state, request.method(), request.uri().path(), request.headers(), remote.ip()).await;
                let mut response = if let Some(refused) = quota.filter(|verdict| !verdict.allowed) {
                    telemetry::with_request(served, async { throttle::refusal(&refused) }).await
                } else if ws::is_upgrade(&request) {
                    telemetry::with_request(served, guarded(ws::upgrade(state, request)))
                        .instrument(span.clone())
                        .await
                } else {
                    let request = request.map(|body| Paced::new(body, pace));
                    let handled = warp_service.call(request).map(|answer: Result<Response, Infallible>| match answer {
                        Ok(response) => response,
                        Err(never) => match never {},
                    });
                    telemetry::with_request(served, guarded(handled)).instrument(span.clone()).await
                };
                if let Some(verdict) = &quota {
                    throttle::report(&mut response, verdict);
                }
                if response.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allowed) = allowed_methods(&path).and_then(|a| HeaderValue::from_str(&a).ok())
                {
                    response.headers_mut().insert(warp::http::header::ALLOW, allowed);
                }
                response = compress::compress(response, accepted);
                headers::secure(&mut response, hsts_max_age);
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-request-id", value);
                }
                if let Some(value) = client_request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                    response.headers_mut().insert("x-client-request-id", value);
                }
                let status = response.status().as_u16();
                let elapsed = started.elapsed();
                let route = if response.extensions().get::<Unrouted>().is_some() {
                    UNMATCHED
                } else {
                    route_label(&path)
                };
                metrics::http_request(method_label(&method), route, status, elapsed);
                let latency_ms = elapsed.as_secs_f64() * 1000.0;
                span.in_scope(|| tracing::info!(status, latency_ms, "request completed"));
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(connection);
        let connections = connections.clone();
        tokio::spawn(async move {
            if let Err(err) = watched.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(admitted);
            metrics::connections_open(connections.open());
        });
    }
    drop(listener);
    tracing::info!("shutting down; draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

const UNMATCHED: &str = "unmatched";

/// The API description's path templates, each with its segments and the methods it
/// serves; the WebSocket's too. A literal segment sorts before a parameter
/// (`/users/me` before `/users/{id}`).
struct Template {
    path: &'static str,
    segments: Vec<&'static str>,
    methods: Vec<String>,
}

static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    let mut templates: Vec<Template> = openapi::document()["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, item)| Template {
            path: path.as_str(),
            segments: path.split('/').collect(),
            methods: item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(method, _)| method.to_uppercase())
                .collect(),
        })
        .chain(std::iter::once(Template {
            path: super::ws::PATH,
            segments: super::ws::PATH.split('/').collect(),
            methods: vec!["GET".to_owned()],
        }))
        .collect();
    templates.sort_by_key(|t| t.segments.iter().filter(|s| s.starts_with('{')).count());
    templates
});

/// The pages served beside the API, by prefix: their label, and the method they serve.
const PAGES: [(&str, &str); 2] = [("/docs", "/docs/*"), ("/console", "/console/*")];

fn page_of(path: &str) -> Option<&'static str> {
    PAGES
        .iter()
        .find(|(prefix, _)| path == *prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')))
        .map(|(_, label)| *label)
}

/// The templates `path` fits, the most literal first.
fn templates_of(path: &str) -> impl Iterator<Item = &'static Template> {
    let segments: Vec<&str> = path.split('/').collect();
    TEMPLATES.iter().filter(move |template| {
        template.segments.len() == segments.len()
            && template
                .segments
                .iter()
                .zip(&segments)
                .all(|(want, got)| want == got || (want.starts_with('{') && !got.is_empty()))
    })
}

/// The route a path was served by, from a bounded set whatever the path: a path
/// template of the API description (`/api/v1/accounts/{id}`), the WebSocket, the served
/// pages by their prefix (`/docs/*`, `/console/*`), or `unmatched`. A label made from
/// the raw path would let any client grow the metrics without bound.
fn route_label(path: &str) -> &'static str {
    if let Some(label) = page_of(path) {
        return label;
    }
    templates_of(path).next().map_or(UNMATCHED, |template| template.path)
}

/// The methods a path is served with, for the `Allow` header a 405 must carry (RFC 9110,
/// 15.5.6): those the description gives the template the path is labelled by (a literal
/// segment before a parameter: `/accounts/export` is not `/accounts/{id}`, whose id is a
/// UUID), and GET for the served pages.
fn allowed_methods(path: &str) -> Option<String> {
    if page_of(path).is_some() {
        return Some("GET".to_owned());
    }
    let mut methods: Vec<&str> = templates_of(path).next()?.methods.iter().map(String::as_str).collect();
    methods.sort_unstable();
    methods.dedup();
    Some(methods.join(", "))
}

/// Methods as a bounded label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_label_routes_by_template() {
        assert_eq!(
            route_label("/api/v1/accounts/0192f3a4-5b6c-7d8e-9f00-112233445566/payments"),
            "/api/v1/accounts/{id}/payments"
        );
        assert_eq!(route_label("/api/v1/accounts"), "/api/v1/accounts");
        assert_eq!(route_label("/api/v1/ws"), "/api/v1/ws");
        assert_eq!(route_label("/docs/swagger-ui.css"), "/docs/*");
        assert_eq!(route_label("/console/a/b"), "/console/*");
        assert_eq!(route_label("/consoles"), UNMATCHED);
        assert_eq!(route_label("/api/v1/no-such-thing/at/all"), UNMATCHED);
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn a_path_is_allowed_the_methods_of_its_template() {
        assert_eq!(allowed_methods("/api/v1/ws").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/docs/index.html").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/api/v1/no-such-thing/at/all"), None);
        let account = allowed_methods("/api/v1/accounts/0192f3a4-5b6c-7d8e-9f00-112233445566").unwrap();
        assert!(account.contains("GET") && account.contains("PATCH"), "{account}");
        assert_eq!(allowed_methods("/api/v1/accounts/export").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/api/v1/accounts/bulk-update").as_deref(), Some("POST"));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_with_the_request_id() {
        let response = telemetry::with_request(
            telemetry::Request {
                id: "req-1".to_owned(),
                client: "127.0.0.1".to_owned(),
            },
            guarded(async { panic!("boom") }),
        )
        .await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["request_id"], "req-1");
        assert_eq!(problem["status"], 500);
        assert!(!problem.to_string().contains("boom"), "the panic stays in the log: {problem}");
    }
}
