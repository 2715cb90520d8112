//! A user's credentials: `/api/v1/auth/password` (change one's own),
//! `/api/v1/auth/sessions` (see and end one's own), `/api/v1/auth/password-reset` (set a
//! new password with a one-time token) and `/api/v1/users/{id}/password-reset` (an admin
//! issues that token).

use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::ListPage;
use crate::http::filters::{client_ip, json_body, principal, with_state};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::raw_query;
use crate::http::{self as api, no_content, respond};
use crate::service::credentials::{self, ChangePassword, ResetPassword, ResetToken, SessionView};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state.clone()));
    let change = warp::path!("auth" / "password")
        .and(warp::post())
        .and(caller.clone())
        .and(client_ip(state.clone()))
        .and(json_body::<ChangePassword>(limit))
        .then(change_password);
    let list = warp::path!("auth" / "sessions")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list_sessions);
    let end = warp::path!("auth" / "sessions" / Uuid)
        .and(warp::delete())
        .and(caller.clone())
        .then(end_session);
    let reset = warp::path!("auth" / "password-reset")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state))
        .and(json_body::<ResetPassword>(limit))
        .then(reset_password);
    let issue = warp::path!("users" / Uuid / "password-reset")
        .and(warp::post())
        .and(caller)
        .then(issue_reset);
    change
        .or(list)
        .unify()
        .or(end)
        .unify()
        .or(reset)
        .unify()
        .or(issue)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(change_password, list_sessions, end_session, reset_password, issue_reset))]
pub struct Api;

/// Change my password
///
/// Every other session of the caller ends; the one making the request stays.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", operation_id = "change_password",
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; the caller's other sessions are ended"),
        (status = 403, description = "`forbidden` naming `current_password`: it is wrong (a failed login for the lockout)"),
        (status = 429, description = "`rate_limited`, with Retry-After: too many failed logins for this email from this address"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn change_password(caller: Principal, state: AppState, ip: String, body: ChangePassword) -> Result<Response> {
    state.sessions().change_password(&caller, &ip, body).await?;
    Ok(no_content())
}

/// My sessions
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", operation_id = "list_sessions",
    params(PageQuery),
    responses((status = 200, description = "The caller's live sessions, newest first", body = ListPage<SessionView>)))]
#[tracing::instrument(skip_all)]
async fn list_sessions(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw_query)?;
    let (rows, total) = state.sessions().list(&caller, page.window()).await?;
    let body = page.finish(rows, total, |s| (s.created_at, s.id), Ok)?;
    Ok(api::json(StatusCode::OK, &body))
}

/// End one of my sessions
///
/// Its refresh token stops working, and its access tokens at once on this instance
/// (on others within the session cache's few seconds).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", operation_id = "end_session",
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "`not_found`: no live session of the caller has this id"),
    ))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn end_session(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    state.sessions().end(&caller, id).await?;
    Ok(no_content())
}

/// Set a new password with a reset token
///
/// The token is spent and every session of the user ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", operation_id = "reset_password", security(()),
    request_body = ResetPassword,
    responses(
        (status = 204, description = "The password is set; sign in with it"),
        (status = 422, description = "`validation_failed` naming `token` (unknown, used or expired) or `new_password`"),
        (status = 429, description = "`rate_limited`: too many password resets from this address"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn reset_password(state: AppState, ip: String, body: ResetPassword) -> Result<Response> {
    state.sessions().reset_password(&ip, body).await?;
    Ok(no_content())
}

/// Issue a password reset token
///
/// The token is shown in this answer only, is good for one hour and one use, and
/// replaces any earlier token of the user.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users", operation_id = "issue_password_reset",
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 201, description = "The one-time token", body = ResetToken),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`: no such user"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn issue_reset(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let token = credentials::issue_password_reset(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::CREATED, &token))
}
