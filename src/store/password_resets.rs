//! One-time password reset tokens (stored as SHA-256 hashes), at most one per user.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

/// Stores `token_hash` as `user_id`'s reset token, replacing any earlier one; `false`
/// when there is no such user.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn issue(pool: &PgPool, user_id: Uuid, created_by: Option<Uuid>, token_hash: &[u8], expires_at: DateTime<Utc>) -> Result<bool> {
    let stored = sqlx::query(
        "INSERT INTO password_reset_tokens (user_id, token_hash, created_by, expires_at)
         SELECT id, $2, $3, $4 FROM users WHERE id = $1
         ON CONFLICT (user_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, created_by = EXCLUDED.created_by,
             created_at = now(), expires_at = EXCLUDED.expires_at",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(created_by)
    .bind(expires_at)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(stored == 1)
}

/// The user whose unexpired token `token_hash` is, without spending it.
#[tracing::instrument(skip_all)]
pub async fn holder(pool: &PgPool, token_hash: &[u8]) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND expires_at > now()")
            .bind(token_hash)
            .fetch_optional(pool)
            .await?,
    )
}

/// Spends the token `token_hash`: the user it was for, if it was unexpired. An expired
/// token is deleted all the same.
#[tracing::instrument(skip_all)]
pub async fn spend(conn: &mut sqlx::PgConnection, token_hash: &[u8]) -> Result<Option<Uuid>> {
    let spent: Option<(Uuid, bool)> =
        sqlx::query_as("DELETE FROM password_reset_tokens WHERE token_hash = $1 RETURNING user_id, expires_at > now()")
            .bind(token_hash)
            .fetch_optional(conn)
            .await?;
    Ok(spent.filter(|(_, live)| *live).map(|(user_id, _)| user_id))
}

/// Drops `user_id`'s reset token, if any (their password changed another way).
pub async fn drop_of(conn: &mut sqlx::PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM password_reset_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}
