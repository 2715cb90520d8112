//! The connection loop: request ids, rate limits, access logs, client address, graceful
//! shutdown.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
use crate::http::filters::ClientAddr;
use crate::http::headers;
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
        let warp_service = warp::service(routes.clone());
        let state = state.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let mut warp_service = warp_service.clone();
            let state = state.clone();
            let hsts_max_age = state.settings().hsts_max_age_secs;
            request.extensions_mut().insert(ClientAddr(remote));
            let accepted = compress::negotiate(request.headers());
            let request_id = telemetry::request_id_from_header(request.headers().get("x-request-id").and_then(|v| v.to_str().ok()));
            let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            async move {
                let started = Instant::now();
                let quota = throttle::spend(&state, request.method(), request.uri().path(), request.headers(), remote.ip()).await;
                let mut response = if let Some(refused) = quota.filter(|verdict| !verdict.allowed) {
                    telemetry::with_request_id(request_id.clone(), async { throttle::refusal(&refused) }).await
                } else if ws::is_upgrade(&request) {
                    telemetry::with_request_id(request_id.clone(), guarded(ws::upgrade(state, request)))
                        .instrument(span.clone())
                        .await
                } else {
                    let handled = warp_service.call(request).map(|answer: Result<Response, Infallible>| match answer {
                        Ok(response) => response,
                        Err(never) => match never {},
                    });
                    telemetry::with_request_id(request_id.clone(), guarded(handled))
                        .instrument(span.clone())
                        .await
                };
                if let Some(verdict) = &quota {
                    throttle::report(&mut response, verdict);
                }
                response = compress::compress(response, accepted);
                headers::secure(&mut response, hsts_max_age);
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-request-id", value);
                }
                let status = response.status().as_u16();
                let elapsed = started.elapsed();
                let route = if response.extensions().get::<Unrouted>().is_some() {
                    "unmatched".to_owned()
                } else {
                    route_template(&path)
                };
                metrics::http_request(method_label(&method), route, status, elapsed);
                let latency_ms = elapsed.as_secs_f64() * 1000.0;
                span.in_scope(|| tracing::info!(status, latency_ms, "request completed"));
                Ok::<_, Infallible>(response)
            }
        });
        let connection = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = watched.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down; draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// The route a path was served by: its id segments (every path parameter of this API
/// is a UUID) become `{id}`.
fn route_template(path: &str) -> String {
    path.split('/')
        .map(|segment| if uuid::Uuid::try_parse(segment).is_ok() { "{id}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
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
            route_template("/api/v1/accounts/0192f3a4-5b6c-7d8e-9f00-112233445566/payments"),
            "/api/v1/accounts/{id}/payments"
        );
        assert_eq!(route_template("/api/v1/accounts"), "/api/v1/accounts");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_with_the_request_id() {
        let response = telemetry::with_request_id("req-1".to_owned(), guarded(async { panic!("boom") })).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["request_id"], "req-1");
        assert_eq!(problem["status"], 500);
        assert!(!problem.to_string().contains("boom"), "the panic stays in the log: {problem}");
    }
}
