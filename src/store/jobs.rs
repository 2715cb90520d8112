//! Durable jobs: a SKIP LOCKED queue with progress committed per chunk.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::job::{JobKind, JobStatus};
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

pub const CHANNEL: &str = "jobs";
/// A running job whose process stopped sending heartbeats this long ago is taken over.
pub const STALE_AFTER_SECS: i64 = 30;

#[derive(Clone, Debug, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    pub params: Json<Value>,
    pub total: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub result: Option<Json<Value>>,
    pub cancel_requested: bool,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, status, params, total, processed, succeeded, failed, result, cancel_requested, \
     created_by, created_at, started_at, finished_at";

/// Queues a job over a fixed, ordered set of accounts.
pub async fn create(tx: &mut PgConnection, kind: JobKind, params: &Value, created_by: Uuid, accounts: &[Uuid]) -> Result<JobRow> {
    let job = insert(&mut *tx, kind, JobStatus::Queued, params, created_by, accounts.len() as i64).await?;
    sqlx::query(
        "INSERT INTO job_items (job_id, seq, account_id)
         SELECT $1, s.seq, s.id FROM unnest($2::uuid[]) WITH ORDINALITY AS s(id, seq)",
    )
    .bind(job.id)
    .bind(accounts)
    .execute(&mut *tx)
    .await?;
    Ok(job)
}

/// Inserts a job row of `total` items; a queued job wakes the runners on commit. A job
/// inserted as `running` belongs to its creator (the CLI) until its heartbeat goes stale.
pub async fn insert(
    tx: &mut PgConnection,
    kind: JobKind,
    status: JobStatus,
    params: &Value,
    created_by: Uuid,
    total: i64,
) -> Result<JobRow> {
    let job = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (id, kind, status, params, total, created_by, started_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 CASE WHEN $3 = 'running' THEN now() END, CASE WHEN $3 = 'running' THEN now() END)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(status)
    .bind(Json(params))
    .bind(total)
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await?;
    Ok(job)
}

/// Jobs waiting to run, by kind (the runnable-jobs index covers them).
pub async fn queued_by_kind(pool: &PgPool) -> Result<Vec<(JobKind, i64)>> {
    Ok(
        sqlx::query_as("SELECT kind, count(*) FROM jobs WHERE status = 'queued' GROUP BY kind")
            .fetch_all(pool)
            .await?,
    )
}

/// Takes the oldest queued job, or a running one whose process went silent.
pub async fn claim(pool: &PgPool) -> Result<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, now()), heartbeat_at = now()
         WHERE id = (SELECT id FROM jobs
                     WHERE status = 'queued'
                        OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $1))
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    )))
    .bind(STALE_AFTER_SECS as f64)
    .fetch_optional(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<JobRow>> {
    Ok(
        sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Jobs newest first; only `owner`'s when given.
pub async fn list(pool: &PgPool, owner: Option<Uuid>, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<JobRow>> {
    let query = keyset::rows_where(&format!("SELECT {COLUMNS} FROM jobs"), "created_by", owner);
    NewestFirst::by("created_at", "id").page(pool, query, after, limit).await
}

pub async fn count(pool: &PgPool, owner: Option<Uuid>) -> Result<i64> {
    keyset::count(pool, keyset::rows_where("SELECT count(*) FROM jobs", "created_by", owner)).await
}

/// A queued job is cancelled at once; a running one stops after its current chunk.
pub async fn cancel(pool: &PgPool, id: Uuid) -> Result<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET
             cancel_requested = true,
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
             finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The next unfinished items of a job, locked for this chunk's transaction.
pub async fn next_items(tx: &mut PgConnection, job: Uuid, limit: i64) -> Result<Vec<(i32, Uuid)>> {
    Ok(
        sqlx::query_as("SELECT seq, account_id FROM job_items WHERE job_id = $1 AND outcome IS NULL ORDER BY seq LIMIT $2 FOR UPDATE")
            .bind(job)
            .bind(limit)
            .fetch_all(tx)
            .await?,
    )
}

/// Records each item's outcome and the job's counters, in the chunk's transaction.
pub async fn record(tx: &mut PgConnection, job: Uuid, outcomes: &[(i32, Option<String>)]) -> Result<()> {
    let seqs: Vec<i32> = outcomes.iter().map(|o| o.0).collect();
    let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.1.clone()).collect();
    sqlx::query(
        "UPDATE job_items i SET outcome = CASE WHEN o.error IS NULL THEN 'succeeded' ELSE 'failed' END, error = o.error
         FROM unnest($2::int[], $3::text[]) AS o(seq, error)
         WHERE i.job_id = $1 AND i.seq = o.seq",
    )
    .bind(job)
    .bind(&seqs)
    .bind(&errors)
    .execute(&mut *tx)
    .await?;
    let failed = errors.iter().filter(|e| e.is_some()).count() as i64;
    advance(tx, job, outcomes.len() as i64, failed).await
}

/// Adds a chunk's rows to the job's counters (and beats its heart), in the chunk's
/// transaction.
pub async fn advance(tx: &mut PgConnection, job: Uuid, processed: i64, failed: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET processed = processed + $2, succeeded = succeeded + $3, failed = failed + $4, heartbeat_at = now()
         WHERE id = $1",
    )
    .bind(job)
    .bind(processed)
    .bind(processed - failed)
    .bind(failed)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn cancel_requested(pool: &PgPool, job: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await?)
}

pub async fn finish(pool: &PgPool, job: Uuid, status: JobStatus, result: Option<&Value>) -> Result<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = $2, result = $3, finished_at = now() WHERE id = $1 AND finished_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(job)
    .bind(status)
    .bind(result.map(Json))
    .fetch_optional(pool)
    .await?)
}

/// Failed items of a job with their reasons, in order.
/// The failed rows of `job` (of accounts within `scope`, as
/// [`super::portfolios::push_scope`] reads it) after `after`, in order.
pub async fn failures(
    pool: &PgPool,
    job: Uuid,
    scope: Option<&[Uuid]>,
    after: Option<i32>,
    limit: i64,
) -> Result<Vec<(i32, Uuid, String)>> {
    let mut query = failed_items("SELECT seq, account_id, coalesce(error, '') FROM job_items", job, scope);
    if let Some(after) = after {
        query.push(" AND seq > ").push_bind(after);
    }
    query.push(" ORDER BY seq LIMIT ").push_bind(limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// How many rows of `job` on accounts within `scope` failed.
pub async fn count_failures(pool: &PgPool, job: Uuid, scope: &[Uuid]) -> Result<i64> {
    let mut query = failed_items("SELECT count(*) FROM job_items", job, Some(scope));
    Ok(query.build_query_scalar().fetch_one(pool).await?)
}

fn failed_items(select: &str, job: Uuid, scope: Option<&[Uuid]>) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(select);
    query.push(" WHERE job_id = ").push_bind(job).push(" AND outcome = 'failed'");
    super::portfolios::push_scope(&mut query, "job_items.account_id", scope);
    query
}
