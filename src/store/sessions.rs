//! Login sessions and their rotating refresh tokens (stored as SHA-256 hashes).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Result;
use crate::store::keyset;

/// What authenticating a request needs to know about its session, in one query.
#[derive(Clone, Debug, FromRow)]
pub struct SessionUser {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub revoked: bool,
    /// Whether the user has a second factor on.
    pub second_factor: bool,
}

/// A new session for an enabled user; `None` when the user is disabled (or gone).
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    client_address: &str,
    user_agent: Option<&str>,
    expires_at: DateTime<Utc>,
    token_hash: &[u8],
) -> Result<Option<Uuid>> {
    let session_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    // Only while the user is enabled, under a share lock: a login racing a disable
    // either commits first (and the disable revokes its session) or creates nothing.
    let created = sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, expires_at, client_address, user_agent)
         SELECT $1, id, $3, $4, $5 FROM users WHERE id = $2 AND NOT disabled FOR SHARE",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(expires_at)
    .bind(client_address)
    .bind(user_agent)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if created == 0 {
        return Ok(None);
    }
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(token_hash)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(session_id))
}

/// Whether `user_id` signed in from `client_address` since `since`.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn signed_in_from(pool: &PgPool, user_id: Uuid, client_address: &str, since: DateTime<Utc>) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM auth_sessions WHERE user_id = $1 AND client_address = $2 AND created_at >= $3)")
            .bind(user_id)
            .bind(client_address)
            .bind(since)
            .fetch_one(pool)
            .await?,
    )
}

/// Result of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current; it is now used and `new_hash` replaces it.
    Rotated { session_id: Uuid, user_id: Uuid },
    /// The token had already been rotated: its whole family (of `user_id`) is now revoked.
    Reused { user_id: Uuid },
    /// Unknown token, or its session is revoked, expired or its user disabled.
    Invalid,
}

/// Marks `old_hash` used and stores `new_hash` in the same session, atomically. A
/// second presentation of `old_hash` (theft or a replay) revokes the session.
#[tracing::instrument(skip_all)]
pub async fn rotate(pool: &PgPool, old_hash: &[u8], new_hash: &[u8]) -> Result<Rotation> {
    let mut tx = pool.begin().await?;
    let current: Option<(Uuid, Uuid, bool)> = sqlx::query_as(
        "SELECT s.id, s.user_id, (s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.disabled)
         FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, s",
    )
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((session_id, user_id, usable)) = current else {
        return Ok(Rotation::Invalid);
    };
    if !usable {
        return Ok(Rotation::Invalid);
    }
    let claimed = sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL")
        .bind(old_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if claimed == 0 {
        revoke_in(&mut tx, session_id, "refresh token reused").await?;
        tx.commit().await?;
        return Ok(Rotation::Reused { user_id });
    }
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(new_hash)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE auth_sessions SET last_used_at = now() WHERE id = $1")
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { session_id, user_id })
}

async fn revoke_in(conn: &mut sqlx::PgConnection, session_id: Uuid, reason: &str) -> Result<()> {
    sqlx::query("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live session of a user (their refresh tokens and the access tokens
/// issued for them).
pub async fn revoke_all_of(conn: &mut sqlx::PgConnection, user_id: Uuid, reason: &str) -> Result<u64> {
    let revoked = sqlx::query("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(reason)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(revoked)
}

/// Revokes the session a refresh token belongs to. Returns its user and id, if one was
/// found.
#[tracing::instrument(skip_all)]
pub async fn revoke_by_token(pool: &PgPool, token_hash: &[u8]) -> Result<Option<(Uuid, Uuid)>> {
    let revoked = sqlx::query_as(
        "UPDATE auth_sessions SET revoked_at = COALESCE(revoked_at, now()), revoked_reason = COALESCE(revoked_reason, 'logout')
         WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)
         RETURNING user_id, id",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    Ok(revoked)
}

/// Revokes every live session of a user but `keep` (the one asking).
pub async fn revoke_others_of(conn: &mut sqlx::PgConnection, user_id: Uuid, keep: Uuid, reason: &str) -> Result<u64> {
    let revoked = sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(revoked)
}

/// Revokes `session_id` if it is a live session of `user_id`; whether it was.
#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn revoke_of(pool: &PgPool, user_id: Uuid, session_id: Uuid, reason: &str) -> Result<bool> {
    let revoked = sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $3
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(revoked == 1)
}

/// A live session as its user sees it.
#[derive(Clone, Debug, FromRow)]
pub struct LiveSession {
    pub id: Uuid,
    pub user_agent: Option<String>,
    pub client_address: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const LIVE: &str = "revoked_at IS NULL AND expires_at > now()";

/// `user_id`'s live sessions (neither revoked nor expired), newest first, after `after`.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn live_of(pool: &PgPool, user_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<LiveSession>> {
    let select = "SELECT id, user_agent, client_address, created_at, last_used_at FROM auth_sessions";
    let mut query = keyset::rows_where(select, "user_id", Some(user_id));
    query.push(format_args!(" AND {LIVE}"));
    keyset::NewestFirst::by("created_at", "id").page(pool, query, after, limit).await
}

/// How many live sessions `user_id` has.
pub async fn count_live_of(pool: &PgPool, user_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM auth_sessions WHERE {LIVE} AND user_id = $1"
    )))
    .bind(user_id)
    .fetch_one(pool)
    .await?)
}

pub async fn revoke(pool: &PgPool, session_id: Uuid, reason: &str) -> Result<()> {
    let mut conn = pool.acquire().await?;
    revoke_in(&mut conn, session_id, reason).await
}

/// The session named by an access token, with its user's current role and state.
#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn session_user(pool: &PgPool, session_id: Uuid) -> Result<Option<SessionUser>> {
    let row = sqlx::query_as::<_, SessionUser>(
        "SELECT s.id AS session_id, u.id AS user_id, u.email, u.name, u.role, u.disabled, (s.revoked_at IS NOT NULL) AS revoked,
                EXISTS (SELECT 1 FROM second_factors f WHERE f.user_id = u.id AND f.confirmed_at IS NOT NULL) AS second_factor
         FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
    )
    .bind(session_id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}
