//! Users and their login state.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::domain::role::Role;
use crate::error::Result;
use crate::store::keyset::ByName;

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
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::stored(&self.role)
    }
}

const COLUMNS: &str = "id, email, name, role, password_hash, disabled, failed_logins, locked_until, created_at, team, deleted_at";

/// The names of the users `ids` (unknown ids are left out).
#[tracing::instrument(skip_all, fields(users = ids.len()))]
pub async fn names(conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// A user as the KPIs count them: their name and team, and whether they are an agent now
/// (an enabled user of the agent role, not deleted), whom the KPIs list even idle.
#[derive(Clone, Debug, FromRow)]
pub struct RosterRow {
    pub id: Uuid,
    pub name: String,
    pub team: Option<String>,
    pub agent: bool,
}

/// Every user, deleted ones too (their figures stay theirs).
#[tracing::instrument(skip_all)]
pub async fn roster(pool: &PgPool) -> Result<Vec<RosterRow>> {
    Ok(
        sqlx::query_as("SELECT id, name, team, role = $1 AND NOT disabled AND deleted_at IS NULL AS agent FROM users")
            .bind(Role::Agent.as_str())
            .fetch_all(pool)
            .await?,
    )
}

#[tracing::instrument(skip_all)]
pub async fn insert(pool: &PgPool, email: &str, name: &str, role: Role, password_hash: &str) -> Result<UserRow> {
    insert_in_team(pool, None, email, name, role, password_hash, None).await
}

#[tracing::instrument(skip_all)]
pub async fn insert_in_team(
    pool: &PgPool,
    actor: Option<Uuid>,
    email: &str,
    name: &str,
    role: Role,
    password_hash: &str,
    team: Option<&str>,
) -> Result<UserRow> {
    let mut tx = super::begin_recorded(pool, actor, None).await?;
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, name, role, password_hash, team) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(team)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
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

/// Replaces `id`'s password hash.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn set_password(conn: &mut sqlx::PgConnection, id: Uuid, password_hash: &str) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
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

/// A page of users ordered by creation, after the `(created_at, id)` keyset position:
/// every user, or only those of `team` when one is given.
#[tracing::instrument(skip_all)]
pub async fn list(pool: &PgPool, team: Option<&str>, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<UserRow>> {
    let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users
         WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2)) AND ($4::text IS NULL OR team = $4)
         ORDER BY created_at, id LIMIT $3"
    )))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .bind(team)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// How many users there are, or how many in `team` when one is given.
pub async fn count(pool: &PgPool, team: Option<&str>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users WHERE $1::text IS NULL OR team = $1")
        .bind(team)
        .fetch_one(pool)
        .await?)
}

/// The user `id`, locked for the rest of the transaction.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn lock(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row)
}

/// Deletes the user `id` by anonymising the row, which keeps its id for what names it:
/// a placeholder name and an undeliverable email (`.invalid` is reserved, RFC 2606),
/// a password hash no password matches, disabled for good.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn anonymise(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<UserRow>> {
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET name = 'Deleted user ' || left(replace(id::text, '-', ''), 8),
                email = 'deleted-' || id::text || '@deleted.invalid', password_hash = '!deleted',
                disabled = true, deleted_at = now(), failed_logins = 0, locked_until = NULL, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Which people who work accounts the directory lists.
#[derive(Clone, Debug, Default)]
pub struct DirectoryFilter {
    /// Part of the name, in any case.
    pub name: Option<String>,
    /// Only these users, when any.
    pub ids: Vec<Uuid>,
    pub include_disabled: bool,
}

/// One person in the directory; `sort_name` (the lowercased name) orders it.
#[derive(Clone, Debug, FromRow)]
pub struct DirectoryRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub team: Option<String>,
    pub disabled: bool,
    pub sort_name: String,
}

fn push_directory_filter(qb: &mut QueryBuilder<sqlx::Postgres>, filter: &DirectoryFilter) {
    let working: Vec<&str> = Role::ALL.into_iter().filter(|r| r.works_accounts()).map(Role::as_str).collect();
    qb.push(" WHERE role = ANY(").push_bind(working).push(")");
    if !filter.include_disabled {
        qb.push(" AND NOT disabled");
    }
    // Deleted users are named when asked for by id (an account's history shows who
    // worked it), never offered by a search.
    if filter.ids.is_empty() {
        qb.push(" AND deleted_at IS NULL");
    }
    if let Some(name) = &filter.name {
        qb.push(" AND strpos(lower(name), lower(").push_bind(name.clone()).push(")) > 0");
    }
    if !filter.ids.is_empty() {
        qb.push(" AND id = ANY(").push_bind(filter.ids.clone()).push(")");
    }
}

/// A page of the people who work accounts, by lowercased name then id, after the
/// `(sort_name, id)` keyset position.
#[tracing::instrument(skip_all)]
pub async fn directory(pool: &PgPool, filter: &DirectoryFilter, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<DirectoryRow>> {
    let mut qb = QueryBuilder::new("SELECT id, name, role, team, disabled, lower(name) AS sort_name FROM users");
    push_directory_filter(&mut qb, filter);
    ByName::by("name", "id").page(pool, qb, after, limit).await
}

pub async fn directory_count(pool: &PgPool, filter: &DirectoryFilter) -> Result<i64> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM users");
    push_directory_filter(&mut qb, filter);
    Ok(qb.build_query_scalar::<i64>().fetch_one(pool).await?)
}

/// What an admin changes of a user; `team: Some(None)` clears the team.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub team: Option<Option<String>>,
    /// Change the user only if they are an agent of this team (a manager's reach).
    pub agent_of_team: Option<String>,
}

/// Changes a user as `actor`. Disabling one revokes every session they hold in the same
/// transaction, so re-enabling them later cannot bring an old access or refresh token
/// back to life.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(pool: &PgPool, actor: Uuid, id: Uuid, change: &UserChange) -> Result<Option<UserRow>> {
    let mut tx = super::begin_as(pool, actor).await?;
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled),
                team = CASE WHEN $4 THEN $5 ELSE team END, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND ($6::text IS NULL OR (role = 'agent' AND team = $6))
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.role.map(Role::as_str))
    .bind(change.disabled)
    .bind(change.team.is_some())
    .bind(change.team.clone().flatten())
    .bind(change.agent_of_team.as_deref())
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_some() && change.disabled == Some(true) {
        crate::store::sessions::revoke_all_of(&mut tx, id, "user disabled").await?;
    }
    tx.commit().await?;
    Ok(row)
}
