//! `Idempotency-Key` answers over HTTP: a replayed answer carries
//! `idempotency-replayed: true`; a queued job's 202 carries `Location`. The rule itself
//! is `service::idempotency`'s.

use serde_json::Value;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http as api;
use crate::service::idempotency::{self, Replay};

/// The first request's answer, sent again.
pub fn replay(first: Replay) -> Response {
    let mut response = api::json(StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK), &first.body);
    response
        .headers_mut()
        .insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
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
    idempotency::record(&mut tx, caller, scope, key, StatusCode::ACCEPTED.as_u16(), view).await?;
    tx.commit().await?;
    let mut response = api::json(StatusCode::ACCEPTED, view);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
