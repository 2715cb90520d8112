//! `Idempotency-Key` on payment creation and job submissions, one flow for all: the key
//! is checked before anything is read, claimed inside the write's own transaction, and
//! the first answer is kept with it; a retry of the same request gets that answer again
//! with `idempotency-replayed: true`, and the key with another request is refused.

use serde_json::Value;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, FieldError, Result};
use crate::http as api;
use crate::store::idempotency::{self, Claim};

/// The longest key a client may send (the column holds what is checked here).
const MAX_KEY_LEN: usize = 255;

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
/// request's answer, to send again; a key used with another request is refused.
pub async fn claim(
    tx: &mut sqlx::PgConnection,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    hash: &[u8],
) -> Result<Option<Response>> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, caller.user_id, scope, key, hash).await? {
        Claim::Fresh => Ok(None),
        Claim::Replay { status, body } => {
            let mut response = api::json(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), &body);
            response
                .headers_mut()
                .insert("idempotency-replayed", HeaderValue::from_static("true"));
            Ok(Some(response))
        }
        Claim::Mismatch => Err(Error::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request; use a new key for a new request",
        )),
    }
}

/// Keeps `view` as the answer (`status`) to `key` (if any), inside `tx`: it is kept only
/// if the write commits.
pub async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    status: StatusCode,
    view: &Value,
) -> Result<()> {
    match key {
        Some(key) => idempotency::complete(tx, caller.user_id, scope, key, status.as_u16(), view).await,
        None => Ok(()),
    }
}

/// Records a queued job's 202 answer under its key (if any), commits, and answers it
/// with `Location`.
pub async fn accept(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    view: &Value,
    location: &str,
) -> Result<Response> {
    record(&mut tx, caller, scope, key, StatusCode::ACCEPTED, view).await?;
    tx.commit().await?;
    let mut response = api::json(StatusCode::ACCEPTED, view);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
