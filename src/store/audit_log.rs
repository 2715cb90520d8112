//! The audit log (migrations/0030_audit_log.sql, 0035): reading it, the entries the
//! application writes itself (a failed login changes no table), sealing rows in blocks
//! into their partition's hash chain, reading the chains back for `audit verify`, and
//! the monthly partitions retention keeps or drops.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::audit_log::{ACCOUNT_ENTITIES, Block, Entry, Filter, Hash, digest, genesis};
use crate::error::{Error, Result};

/// Where an audit page starts: the time and id of the last row read.
pub type Position = (DateTime<Utc>, i64);

/// One entry as the lists show it, with the actor's current name.
#[derive(Clone, Debug, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<Uuid>,
    pub actor_name: Option<String>,
    pub job: Option<String>,
    pub db_user: String,
    pub address: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub account_id: Option<Uuid>,
    pub by_rule: bool,
    pub details: serde_json::Value,
}

fn filtered(select: &str, filter: &Filter) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(select);
    q.push(" WHERE true");
    if let Some(actor) = filter.actor {
        q.push(" AND l.actor = ").push_bind(actor);
    }
    if let Some(entity) = &filter.entity {
        q.push(" AND l.entity = ").push_bind(entity.clone());
        // Said outright, so the planner may use the entity index, which holds only these.
        if !ACCOUNT_ENTITIES.contains(&entity.as_str()) {
            q.push(" AND l.account_id IS NULL");
        }
    }
    if let Some(id) = &filter.entity_id {
        q.push(" AND l.entity_id = ").push_bind(id.clone());
    }
    if let Some(action) = &filter.action {
        match action.strip_suffix('.') {
            Some(entity) => q.push(" AND l.entity = ").push_bind(entity.to_owned()),
            None => q.push(" AND l.action = ").push_bind(action.clone()),
        };
    }
    if let Some(account) = filter.account {
        q.push(" AND l.account_id = ").push_bind(account);
    }
    if let Some(from) = filter.from {
        q.push(" AND l.at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(" AND l.at < ").push_bind(to);
    }
    q
}

/// At most `limit` entries matching `filter`, newest first, after `after`.
pub async fn page(pool: &PgPool, filter: &Filter, after: Option<Position>, limit: i64) -> Result<Vec<AuditRow>> {
    let mut q = filtered(
        "SELECT l.id, l.at, l.actor, u.name AS actor_name, l.job, l.db_user, l.address, l.request_id, l.action,
                l.entity, l.entity_id, l.account_id, l.by_rule, l.details
         FROM audit_log l LEFT JOIN users u ON u.id = l.actor",
        filter,
    );
    if let Some((at, id)) = after {
        q.push(" AND (l.at, l.id) < (").push_bind(at).push(", ").push_bind(id).push(")");
    }
    q.push(" ORDER BY l.at DESC, l.id DESC LIMIT ").push_bind(limit);
    Ok(q.build_query_as::<AuditRow>().fetch_all(pool).await?)
}

/// How many entries match `filter`, counted up to `cap` (an unfiltered count of years
/// of audit is not worth its time).
pub async fn count(pool: &PgPool, filter: &Filter, cap: i64) -> Result<i64> {
    let mut q = filtered("SELECT count(*) FROM (SELECT 1 FROM audit_log l", filter);
    q.push(" LIMIT ").push_bind(cap).push(") capped");
    Ok(q.build_query_scalar::<i64>().fetch_one(pool).await?)
}

/// An entry the application writes itself, in the transaction of what it records.
pub struct NewEntry<'a> {
    pub actor: Option<Uuid>,
    pub address: Option<&'a str>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub account_id: Option<Uuid>,
    pub details: serde_json::Value,
}

/// Appends `entry`, with the request id of the request being served.
pub async fn append(conn: &mut sqlx::PgConnection, entry: NewEntry<'_>) -> Result<()> {
    let request = crate::telemetry::current_request();
    sqlx::query(
        "INSERT INTO audit_log (actor, address, request_id, action, entity, entity_id, account_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.actor)
    .bind(entry.address.or(request.as_ref().map(|r| r.client.as_str())))
    .bind(request.as_ref().map(|r| r.id.as_str()))
    .bind(entry.action)
    .bind(entry.entity)
    .bind(entry.entity_id)
    .bind(entry.account_id)
    .bind(entry.details)
    .execute(conn)
    .await?;
    Ok(())
}

/// The columns [`Entry`] reads.
const ENTRY_COLUMNS: &str = "l.id, l.at, l.xid::text AS xid, l.actor, l.job, l.db_user, l.address, l.request_id, l.action,
                             l.entity, l.entity_id, l.account_id, l.by_rule, l.details::text AS details";

#[derive(FromRow)]
struct Unsealed {
    partition: String,
    #[sqlx(flatten)]
    entry: Entry,
}

/// A transaction id as PostgreSQL prints an `xid8`.
fn xid(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Internal(anyhow::anyhow!("not a transaction id: {text:?}")))
}

