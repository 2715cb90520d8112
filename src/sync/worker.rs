//! The outbox worker: claim, rebuild documents from SQL, apply with versions, and only
//! then delete the claimed rows, all inside one transaction (docs/ARCHITECTURE.md, sync
//! invariants 2-3).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::metrics::SyncMetrics;
use crate::domain::document::{Entity, IndexOp};
use crate::error::Result;
use crate::search::{OutdatedMapping, SearchIndex};
use crate::store::outbox::{self, OutboxRow};
use crate::store::{self};

/// Outbox rows per index commit when a backlog builds up (an import, a bulk update):
/// each commit costs a segment flush and a reader reload, so fewer, larger ones keep up.
pub const BATCH_SIZE: i64 = 10_000;
/// The worker claims a batch this often; changes arriving in between share one index
/// commit, which under a stream of small transactions is far cheaper than a commit
/// each (fewer, larger segments to write and merge). Polling, not LISTEN/NOTIFY:
/// a notifying transaction holds a database-wide lock through its commit, which
/// serialises every writer (migration 0009).
const SYNC_EVERY: Duration = Duration::from_millis(100);
/// How often the worker vacuums the outbox ([`outbox::vacuum`]).
const VACUUM_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often the worker tries again while the index refuses it (credentials past their
/// grace, a write block): it never stops for good inside a live process, which no
/// restart policy would restart, and it does not hammer a cluster that refuses it.
pub const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// How long an entity whose index has an outdated mapping is left out of claims before
/// the worker tries it again (a rebuild may have swapped in a current generation).
const HOLD_FOR: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SyncWorker {
    pub pool: PgPool,
    pub index: Arc<dyn SearchIndex>,
    pub metrics: Arc<SyncMetrics>,
}

/// The documents for a claimed batch, rebuilt from SQL, of the entities `kept` (the
/// others' rows are consumed: a backend without reporting indices has nothing to write).
/// An entity whose row is gone becomes a tombstone with the version its purge drew.
pub async fn rebuild_ops(conn: &mut sqlx::PgConnection, batch: &[OutboxRow], kept: &[Entity]) -> Result<Vec<IndexOp>> {
    let mut ops = Vec::with_capacity(batch.len());
    for entity in kept.iter().copied() {
        let mut purge_versions: HashMap<Uuid, Option<i64>> = HashMap::new();
        for row in batch.iter().filter(|r| r.entity == entity.as_str()) {
            let entry = purge_versions.entry(row.entity_id).or_default();
            *entry = (*entry).max(row.tombstone_version);
        }
        if purge_versions.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = purge_versions.keys().copied().collect();
        match entity {
            Entity::Account => {
                let rows = store::accounts::by_ids(conn, &ids).await?;
                for doc in store::accounts::documents(conn, rows).await? {
                    purge_versions.remove(&doc.id);
                    ops.push(IndexOp::upsert(doc));
                }
            }
            Entity::Payment => {
                for doc in store::payments::documents(conn, &ids).await? {
                    purge_versions.remove(&doc.id);
                    ops.push(IndexOp::upsert(doc));
                }
            }
            reporting => {
                for doc in store::reports::documents(conn, reporting, &ids).await? {
                    purge_versions.remove(&doc.id);
                    ops.push(IndexOp::upsert(doc));
                }
            }
        }
        for (id, version) in purge_versions {
            let version = match version {
                Some(v) => v,
                None => outbox::next_version(conn).await?,
            };
            ops.push(IndexOp::tombstone(entity, id, version));
        }
    }
    Ok(ops)
}

impl SyncWorker {
    pub fn new(pool: PgPool, index: Arc<dyn SearchIndex>, metrics: Arc<SyncMetrics>) -> Self {
        Self { pool, index, metrics }
    }

    /// Processes one batch; returns how many outbox rows it consumed.
    pub async fn process_batch(&self) -> Result<usize> {
        Ok(self.process_batch_without(&[]).await?.len())
    }

    /// Processes one batch of the entities not in `held`; returns the entity of each
    /// outbox row it consumed.
    async fn process_batch_without(&self, held: &[&str]) -> Result<Vec<Entity>> {
        let mut tx = self.pool.begin().await?;
        let batch = outbox::claim(&mut tx, BATCH_SIZE, held).await?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ops = rebuild_ops(&mut tx, &batch, self.index.entities()).await?;
        let report = self.index.apply(ops).await?;
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        outbox::delete(&mut tx, &ids).await?;
        tx.commit().await?;
        let now = Utc::now();
        let lags = batch.iter().map(|row| (now - row.created_at).to_std().unwrap_or_default());
        self.metrics.record_batch(lags, &report);
        tracing::debug!(
            rows = batch.len(),
            applied = report.applied,
            stale = report.stale,
            rejected = report.rejected,
            "outbox batch indexed"
        );
        Ok(batch.iter().filter_map(|row| Entity::parse(&row.entity)).collect())
    }

    /// Drains the outbox until it is empty (tests, reindex catch-up).
    pub async fn drain(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.process_batch().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    async fn refresh_depth(&self) {
        if let Ok((depth, oldest)) = outbox::depth(&self.pool).await {
            let age = oldest.map_or(0, |t| (Utc::now() - t).num_milliseconds());
            self.metrics.record_outbox(depth, age);
        }
    }

    /// Runs until `shutdown` turns true: a batch every [`SYNC_EVERY`] (back to back
    /// while a backlog drains), backing off on errors (the outbox keeps growing
    /// meanwhile; nothing is lost).
    ///
    /// An entity whose index was built with another release's mapping is held: its rows
    /// stay in the outbox (claims leave them out for [`HOLD_FOR`] at a time) while the
    /// other entity goes on, and the hold is recorded for readiness and metrics until
    /// none of its rows wait.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        let mut vacuumed = Instant::now();
        let mut held: HashMap<Entity, Instant> = HashMap::new();
        tracing::info!("sync worker started");
        while crate::shutdown::running(&shutdown) {
            let started = Instant::now();
            held.retain(|_, since| since.elapsed() < HOLD_FOR);
            let leave_out: Vec<&str> = held.keys().map(|e| e.as_str()).collect();
            match self.process_batch_without(&leave_out).await {
                Ok(consumed) => {
                    if self.metrics.record_success() {
                        tracing::info!("sync batches go through again");
                    }
                    // An entity's changes flow again once this worker indexed one, or
                    // once a claim that took every row it could (not a full batch) found
                    // none of them waiting: another process's worker (a second instance,
                    // `arrears reindex`, which writes what changes meanwhile to both
                    // generations) may have indexed them.
                    let drained = (consumed.len() as i64) < BATCH_SIZE;
                    let flowing = |e: &Entity| consumed.contains(e) || (drained && !held.contains_key(e));
                    for entity in Entity::ALL.into_iter().filter(flowing) {
                        if self.metrics.release(entity) {
                            let why = if consumed.contains(&entity) {
                                "its index has this build's mapping"
                            } else {
                                "none of its changes wait (another process indexed them); the next one is checked again"
                            };
                            tracing::info!(entity = entity.as_str(), why, "sync writes this entity again");
                        }
                    }
                    if consumed.len() as i64 == BATCH_SIZE {
                        continue;
                    }
                    backoff = Duration::from_millis(100);
                }
                Err(err) if let Some(entity) = OutdatedMapping::of(&err) => {
                    if self.metrics.hold(entity, err.to_string()) {
                        tracing::error!(entity = entity.as_str(), error = %err, "sync holds this entity's changes");
                    }
                    held.insert(entity, Instant::now());
                    continue;
                }
                Err(err) => {
                    let refused = self.index.is_permanent(&err);
                    let wait = if refused {
                        if self.metrics.record_failure(true, err.for_operators()) {
                            tracing::error!(error = %err, retry_every_s = REFUSED_RETRY.as_secs(), "the search index refuses the sync; fix its credentials or blocks (changes wait in the outbox, readiness fails meanwhile)");
                        }
                        REFUSED_RETRY
                    } else {
                        self.metrics.record_failure(false, err.for_operators());
                        tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "sync batch failed");
                        let wait = jitter(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            self.refresh_depth().await;
            if vacuumed.elapsed() >= VACUUM_EVERY {
                if let Err(err) = outbox::vacuum(&self.pool).await {
                    tracing::warn!(error = %err, "outbox vacuum failed");
                }
                vacuumed = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep_until((started + SYNC_EVERY).into()) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("sync worker stopped");
    }
}

fn jitter(base: Duration) -> Duration {
    let spread = rand::random_range(0.5..1.5);
    base.mul_f64(spread)
}
