//! Liveness (the process answers) and readiness (its dependencies answer).

use std::time::Duration;

use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::error::{Code, Error};
use crate::http::filters::with_state;
use crate::http::{self as api};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let live = warp::path!("health" / "live")
        .and(warp::get())
        .map(|| api::json(StatusCode::OK, &json!({"status": "ok"})));
    // `/health` is readiness under the name load balancers and compose look for.
    let ready = warp::path!("health" / "ready")
        .or(warp::path!("health"))
        .unify()
        .and(warp::get())
        .and(with_state(state))
        .then(ready);
    live.or(ready).unify().boxed()
}

async fn ready(state: AppState) -> Response {
    let probe = tokio::time::timeout(Duration::from_secs(2), crate::store::ping(state.pool())).await;
    if let Some(reason) = state.sync_metrics().stopped() {
        return Error::new(Code::ServiceUnavailable, format!("sync worker stopped: {reason}")).into_response();
    }
    match probe {
        Ok(Ok(_)) => {
            let search = match tokio::time::timeout(Duration::from_secs(2), state.search().health()).await {
                Ok(Ok(search)) => search,
                Ok(Err(reason)) => return Error::new(Code::ServiceUnavailable, format!("search index: {reason}")).into_response(),
                Err(_) => return Error::new(Code::ServiceUnavailable, "search index: no answer within 2 s").into_response(),
            };
            // Redis down degrades delivery to this instance; the service stays ready.
            let redis = state.events().redis_status();
            let status = if redis == "down" { "degraded" } else { "ok" };
            api::json(
                StatusCode::OK,
                &json!({"status": status, "checks": {"database": "ok", "search": search, "redis": redis}}),
            )
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Error::new(Code::ServiceUnavailable, "database: not reachable").into_response()
        }
        Err(_) => Error::new(Code::ServiceUnavailable, "database: no answer within 2 s").into_response(),
    }
}
