//! Users' TOTP second factors (sealed secrets, the last step used) and recovery codes.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Clone, Debug, FromRow)]
pub struct SecondFactorRow {
    pub secret_sealed: Vec<u8>,
    /// Whether enrolment was confirmed: the factor is on.
    pub confirmed: bool,
    pub last_used_step: Option<i64>,
    /// Recovery codes not used yet (none before confirmation).
    pub recovery_codes_left: i64,
}

#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Option<SecondFactorRow>> {
    let row = sqlx::query_as::<_, SecondFactorRow>(
        "SELECT f.secret_sealed, (f.confirmed_at IS NOT NULL) AS confirmed, f.last_used_step,
                (SELECT count(*) FROM recovery_codes c WHERE c.user_id = f.user_id AND c.used_at IS NULL) AS recovery_codes_left
         FROM second_factors f WHERE f.user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Starts an enrolment with `secret_sealed`, replacing one not confirmed yet; `false`
/// (nothing changed) when the user's factor is already on.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn begin(pool: &PgPool, user_id: Uuid, secret_sealed: &[u8]) -> Result<bool> {
    let started = sqlx::query(
        "INSERT INTO second_factors (user_id, secret_sealed) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, last_used_step = NULL, created_at = now()
         WHERE second_factors.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(secret_sealed)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(started == 1)
}

/// Turns on the enrolment still holding `secret_sealed`, with `step` used and the
/// recovery codes `code_hashes`; `false` when it was confirmed or restarted meanwhile.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn confirm(pool: &PgPool, user_id: Uuid, secret_sealed: &[u8], step: i64, code_hashes: &[Vec<u8>]) -> Result<bool> {
    let mut tx = super::begin_as(pool, user_id).await?;
    let confirmed = sqlx::query(
        "UPDATE second_factors SET confirmed_at = now(), last_used_step = $3
         WHERE user_id = $1 AND secret_sealed = $2 AND confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(secret_sealed)
    .bind(step)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if confirmed == 0 {
        return Ok(false);
    }
    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])")
        .bind(user_id)
        .bind(code_hashes)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records `step` as used by the user's confirmed factor; `false` when that step or a
/// later one was used already (a replay, or two sign-ins racing with one code).
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn spend_step(pool: &PgPool, user_id: Uuid, step: i64) -> Result<bool> {
    let spent = sqlx::query(
        "UPDATE second_factors SET last_used_step = $2
         WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $2)",
    )
    .bind(user_id)
    .bind(step)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(spent == 1)
}

/// Marks the user's unused recovery code with `code_hash` used; `false` when there is
/// no such unused code.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn spend_recovery_code(pool: &PgPool, user_id: Uuid, code_hash: &[u8]) -> Result<bool> {
    let spent = sqlx::query("UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(code_hash)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(spent == 1)
}

/// Removes the user's factor (on or being enrolled) and its recovery codes, as `actor`.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn remove(pool: &PgPool, actor: Uuid, user_id: Uuid) -> Result<()> {
    let mut tx = super::begin_as(pool, actor).await?;
    sqlx::query("DELETE FROM second_factors WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
