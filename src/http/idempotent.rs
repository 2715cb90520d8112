//! `Idempotency-Key` answers over HTTP: a replayed answer carries
//! `idempotency-replayed: true`; a queued job's 202 carries `Location`. The rule itself
//! is `service::idempotency`'s.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::http as api;
use crate::service::idempotency::Replay;

/// The first request's answer, sent again.
pub fn replay(first: Replay) -> Response {
    let mut response = api::json(StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK), &first.body);
    response
        .headers_mut()
        .insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
}

/// A queued job's 202 answer, with `Location`.
pub fn accepted(view: &impl serde::Serialize, location: &str) -> Response {
    let mut response = api::json(StatusCode::ACCEPTED, view);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
