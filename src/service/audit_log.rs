//! The audit trail: who may read which part of it, the account's history, the whole log
//! for admins (as pages or one CSV file), `audit verify`, and the upkeep every process
//! runs (sealing, partitions ahead, retention).

use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::audit_log::{Filter, expired, partition_month};
use crate::domain::principal::Principal;
use crate::domain::refusal::Denied;
use crate::domain::role::{Action, works_account};
use crate::error::{Error, Result};
use crate::service::Window;
use crate::service::exports::{Cell, csv_row};
use crate::service::portfolios;
use crate::store::accounts;
use crate::store::audit_log::{self, ChainCheck, Position, WriteCounts};

pub use crate::store::audit_log::AuditRow;

/// Totals are counted up to this many entries; past it a page says "at least".
pub const COUNT_CAP: i64 = 10_000;

/// A page of entries and how many match (up to [`COUNT_CAP`]).
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    pub total: i64,
}

/// Which part of the trail a caller reads.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// The whole log: admins.
    Log,
    /// One account's entries (its changes, payments, promises, plans, overrides and
    /// reads by other agents): managers, admins and the agent it is assigned to. A
    /// deleted account's history stays readable.
    Account(Uuid),
}

/// Refuses `caller` what `scope` does not let them read, and narrows `filter` to it.
async fn authorize(pool: &PgPool, caller: &Principal, scope: Scope, filter: &mut Filter) -> Result<()> {
    match scope {
        Scope::Log => Ok(caller.require(Action::ReadAudit)?),
        Scope::Account(account_id) => {
            let (owner, portfolio) = accounts::assignee_and_portfolio_including_deleted(pool, account_id)
                .await?
                .ok_or_else(|| Error::not_found("account"))?;
            if !portfolios::in_scope(&mut *pool.acquire().await?, caller, portfolio).await? {
                return Err(Error::not_found("account"));
            }
            let owns = caller.can(Action::WorkAccount) && works_account(caller.role, caller.user_id, owner);
            if !caller.can(Action::ReadAccountHistory) && !owns {
                return Err(Denied("the history of an account is for managers, admins and the agent it is assigned to".to_owned()).into());
            }
            filter.account = Some(account_id);
            Ok(())
        }
    }
}

/// The entries of `scope` matching `filter`, newest first.
pub async fn page(pool: &PgPool, caller: &Principal, scope: Scope, mut filter: Filter, window: Window<Position>) -> Result<AuditPage> {
    authorize(pool, caller, scope, &mut filter).await?;
    let admin = caller.can(Action::ReadAudit);
    let rows = audit_log::page(pool, &filter, window.after, window.limit).await?;
    Ok(AuditPage {
        rows: rows.into_iter().map(|row| shown(row, admin)).collect(),
        total: audit_log::count(pool, &filter, COUNT_CAP).await?,
    })
}

/// `row` as its reader sees it: where a request came from is for admins only.
fn shown(mut row: AuditRow, admin: bool) -> AuditRow {
    if !admin {
        row.address = None;
        row.request_id = None;
    }
    row
}

/// The CSV file's columns.
pub const CSV_COLUMNS: &[&str] = &[
    "at",
    "id",
    "action",
    "entity",
    "entity_id",
    "account_id",
    "actor_id",
    "actor_name",
    "job",
    "db_user",
    "address",
    "request_id",
    "by_rule",
    "details",
];

/// Entries read per page while streaming a file.
const CSV_PAGE: i64 = 1_000;

/// Every entry of `scope` matching `filter` as CSV, newest first, read a page at a time
/// as the file is sent: memory stays bounded whatever the range.
pub async fn export_csv(
    pool: &PgPool,
    caller: &Principal,
    scope: Scope,
    mut filter: Filter,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>> {
    authorize(pool, caller, scope, &mut filter).await?;
    let admin = caller.can(Action::ReadAudit);
    let (tx, rx) = mpsc::channel(4);
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut out = String::new();
        csv_row(
            &mut out,
            &CSV_COLUMNS.iter().map(|c| Cell::Text((*c).to_owned())).collect::<Vec<_>>(),
        );
        let mut after = None;
        loop {
            let rows = match audit_log::page(&pool, &filter, after, CSV_PAGE).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "audit export stopped");
                    let _ = tx.send(Err(std::io::Error::other("the audit export failed"))).await;
                    return;
                }
            };
            let last = rows.len() < CSV_PAGE as usize;
            after = rows.last().map(|r| (r.at, r.id));
            for row in rows {
                csv_row(&mut out, &csv_cells(shown(row, admin)));
            }
            if tx.send(Ok(Bytes::from(std::mem::take(&mut out)))).await.is_err() || last {
                return;
            }
        }
    });
    Ok(rx)
}

