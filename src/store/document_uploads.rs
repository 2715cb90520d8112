//! The files of a bulk document upload (`document_upload_entries`,
//! migrations/0045_document_uploads.sql): listed when the job is queued, each settled in
//! the transaction that keeps it.

use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::attachment::bulk::Entry;
use crate::error::Result;

/// A file of the zip not yet settled.
#[derive(Clone, Debug, FromRow)]
pub struct Pending {
    pub seq: i32,
    pub zip_index: i32,
    pub path: String,
    pub account_number: String,
    pub name: String,
}

/// Lists the job's files, in the order they are kept.
pub async fn insert(conn: &mut PgConnection, job: Uuid, entries: &[Entry]) -> Result<()> {
    let indexes: Vec<i32> = entries.iter().map(|e| i32::try_from(e.index).unwrap_or(i32::MAX)).collect();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let numbers: Vec<&str> = entries.iter().map(|e| e.account_number.as_str()).collect();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    sqlx::query(
        "INSERT INTO document_upload_entries (job_id, seq, zip_index, path, account_number, name)
         SELECT $1, e.seq, e.zip_index, e.path, e.account_number, e.name
         FROM unnest($2::int[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(zip_index, path, account_number, name, seq)",
    )
    .bind(job)
    .bind(&indexes)
    .bind(&paths)
    .bind(&numbers)
    .bind(&names)
    .execute(conn)
    .await?;
    Ok(())
}

/// The job's next `limit` files not yet settled, in order.
pub async fn pending(pool: &PgPool, job: Uuid, limit: i64) -> Result<Vec<Pending>> {
    Ok(sqlx::query_as(
        "SELECT seq, zip_index, path, account_number, name FROM document_upload_entries
         WHERE job_id = $1 AND outcome IS NULL ORDER BY seq LIMIT $2",
    )
    .bind(job)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Locks file `seq` for the transaction that keeps it: `false` when it is already
/// settled (by another run of the chunk, which this one waited for).
pub async fn lock(conn: &mut PgConnection, job: Uuid, seq: i32) -> Result<bool> {
    let open: Option<bool> =
        sqlx::query_scalar("SELECT outcome IS NULL FROM document_upload_entries WHERE job_id = $1 AND seq = $2 FOR UPDATE")
            .bind(job)
            .bind(seq)
            .fetch_optional(conn)
            .await?;
    Ok(open == Some(true))
}

/// Settles file `seq`: kept as `document`, or refused for `error`. `false` when it was
/// already settled (by a run this one replays).
pub async fn settle(conn: &mut PgConnection, job: Uuid, seq: i32, document: Option<Uuid>, error: Option<&str>) -> Result<bool> {
    let settled = sqlx::query(
        "UPDATE document_upload_entries
         SET outcome = CASE WHEN $3::uuid IS NULL THEN 'failed' ELSE 'succeeded' END, document_id = $3, error = $4
         WHERE job_id = $1 AND seq = $2 AND outcome IS NULL",
    )
    .bind(job)
    .bind(seq)
    .bind(document)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(settled.rows_affected() == 1)
}

/// A file the job could not keep.
#[derive(Clone, Debug, FromRow)]
pub struct Refused {
    pub seq: i32,
    pub path: String,
    pub account_number: String,
    pub error: String,
}

/// The job's refused files after `after`, in order.
pub async fn refused(pool: &PgPool, job: Uuid, after: Option<i32>, limit: i64) -> Result<Vec<Refused>> {
    Ok(sqlx::query_as(
        "SELECT seq, path, account_number, coalesce(error, '') AS error FROM document_upload_entries
         WHERE job_id = $1 AND outcome = 'failed' AND ($2::int IS NULL OR seq > $2) ORDER BY seq LIMIT $3",
    )
    .bind(job)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The zips still kept of bulk uploads that ended (or were cancelled before they ran):
/// each job with its zip's key.
pub async fn ended_zips(pool: &PgPool) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, params->>'zip_key' FROM jobs
         WHERE kind = 'document_upload' AND finished_at IS NOT NULL AND params ? 'zip_key'",
    )
    .fetch_all(pool)
    .await?)
}

/// Records that job `job`'s zip was removed from the store.
pub async fn zip_removed(pool: &PgPool, job: Uuid) -> Result<()> {
    sqlx::query("UPDATE jobs SET params = params - 'zip_key' WHERE id = $1")
        .bind(job)
        .execute(pool)
        .await?;
    Ok(())
}
