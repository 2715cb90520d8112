//! The daily bucket snapshot the KPIs' cure and roll rates read. Every API process runs
//! it; the day's row in `account_snapshot_days` lets one process take each day, and the
//! others skip it. Then it keeps the bucket moves of the default KPI period, so the
//! dashboard's first request of the day does not pay for them, the event figures of
//! every day that is over and not kept (yesterday, and days a late write dropped), those
//! of every month whose days are all kept, and today's up to now, so that a request
//! computes only the last minute's events.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::kpi::DEFAULT_DAYS;
use crate::error::Result;
use crate::shutdown::running;
use crate::store::kpis;

/// How often the scheduler looks for a day not taken yet.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// One look at `clock`'s now: takes today's (UTC) snapshot when it is not taken (how
/// many accounts it holds), keeps the moves since yesterday's and the default period's,
/// the days to keep, the months to keep and today so far. A step that fails is logged
/// and the next ones still run; the first failure is the answer.
pub async fn pass(pool: &PgPool, clock: &Clock, shutdown: &watch::Receiver<bool>) -> Result<Option<u64>> {
    let now = clock.now();
    let today = now.date_naive();
    let mut first_failure = None;
    let taken = match kpis::take_snapshot(pool, today).await {
        Ok(taken) => taken,
        Err(err) => {
            tracing::warn!(error = %err, "taking the bucket snapshot failed");
            first_failure.get_or_insert(err);
            None
        }
    };
    if let Some(accounts) = taken {
        tracing::info!(%today, accounts, "bucket snapshot taken");
    }
    // The moves since yesterday's snapshot: the day's roll rates in the reporting index.
    if let Err(err) = kpis::keep_moves(pool, today - chrono::Duration::days(1), today).await {
        tracing::warn!(error = %err, "keeping the day's bucket moves failed");
        first_failure.get_or_insert(err);
    }
    let opening = today - chrono::Duration::days(DEFAULT_DAYS - 1);
    if let Err(err) = kpis::keep_moves(pool, opening, today).await {
        tracing::warn!(error = %err, "keeping the default period's bucket moves failed");
        first_failure.get_or_insert(err);
    }
    if let Err(err) = keep_days(pool, today, shutdown).await {
        tracing::warn!(error = %err, "keeping the KPI days failed");
        first_failure.get_or_insert(err);
    }
    if let Err(err) = keep_months(pool, today, shutdown).await {
        tracing::warn!(error = %err, "keeping the KPI months failed");
        first_failure.get_or_insert(err);
    }
    if let Err(err) = kpis::keep_today(pool, clock.now()).await {
        tracing::warn!(error = %err, "keeping today's KPI figures failed");
        first_failure.get_or_insert(err);
    }
    match first_failure {
        Some(err) => Err(err),
        None => Ok(taken),
    }
}

/// Runs [`pass`] every minute until `shutdown`.
pub async fn run(pool: PgPool, clock: Clock, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        // Each failure was logged where it happened.
        let _ = pass(&pool, &clock, &shutdown).await;
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    }
}

/// Keeps the days before `today` that are not kept, one transaction each (a write to an
/// event waits for at most one day's keeping), paced (see [`rest`]), until `shutdown`.
async fn keep_days(pool: &PgPool, today: NaiveDate, shutdown: &watch::Receiver<bool>) -> Result<()> {
    let days = kpis::days_to_keep(pool, today).await?;
    for day in days {
        if !running(shutdown) {
            break;
        }
        let started = Instant::now();
        kpis::keep_day(pool, day).await?;
        rest(started.elapsed(), shutdown).await;
    }
    Ok(())
}

/// Keeps the months whose days are all kept, one transaction each, paced (see
/// [`rest`]), until `shutdown`.
async fn keep_months(pool: &PgPool, today: NaiveDate, shutdown: &watch::Receiver<bool>) -> Result<()> {
    for month in kpis::months_to_keep(pool, today).await? {
        if !running(shutdown) {
            break;
        }
        let started = Instant::now();
        kpis::keep_month(pool, month).await?;
        rest(started.elapsed(), shutdown).await;
    }
    Ok(())
}

/// How much longer than a day's or a month's keeping took the scheduler waits before the
/// next: the keeping takes at most a third of one core's time.
const REST_PER_WORK: u32 = 2;

/// Waits [`REST_PER_WORK`] times as long as a day's or a month's keeping took
/// (`worked`), or until `shutdown`. After a load of half a year's history the days to
/// keep are 180, each a PostgreSQL statement that holds a core for as long as it runs
/// (up to 5 s at 1,000,000 accounts); back to back they held one of two cores for five
/// and a half minutes, and the search mix meanwhile ran at half its settled throughput.
/// A shutdown already under way, even one `shutdown` has seen, ends it at once.
async fn rest(worked: Duration, shutdown: &watch::Receiver<bool>) {
    let mut shutdown = shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(worked * REST_PER_WORK) => {}
        _ = shutdown.wait_for(|stopping| *stopping) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rest_lasts_twice_as_long_as_the_work_and_ends_at_shutdown() {
        let (stop, shutdown) = watch::channel(false);
        let started = Instant::now();
        rest(Duration::from_millis(50), &shutdown).await;
        assert!(
            started.elapsed() >= Duration::from_millis(50) * REST_PER_WORK,
            "rested {:?}",
            started.elapsed()
        );

        let mut seen = shutdown.clone();
        let resting = tokio::spawn(async move { rest(Duration::from_secs(600), &shutdown).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), resting).await;
        assert!(ended.is_ok(), "a shutdown ends a 10-minute rest at once");

        // The scheduler's loop marks the shutdown seen on the receiver it hands on.
        seen.borrow_and_update();
        let ended = tokio::time::timeout(Duration::from_secs(5), rest(Duration::from_secs(600), &seen)).await;
        assert!(ended.is_ok(), "a rest begun after the shutdown ends at once");
    }
}
