//! Durable jobs over HTTP: bulk updates are submitted here (202 with the job), and
//! every job is polled, listed and cancelled here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::bulk::{BulkUpdateRequest, MAX_BULK_ROWS};
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::accounts::{check_assignee, raw_query};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::PageRequest;
use crate::http::users::parse_query;
use crate::http::{self as api, account_list, respond};
use crate::jobs::bulk_update::BulkParams;
use crate::store::idempotency::{self, Claim};
use crate::store::jobs::{self, JobRow};

const IDEMPOTENCY_SCOPE: &str = "bulk_update";

#[derive(Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Rows per second since the job started.
    pub rate: Option<f64>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        let rate = row.started_at.map(|started| {
            let end = row.finished_at.unwrap_or_else(Utc::now);
            let secs = (end - started).num_milliseconds().max(1) as f64 / 1000.0;
            (row.processed as f64 / secs * 10.0).round() / 10.0
        });
        Self {
            id: row.id,
            kind: row.kind,
            status: row.status,
            total: row.total,
            processed: row.processed,
            succeeded: row.succeeded,
            failed: row.failed,
            rate,
            created_by: row.created_by,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            result: row.result.map(|r| r.0),
        }
    }
}

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

/// Managers and admins see every job; others their own.
fn may_see(caller: &Principal, job: &JobRow) -> bool {
    job.created_by == caller.user_id || caller.can(Action::UpdateAnyAccount)
}

pub async fn visible_job(state: &AppState, caller: &Principal, id: Uuid) -> Result<JobRow> {
    jobs::get(state.pool(), id)
        .await?
        .filter(|job| may_see(caller, job))
        .ok_or_else(|| Error::not_found("job"))
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

#[tracing::instrument(skip_all)]
async fn submit(caller: Principal, state: AppState, key: Option<String>, request: BulkUpdateRequest) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
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
        check_assignee(&state, agent).await?;
    }
    let mut tx = state.pool().begin().await?;
    if let Some(first) = claim_submission(&mut tx, &caller, IDEMPOTENCY_SCOPE, key.as_deref(), &hash).await? {
        return Ok(first);
    }
    let ids = resolve(&state, &caller, &request).await?;
    let params = BulkParams {
        patch,
        actor: caller.user_id,
        role: caller.role,
    };
    let params = serde_json::to_value(&params).map_err(anyhow::Error::from)?;
    let job = jobs::create(&mut tx, "bulk_update", &params, caller.user_id, &ids).await?;
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

/// Claims a job submission's `Idempotency-Key` (if any) in `tx`: `Some` is the first
/// submission's answer, to send again; a key used with another request is refused.
pub async fn claim_submission(
    tx: &mut sqlx::PgConnection,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    hash: &[u8],
) -> Result<Option<Response>> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, caller.user_id, scope, key, hash).await? {
        Claim::Fresh => Ok(None),
        Claim::Replay { status, body } => Ok(Some(api::json(StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED), &body))),
        Claim::Mismatch => Err(Error::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )),
    }
}

/// Records a queued job's 202 answer under its key (if any), commits, and answers it
/// with `Location`.
pub async fn accept(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    view: &Value,
    location: &str,
) -> Result<Response> {
    if let Some(key) = key {
        idempotency::complete(&mut tx, caller.user_id, scope, key, StatusCode::ACCEPTED.as_u16(), view).await?;
    }
    tx.commit().await?;
    let mut response = api::json(StatusCode::ACCEPTED, view);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let owner = (!caller.can(Action::UpdateAnyAccount)).then_some(caller.user_id);
    let rows = jobs::list(state.pool(), owner, page.after, page.fetch()).await?;
    let total = jobs::count(state.pool(), owner).await?;
    let body = page.finish(rows, total, |j| (j.created_at, j.id), |j| Ok(JobView::from(j)))?;
    Ok(api::json(StatusCode::OK, &body))
}

async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_job(&state, &caller, id).await?;
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}

/// The rows a job could not change, with the reason, in order.
async fn failures(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        page_size: Option<u32>,
        after: Option<i32>,
    }
    let query: Query = parse_query(&raw)?;
    let job = visible_job(&state, &caller, id).await?;
    let size = i64::from(query.page_size.unwrap_or(100).clamp(1, 1000));
    let (data, next): (Vec<Value>, Option<i32>) = if job.kind == "import" {
        // An import's rows are its sheet's: the row number and each column's error.
        crate::http::imports::failed_page(&state, job.id, query.after, size).await?
    } else {
        let rows = jobs::failures(state.pool(), job.id, query.after, size).await?;
        let next = (rows.len() as i64 == size).then(|| rows.last().map(|r| r.0)).flatten();
        let data = rows
            .into_iter()
            .map(|(seq, account_id, error)| json!({"row": seq, "account_id": account_id, "error": error}))
            .collect();
        (data, next)
    };
    Ok(api::json(
        StatusCode::OK,
        &json!({"data": data, "total": job.failed, "next_after": next}),
    ))
}

async fn cancel(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_job(&state, &caller, id).await?;
    if job.finished_at.is_some() {
        return Err(
            Error::new(Code::InvalidTransition, format!("the job already ended ({})", job.status)).with_extension("allowed", json!([])),
        );
    }
    let job = jobs::cancel(state.pool(), id).await?.ok_or_else(|| Error::not_found("job"))?;
    tracing::info!(job_id = %id, "job cancellation requested");
    Ok(api::json(StatusCode::OK, &JobView::from(job)))
}
