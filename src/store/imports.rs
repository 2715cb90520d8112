//! Staged import rows, their errors, and each import's progress.

use std::fmt::Write;

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;
use crate::import::{Row, RowError};

pub struct Staged {
    pub seq: i32,
    pub cells: Vec<String>,
    /// What staging already found wrong with the row; its chunk adds the rest.
    pub refusals: Vec<RowError>,
}

/// What one chunk did, recorded in its transaction.
pub struct ChunkOutcome {
    /// The last sequence number the chunk covered.
    pub through: i32,
    pub created: i64,
    pub updated: i64,
    pub failures: Vec<(i32, Vec<RowError>)>,
}

/// Stages every row of an upload with COPY; rows already known to fail (`refused[i]`)
/// keep that error for their chunk, which validates them too and reports all.
pub async fn stage(tx: &mut PgConnection, job: Uuid, rows: &[Row], refused: &[Option<RowError>]) -> Result<()> {
    sqlx::query("INSERT INTO import_progress (job_id) VALUES ($1)")
        .bind(job)
        .execute(&mut *tx)
        .await?;
    let mut copy = tx
        .copy_in_raw("COPY import_rows (job_id, seq, line, cells, refusals) FROM STDIN")
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for (index, row) in rows.iter().enumerate() {
        let refusal = refused.get(index).and_then(Option::as_ref);
        // A row with NUL arrives refused; its cells are kept with NUL shown as U+FFFD,
        // which json can hold.
        let cells = if row.cells.iter().any(|c| c.contains('\0')) {
            let shown: Vec<String> = row.cells.iter().map(|c| c.replace('\0', "\u{FFFD}")).collect();
            serde_json::to_string(&shown)
        } else {
            serde_json::to_string(&row.cells)
        }
        .map_err(anyhow::Error::from)?;
        let refusals = match refusal {
            Some(e) => copy_text(&serde_json::to_string(&[e]).map_err(anyhow::Error::from)?),
            None => "\\N".to_owned(),
        };
        writeln!(buffer, "{job}\t{}\t{}\t{}\t{refusals}", index + 1, row.line, copy_text(&cells)).map_err(anyhow::Error::from)?;
        if buffer.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buffer).into_bytes()).await?;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// A value in COPY's text format. JSON text holds no raw control characters (the JSON
/// writer escapes them), so only backslashes need doubling.
fn copy_text(json: &str) -> String {
    json.replace('\\', "\\\\")
}

/// A staged row as read: its sequence, its cells (json text) and its refusals.
type StagedRow = (i32, String, Option<Json<Vec<RowError>>>);

/// The next rows to apply. Locks the import's progress row for the chunk's transaction,
/// so two processes never work on one import at once.
pub async fn next(tx: &mut PgConnection, job: Uuid, limit: i64) -> Result<Vec<Staged>> {
    let through: i32 = sqlx::query_scalar("SELECT settled_through FROM import_progress WHERE job_id = $1 FOR UPDATE")
        .bind(job)
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<StagedRow> = sqlx::query_as(
        "SELECT seq, cells::text, refusals FROM import_rows
         WHERE job_id = $1 AND seq > $2 AND errors IS NULL ORDER BY seq LIMIT $3",
    )
    .bind(job)
    .bind(through)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|(seq, cells, refusals)| {
            let cells = serde_json::from_str(&cells).map_err(anyhow::Error::from)?;
            Ok(Staged {
                seq,
                cells,
                refusals: refusals.map(|r| r.0).unwrap_or_default(),
            })
        })
        .collect()
}

/// Records a chunk: its failed rows' errors and the import's progress.
pub async fn settle(tx: &mut PgConnection, job: Uuid, chunk: &ChunkOutcome) -> Result<()> {
    if !chunk.failures.is_empty() {
        let seqs: Vec<i32> = chunk.failures.iter().map(|f| f.0).collect();
        let errors: Vec<Json<&Vec<RowError>>> = chunk.failures.iter().map(|f| Json(&f.1)).collect();
        sqlx::query(
            "UPDATE import_rows i SET errors = r.errors
             FROM unnest($2::int[], $3::jsonb[]) AS r(seq, errors)
             WHERE i.job_id = $1 AND i.seq = r.seq",
        )
        .bind(job)
        .bind(&seqs)
        .bind(&errors)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE import_progress SET settled_through = $2, created = created + $3, updated = updated + $4
         WHERE job_id = $1",
    )
    .bind(job)
    .bind(chunk.through)
    .bind(chunk.created)
    .bind(chunk.updated)
    .execute(tx)
    .await?;
    Ok(())
}

/// Drops the staged cells of rows that were applied; the failed ones stay for the
/// error file.
pub async fn discard_applied(pool: &PgPool, job: Uuid) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM import_rows WHERE job_id = $1 AND errors IS NULL")
        .bind(job)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Rows per outcome: (created, updated, failed).
pub async fn counts(pool: &PgPool, job: Uuid) -> Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT p.created, p.updated,
                (SELECT count(*) FROM import_rows r WHERE r.job_id = p.job_id AND r.errors IS NOT NULL)
         FROM import_progress p WHERE p.job_id = $1",
    )
    .bind(job)
    .fetch_one(pool)
    .await?)
}

/// A failed row: its sequence, its row number, its cells and its errors.
pub type FailedRow = (i32, i32, Vec<String>, Vec<RowError>);

/// Failed rows in order, after `after` (a sequence number).
pub async fn failed(pool: &PgPool, job: Uuid, after: i32, limit: i64) -> Result<Vec<FailedRow>> {
    let rows: Vec<(i32, i32, String, Json<Vec<RowError>>)> = sqlx::query_as(
        "SELECT seq, line, cells::text, errors FROM import_rows
         WHERE job_id = $1 AND errors IS NOT NULL AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(job)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(seq, line, cells, errors)| {
            let cells = serde_json::from_str(&cells).map_err(anyhow::Error::from)?;
            Ok((seq, line, cells, errors.0))
        })
        .collect()
}

/// Every failed row's cells and errors, in order (for the error file).
pub async fn failed_all(pool: &PgPool, job: Uuid) -> Result<Vec<(Vec<String>, Vec<RowError>)>> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = failed(pool, job, after, 5_000).await?;
        let Some(last) = page.last() else { return Ok(rows) };
        after = last.0;
        rows.extend(page.into_iter().map(|(_, _, cells, errors)| (cells, errors)));
    }
}

/// For the rest of `tx`, account changes raise no event of their own: the import's job
/// events announce them.
pub async fn quiet_account_events(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL arrears.import = 'on'").execute(tx).await?;
    Ok(())
}
