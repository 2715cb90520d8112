//! The daily bucket snapshot the KPIs' cure and roll rates read. Every API process runs
//! it; the day's row in `account_snapshot_days` lets one process take each day, and the
//! others skip it. Then it keeps the bucket moves of the default KPI period, so the
//! dashboard's first request of the day does not pay for them.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::domain::kpi::DEFAULT_DAYS;
use crate::shutdown::running;
use crate::store::kpis;

/// How often the scheduler looks for a day not taken yet.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Takes today's (UTC) snapshot when it is not taken, and keeps the default period's
/// moves, every minute until `shutdown`.
pub async fn run(pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        let today = chrono::Utc::now().date_naive();
        match kpis::take_snapshot(&pool, today).await {
            Ok(None) => {}
            Ok(Some(accounts)) => tracing::info!(%today, accounts, "bucket snapshot taken"),
            Err(err) => tracing::warn!(error = %err, "taking the bucket snapshot failed"),
        }
        let opening = today - chrono::Duration::days(DEFAULT_DAYS - 1);
        if let Err(err) = kpis::keep_moves(&pool, opening, today).await {
            tracing::warn!(error = %err, "keeping the default period's bucket moves failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