fn csv_cells(row: AuditRow) -> Vec<Cell> {
    let text = |v: Option<String>| v.map_or(Cell::Empty, Cell::Text);
    vec![
        Cell::Time(row.at),
        Cell::Int(row.id),
        Cell::Text(row.action),
        Cell::Text(row.entity),
        text(row.entity_id),
        text(row.account_id.map(|a| a.to_string())),
        text(row.actor.map(|a| a.to_string())),
        text(row.actor_name),
        text(row.job),
        Cell::Text(row.db_user),
        text(row.address),
        text(row.request_id),
        Cell::Bool(row.by_rule),
        Cell::Text(row.details.to_string()),
    ]
}

/// What `audit verify` found in one partition.
pub struct PartitionReport {
    pub partition: String,
    pub check: ChainCheck,
    /// PostgreSQL's counts of the partition's rows updated and deleted, and those seen
    /// before: the append-only trigger refuses both, so more than before means a
    /// superuser switched it off, even before the sealer saw the row.
    pub writes: WriteCounts,
    /// The counts were below those seen: PostgreSQL's statistics were reset (a crash,
    /// `pg_stat_reset`) since then, and writes in between cannot be told; counted anew.
    pub counts_reset: bool,
    /// The counts now were recorded as seen (`--accept-writes`): the writes reported are
    /// looked into, not a sign of tampering.
    pub writes_accepted: bool,
}

impl PartitionReport {
    /// Rows updated and deleted since the counts seen before.
    pub fn written_over(&self) -> (i64, i64) {
        let w = &self.writes;
        (w.updated - w.seen_updated, w.deleted - w.seen_deleted)
    }

    /// Whether the partition shows any sign of tampering.
    pub fn tampered(&self) -> bool {
        let c = &self.check;
        let (updated, deleted) = self.written_over();
        !c.broken.is_empty()
            || !c.missing.is_empty()
            || !c.forged_seals.is_empty()
            || !c.unsealed_behind.is_empty()
            || c.cut_at.is_some()
            || (!self.counts_reset && !self.writes_accepted && (updated > 0 || deleted > 0))
    }
}

/// Seals what is ready, then walks every partition's chain and reads its write counts.
/// With `accept_writes` (an operator who looked into the writes reported), the counts
/// now are recorded as seen; counts below those seen (statistics reset) are recorded
/// anew either way.
pub async fn verify(pool: &PgPool, accept_writes: bool) -> Result<Vec<PartitionReport>> {
    seal_all(pool).await?;
    let mut reports = Vec::new();
    for partition in audit_log::partitions(pool).await? {
        let check = audit_log::check_chain(pool, &partition, 20).await?;
        let writes = audit_log::write_counts(pool, &partition).await?;
        let counts_reset = writes.updated < writes.seen_updated || writes.deleted < writes.seen_deleted;
        if counts_reset || accept_writes {
            audit_log::record_write_counts(pool, &partition, &writes).await?;
        }
        reports.push(PartitionReport {
            partition,
            check,
            writes,
            counts_reset,
            writes_accepted: accept_writes,
        });
    }
    Ok(reports)
}

/// Rows sealed per transaction.
const SEAL_BATCH: i64 = 5_000;

/// Seals every row of the transactions that have ended; how many.
pub async fn seal_all(pool: &PgPool) -> Result<u64> {
    let mut sealed = 0;
    loop {
        let batch = audit_log::seal(pool, SEAL_BATCH).await?;
        sealed += batch;
        if batch < SEAL_BATCH as u64 {
            return Ok(sealed);
        }
    }
}

/// Months of partitions kept ready ahead of now.
const MONTHS_AHEAD: i32 = 3;

/// What one upkeep pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    pub partitions_made: i32,
    pub partitions_dropped: Vec<String>,
}

/// Makes the partitions of this month and the next [`MONTHS_AHEAD`], and drops the
/// partitions retention lets go: only months wholly older than `retention_days`.
pub async fn upkeep(pool: &PgPool, now: DateTime<Utc>, retention_days: u32) -> Result<Upkeep> {
    let this_month = now.date_naive().with_day0(0).unwrap_or(now.date_naive());
    let made = audit_log::ensure_partitions(pool, this_month, MONTHS_AHEAD + 1).await?;
    let mut dropped = Vec::new();
    for partition in audit_log::partitions(pool).await? {
        let month = partition_month(&partition);
        if expired(month, now, retention_days) {
            audit_log::drop_partition(pool, &partition).await?;
            tracing::info!(partition = %partition, retention_days, "audit partition past retention dropped");
            dropped.push(partition);
        }
    }
    Ok(Upkeep {
        partitions_made: made,
        partitions_dropped: dropped,
    })
}
