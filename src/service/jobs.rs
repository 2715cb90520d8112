//! Durable jobs: who may see one, its view, and the rows it could not change.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::bulk::{BulkParams, BulkPatch, BulkUpdateRequest, MAX_BULK_ROWS};
use crate::domain::job::{JobKind, JobStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::import::RowError;
use crate::search::SearchIndex;
use crate::service::Window;
use crate::service::accounts::{self, check_assignee, check_portfolio};
use crate::service::idempotency::{self, Replay};
use crate::service::portfolios;
use crate::store::jobs;
use crate::store::{document_uploads, imports};

pub use crate::store::jobs::JobRow;

const BULK_UPDATE_SCOPE: &str = "bulk_update";

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
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

/// Managers and admins see every job; others their own.
fn may_see(caller: &Principal, job: &JobRow) -> bool {
    job.created_by == caller.user_id || caller.can(Action::UpdateAnyAccount)
}

/// The job `id`, if the caller may see it; not found otherwise.
pub async fn visible_job(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<JobRow> {
    jobs::get(pool, id)
        .await?
        .filter(|job| may_see(caller, job))
        .ok_or_else(|| Error::not_found("job"))
}

/// A row a job could not change.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Failure {
    /// An import's sheet row (`row` is its line) with each column's error.
    ImportRow { seq: i32, row: i32, errors: Vec<RowError> },
    /// A bulk update's account (`row` is its place in the job) and why it failed.
    Account { row: i32, account_id: Uuid, error: String },
    /// A document upload's file (`file` is its path in the zip) and why it was not kept.
    File {
        row: i32,
        file: String,
        account_number: String,
        error: String,
    },
}

/// Which of a job's rows `caller` reads: its maker and admins every one; a manager
/// another user's bulk update's rows of the accounts within their scope, and no row of
/// another user's import or document upload (its rows are the uploader's file, naming
/// accounts of any portfolio).
pub async fn rows_scope(pool: &PgPool, caller: &Principal, job: &JobRow) -> Result<Option<Vec<Uuid>>> {
    if job.created_by == caller.user_id {
        return Ok(None);
    }
    let scope = portfolios::search_scope(pool, caller).await?;
    if scope.is_some() && job.kind != JobKind::BulkUpdate {
        return Err(Error::forbidden(
            "only the user who uploaded this file and admins read its rows: they name accounts of any portfolio",
        ));
    }
    Ok(scope)
}

/// Up to `limit` of the rows `job` could not change after the row `after`, in order,
/// each with its sequence number, and how many there are: those `caller` may read
/// ([`rows_scope`]).
pub async fn failures(
    pool: &PgPool,
    caller: &Principal,
    job: &JobRow,
    after: Option<i32>,
    limit: i64,
) -> Result<(Vec<(i32, Failure)>, i64)> {
    let scope = rows_scope(pool, caller, job).await?;
    if let Some(scope) = scope {
        let rows = jobs::failures(pool, job.id, Some(&scope), after, limit).await?;
        return Ok((account_failures(rows), jobs::count_failures(pool, job.id, &scope).await?));
    }
    Ok((all_failures(pool, job, after, limit).await?, job.failed))
}

/// A bulk update's failed rows as the API shows them.
fn account_failures(rows: Vec<(i32, Uuid, String)>) -> Vec<(i32, Failure)> {
    rows.into_iter()
        .map(|(seq, account_id, error)| {
            (
                seq,
                Failure::Account {
                    row: seq,
                    account_id,
                    error,
                },
            )
        })
        .collect()
}

/// [`failures`] of every row.
async fn all_failures(pool: &PgPool, job: &JobRow, after: Option<i32>, limit: i64) -> Result<Vec<(i32, Failure)>> {
    if job.kind == JobKind::Import {
        let rows = imports::failed(pool, job.id, after.unwrap_or(0), limit).await?;
        return Ok(rows
            .into_iter()
            .map(|(seq, line, _, errors)| (seq, Failure::ImportRow { seq, row: line, errors }))
            .collect());
    }
    if job.kind == JobKind::DocumentUpload {
        let rows = document_uploads::refused(pool, job.id, after, limit).await?;
        return Ok(rows
            .into_iter()
            .map(|r| {
                let failure = Failure::File {
                    row: r.seq,
                    file: r.path,
                    account_number: r.account_number,
                    error: r.error,
                };
                (r.seq, failure)
            })
            .collect());
    }
    Ok(account_failures(jobs::failures(pool, job.id, None, after, limit).await?))
}

/// The caller's jobs (every job for managers and admins), newest first, and how many.
pub async fn list(pool: &PgPool, caller: &Principal, window: Window) -> Result<(Vec<JobRow>, i64)> {
    let owner = (!caller.can(Action::UpdateAnyAccount)).then_some(caller.user_id);
    let rows = jobs::list(pool, owner, window.after, window.limit).await?;
    Ok((rows, jobs::count(pool, owner).await?))
}

/// Asks the runner to stop the job `id` between rows; a job that ended is refused.
pub async fn cancel(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<JobRow> {
    let job = visible_job(pool, caller, id).await?;
    if job.finished_at.is_some() {
        return Err(
            Error::new(Code::InvalidTransition, format!("the job already ended ({})", job.status.as_str()))
                .with_extension("allowed", json!([])),
        );
    }
    let job = jobs::cancel(pool, id).await?.ok_or_else(|| Error::not_found("job"))?;
    tracing::info!(job_id = %id, "job cancellation requested");
    Ok(job)
}

/// What submitting a keyed job did.
pub enum Queued {
    /// Queued now.
    Fresh(JobRow),
    /// The same keyed request was queued before: its answer.
    Replayed(Replay),
}

/// Queues a bulk update of the accounts `request` names (its ids, or what its filter
/// matches now, at most [`MAX_BULK_ROWS`]) for `caller`; the answer is kept under `key`.
pub async fn bulk_update(
    pool: &PgPool,
    index: &dyn SearchIndex,
    caller: &Principal,
    key: Option<&str>,
    request: BulkUpdateRequest,
    today: NaiveDate,
) -> Result<Queued> {
    caller.require(Action::WorkAccount)?;
    idempotency::check_key(key)?;
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
        check_assignee(pool, agent).await?;
    }
    if patch.manages() {
        caller.require(Action::UpdateAnyAccount)?;
    }
    if patch.flags.lifts() {
        caller.require(Action::LiftContactBlocks)?;
    }
    if let Some(portfolio) = patch.portfolio {
        check_portfolio(&mut *pool.acquire().await?, caller, portfolio, "patch.portfolio_id").await?;
    }
    let mut tx = pool.begin().await?;
    if let Some(first) = idempotency::claim(&mut tx, caller, BULK_UPDATE_SCOPE, key, &hash).await? {
        return Ok(Queued::Replayed(first));
    }
    let ids = resolve(pool, index, caller, &request, today).await?;
    let params = BulkParams {
        patch,
        actor: caller.user_id,
        role: caller.role,
        from_agent: None,
    };
    let params = serde_json::to_value(&params).map_err(anyhow::Error::from)?;
    let job = jobs::create(&mut tx, JobKind::BulkUpdate, &params, caller.user_id, &ids).await?;
    let view = serde_json::to_value(JobView::from(job.clone())).map_err(anyhow::Error::from)?;
    idempotency::record(&mut tx, caller, BULK_UPDATE_SCOPE, key, 202, &view).await?;
    tx.commit().await?;
    tracing::info!(job_id = %job.id, rows = ids.len(), "bulk update queued");
    Ok(Queued::Fresh(job))
}

/// Queues the move of the accounts `ids` from the agent `from` to `to` as a bulk update
/// that changes each account only while it is still assigned to `from`.
pub async fn queue_move(pool: &PgPool, caller: &Principal, from: Uuid, to: Uuid, ids: &[Uuid]) -> Result<JobRow> {
    let params = BulkParams {
        patch: BulkPatch {
            assign: Some(Some(to)),
            ..BulkPatch::default()
        },
        actor: caller.user_id,
        role: caller.role,
        from_agent: Some(from),
    };
    let params = serde_json::to_value(&params).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let job = jobs::create(&mut tx, JobKind::BulkUpdate, &params, caller.user_id, ids).await?;
    tx.commit().await?;
    tracing::info!(job_id = %job.id, rows = ids.len(), "account move queued");
    Ok(job)
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
async fn resolve(
    pool: &PgPool,
    index: &dyn SearchIndex,
    caller: &Principal,
    request: &BulkUpdateRequest,
    today: NaiveDate,
) -> Result<Vec<Uuid>> {
    match (&request.ids, &request.filter) {
        (Some(ids), None) => {
            if ids.len() > MAX_BULK_ROWS {
                return Err(too_many());
            }
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            Ok(ids.iter().copied().filter(|id| seen.insert(*id)).collect())
        }
        (None, Some(filter)) => {
            let parsed = accounts::query(pool, caller, &query_string(filter), today)
                .await
                .map_err(|err| match err {
                    Error::Problem(mut p) => {
                        for e in &mut p.errors {
                            e.field = format!("filter.{}", e.field);
                        }
                        Error::Problem(p)
                    }
                    other => other,
                })?;
            let ids = index.account_ids(parsed, MAX_BULK_ROWS + 1).await?;
            if ids.len() > MAX_BULK_ROWS {
                return Err(too_many());
            }
            Ok(ids)
        }
        _ => Err(Error::field("ids", "send exactly one of `ids` and `filter`")),
    }
}
