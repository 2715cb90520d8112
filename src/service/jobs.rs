//! Durable jobs: who may see one, its view, and the rows it could not change.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::job::{JobKind, JobStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Error, Result};
use crate::import::RowError;
use crate::store::imports;
use crate::store::jobs::{self, JobRow};

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
}

/// Up to `limit` of the rows `job` could not change after the row `after`, in order,
/// each with its sequence number.
pub async fn failures(pool: &PgPool, job: &JobRow, after: Option<i32>, limit: i64) -> Result<Vec<(i32, Failure)>> {
    if job.kind == JobKind::Import {
        let rows = imports::failed(pool, job.id, after.unwrap_or(0), limit).await?;
        return Ok(rows
            .into_iter()
            .map(|(seq, line, _, errors)| (seq, Failure::ImportRow { seq, row: line, errors }))
            .collect());
    }
    let rows = jobs::failures(pool, job.id, after, limit).await?;
    Ok(rows
        .into_iter()
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
        .collect())
}
