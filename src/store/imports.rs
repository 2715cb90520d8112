//! Staged import rows and their outcomes.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;
use crate::import::Row;

/// Rows per INSERT when staging.
const STAGE_BATCH: usize = 5_000;

/// One problem with a row: the file's column header (or the field) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub column: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Failed => "failed",
        }
    }
}

pub struct Staged {
    pub seq: i32,
    pub line: i32,
    pub cells: Vec<String>,
}

/// A row's result, recorded with the chunk.
pub struct Settled {
    pub seq: i32,
    pub outcome: Outcome,
    pub errors: Vec<RowError>,
    pub account_id: Option<Uuid>,
}

/// Stages every row of an upload; rows already known to fail (`failed[i]`) are settled
/// at once. Returns how many were settled that way.
pub async fn stage(tx: &mut PgConnection, job: Uuid, rows: &[Row], failed: &[Option<RowError>]) -> Result<i64> {
    let mut settled = 0;
    for (batch_no, batch) in rows.chunks(STAGE_BATCH).enumerate() {
        let offset = batch_no * STAGE_BATCH;
        let seqs: Vec<i32> = (0..batch.len()).map(|i| (offset + i + 1) as i32).collect();
        let lines: Vec<i32> = batch.iter().map(|r| r.line as i32).collect();
        let cells: Vec<Json<&Vec<String>>> = batch.iter().map(|r| Json(&r.cells)).collect();
        let errors: Vec<Option<Json<Vec<&RowError>>>> = (0..batch.len())
            .map(|i| failed.get(offset + i).and_then(Option::as_ref).map(|e| Json(vec![e])))
            .collect();
        settled += errors.iter().filter(|e| e.is_some()).count() as i64;
        sqlx::query(
            "INSERT INTO import_rows (job_id, seq, line, cells, errors, outcome)
             SELECT $1, r.seq, r.line, r.cells, r.errors, CASE WHEN r.errors IS NOT NULL THEN 'failed' END
             FROM unnest($2::int[], $3::int[], $4::jsonb[], $5::jsonb[]) AS r(seq, line, cells, errors)",
        )
        .bind(job)
        .bind(&seqs)
        .bind(&lines)
        .bind(&cells)
        .bind(&errors)
        .execute(&mut *tx)
        .await?;
    }
    Ok(settled)
}

/// The next unsettled rows, locked for this chunk's transaction.
pub async fn next(tx: &mut PgConnection, job: Uuid, limit: i64) -> Result<Vec<Staged>> {
    let rows: Vec<(i32, i32, Json<Vec<String>>)> =
        sqlx::query_as("SELECT seq, line, cells FROM import_rows WHERE job_id = $1 AND outcome IS NULL ORDER BY seq LIMIT $2 FOR UPDATE")
            .bind(job)
            .bind(limit)
            .fetch_all(tx)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, line, cells)| Staged { seq, line, cells: cells.0 })
        .collect())
}

pub async fn settle(tx: &mut PgConnection, job: Uuid, rows: &[Settled]) -> Result<()> {
    let seqs: Vec<i32> = rows.iter().map(|r| r.seq).collect();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    let errors: Vec<Option<Json<&Vec<RowError>>>> = rows.iter().map(|r| (!r.errors.is_empty()).then_some(Json(&r.errors))).collect();
    let accounts: Vec<Option<Uuid>> = rows.iter().map(|r| r.account_id).collect();
    sqlx::query(
        "UPDATE import_rows i SET outcome = r.outcome, errors = r.errors, account_id = r.account_id
         FROM unnest($2::int[], $3::text[], $4::jsonb[], $5::uuid[]) AS r(seq, outcome, errors, account_id)
         WHERE i.job_id = $1 AND i.seq = r.seq",
    )
    .bind(job)
    .bind(&seqs)
    .bind(&outcomes)
    .bind(&errors)
    .bind(&accounts)
    .execute(tx)
    .await?;
    Ok(())
}

/// Rows per outcome: (created, updated, failed).
pub async fn counts(pool: &PgPool, job: Uuid) -> Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'created'), count(*) FILTER (WHERE outcome = 'updated'),
                count(*) FILTER (WHERE outcome = 'failed')
         FROM import_rows WHERE job_id = $1",
    )
    .bind(job)
    .fetch_one(pool)
    .await?)
}

/// A failed row: its sequence, its row number, its cells and its errors.
pub type FailedRow = (i32, i32, Json<Vec<String>>, Json<Vec<RowError>>);

/// Failed rows in order, after `after` (a sequence number).
pub async fn failed(pool: &PgPool, job: Uuid, after: i32, limit: i64) -> Result<Vec<FailedRow>> {
    Ok(sqlx::query_as(
        "SELECT seq, line, cells, errors FROM import_rows
         WHERE job_id = $1 AND outcome = 'failed' AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(job)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Every failed row's cells and errors, in order (for the error file).
pub async fn failed_all(pool: &PgPool, job: Uuid) -> Result<Vec<(Vec<String>, Vec<RowError>)>> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = failed(pool, job, after, 5_000).await?;
        let Some(last) = page.last() else { return Ok(rows) };
        after = last.0;
        rows.extend(page.into_iter().map(|(_, _, cells, errors)| (cells.0, errors.0)));
    }
}
