//! The `events` table: written by triggers, published by the relay (which works through
//! `event_queue`), replayed on ask.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::event::Event;
use crate::error::Result;

#[derive(FromRow)]
struct EventRow {
    id: i64,
    kind: String,
    user_id: Option<Uuid>,
    topics: Vec<String>,
    data: Json<Value>,
    created_at: DateTime<Utc>,
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Self {
        Event {
            id: Some(row.id),
            kind: row.kind,
            user_id: row.user_id,
            topics: row.topics,
            data: row.data.0,
            at: row.created_at,
            account_deleted: false,
            portfolio_id: None,
            account_owner: None,
        }
        .normalized()
    }
}

const COLUMNS: &str = "id, kind, user_id, topics, data, created_at";

/// A queued event id, with its event unless that is gone.
#[derive(FromRow)]
struct QueuedRow {
    id: i64,
    kind: Option<String>,
    user_id: Option<Uuid>,
    topics: Option<Vec<String>>,
    data: Option<Json<Value>>,
    created_at: Option<DateTime<Utc>>,
}

/// The oldest queued ids, and the events among them, oldest first. An id whose event
/// no longer exists (deleted or truncated by hand) is among the ids, to be dequeued
/// with the rest: an inner join would step over it on every poll, forever.
pub async fn unpublished(conn: &mut PgConnection, limit: i64) -> Result<(Vec<i64>, Vec<Event>)> {
    let rows = sqlx::query_as::<_, QueuedRow>(
        "SELECT q.id, e.kind, e.user_id, e.topics, e.data, e.created_at
         FROM (SELECT id FROM event_queue ORDER BY id LIMIT $1) q LEFT JOIN events e ON e.id = q.id
         ORDER BY q.id",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids = rows.iter().map(|r| r.id).collect();
    let events: Vec<Event> = rows
        .into_iter()
        .filter_map(|r| {
            Some(EventRow {
                id: r.id,
                kind: r.kind?,
                user_id: r.user_id,
                topics: r.topics?,
                data: r.data?,
                created_at: r.created_at?,
            })
        })
        .map(Event::from)
        .collect();
    Ok((ids, mark_accounts(conn, events).await?))
}

/// Marks each event with what its account is now, read for a whole page in one query:
/// soft-deleted (only those who may read deleted accounts receive it), in which
/// portfolio (only those who work it do) and assigned to whom (who reads it in full),
/// live or replayed.
async fn mark_accounts(conn: &mut PgConnection, events: Vec<Event>) -> Result<Vec<Event>> {
    let mut accounts: Vec<Uuid> = events.iter().filter_map(Event::account_id).collect();
    if accounts.is_empty() {
        return Ok(events);
    }
    accounts.sort_unstable();
    accounts.dedup();
    let found: Vec<(Uuid, bool, Option<Uuid>, Option<Uuid>)> =
        sqlx::query_as("SELECT id, deleted_at IS NOT NULL, portfolio_id, assigned_agent_id FROM accounts WHERE id = ANY($1)")
            .bind(&accounts)
            .fetch_all(conn)
            .await?;
    let found: std::collections::HashMap<Uuid, (bool, Option<Uuid>, Option<Uuid>)> = found
        .into_iter()
        .map(|(id, deleted, portfolio, owner)| (id, (deleted, portfolio, owner)))
        .collect();
    Ok(events
        .into_iter()
        .map(|mut event| {
            let (deleted, portfolio, owner) = event.account_id().and_then(|id| found.get(&id).copied()).unwrap_or_default();
            event.account_deleted = deleted;
            event.portfolio_id = portfolio;
            event.account_owner = owner;
            event
        })
        .collect())
}

pub async fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM event_queue WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reclaims the space of published queue rows (see [`super::outbox::vacuum`]).
pub async fn vacuum_queue(conn: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql("VACUUM (SKIP_LOCKED) event_queue").execute(conn).await?;
    Ok(())
}

/// Who a replay is for: events addressed to `user_id`, and events of `topics` that
/// no one user is addressed by (empty for a role that may not read accounts).
pub struct Audience<'a> {
    pub user_id: Uuid,
    pub topics: &'a [String],
}

/// Committed events `audience` may see, after `after` and before `before` (when given),
/// oldest first: a reconnecting client's catch-up. The query reads what it returns, not
/// the log (migration `0024`): the user's own events through their index, the topics'
/// through the topics index or the primary key, whichever the planner finds cheaper.
pub async fn replay(pool: &PgPool, audience: &Audience<'_>, after: i64, before: Option<i64>, limit: i64) -> Result<Vec<Event>> {
    const RANGE: &str = "id > $1 AND ($2::bigint IS NULL OR id < $2)";
    let own = format!("SELECT {COLUMNS} FROM events WHERE user_id = $3 AND {RANGE} ORDER BY id LIMIT $5");
    let sql = if audience.topics.is_empty() {
        own
    } else {
        let shared = format!("SELECT {COLUMNS} FROM events WHERE user_id IS NULL AND topics && $4 AND {RANGE} ORDER BY id LIMIT $5");
        format!("SELECT * FROM (({own}) UNION ALL ({shared})) e ORDER BY id LIMIT $5")
    };
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(before)
        .bind(audience.user_id)
        .bind(audience.topics)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let events: Vec<Event> = rows.into_iter().map(Event::from).collect();
    mark_accounts(&mut conn, events).await
}

/// The id of the latest committed event, if any is kept.
pub async fn latest_id(pool: &PgPool) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(pool).await?)
}

/// Deletes published events older than `before`; returns how many.
pub async fn prune(conn: &mut PgConnection, before: DateTime<Utc>) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM events e WHERE e.created_at < $1 AND NOT EXISTS (SELECT 1 FROM event_queue q WHERE q.id = e.id)")
            .bind(before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Takes the session-level advisory lock `key` on `conn` if nobody holds it: whether this
/// connection now leads (until it closes).
pub async fn try_lead(conn: &mut PgConnection, key: i64) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await?)
}
