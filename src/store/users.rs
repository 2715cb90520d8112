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
    pub team: Option<String>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::stored(&self.role)
    }
}

const COLUMNS: &str = "id, email, name, role, password_hash, disabled, failed_logins, locked_until, created_at, team";

/// Every user's team, for the users in one.
#[tracing::instrument(skip_all)]
pub async fn teams(pool: &PgPool) -> Result<std::collections::HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, team FROM users WHERE team IS NOT NULL")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

#[tracing::instrument(skip_all)]
pub async fn insert(pool: &PgPool, email: &str, name: &str, role: Role, password_hash: &str) -> Result<UserRow> {
    insert_in_team(pool, email, name, role, password_hash, None).await
}

#[tracing::instrument(skip_all)]
pub async fn insert_in_team(
    pool: &PgPool,
    email: &str,
    name: &str,
    role: Role,
    password_hash: &str,
    team: Option<&str>,
) -> Result<UserRow> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, name, role, password_hash, team) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(team)
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

/// The role a user holds now, `None` when the user is gone or disabled; read under a
/// share lock, so a role change waits for the transaction that relies on it.
pub async fn standing(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Role>> {
    let row: Option<(String, bool)> = sqlx::query_as("SELECT role, disabled FROM users WHERE id = $1 FOR SHARE")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.filter(|(_, disabled)| !disabled).map(|(role, _)| Role::stored(&role)))
}

/// A page of users ordered by creation, after the `(created_at, id)` keyset position.
#[tracing::instrument(skip_all)]
/// `(id, lowercased email, role, disabled)` of the users named by id or by email.
pub async fn standings_by_id_or_email(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
    emails: &[String],
) -> Result<Vec<(Uuid, String, String, bool)>> {
    Ok(
        sqlx::query_as("SELECT id, lower(email), role, disabled FROM users WHERE id = ANY($1) OR lower(email) = ANY($2)")
            .bind(ids)
            .bind(emails)
            .fetch_all(conn)
            .await?,
    )
}

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

/// What an admin changes of a user; `team: Some(None)` clears the team.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub team: Option<Option<String>>,
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(pool: &PgPool, id: Uuid, change: &UserChange) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled),
                team = CASE WHEN $4 THEN $5 ELSE team END, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.role.map(Role::as_str))
    .bind(change.disabled)
    .bind(change.team.is_some())
    .bind(change.team.clone().flatten())
    .fetch_optional(pool)
    .await?;
    Ok(row)
}