/// Seals the rows of transactions that have ended, about `batch` rows at a time, in the
/// order they were written: one block per partition, chained to the partition's block
/// before it. A transaction is never split between blocks (one larger than `batch` is
/// sealed whole, alone). How many rows. One sealer at a time (an advisory lock; another
/// process's call returns 0).
pub async fn seal(pool: &PgPool, batch: i64) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('arrears audit sealer'))")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    // Every transaction below the snapshot's horizon has ended: the rows it wrote are all
    // visible now, or never will be.
    let (from, below): (String, String) =
        sqlx::query_as("SELECT h.horizon::text, pg_snapshot_xmin(pg_current_snapshot())::text FROM audit_seal_horizon h")
            .fetch_one(&mut *tx)
            .await?;
    let (from, mut horizon) = (xid(&from)?, xid(&below)?);
    let unsealed = |condition: &str, limit: &str| {
        sqlx::AssertSqlSafe(format!(
            "SELECT l.tableoid::regclass::text AS partition, {ENTRY_COLUMNS} FROM audit_log l
             WHERE {condition} ORDER BY l.xid, l.id {limit}"
        ))
    };
    let mut rows = sqlx::query_as::<_, Unsealed>(unsealed("l.xid >= $1::xid8 AND l.xid < $2::xid8", "LIMIT $3"))
        .bind(from.to_string())
        .bind(horizon.to_string())
        .bind(batch + 1)
        .fetch_all(&mut *tx)
        .await?;
    if let Some(beyond) = rows.get(usize::try_from(batch).unwrap_or(usize::MAX)) {
        // Stop before the transaction the batch would split.
        let cut = beyond.entry.xid.clone();
        rows.retain(|r| r.entry.xid != cut);
        horizon = xid(&cut)?;
        if rows.is_empty() {
            rows = sqlx::query_as::<_, Unsealed>(unsealed("l.xid = $1::xid8", ""))
                .bind(&cut)
                .fetch_all(&mut *tx)
                .await?;
            horizon += 1;
        }
    }
    let mut blocks: Vec<(&str, Vec<&Entry>)> = Vec::new();
    for row in &rows {
        match blocks.iter_mut().find(|(partition, _)| *partition == row.partition) {
            Some((_, entries)) => entries.push(&row.entry),
            None => blocks.push((&row.partition, vec![&row.entry])),
        }
    }
    let partitions: Vec<&str> = blocks.iter().map(|(partition, _)| *partition).collect();
    let heads: HashMap<String, (i64, Vec<u8>)> =
        sqlx::query_as::<_, (String, i64, Vec<u8>)>("SELECT partition, position, hash FROM audit_chain WHERE partition = ANY($1)")
            .bind(&partitions)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(partition, position, hash)| (partition, (position, hash)))
            .collect();
    for (partition, entries) in blocks {
        let (last, previous) = match heads.get(partition) {
            Some((position, hash)) => (*position, Hash::try_from(hash.as_slice()).unwrap_or_default()),
            None => (0, genesis(partition)),
        };
        let block = Block {
            position: last + 1,
            xid_from: from,
            xid_below: horizon,
            ids: entries.iter().map(|e| e.id).collect(),
            digests: entries.iter().flat_map(|e| digest(e)).collect(),
        };
        let hash = block.hash(&previous);
        sqlx::query(
            "INSERT INTO audit_seal (partition, position, xid_from, xid_below, ids, digests, hash)
             VALUES ($1, $2, $3::xid8, $4::xid8, $5, $6, $7)",
        )
        .bind(partition)
        .bind(block.position)
        .bind(from.to_string())
        .bind(horizon.to_string())
        .bind(&block.ids)
        .bind(&block.digests)
        .bind(hash.as_slice())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_chain (partition, position, hash) VALUES ($1, $2, $3)
             ON CONFLICT (partition) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash",
        )
        .bind(partition)
        .bind(block.last_position())
        .bind(hash.as_slice())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE audit_seal_horizon SET horizon = $1::xid8")
        .bind(horizon.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// A partition of the audit log, by name.
pub async fn partitions(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_log'::regclass ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?)
}

/// The rows updated and deleted in one partition as PostgreSQL counts them
/// (`pg_stat_user_tables`), beside the counts seen before (`audit_write_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub updated: i64,
    pub deleted: i64,
    pub seen_updated: i64,
    pub seen_deleted: i64,
    /// When the counts seen were recorded (`None`: never, they are zero).
    pub seen_at: Option<DateTime<Utc>>,
}

