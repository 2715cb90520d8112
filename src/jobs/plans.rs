//! The plan scheduler: an instalment still unpaid a grace period after its due date (in
//! the debtor's time zone) is missed, and a plan with too many misses is broken. Every
//! API process runs it; conditional UPDATEs make it idempotent and safe to run in several
//! processes at once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::shutdown::running;
use crate::store::plans;

/// How often the scheduler looks for missed instalments.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// `PLAN_GRACE_DAYS` and `PLAN_MAX_MISSES`.
#[derive(Clone, Copy, Debug)]
pub struct MissRules {
    pub grace_days: u32,
    pub max_misses: u32,
}

/// Marks missed instalments and breaks plans, every minute until `shutdown`.
pub async fn run(pool: PgPool, rules: MissRules, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        match plans::mark_missed(&pool, chrono::Utc::now(), rules.grace_days, rules.max_misses).await {
            Ok(misses) if misses == plans::Misses::default() => {}
            Ok(misses) => tracing::info!(missed = misses.missed, broken = misses.broken, "plan instalments missed"),
            Err(err) => tracing::warn!(error = %err, "checking plan instalments failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
