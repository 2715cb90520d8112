//! `Idempotency-Key` on payment creation and job submissions, one rule for all: the key
//! is checked before anything is read, claimed inside the write's own transaction, and
//! the first answer is kept with it; a retry of the same request gets that answer again,
//! and the key with another request is refused.

use serde_json::Value;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, FieldError, Result};
use crate::store::idempotency::{self, Claim};

/// The longest key a client may send (the column holds what is checked here).
const MAX_KEY_LEN: usize = 255;

/// The first request's answer, to send again.
#[derive(Debug)]
pub struct Replay {
    pub status: u16,
    pub body: Value,
}

/// 400 unless `key` (if any) is 1 to 255 visible ASCII characters.
pub fn check_key(key: Option<&str>) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    if !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    Err(Error::with_fields(
        Code::InvalidParameter,
        format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        vec![FieldError::new("idempotency-key", "invalid")],
    ))
}

/// Claims `key` (if any) for the caller in `scope` inside `tx`: `Some` is the first
/// request's answer; a key used with another request (`hash`) is refused.
pub async fn claim(tx: &mut sqlx::PgConnection, caller: &Principal, scope: &str, key: Option<&str>, hash: &[u8]) -> Result<Option<Replay>> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, caller.user_id, scope, key, hash).await? {
        Claim::Fresh => Ok(None),
        Claim::Replay { status, body } => Ok(Some(Replay { status, body })),
        Claim::Mismatch => Err(Error::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request; use a new key for a new request",
        )),
    }
}

/// Keeps `body` as the answer (`status`) to `key` (if any), inside `tx`: it is kept
/// only if the write commits.
pub async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    status: u16,
    body: &Value,
) -> Result<()> {
    match key {
        Some(key) => idempotency::complete(tx, caller.user_id, scope, key, status, body).await,
        None => Ok(()),
    }
}