/// [`WriteCounts`] of `partition`.
pub async fn write_counts(pool: &PgPool, partition: &str) -> Result<WriteCounts> {
    let (updated, deleted, seen_updated, seen_deleted, seen_at) = sqlx::query_as(
        "SELECT coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
                coalesce(w.updated, 0), coalesce(w.deleted, 0), w.counted_at
         FROM (SELECT $1::text AS partition) p
         LEFT JOIN pg_stat_user_tables s ON s.relname = p.partition AND s.schemaname = current_schema()
         LEFT JOIN audit_write_counts w ON w.partition = p.partition",
    )
    .bind(partition)
    .fetch_one(pool)
    .await?;
    Ok(WriteCounts {
        updated,
        deleted,
        seen_updated,
        seen_deleted,
        seen_at,
    })
}

/// Records `counts`' current figures as seen for `partition`.
pub async fn record_write_counts(pool: &PgPool, partition: &str, counts: &WriteCounts) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_write_counts (partition, updated, deleted) VALUES ($1, $2, $3)
         ON CONFLICT (partition) DO UPDATE SET updated = $2, deleted = $3, counted_at = now()",
    )
    .bind(partition)
    .bind(counts.updated)
    .bind(counts.deleted)
    .execute(pool)
    .await?;
    Ok(())
}

/// What one partition's chain says when walked from its start.
#[derive(Debug, Default)]
pub struct ChainCheck {
    pub sealed: u64,
    /// Rows not sealed yet that the sealer has not reached (written since its last pass).
    pub pending: u64,
    /// Rows of transactions the sealer passed that no seal lists: written behind its back.
    pub unsealed_behind: Vec<i64>,
    /// `(position, id)` of each row whose content no longer gives the digest its seal
    /// recorded.
    pub broken: Vec<(i64, i64)>,
    /// Positions whose row is gone: a seal lists it and it is not there, or no seal covers
    /// the position (a seal was removed with its rows).
    pub missing: Vec<i64>,
    /// Positions of seals whose hash does not follow from their content and the seal
    /// before them: the seals themselves were edited.
    pub forged_seals: Vec<i64>,
    /// The last position and its seal's hash.
    pub head: Option<(i64, Hash)>,
    /// Where the sealer's bookkeeping said the chain ended before the walk, when the walk
    /// did not reach that position with that hash: seals at the end were removed or
    /// replaced.
    pub cut_at: Option<i64>,
}

#[derive(FromRow)]
struct SealRow {
    position: i64,
    xid_from: String,
    xid_below: String,
    ids: Vec<i64>,
    digests: Vec<u8>,
    hash: Vec<u8>,
}

/// A walk along one partition's seals and rows, both in chain order.
struct Walk {
    check: ChainCheck,
    keep: usize,
    /// The last position walked and its seal's hash.
    previous: (i64, Hash),
    recorded: Option<(i64, Vec<u8>)>,
    recorded_seen: bool,
    open: Option<OpenSeal>,
}

/// The seal whose transactions the walk is in, with the rows of it seen so far.
struct OpenSeal {
    block: Block,
    index: HashMap<i64, usize>,
    seen: Vec<bool>,
}

impl Walk {
    fn note<T>(list: &mut Vec<T>, keep: usize, items: impl IntoIterator<Item = T>) {
        let room = keep.saturating_sub(list.len());
        list.extend(items.into_iter().take(room));
    }

    fn open(&mut self, seal: SealRow) -> Result<()> {
        let block = Block {
            position: seal.position,
            xid_from: xid(&seal.xid_from)?,
            xid_below: xid(&seal.xid_below)?,
            ids: seal.ids,
            digests: seal.digests,
        };
        let expected = self.previous.0 + 1;
        Self::note(&mut self.check.missing, self.keep, expected..block.position);
        let hash = block.hash(&self.previous.1);
        if hash.as_slice() != seal.hash.as_slice() {
            Self::note(&mut self.check.forged_seals, self.keep, [block.position]);
        }
        // The stored hash carries the chain on, so one edited seal is reported once.
        self.previous = (block.last_position(), Hash::try_from(seal.hash.as_slice()).unwrap_or(hash));
        if let Some((position, stored)) = &self.recorded
            && *position == block.last_position()
        {
            self.recorded_seen = *stored == seal.hash;
        }
        let index = block.ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        self.open = Some(OpenSeal {
            seen: vec![false; block.ids.len()],
            block,
            index,
        });
        Ok(())
    }

