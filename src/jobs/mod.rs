//! The job runner: every API process runs one; the queue (SKIP LOCKED) hands each job
//! to one of them, and a job whose process died is taken over after its heartbeat
//! goes stale, resuming after its last committed chunk.

pub mod audit_log;
pub mod bulk_update;
pub mod contact_windows;
pub mod document_processing;
pub mod document_retention;
pub mod document_upload;
pub mod import;
pub mod messages;
pub mod overdue;
pub mod plans;
pub mod promises;
pub mod schedulers;
pub mod snapshots;

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::domain::job::{JobKind, JobStatus};
use crate::error::Result;
use crate::shutdown::running;
use crate::store::jobs::{self, JobRow};
use crate::telemetry::metrics;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// A chunk that fails (a lost connection, a deadlock) is retried this often, with a
/// growing pause, before the job is marked failed; its transaction left nothing behind.
const CHUNK_RETRIES: u32 = 3;

/// Why a job's loop ended.
#[derive(Debug)]
pub enum Stop {
    Done,
    Cancelled,
    Interrupted,
}

/// Runs `chunk` until it settles nothing, stopping for shutdown or cancellation between
/// chunks.
pub async fn chunks<F, Fut>(pool: &PgPool, job: uuid::Uuid, shutdown: &watch::Receiver<bool>, mut chunk: F) -> Result<Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize>>,
{
    let mut failures = 0;
    loop {
        if !running(shutdown) {
            return Ok(Stop::Interrupted);
        }
        if jobs::cancel_requested(pool, job).await? {
            return Ok(Stop::Cancelled);
        }
        match chunk().await {
            Ok(0) => return Ok(Stop::Done),
            Ok(_) => failures = 0,
            Err(err) if failures < CHUNK_RETRIES => {
                failures += 1;
                tracing::warn!(job_id = %job, error = %err, attempt = failures, "a job chunk failed; retrying it");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// How a finished job went, from its counters.
pub fn final_status(succeeded: i64, failed: i64) -> JobStatus {
    match (succeeded, failed) {
        (_, 0) => JobStatus::Succeeded,
        (0, _) => JobStatus::Failed,
        _ => JobStatus::PartiallyFailed,
    }
}

#[derive(Serialize)]
struct Outcome {
    succeeded: i64,
    failed: i64,
}

/// Records the end of a job that settled all its rows, with its kind's result.
pub async fn finish(pool: &PgPool, job: &JobRow) -> Result<Option<JobRow>> {
    let Some(row) = jobs::get(pool, job.id).await? else {
        return Ok(None);
    };
    let result = match row.kind {
        JobKind::Import => import::summary(pool, &row).await?,
        JobKind::BulkUpdate | JobKind::DocumentUpload => serde_json::to_value(Outcome {
            succeeded: row.succeeded,
            failed: row.failed,
        })
        .map_err(anyhow::Error::from)?,
    };
    let finished = jobs::finish(pool, job.id, final_status(row.succeeded, row.failed), Some(&result)).await?;
    if row.kind == JobKind::Import {
        crate::store::imports::discard_applied(pool, job.id).await?;
    }
    Ok(finished)
}

/// A LISTEN on `channel` for a loop that also polls: `None` when it cannot be had (the
/// loop then only polls).
pub async fn listen(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(channel).await.ok().map(|()| listener)
}

/// Waits for a notification on `listener`, a poll's pause, or shutdown, whichever comes
/// first. A listener that broke is dropped, and polling carries on.
pub async fn idle(listener: &mut Option<PgListener>, shutdown: &mut watch::Receiver<bool>) {
    let notified = async {
        match listener.as_mut() {
            Some(l) => l.recv().await.map(|_| ()),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = notified => if result.is_err() { *listener = None; },
        _ = tokio::time::sleep(POLL_EVERY) => {}
        _ = shutdown.changed() => {}
    }
}

pub async fn run(pool: PgPool, documents: document_upload::Documents, mut shutdown: watch::Receiver<bool>) {
    let mut listener = listen(&pool, jobs::CHANNEL).await;
    while running(&shutdown) {
        match jobs::claim(&pool).await {
            Ok(Some(job)) => {
                execute(&pool, &documents, job, &shutdown).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "claiming a job failed"),
        }
        idle(&mut listener, &mut shutdown).await;
    }
}

async fn execute(pool: &PgPool, documents: &document_upload::Documents, job: JobRow, shutdown: &watch::Receiver<bool>) {
    tracing::info!(job_id = %job.id, kind = job.kind.as_str(), "job started");
    let started = std::time::Instant::now();
    let result = match job.kind {
        JobKind::BulkUpdate => bulk_update::run(pool, &job, shutdown).await,
        JobKind::Import => import::run(pool, &job, shutdown).await,
        JobKind::DocumentUpload => document_upload::run(pool, documents, &job, shutdown).await,
    };
    let outcome = match &result {
        Ok(Stop::Done) => "done",
        Ok(Stop::Cancelled) => "cancelled",
        Ok(Stop::Interrupted) => "interrupted",
        Err(_) => "failed",
    };
    metrics::job_ran(job.kind.as_str(), outcome, started.elapsed());
    let finished = match result {
        Ok(Stop::Done) => finish(pool, &job).await,
        Ok(Stop::Cancelled) => jobs::finish(pool, job.id, JobStatus::Cancelled, None).await,
        // Shutting down mid-job: the next process resumes it after the last chunk.
        Ok(Stop::Interrupted) => return,
        Err(err) => {
            tracing::error!(job_id = %job.id, error = %err, "job failed");
            let reason = serde_json::json!({"error": "the job stopped on an internal error; see the server log"});
            jobs::finish(pool, job.id, JobStatus::Failed, Some(&reason)).await
        }
    };
    if job.kind == JobKind::DocumentUpload
        && let Err(err) = crate::service::document_uploads::discard_ended_zips(pool, documents.content.as_ref()).await
    {
        tracing::warn!(job_id = %job.id, error = %err, "removing the zips of ended document uploads failed");
    }
    match finished {
        Ok(Some(row)) => {
            tracing::info!(job_id = %row.id, status = row.status.as_str(), succeeded = row.succeeded, failed = row.failed, "job finished")
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(job_id = %job.id, error = %err, "could not record the job's end"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_counters() {
        assert_eq!(final_status(10, 0), JobStatus::Succeeded);
        assert_eq!(final_status(0, 0), JobStatus::Succeeded);
        assert_eq!(final_status(0, 3), JobStatus::Failed);
        assert_eq!(final_status(7, 3), JobStatus::PartiallyFailed);
    }
}
