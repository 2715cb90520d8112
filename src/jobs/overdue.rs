//! The overdue scheduler: an active account whose due date has passed unpaid, in the
//! debtor's time zone, by more than its portfolio's `delinquent_after_days` (or
//! `OVERDUE_AFTER_DAYS`) becomes delinquent, and its agent is told once per pass, however
//! many of their accounts it moved. Every API process runs it; each chunk is one
//! transaction that skips what another holds, so passes in several processes at once
//! move (and tell of) each account once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::Result;
use crate::shutdown::running;
use crate::store::accounts;

/// How often the scheduler looks for accounts past due.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Accounts moved in one transaction.
const CHUNK: i64 = 1000;

/// One look at `clock`'s now: moves every account past due, a chunk at a time, and
/// answers how many. The chunks of one pass tell each agent in one notification.
pub async fn pass(pool: &PgPool, clock: &Clock, default_days: u32) -> Result<u64> {
    let days = i32::try_from(default_days).unwrap_or(i32::MAX);
    let batch = format!("overdue:{}", Uuid::now_v7());
    let mut moved = 0;
    loop {
        let chunk = accounts::mark_overdue(pool, clock.now(), days, CHUNK, &batch).await?;
        moved += chunk.len() as u64;
        if (chunk.len() as i64) < CHUNK {
            break;
        }
    }
    if moved > 0 {
        tracing::info!(moved, "accounts past due made delinquent");
    }
    Ok(moved)
}

/// Moves the accounts past due, every minute until `shutdown`.
pub async fn run(pool: PgPool, clock: Clock, default_days: u32, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        if let Err(err) = pass(&pool, &clock, default_days).await {
            tracing::warn!(error = %err, "checking accounts past due failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
