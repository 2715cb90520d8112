//! `Idempotency-Key` on job submissions: the first answer is kept with the key and sent
//! again for a retry of the same request; the key with another request is refused.

use serde_json::Value;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::http as api;
use crate::store::idempotency::{self, Claim};

/// Claims a job submission's `Idempotency-Key` (if any) in `tx`: `Some` is the first
/// submission's answer, to send again; a key used with another request is refused.
pub async fn claim_submission(
    tx: &mut sqlx::PgConnection,
    caller: &Principal,
    scope: &str,
    key: Option<&str>,
    hash: &[u8],
) -> Result<Option<Response>> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, caller.user_id, scope, key, hash).await? {
        Claim::Fresh => Ok(None),
        Claim::Replay { status, body } => Ok(Some(api::json(StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED), &body))),
        Claim::Mismatch => Err(Error::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )),
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
    if let Some(key) = key {
        idempotency::complete(&mut tx, caller.user_id, scope, key, StatusCode::ACCEPTED.as_u16(), view).await?;
    }
    tx.commit().await?;
    let mut response = api::json(StatusCode::ACCEPTED, view);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
