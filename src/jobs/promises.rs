//! The promise scheduler: a promise to pay whose date passed unpaid is broken. Every API
//! process runs it; one conditional UPDATE makes it idempotent and safe to run in several
//! processes at once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::shutdown::running;
use crate::store::promises;

/// How often the scheduler looks for promises whose date passed.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Marks promises whose date passed as broken, every minute until `shutdown`.
pub async fn run(pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        match promises::break_overdue(&pool, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(broken) => tracing::info!(broken, "promises to pay broken"),
            Err(err) => tracing::warn!(error = %err, "checking promises failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
