//! `GET /metrics` in Prometheus's text format, served on the metrics listener only.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::error::{Code, Error, Result};
use crate::http::filters::{bearer_token, with_state};
use crate::http::respond;
use crate::service::system;
use crate::state::AppState;
use crate::telemetry::metrics;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .then(scrape)
        .map(respond)
        .boxed()
}

async fn scrape(headers: HeaderMap, state: AppState) -> Result<Response> {
    if let Some(expected) = &state.settings().metrics_token {
        let sent = bearer_token(&headers)?;
        if !crate::http::same_secret(sent, expected) {
            return Err(Error::new(Code::Unauthorized, "the metrics token is not valid"));
        }
    }
    sample_gauges(&state).await;
    let handle = metrics::install()?;
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Gauges read at scrape time rather than kept up to date on every change.
async fn sample_gauges(state: &AppState) {
    let pool = state.pool();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    metrics::pool(pool.size().saturating_sub(idle), idle, state.settings().database_max_connections);
    match system::queued_jobs(pool).await {
        Ok(queued) => {
            for (kind, count) in queued {
                metrics::jobs_queued(kind.as_str(), count);
            }
        }
        Err(err) => tracing::warn!(error = %err, "reading the job queue for metrics failed"),
    }
}
