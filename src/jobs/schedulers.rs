//! The schedulers every API process runs (promises, plans, accounts past due, KPI
//! snapshots, contact windows, the audit trail's sealing and retention), all reading one [`Clock`]: started in the background by the application,
//! or run once on demand (a test that set the clock, then asks for a pass).

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::error::Result;
use crate::jobs::plans::MissRules;
use crate::store::plans::Misses;

#[derive(Clone, Debug)]
pub struct Schedulers {
    pub pool: PgPool,
    pub clock: Clock,
    pub misses: MissRules,
    /// `OVERDUE_AFTER_DAYS`: days past due after which an active account is delinquent,
    /// where its portfolio does not say.
    pub overdue_after_days: u32,
    /// Days the audit trail keeps a month's partition after the month ends.
    pub audit_retention_days: u32,
}

/// What one pass of every scheduler did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub promises_broken: u64,
    pub plans: Misses,
    /// Accounts past due made delinquent.
    pub overdue: u64,
    /// Accounts in today's snapshot when this pass took it.
    pub snapshot: Option<u64>,
    /// Accounts re-indexed for a zone's offset change.
    pub contact_windows: u64,
}

impl Schedulers {
    /// Starts each scheduler's loop in `background`, until `shutdown`.
    pub fn start(&self, shutdown: &watch::Receiver<bool>, background: &mut JoinSet<()>) {
        background.spawn(super::promises::run(self.pool.clone(), self.clock.clone(), shutdown.clone()));
        background.spawn(super::overdue::run(
            self.pool.clone(),
            self.clock.clone(),
            self.overdue_after_days,
            shutdown.clone(),
        ));
        background.spawn(super::contact_windows::run(self.pool.clone(), self.clock.clone(), shutdown.clone()));
        background.spawn(super::snapshots::run(self.pool.clone(), self.clock.clone(), shutdown.clone()));
        background.spawn(super::audit_log::run(
            self.pool.clone(),
            self.clock.clone(),
            self.audit_retention_days,
            shutdown.clone(),
        ));
        background.spawn(super::plans::run(
            self.pool.clone(),
            self.clock.clone(),
            self.misses,
            shutdown.clone(),
        ));
    }

    /// Runs every scheduler once at the clock's now, in the order the loops start.
    pub async fn pass(&self) -> Result<Pass> {
        let (_running, shutdown) = watch::channel(false);
        Ok(Pass {
            promises_broken: super::promises::pass(&self.pool, &self.clock).await?,
            overdue: super::overdue::pass(&self.pool, &self.clock, self.overdue_after_days).await?,
            contact_windows: super::contact_windows::refresh(&self.pool, &self.clock).await?,
            snapshot: super::snapshots::pass(&self.pool, &self.clock, &shutdown).await?,
            plans: super::plans::pass(&self.pool, &self.clock, self.misses).await?,
        })
    }
}
