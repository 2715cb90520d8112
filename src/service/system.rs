//! What operators watch of the system itself: whether the database answers, and how
//! much work waits in the job queue.

use sqlx::PgPool;

use crate::domain::job::JobKind;
use crate::error::Result;
use crate::store::{self, jobs};

/// Whether PostgreSQL answers a query.
pub async fn database_answers(pool: &PgPool) -> std::result::Result<(), sqlx::Error> {
    store::ping(pool).await
}

/// Jobs waiting to run, for every kind of job (zero for a kind with none).
pub async fn queued_jobs(pool: &PgPool) -> Result<Vec<(JobKind, i64)>> {
    let queued = jobs::queued_by_kind(pool).await?;
    Ok(JobKind::ALL
        .into_iter()
        .map(|kind| (kind, queued.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)))
        .collect())
}
