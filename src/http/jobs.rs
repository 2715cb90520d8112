//! Durable jobs over HTTP: bulk updates are submitted here (202 with the job), and
//! every job is polled, listed and cancelled here.

use chrono::Utc;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::bulk::BulkUpdateRequest;
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::ListPage;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::{accepted, replay};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::service::jobs::{self as service, Failure, JobView, Queued};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes.max(8 * 1024 * 1024);
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("accounts" / "bulk-update")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(json_body::<BulkUpdateRequest>(limit))
        .then(submit)
        .or(warp::path!("jobs").and(warp::get()).and(caller.clone()).and(raw_query()).then(list))
        .unify()
        .or(warp::path!("jobs" / Uuid).and(warp::get()).and(caller.clone()).then(get))
        .unify()
        .or(warp::path!("jobs" / Uuid / "failures")
            .and(warp::get())
            .and(caller.clone())
            .and(raw_query())
            .then(failures))
        .unify()
        .or(warp::path!("jobs" / Uuid / "cancel").and(warp::post()).and(caller).then(cancel))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(submit, list, get, failures, cancel))]
pub struct Api;

/// Bulk-update accounts
#[utoipa::path(post, path = "/api/v1/accounts/bulk-update", tag = "jobs", operation_id = "bulk_update_accounts",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key answers the first job")),
    request_body = BulkUpdateRequest,
    responses(
        (status = 202, description = "The queued job, with Location", body = JobView),
        (status = 403, description = "The role may not work or assign accounts"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn submit(caller: Principal, state: AppState, key: Option<String>, request: BulkUpdateRequest) -> Result<Response> {
    let today = Utc::now().date_naive();
    match service::bulk_update(state.pool(), state.search().as_ref(), &caller, key.as_deref(), request, today).await? {
        Queued::Fresh(job) => Ok(accepted(&JobView::from(job.clone()), &format!("/api/v1/jobs/{}", job.id))),
        Queued::Replayed(first) => Ok(replay(first)),
    }
}

/// List jobs
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    params(PageQuery),
    responses((status = 200, description = "The caller's jobs (every job for managers and admins), newest first", body = ListPage<JobView>)))]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::list(state.pool(), &caller, page.window()).await?;
    let body = page.finish(rows, total, |j| (j.created_at, j.id), |j| Ok(JobView::from(j)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Read a job and its progress
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The job and its progress", body = JobView)))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = service::visible_job(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/failures", tag = "jobs", operation_id = "list_job_failures",
    params(("id" = Uuid, Path, description = "The job's id"), PageQuery),
    responses(
        (status = 200, description = "The rows the job could not change, in order; for a manager reading another \
            user's bulk update, those of accounts within their portfolios", body = ListPage<Failure>),
        (status = 403, description = "`forbidden`: another user's import or document upload, whose rows only its maker and admins read"),
    ))]
/// The rows a job could not change, with the reason, in order.
async fn failures(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::<i32>::from_query(&raw)?;
    let job = service::visible_job(state.pool(), &caller, id).await?;
    let (rows, total) = service::failures(state.pool(), &caller, &job, page.after, page.fetch()).await?;
    let body = page.finish(rows, total, |(seq, _)| *seq, |(_, row)| Ok(row))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Cancel a job
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "cancel_job",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancellation requested; the runner stops between rows", body = JobView),
        (status = 409, description = "`invalid_transition`: the job already ended"),
    ))]
async fn cancel(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = service::cancel(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}
