//! Zero-downtime rebuild: a new generation becomes a write target (so the worker
//! dual-writes), is backfilled from SQL with each row's version, is checked against the
//! SQL count, and then replaces the live generation atomically. Searches keep answering
//! from the old generation until the swap.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::domain::document::Entity;
use crate::error::{Code, Error, Result};
use crate::search::{Check, SearchIndex};
use crate::store::{self, documents, rebuild_locks};

/// Passes over the rows changed during a backfill (each copies what changed during the
/// one before); writes that never stop leave the rest to the workers' dual writes.
const CATCH_UP_PASSES: usize = 3;
/// How long the count check waits for the worker to catch up with concurrent writes.
const CATCH_UP: Duration = Duration::from_secs(30);

/// How far a rebuild has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Rows copied from SQL so far, of about `total` (rows written meanwhile reach the
    /// new index through the worker instead).
    Copying { done: u64, total: u64 },
    /// The new index holds every row: it is being finished (the embedded backend merges
    /// its segments, tens of seconds for millions of documents) and swapped in.
    Swapping,
}

#[derive(Clone, Debug)]
pub struct RebuildReport {
    pub generation: String,
    pub documents: u64,
    pub elapsed: Duration,
}

/// Rebuilds the index of `entity`. `progress` is called after every chunk copied, and
/// once more when the copy is done and the swap begins.
///
/// One rebuild of an entity runs at a time (the rebuild lock); holding it, any
/// generation still written but not read was left by a rebuild that died, and is
/// dropped first. Every failure drops the new generation again, so no failed rebuild
/// stays a write target.
pub async fn rebuild(
    pool: &PgPool,
    index: &dyn SearchIndex,
    entity: Entity,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<RebuildReport> {
    let lock = lock(pool, entity).await?;
    let result = rebuild_locked(pool, index, entity, &mut progress).await;
    lock.release().await;
    result
}

/// Rebuilds the index of `entity` if, once this process holds the rebuild lock, its
/// read generation still has another release's mapping (another instance may have
/// rebuilt it meanwhile); `None` when it need not.
pub async fn rebuild_outdated(pool: &PgPool, index: &dyn SearchIndex, entity: Entity) -> Result<Option<RebuildReport>> {
    let lock = lock(pool, entity).await?;
    let result = match index.outdated().await {
        Ok(outdated) if outdated.contains(&entity) => rebuild_locked(pool, index, entity, &mut |_| {}).await.map(Some),
        Ok(_) => Ok(None),
        Err(err) => Err(err),
    };
    lock.release().await;
    result
}

async fn lock(pool: &PgPool, entity: Entity) -> Result<rebuild_locks::RebuildLock> {
    rebuild_locks::try_lock(pool, entity).await?.ok_or_else(|| {
        Error::new(
            Code::Conflict,
            format!("a rebuild of the {} index is already running", entity.plural()),
        )
    })
}

async fn rebuild_locked(
    pool: &PgPool,
    index: &dyn SearchIndex,
    entity: Entity,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<RebuildReport> {
    let started = Instant::now();
    drop_orphans(index, entity).await?;
    let generation = index.begin_rebuild(entity).await?;
    tracing::info!(generation = %generation, entity = entity.as_str(), "rebuild started");
    let built = match backfill(pool, index, entity, &generation, progress).await {
        Ok(documents) => {
            progress(Progress::Swapping);
            index.promote(entity, generation.clone()).await.map(|()| documents)
        }
        Err(err) => Err(err),
    };
    match built {
        Ok(documents) => {
            let report = RebuildReport {
                generation,
                documents,
                elapsed: started.elapsed(),
            };
            tracing::info!(generation = %report.generation, documents, elapsed_ms = report.elapsed.as_millis() as u64, "rebuild finished");
            Ok(report)
        }
        Err(err) => {
            tracing::error!(generation = %generation, error = %err, "rebuild failed; the live index is unchanged");
            if let Err(cleanup) = index.abandon(entity, generation.clone()).await {
                tracing::warn!(generation = %generation, error = %cleanup, "could not drop the failed rebuild's generation; the next rebuild or `arrears doctor --fix` does");
            }
            Err(err)
        }
    }
}

/// Drops the generations a dead rebuild left written but not read, and the old ones a
/// dead promote left neither read nor written. Only a holder of the rebuild lock may
/// call it: then no rebuild is in progress.
async fn drop_orphans(index: &dyn SearchIndex, entity: Entity) -> Result<Vec<String>> {
    let mut orphans = index.rebuilds(entity).await?;
    orphans.extend(index.leftovers(entity).await?);
    for orphan in &orphans {
        tracing::warn!(generation = %orphan, entity = entity.as_str(), "dropping a generation left by a rebuild that died");
        index.abandon(entity, orphan.clone()).await?;
    }
    Ok(orphans)
}

/// What became of the generations written but not read, per entity (for `arrears
/// doctor`): a rebuild in progress holds its lock; without one they are orphans, which
/// `fix` drops.
pub async fn rebuild_checks(pool: &PgPool, index: &dyn SearchIndex, fix: bool) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for entity in index.entities().iter().copied() {
        let name = format!("{} rebuilds", entity.plural());
        let written = index.rebuilds(entity).await?;
        let leftovers = index.leftovers(entity).await?;
        if written.is_empty() && leftovers.is_empty() {
            checks.push(Check::pass(
                name,
                "no generation is written without being read, and none is left unused",
            ));
            continue;
        }
        let Some(lock) = rebuild_locks::try_lock(pool, entity).await? else {
            checks.push(Check::pass(name, format!("a rebuild is in progress into {}", written.join(", "))));
            continue;
        };
        let dropped = if fix { Some(drop_orphans(index, entity).await) } else { None };
        lock.release().await;
        let is_are = |list: &[String]| if list.len() == 1 { "is" } else { "are" };
        let mut found = Vec::new();
        if !written.is_empty() {
            found.push(format!(
                "{} {} written but not read, and no rebuild is running: left by one that died, every change is written there too",
                written.join(", "),
                is_are(&written)
            ));
        }
        if !leftovers.is_empty() {
            found.push(format!(
                "{} {} neither read nor written: left by a rebuild that died after its swap, before it dropped the old generation",
                leftovers.join(", "),
                is_are(&leftovers)
            ));
        }
        checks.push(match dropped {
            Some(dropped) => Check::pass(name, format!("dropped {}, left by a rebuild that died", dropped?.join(", "))),
            None => Check::fail(
                name,
                found.join("; "),
                "`arrears doctor --fix` drops it (so does the next `arrears reindex`)",
            )
            .not_blocking(),
        });
    }
    Ok(checks)
}

/// Copies again the rows changed since version `since` (the copy may have read them
/// before their change), pass after pass while changes keep coming, at most
/// [`CATCH_UP_PASSES`]. A row a worker also wrote is harmless: versions keep the newest.
async fn catch_up(pool: &PgPool, index: &dyn SearchIndex, entity: Entity, generation: &str, mut since: i64) -> Result<()> {
    for _ in 0..CATCH_UP_PASSES {
        let next = documents::last_version(pool).await?;
        let changed: Vec<_> = documents::versions(pool, entity)
            .await?
            .into_iter()
            .filter(|(_, version)| *version > since)
            .map(|(id, _)| id)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        tracing::info!(
            entity = entity.as_str(),
            changed = changed.len(),
            "copying again what changed during the backfill"
        );
        for ids in changed.chunks(index.backfill_rows()) {
            index
                .apply_to(entity, generation.to_owned(), documents::of_ids(pool, entity, ids).await?)
                .await?;
        }
        since = next;
    }
    Ok(())
}

async fn backfill(
    pool: &PgPool,
    index: &dyn SearchIndex,
    entity: Entity,
    generation: &str,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<u64> {
    // Rows committed from here on reach the new generation through the worker's dual
    // writes, so the backfill covers what exists now and stops at today's last id
    // instead of chasing inserts. Not every worker dual-writes, though: an older
    // release's, in a rolling upgrade, writes only to the generations of its own
    // mapping, and the changes it takes from the outbox would miss this one. So what
    // changed since this reading is copied again once the copy is done.
    let copied_at = documents::last_version(pool).await?;
    let total = documents::count(pool, entity).await? as u64;
    let Some(last_id) = documents::max_id(pool, entity).await? else {
        return index.count(entity, generation.to_owned()).await;
    };
    let mut done = 0u64;
    progress(Progress::Copying { done: 0, total });
    // Reading SQL and indexing overlap: the next page is fetched (PostgreSQL's work)
    // while this one is indexed (ours), which keeps both cores busy.
    let (pages, mut ready) = tokio::sync::mpsc::channel(2);
    let rows = index.backfill_rows() as i64;
    let reader = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut after = None;
            loop {
                let page = documents::page(&pool, entity, after, last_id, rows).await;
                let last = page.as_ref().ok().and_then(|ops| ops.last().map(|op| op.id));
                if pages.send(page).await.is_err() {
                    return;
                }
                match last {
                    Some(id) => after = Some(id),
                    None => return,
                }
            }
        })
    };
    let mut outcome = Ok(());
    while let Some(page) = ready.recv().await {
        let ops = match page {
            Ok(ops) if ops.is_empty() => break,
            Ok(ops) => ops,
            Err(err) => {
                outcome = Err(err);
                break;
            }
        };
        done += ops.len() as u64;
        if let Err(err) = index.apply_to(entity, generation.to_owned(), ops).await {
            outcome = Err(err);
            break;
        }
        progress(Progress::Copying {
            done,
            total: total.max(done),
        });
    }
    drop(ready);
    reader.abort();
    outcome?;
    catch_up(pool, index, entity, generation, copied_at).await?;
    // The new generation must hold every row except those whose change is still queued
    // in the outbox (the worker dual-writes them); with writes going on, that is all a
    // count can promise.
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let expected = documents::count(pool, entity).await? as u64;
        let indexed = index.count(entity, generation.to_owned()).await?;
        let (pending, _) = store::outbox::depth(pool).await?;
        if indexed.abs_diff(expected) <= pending.max(0) as u64 {
            return Ok(indexed);
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                Code::Conflict,
                format!(
                    "the new index holds {indexed} {} but SQL has {expected} and only {pending} changes are queued; is the sync worker running?",
                    entity.plural()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
