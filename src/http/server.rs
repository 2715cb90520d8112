//! The connection loop: request ids, access logs, client address, graceful shutdown.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::HeaderValue;
use warp::reply::Response;

use crate::app::AppState;
use crate::http::filters::ClientAddr;
use crate::http::ws;
use crate::telemetry;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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
            request.extensions_mut().insert(ClientAddr(remote));
            let request_id = telemetry::request_id_from_header(request.headers().get("x-request-id").and_then(|v| v.to_str().ok()));
            let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
            async move {
                let started = Instant::now();
                let mut response = if ws::is_upgrade(&request) {
                    telemetry::with_request_id(request_id.clone(), ws::upgrade(state, request))
                        .instrument(span.clone())
                        .await
                } else {
                    let response: Result<Response, Infallible> = telemetry::with_request_id(request_id.clone(), warp_service.call(request))
                        .instrument(span.clone())
                        .await;
                    response?
                };
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-request-id", value);
                }
                let status = response.status().as_u16();
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
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
