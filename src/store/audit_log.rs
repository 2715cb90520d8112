//! The audit log (migrations/0030_audit_log.sql): reading it, the entries the
//! application writes itself (a failed login changes no table), sealing rows into their
//! partition's hash chain, reading the chains back for `audit verify`, and the monthly
//! partitions retention keeps or drops.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::audit_log::{Entry, Filter, Hash, chain, genesis};
use crate::error::Result;

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

/// The columns [`Entry`] reads, with the partition each row is in.
const ENTRY_COLUMNS: &str = "l.id, l.at, l.xid::text AS xid, l.actor, l.job, l.db_user, l.address, l.request_id, l.action,
                             l.entity, l.entity_id, l.account_id, l.by_rule, l.details::text AS details";

#[derive(FromRow)]
struct Unsealed {
    partition: String,
    #[sqlx(flatten)]
    entry: Entry,
}

/// Seals at most `batch` rows of transactions that have ended, in the order they were
/// written, each chained to the one before it in its partition; how many. One sealer at a
/// time (an advisory lock; another process's call returns 0).
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
    let rows = sqlx::query_as::<_, Unsealed>(sqlx::AssertSqlSafe(format!(
        "SELECT l.tableoid::regclass::text AS partition, {ENTRY_COLUMNS}
         FROM audit_log l
         WHERE l.xid >= $1::xid8 AND l.xid < $2::xid8 AND l.hash IS NULL
         ORDER BY l.xid, l.id LIMIT $3"
    )))
    .bind(&from)
    .bind(&below)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    // A full batch may have left rows of its last transaction: start there next time.
    let horizon = match rows.last() {
        Some(last) if rows.len() as i64 == batch => last.entry.xid.clone(),
        _ => below,
    };
    let partitions: Vec<&str> = rows.iter().map(|r| r.partition.as_str()).collect();
    let mut heads: HashMap<String, (i64, Hash)> =
        sqlx::query_as::<_, (String, i64, Vec<u8>)>("SELECT partition, position, hash FROM audit_chain WHERE partition = ANY($1)")
            .bind(&partitions)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .filter_map(|(p, position, hash)| Some((p, (position, Hash::try_from(hash.as_slice()).ok()?))))
            .collect();
    let mut ids = Vec::with_capacity(rows.len());
    let mut ats = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        let head = heads.entry(row.partition.clone()).or_insert_with(|| (0, genesis(&row.partition)));
        let position = head.0 + 1;
        let hash = chain(&head.1, position, &row.entry);
        *head = (position, hash);
        ids.push(row.entry.id);
        ats.push(row.entry.at);
        positions.push(position);
        hashes.push(hash.to_vec());
    }
    if !rows.is_empty() {
        sqlx::query(
            "UPDATE audit_log l SET position = v.position, hash = v.hash
             FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bytea[]) AS v(id, at, position, hash)
             WHERE l.at = v.at AND l.id = v.id",
        )
        .bind(&ids)
        .bind(&ats)
        .bind(&positions)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        let mut names = Vec::with_capacity(heads.len());
        let mut head_positions = Vec::with_capacity(heads.len());
        let mut head_hashes = Vec::with_capacity(heads.len());
        for (partition, (position, hash)) in heads {
            names.push(partition);
            head_positions.push(position);
            head_hashes.push(hash.to_vec());
        }
        sqlx::query(
            "INSERT INTO audit_chain (partition, position, hash)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
             ON CONFLICT (partition) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash",
        )
        .bind(&names)
        .bind(&head_positions)
        .bind(&head_hashes)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE audit_seal_horizon SET horizon = $1::xid8")
        .bind(&horizon)
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

/// What one partition's chain says when walked from its start.
#[derive(Debug, Default)]
pub struct ChainCheck {
    pub sealed: u64,
    /// Rows not sealed yet that the sealer has not reached (written since its last pass).
    pub pending: u64,
    /// Rows the sealer passed without sealing: written behind its back.
    pub unsealed_behind: Vec<i64>,
    /// `(position, id)` of each row whose hash does not follow from its content and the
    /// row before it.
    pub broken: Vec<(i64, i64)>,
    /// Positions missing from the chain (rows removed).
    pub missing: Vec<i64>,
    /// The last position and its hash.
    pub head: Option<(i64, Hash)>,
    /// Where the sealer's bookkeeping said the chain ended before the walk, when the walk
    /// did not reach that row with that hash: rows at the end were removed or replaced.
    pub cut_at: Option<i64>,
}

/// Walks `partition`'s chain in position order, recomputing every hash.
pub async fn check_chain(pool: &PgPool, partition: &str, keep: usize) -> Result<ChainCheck> {
    #[derive(FromRow)]
    struct Sealed {
        position: i64,
        hash: Vec<u8>,
        #[sqlx(flatten)]
        entry: Entry,
    }
    let table = sqlx::query_scalar::<_, String>("SELECT quote_ident($1)")
        .bind(partition)
        .fetch_one(pool)
        .await?;
    // Read before the walk: a seal during the walk only adds rows after it.
    let recorded: Option<(i64, Vec<u8>)> = sqlx::query_as("SELECT position, hash FROM audit_chain WHERE partition = $1")
        .bind(partition)
        .fetch_optional(pool)
        .await?;
    let mut check = ChainCheck::default();
    let mut recorded_seen = recorded.is_none();
    let mut rows = sqlx::query_as::<_, Sealed>(sqlx::AssertSqlSafe(format!(
        "SELECT l.position, l.hash, {ENTRY_COLUMNS} FROM {table} l WHERE l.hash IS NOT NULL ORDER BY l.position, l.id"
    )))
    .fetch(pool);
    let mut previous = (0_i64, genesis(partition));
    while let Some(row) = rows.try_next().await? {
        let expected_position = previous.0 + 1;
        if row.position > expected_position && check.missing.len() < keep {
            check
                .missing
                .extend((expected_position..row.position).take(keep - check.missing.len()));
        }
        let hash = chain(&previous.1, row.position, &row.entry);
        if hash.as_slice() != row.hash.as_slice() && check.broken.len() < keep {
            check.broken.push((row.position, row.entry.id));
        }
        if let Some((position, stored)) = &recorded
            && *position == row.position
        {
            recorded_seen = *stored == row.hash;
        }
        // The stored hash carries the chain on, so one edited row is reported once.
        previous = (row.position, Hash::try_from(row.hash.as_slice()).unwrap_or(hash));
        check.sealed += 1;
    }
    drop(rows);
    if check.sealed > 0 {
        check.head = Some(previous);
    }
    if !recorded_seen {
        check.cut_at = recorded.map(|(position, _)| position);
    }
    let (pending, behind): (i64, Vec<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE l.xid >= h.horizon),
                coalesce((array_agg(l.id ORDER BY l.id) FILTER (WHERE l.xid < h.horizon))[1:{keep}], '{{}}')
         FROM {table} l, audit_seal_horizon h WHERE l.hash IS NULL"
    )))
    .fetch_one(pool)
    .await?;
    check.pending = u64::try_from(pending).unwrap_or_default();
    check.unsealed_behind = behind;
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
    sqlx::query("DELETE FROM audit_chain WHERE partition = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
