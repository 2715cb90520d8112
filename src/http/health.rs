//! Liveness (the process answers) and readiness (its dependencies answer).

use std::time::Duration;

use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::error::{Code, Error};
use crate::http::filters::with_state;
use crate::http::{self as api};
use crate::state::AppState;

/// The process answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The dependencies answer: `ok`, or `degraded` while Redis is down (delivery to this
/// instance only), the sync's batches fail and are tried again (a cluster restarting,
/// a flood-stage block), or the sync holds an entity's changes (its index has another
/// release's mapping: searches answer from it, unchanged, until the rebuild's swap);
/// it stays ready.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(example = "ok")]
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    database: &'static str,
    /// The search backend's own status.
    search: String,
    /// `ok`, `down` or `disabled`.
    redis: &'static str,
    /// `ok`, or why changes wait in the outbox: since when batches fail and why, and
    /// which entities are held and why.
    sync: String,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let live = warp::path!("health" / "live").and(warp::get()).map(live);
    // `/health` is readiness under the name load balancers and compose look for.
    let ready = warp::path!("health" / "ready")
        .or(warp::path!("health"))
        .unify()
        .and(warp::get())
        .and(with_state(state))
        .then(ready);
    live.or(ready).unify().boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready))]
pub struct Api;

/// Liveness
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "live", security(()),
    responses((status = 200, description = "The process answers", body = Live)))]
fn live() -> Response {
    api::json(StatusCode::OK, &Live { status: "ok" })
}

/// Readiness
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "ready", security(()),
    responses(
        (status = 200, description = "PostgreSQL and the search index answer", body = Ready),
        (status = 503, description = "`service_unavailable`: a dependency does not answer, or the search index refuses the sync"),
    ))]
async fn ready(state: AppState) -> Response {
    let probe = tokio::time::timeout(Duration::from_secs(2), crate::service::system::database_answers(state.pool())).await;
    let trouble = state.sync_metrics().trouble();
    if let Some(refused) = trouble.as_ref().filter(|t| t.refused) {
        return Error::new(
            Code::ServiceUnavailable,
            format!(
                "the search index refuses the sync since {} (tried again every {} s): {}",
                refused.since.format("%Y-%m-%dT%H:%M:%SZ"),
                crate::sync::worker::REFUSED_RETRY.as_secs(),
                refused.reason
            ),
        )
        .into_response();
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
            let failing = trouble.map(|t| format!("batches fail since {}: {}", t.since.format("%Y-%m-%dT%H:%M:%SZ"), t.reason));
            let held = state
                .sync_metrics()
                .held()
                .into_iter()
                .map(|(entity, reason)| format!("holding {entity}: {reason}"));
            let problems: Vec<String> = failing.into_iter().chain(held).collect();
            let sync = if problems.is_empty() {
                "ok".to_owned()
            } else {
                problems.join("; ")
            };
            let status = if redis == "down" || sync != "ok" { "degraded" } else { "ok" };
            let checks = Checks {
                database: "ok",
                search,
                redis,
                sync,
            };
            api::json(StatusCode::OK, &Ready { status, checks })
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Error::new(Code::ServiceUnavailable, "database: not reachable").into_response()
        }
        Err(_) => Error::new(Code::ServiceUnavailable, "database: no answer within 2 s").into_response(),
    }
}
