//! Idempotency keys: a retried submission answers with the first result.
//!
//! The key row is inserted first in the submission's own transaction, so a concurrent
//! retry with the same key waits on the unique index until the first one commits (and
//! then replays it) or rolls back (and then runs itself).

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

/// What a key already holds.
pub enum Claim {
    /// The key is new: run the request, then [`complete`] in the same transaction.
    Fresh,
    /// The same request ran before: answer this.
    Replay { status: u16, body: Value },
    /// The key was used with another request.
    Mismatch,
}

pub async fn claim(tx: &mut PgConnection, user_id: Uuid, scope: &str, key: &str, request_hash: &[u8]) -> Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, scope, key, request_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (hash, status, body): (Vec<u8>, Option<i32>, Option<Value>) =
        sqlx::query_as("SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3")
            .bind(user_id)
            .bind(scope)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
    if hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Claim::Replay {
            status: status as u16,
            body,
        }),
        _ => Ok(Claim::Mismatch),
    }
}

pub async fn complete(tx: &mut PgConnection, user_id: Uuid, scope: &str, key: &str, status: u16, body: &Value) -> Result<()> {
    sqlx::query("UPDATE idempotency_keys SET status = $4, response = $5 WHERE user_id = $1 AND scope = $2 AND key = $3")
        .bind(user_id)
        .bind(scope)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(tx)
        .await?;
    Ok(())
}
