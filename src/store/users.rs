//! Users and their login state.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::domain::role::Role;
use crate::error::Result;

#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
}

const COLUMNS: &str = "id, email, name, role, password_hash, disabled, failed_logins, locked_until, created_at";

#[tracing::instrument(skip_all)]
pub async fn insert(pool: &PgPool, email: &str, name: &str, role: Role, password_hash: &str) -> Result<UserRow> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .fetch_one(pool)
    .await?;
    Ok(row)
}

#[tracing::instrument(skip_all)]
pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE email = $1")))
        .bind(email)
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// A page of users ordered by creation, after the `(created_at, id)` keyset position.
#[tracing::instrument(skip_all)]
pub async fn list(pool: &PgPool, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<UserRow>> {
    let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2)) ORDER BY created_at, id LIMIT $3"
    )))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub async fn count(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await?)
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(pool: &PgPool, id: Uuid, role: Option<Role>, disabled: Option<bool>) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(role.map(Role::as_str))
    .bind(disabled)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Counts a failed login; at `threshold` consecutive failures the user is locked for
/// `lock_secs` and the counter starts over. Returns the lock expiry if now locked.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn record_failed_login(pool: &PgPool, id: Uuid, threshold: i32, lock_secs: f64) -> Result<Option<DateTime<Utc>>> {
    let locked_until: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE users SET
             failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
             locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE locked_until END
         WHERE id = $1
         RETURNING locked_until",
    )
    .bind(id)
    .bind(threshold)
    .bind(lock_secs)
    .fetch_one(pool)
    .await?;
    Ok(locked_until.filter(|until| *until > Utc::now()))
}

pub async fn reset_failed_logins(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