    /// Whether the walk must move past the open seal (if any) to reach transaction `xid`.
    fn past_open(&self, xid: u64) -> bool {
        self.open.as_ref().is_none_or(|open| xid >= open.block.xid_below)
    }

    fn row(&mut self, entry: &Entry, xid: u64, horizon: u64) {
        if let Some(open) = &mut self.open
            && (open.block.xid_from..open.block.xid_below).contains(&xid)
            && let Some(&i) = open.index.get(&entry.id)
            && !open.seen[i]
        {
            open.seen[i] = true;
            self.check.sealed += 1;
            if open.block.digest(i) != Some(digest(entry).as_slice()) {
                Self::note(&mut self.check.broken, self.keep, [(open.block.position + i as i64, entry.id)]);
            }
        } else if xid < horizon {
            Self::note(&mut self.check.unsealed_behind, self.keep, [entry.id]);
        } else {
            self.check.pending += 1;
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            let gone = open.seen.iter().enumerate().filter(|(_, seen)| !**seen);
            Self::note(
                &mut self.check.missing,
                self.keep,
                gone.map(|(i, _)| open.block.position + i as i64),
            );
        }
    }
}

/// Walks `partition`'s seals and rows in chain order, recomputing every digest and
/// every seal's hash.
pub async fn check_chain(pool: &PgPool, partition: &str, keep: usize) -> Result<ChainCheck> {
    let table = sqlx::query_scalar::<_, String>("SELECT quote_ident($1)")
        .bind(partition)
        .fetch_one(pool)
        .await?;
    // Read before the walk, in one statement: the rows of every seal up to the recorded
    // head committed before it was written, so the walk sees them all; seals written
    // during the walk are left for the next one, and their rows count as pending.
    let (position, hash, horizon): (Option<i64>, Option<Vec<u8>>, String) =
        sqlx::query_as("SELECT c.position, c.hash, h.horizon::text FROM audit_seal_horizon h LEFT JOIN audit_chain c ON c.partition = $1")
            .bind(partition)
            .fetch_one(pool)
            .await?;
    let horizon = xid(&horizon)?;
    let recorded = position.zip(hash);
    let mut walk = Walk {
        check: ChainCheck::default(),
        keep,
        previous: (0, genesis(partition)),
        recorded_seen: recorded.is_none(),
        recorded,
        open: None,
    };
    let mut seals = sqlx::query_as::<_, SealRow>(
        "SELECT position, xid_from::text, xid_below::text, ids, digests, hash FROM audit_seal
         WHERE partition = $1 AND position <= $2 ORDER BY position",
    )
    .bind(partition)
    .bind(position.unwrap_or(0))
    .fetch(pool);
    let mut rows = sqlx::query_as::<_, Entry>(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM {table} l ORDER BY l.xid, l.id"
    )))
    .fetch(pool);
    let mut upcoming = seals.try_next().await?;
    while let Some(entry) = rows.try_next().await? {
        let row_xid = xid(&entry.xid)?;
        while walk.past_open(row_xid) {
            walk.close();
            match upcoming.take() {
                Some(seal) if xid(&seal.xid_from)? <= row_xid => {
                    walk.open(seal)?;
                    upcoming = seals.try_next().await?;
                }
                other => {
                    upcoming = other;
                    break;
                }
            }
        }
        walk.row(&entry, row_xid, horizon);
    }
    walk.close();
    while let Some(seal) = upcoming {
        walk.open(seal)?;
        walk.close();
        upcoming = seals.try_next().await?;
    }
    let mut check = walk.check;
    if walk.previous.0 > 0 {
        check.head = Some(walk.previous);
    }
    if !walk.recorded_seen {
        check.cut_at = position;
    }
    Ok(check)
}

/// Creates the monthly partitions from `first`'s month for `months` months that are
/// missing; how many it made.
pub async fn ensure_partitions(pool: &PgPool, first: NaiveDate, months: i32) -> Result<i32> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('arrears audit partitions'))")
        .execute(&mut *tx)
        .await?;
    let made = sqlx::query_scalar("SELECT audit_ensure_partitions($1, $2)")
        .bind(first)
        .bind(months)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(made)
}

/// Drops the partition `name` and its chain's bookkeeping (retention decided it may go).
pub async fn drop_partition(pool: &PgPool, name: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let table = sqlx::query_scalar::<_, String>("SELECT quote_ident($1)")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&mut *tx)
        .await?;
    for bookkeeping in [
        "DELETE FROM audit_chain WHERE partition = $1",
        "DELETE FROM audit_seal WHERE partition = $1",
    ] {
        sqlx::query(bookkeeping).bind(name).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
