//! The promise scheduler: a promise to pay whose date passed unpaid is broken. Every API
//! process runs it; one conditional UPDATE makes it idempotent and safe to run in several
//! processes at once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::Result;
use crate::shutdown::running;
use crate::store::promises;

/// How often the scheduler looks for promises whose date passed.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// One look at `clock`'s now: breaks the promises whose date passed; how many.
pub async fn pass(pool: &PgPool, clock: &Clock) -> Result<u64> {
    let broken = promises::break_overdue(pool, clock.now()).await?;
    if broken > 0 {
        tracing::info!(broken, "promises to pay broken");
    }
    Ok(broken)
}

/// Marks promises whose date passed as broken, every minute until `shutdown`.
pub async fn run(pool: PgPool, clock: Clock, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        if let Err(err) = pass(&pool, &clock).await {
            tracing::warn!(error = %err, "checking promises failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
