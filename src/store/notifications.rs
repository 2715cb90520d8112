//! Notifications, created by triggers (migration 0004) and read by their user.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::domain::notification::NotificationKind;
use crate::error::Result;

#[derive(Clone, Debug, FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub data: Json<Value>,
    /// How many the notification stands for (a batch merged into one).
    pub count: i32,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, kind, title, data, count, read_at, created_at";

/// Position in the list: read or not, then newest first.
pub type Position = (bool, DateTime<Utc>, Uuid);

/// A user's notifications, unread first, then newest first, after `after`.
pub async fn list(pool: &PgPool, user: Uuid, unread_only: bool, after: Option<Position>, limit: i64) -> Result<Vec<NotificationRow>> {
    Ok(sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notifications
         WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
           AND ($3::boolean IS NULL
                OR (read_at IS NOT NULL) > $3
                OR ((read_at IS NOT NULL) = $3 AND (created_at, id) < ($4, $5)))
         ORDER BY (read_at IS NOT NULL), created_at DESC, id DESC
         LIMIT $6"
    )))
    .bind(user)
    .bind(unread_only)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(after.map(|a| a.2))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn count(pool: &PgPool, user: Uuid, unread_only: bool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)")
            .bind(user)
            .bind(unread_only)
            .fetch_one(pool)
            .await?,
    )
}

/// Marks one of the user's notifications read (idempotent); `None` when it is not theirs.
pub async fn mark_read(pool: &PgPool, user: Uuid, id: Uuid) -> Result<Option<NotificationRow>> {
    Ok(sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?)
}

pub async fn mark_all_read(pool: &PgPool, user: Uuid) -> Result<u64> {
    Ok(
        sqlx::query("UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL")
            .bind(user)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// For the rest of `tx`, notifications batch with those of the job `job` (its other
/// chunks), not only with those of this transaction.
pub async fn batch_with_job(tx: &mut sqlx::PgConnection, job: Uuid) -> Result<()> {
    sqlx::query("SELECT set_config('arrears.batch', 'job:' || $1::text, true)")
        .bind(job)
        .execute(tx)
        .await?;
    Ok(())
}

/// Tells the owner of `email` that someone tried to register with it; their id, or
/// `None` when no user has it (any more).
pub async fn tell_owner_of_registration_attempt(pool: &PgPool, email: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM (SELECT id, notify_user(id, 'registration_attempt',
                    'Someone tried to register an account with your email address', '{}'::jsonb)
                FROM users WHERE email = $1) told",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?)
}
