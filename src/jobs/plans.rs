//! The plan scheduler: an instalment still unpaid a grace period after its due date (in
//! the debtor's time zone) is missed, and a plan with too many misses is broken. Every
//! API process runs it; conditional UPDATEs make it idempotent and safe to run in several
//! processes at once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::Result;
use crate::shutdown::running;
use crate::store::plans::{self, Misses};

/// How often the scheduler looks for missed instalments.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// `PLAN_GRACE_DAYS` and `PLAN_MAX_MISSES`.
#[derive(Clone, Copy, Debug)]
pub struct MissRules {
    pub grace_days: u32,
    pub max_misses: u32,
}

/// One look at `clock`'s now: marks missed instalments and breaks plans.
pub async fn pass(pool: &PgPool, clock: &Clock, rules: MissRules) -> Result<Misses> {
    let misses = plans::mark_missed(pool, clock.now(), rules.grace_days, rules.max_misses).await?;
    if misses != Misses::default() {
        tracing::info!(missed = misses.missed, broken = misses.broken, "plan instalments missed");
    }
    Ok(misses)
}

/// Marks missed instalments and breaks plans, every minute until `shutdown`.
pub async fn run(pool: PgPool, clock: Clock, rules: MissRules, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        if let Err(err) = pass(&pool, &clock, rules).await {
            tracing::warn!(error = %err, "checking plan instalments failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
