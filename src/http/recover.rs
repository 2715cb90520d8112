//! Maps whatever rejection is left to problem+json, 404 and 405 told apart.

use std::convert::Infallible;

use warp::Rejection;
use warp::filters::cors::CorsForbidden;
use warp::reject::{InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader, PayloadTooLarge, UnsupportedMediaType};
use warp::reply::Response;

use crate::error::{Code, Error};

/// An [`Error`] raised inside a filter (auth, body parsing) rather than a handler.
#[derive(Debug)]
pub struct Rejected(pub Error);

impl warp::reject::Reject for Rejected {}

/// Marks an answer to a request no route took (404 no route, 405 wrong method), so
/// metrics label it `unmatched` rather than by a path a client made up.
#[derive(Clone, Copy, Debug)]
pub struct Unrouted;

pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = to_error(&rejection);
    let unrouted = matches!(error.code(), Code::RouteNotFound | Code::MethodNotAllowed);
    let mut response = error.into_response();
    if unrouted {
        response.extensions_mut().insert(Unrouted);
    }
    Ok(response)
}

fn to_error(rejection: &Rejection) -> Error {
    if rejection.is_not_found() {
        return Error::new(Code::RouteNotFound, "no route matches this path");
    }
    if let Some(Rejected(err)) = rejection.find::<Rejected>() {
        return clone_error(err);
    }
    // The CORS layer refused an origin, a method or a header it does not allow: the
    // caller's doing, so a 403, not a server error.
    if let Some(err) = rejection.find::<CorsForbidden>() {
        return Error::forbidden(format!("cross-origin request refused: {err}"));
    }
    if rejection.find::<PayloadTooLarge>().is_some() {
        return Error::new(Code::PayloadTooLarge, "the request body exceeds the size limit");
    }
    if rejection.find::<LengthRequired>().is_some() {
        return Error::new(Code::LengthRequired, "send a Content-Length header with the body");
    }
    if rejection.find::<UnsupportedMediaType>().is_some() {
        return Error::new(Code::UnsupportedMediaType, "unsupported content type");
    }
    // Checked after the body errors above: a route that matched path and method and then
    // refused the body is more specific than another route's method mismatch.
    if rejection.find::<MethodNotAllowed>().is_some() {
        return Error::new(Code::MethodNotAllowed, "this path does not accept this method");
    }
    if let Some(err) = rejection.find::<InvalidQuery>() {
        return Error::new(Code::InvalidParameter, err.to_string());
    }
    if let Some(err) = rejection.find::<MissingHeader>() {
        return Error::new(Code::InvalidParameter, format!("missing header {}", err.name()));
    }
    if let Some(err) = rejection.find::<InvalidHeader>() {
        return Error::new(Code::InvalidParameter, format!("invalid header {}", err.name()));
    }
    Error::Internal(anyhow::anyhow!("unhandled rejection: {rejection:?}"))
}

/// Rejections are borrowed, so the error is rebuilt; internal ones keep their message for the log.
fn clone_error(err: &Error) -> Error {
    match err {
        Error::Problem(p) => Error::Problem(p.clone()),
        Error::Internal(e) => Error::Internal(anyhow::anyhow!("{e:#}")),
    }
}
