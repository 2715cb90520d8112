//! The audit trail's upkeep, in every API process: seal what finished transactions wrote
//! (every [`SEAL_EVERY`]), and keep the partitions ahead and within retention (every
//! [`UPKEEP_EVERY`]). Each is safe to run in several processes at once.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::service::audit_log;
use crate::shutdown::running;

/// How often new rows are sealed into their chains.
const SEAL_EVERY: Duration = Duration::from_secs(2);
/// How often partitions are made ahead and retention is applied.
const UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// Seals and keeps the partitions until `shutdown`.
pub async fn run(pool: PgPool, clock: Clock, retention_days: u32, mut shutdown: watch::Receiver<bool>) {
    let mut last_upkeep: Option<tokio::time::Instant> = None;
    while running(&shutdown) {
        if last_upkeep.is_none_or(|at| at.elapsed() >= UPKEEP_EVERY) {
            match audit_log::upkeep(&pool, clock.now(), retention_days).await {
                Ok(_) => last_upkeep = Some(tokio::time::Instant::now()),
                Err(err) => tracing::warn!(error = %err, "audit partition upkeep failed"),
            }
        }
        if let Err(err) = audit_log::seal_all(&pool).await {
            tracing::warn!(error = %err, "sealing the audit trail failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(SEAL_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
