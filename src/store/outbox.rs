//! The search outbox: claimed with SKIP LOCKED inside the worker's transaction and
//! deleted in that same transaction only after the index acknowledged the batch.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Clone, Debug, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub entity: String,
    pub entity_id: Uuid,
    pub tombstone_version: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Locks up to `limit` rows no other worker holds, leaving out the entities in `held`
/// (their changes wait). Rows of uncommitted transactions are invisible here and are
/// picked up once they commit.
pub async fn claim(tx: &mut PgConnection, limit: i64, held: &[&str]) -> Result<Vec<OutboxRow>> {
    let rows = sqlx::query_as::<_, OutboxRow>(
        "SELECT id, entity, entity_id, tombstone_version, created_at FROM search_outbox
         WHERE NOT (entity = ANY($2))
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .bind(held)
    .fetch_all(tx)
    .await?;
    Ok(rows)
}

pub async fn delete(tx: &mut PgConnection, ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM search_outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

/// Reclaims the space of claimed and deleted rows, so claims do not walk past them
/// (autovacuum may lag or be off).
pub async fn vacuum(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql("VACUUM (SKIP_LOCKED) search_outbox").execute(pool).await?;
    Ok(())
}

/// A version for a tombstone whose purge predates outbox versions (e.g. a repair).
pub async fn next_version(tx: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT nextval('search_version_seq')").fetch_one(tx).await?)
}

/// Depth and age of the oldest row, for metrics.
pub async fn depth(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>)> {
    Ok(sqlx::query_as("SELECT count(*), min(created_at) FROM search_outbox")
        .fetch_one(pool)
        .await?)
}

/// Queues entities for re-indexing (verify --repair).
pub async fn enqueue(pool: &PgPool, entity: &str, ids: &[Uuid]) -> Result<u64> {
    Ok(
        sqlx::query("INSERT INTO search_outbox (entity, entity_id) SELECT $1, unnest($2::uuid[])")
            .bind(entity)
            .bind(ids)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
