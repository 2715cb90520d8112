//! Durable jobs over HTTP: bulk updates are submitted here (202 with the job), and
//! every job is polled, listed and cancelled here.

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::bulk::{BulkUpdateRequest, MAX_BULK_ROWS};
use crate::domain::job::JobKind;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::ListPage;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::{accept, replay};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::jobs::bulk_update::BulkParams;
use crate::lists::accounts as account_list;
use crate::service::accounts::check_assignee;
use crate::service::idempotency;
use crate::service::jobs::Failure;
use crate::service::jobs::{self as service_jobs, JobView, visible_job};
use crate::state::AppState;
use crate::store::jobs;

const IDEMPOTENCY_SCOPE: &str = "bulk_update";

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes.max(8 * 1024 * 1024);
    let caller = principal(state.clone()).and(with_state(state));
    let submit = warp::path!("accounts" / "bulk-update")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(json_body::<BulkUpdateRequest>(limit))
        .then(|p, s, k, b| async move { respond(submit(p, s, k, b).await) });
    let list = warp::path!("jobs")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|p, s, q| async move { respond(list(p, s, q).await) });
    let get = warp::path!("jobs" / Uuid)
        .and(warp::get())
        .and(caller.clone())
        .then(|id, p, s| async move { respond(get(id, p, s).await) });
    let failures = warp::path!("jobs" / Uuid / "failures")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|id, p, s, q| async move { respond(failures(id, p, s, q).await) });
    let cancel = warp::path!("jobs" / Uuid / "cancel")
        .and(warp::post())
        .and(caller)
        .then(|id, p, s| async move { respond(cancel(id, p, s).await) });
    submit
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(failures)
        .unify()
        .or(cancel)
        .unify()
        .boxed()
}

fn too_many() -> Error {
    Error::with_fields(
        Code::ValidationFailed,
        format!("a bulk update may touch at most {MAX_BULK_ROWS} accounts; narrow the filter"),
        vec![FieldError::new("filter", format!("matches more than {MAX_BULK_ROWS} accounts"))],
    )
}

/// `{"status": ["a", "b"], "min_balance": 10}` as `status=a&status=b&min_balance=10`.
fn query_string(filter: &serde_json::Map<String, Value>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in filter {
        let values = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for value in values {
            match value {
                Value::String(text) => query.append_pair(key, &text),
                other => query.append_pair(key, &other.to_string()),
            };
        }
    }
    query.finish()
}

/// The fixed set of accounts: the ids given, or what the filter matches now.
async fn resolve(state: &AppState, caller: &Principal, request: &BulkUpdateRequest) -> Result<Vec<Uuid>> {
    match (&request.ids, &request.filter) {
        (Some(ids), None) => {
            if ids.len() > MAX_BULK_ROWS {
                return Err(too_many());
            }
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            Ok(ids.iter().copied().filter(|id| seen.insert(*id)).collect())
        }
        (None, Some(filter)) => {
            let parsed = account_list::parse(&query_string(filter), caller, Utc::now().date_naive()).map_err(|err| match err {
                Error::Problem(mut p) => {
                    for e in &mut p.errors {
                        e.field = format!("filter.{}", e.field);
                    }
                    Error::Problem(p)
                }
                other => other,
            })?;
            let ids = state.search().account_ids(parsed, MAX_BULK_ROWS + 1).await?;
            if ids.len() > MAX_BULK_ROWS {
                return Err(too_many());
            }
            Ok(ids)
        }
        _ => Err(Error::field("ids", "send exactly one of `ids` and `filter`")),
    }
}

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
    caller.require(Action::WorkAccount)?;
    idempotency::check_key(key.as_deref())?;
    let hash = Sha256::digest(serde_json::to_vec(&request).map_err(anyhow::Error::from)?).to_vec();
    let patch = request.patch.clone().validate().map_err(|errors| {
        let named = errors.into_iter().map(|e| match e.field.as_str() {
            "patch" => e,
            field => FieldError::new(format!("patch.{field}"), e.message),
        });
        Error::validation(named.collect())
    })?;
    if let Some(agent) = patch.assign {
        caller.require(Action::AssignAccount)?;
        check_assignee(state.pool(), agent).await?;
    }
    let mut tx = state.pool().begin().await?;
    if let Some(first) = idempotency::claim(&mut tx, &caller, IDEMPOTENCY_SCOPE, key.as_deref(), &hash).await? {
        return Ok(replay(first));
    }
    let ids = resolve(&state, &caller, &request).await?;
    let params = BulkParams {
        patch,
        actor: caller.user_id,
        role: caller.role,
    };
    let params = serde_json::to_value(&params).map_err(anyhow::Error::from)?;
    let job = jobs::create(&mut tx, JobKind::BulkUpdate, &params, caller.user_id, &ids).await?;
    let view = serde_json::to_value(JobView::from(job.clone())).map_err(anyhow::Error::from)?;
    let response = accept(
        tx,
        &caller,
        IDEMPOTENCY_SCOPE,
        key.as_deref(),
        &view,
        &format!("/api/v1/jobs/{}", job.id),
    )
    .await?;
    tracing::info!(job_id = %job.id, rows = ids.len(), "bulk update queued");
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    params(PageQuery),
    responses((status = 200, description = "The caller's jobs (every job for managers and admins), newest first", body = ListPage<JobView>)))]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let owner = (!caller.can(Action::UpdateAnyAccount)).then_some(caller.user_id);
    let rows = jobs::list(state.pool(), owner, page.after, page.fetch()).await?;
    let total = jobs::count(state.pool(), owner).await?;
    let body = page.finish(rows, total, |j| (j.created_at, j.id), |j| Ok(JobView::from(j)))?;
    Ok(api::json(StatusCode::OK, &body))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The job and its progress", body = JobView)))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_job(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/failures", tag = "jobs", operation_id = "list_job_failures",
    params(("id" = Uuid, Path, description = "The job's id"), PageQuery),
    responses((status = 200, description = "The rows the job could not change, in order", body = ListPage<Failure>)))]
/// The rows a job could not change, with the reason, in order.
async fn failures(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::<i32>::from_query(&raw)?;
    let job = visible_job(state.pool(), &caller, id).await?;
    let rows = service_jobs::failures(state.pool(), &job, page.after, page.fetch()).await?;
    let body = page.finish(rows, job.failed, |(seq, _)| *seq, |(_, row)| Ok(row))?;
    Ok(api::json(StatusCode::OK, &body))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "cancel_job",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancellation requested; the runner stops between rows", body = JobView),
        (status = 409, description = "`invalid_transition`: the job already ended"),
    ))]
async fn cancel(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_job(state.pool(), &caller, id).await?;
    if job.finished_at.is_some() {
        return Err(
            Error::new(Code::InvalidTransition, format!("the job already ended ({})", job.status.as_str()))
                .with_extension("allowed", json!([])),
        );
    }
    let job = jobs::cancel(state.pool(), id).await?.ok_or_else(|| Error::not_found("job"))?;
    tracing::info!(job_id = %id, "job cancellation requested");
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}
