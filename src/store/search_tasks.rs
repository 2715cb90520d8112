//! Rebuilds asked of the process that owns an embedded index, with their progress.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Result;

pub const CHANNEL: &str = "search_tasks";

#[derive(Clone, Debug, FromRow)]
pub struct SearchTask {
    pub id: Uuid,
    pub entity: String,
    pub status: String,
    pub total: i64,
    pub processed: i64,
    /// `copying`, then `swapping` once every row is copied.
    pub phase: String,
    pub message: Option<String>,
}

pub async fn submit(pool: &PgPool, entity: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO search_tasks (id, kind, entity) VALUES ($1, 'reindex', $2)")
        .bind(id)
        .bind(entity)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes the oldest queued task, if any.
pub async fn claim(pool: &PgPool) -> Result<Option<SearchTask>> {
    Ok(sqlx::query_as::<_, SearchTask>(
        "UPDATE search_tasks SET status = 'running', started_at = now()
         WHERE id = (SELECT id FROM search_tasks WHERE status = 'queued' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, entity, status, total, processed, phase, message",
    )
    .fetch_optional(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<SearchTask>> {
    Ok(
        sqlx::query_as::<_, SearchTask>("SELECT id, entity, status, total, processed, phase, message FROM search_tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn progress(pool: &PgPool, id: Uuid, processed: i64, total: i64) -> Result<()> {
    sqlx::query("UPDATE search_tasks SET processed = $2, total = $3 WHERE id = $1")
        .bind(id)
        .bind(processed)
        .bind(total)
        .execute(pool)
        .await?;
    Ok(())
}

/// Every row is copied; the owner is finishing the new index and swapping it in.
pub async fn swapping(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE search_tasks SET phase = 'swapping' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn finish(pool: &PgPool, id: Uuid, error: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE search_tasks SET status = CASE WHEN $2::text IS NULL THEN 'succeeded' ELSE 'failed' END, message = $2, finished_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// Tasks that were running when their owner died will never finish.
pub async fn fail_interrupted(pool: &PgPool) -> Result<()> {
    sqlx::query("UPDATE search_tasks SET status = 'failed', message = 'interrupted: the owning process stopped', finished_at = now() WHERE status = 'running'")
        .execute(pool)
        .await?;
    Ok(())
}
