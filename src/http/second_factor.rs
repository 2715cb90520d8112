//! `/api/v1/auth/second-factor`: the caller's TOTP second factor (status, enrolment,
//! confirmation, turning it off). A user whose role requires one reaches these routes
//! before they have it. `/api/v1/users/{id}/second-factor`: an admin's reset.

use serde::Deserialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{client_ip, enrolling_principal, json_body, principal, with_state};
use crate::http::{self as api, no_content, respond};
use crate::service::second_factor::{self as service, Enrolment, Proof, RecoveryCodes, SecondFactorStatus};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    /// The 6 digits the app shows for the new secret.
    #[schema(example = "123456")]
    code: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DisableRequest {
    /// The caller's password.
    password: String,
    /// The 6 digits the app shows now (or send `recovery_code`): needed while the
    /// second factor is on.
    #[schema(example = "123456")]
    code: Option<String>,
    /// One of the caller's unused recovery codes, instead of `code`.
    recovery_code: Option<String>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = enrolling_principal(state.clone()).and(with_state(state.clone()));
    let status = warp::path!("auth" / "second-factor")
        .and(warp::get())
        .and(caller.clone())
        .then(status);
    let begin = warp::path!("auth" / "second-factor")
        .and(warp::post())
        .and(caller.clone())
        .then(begin);
    let confirm = warp::path!("auth" / "second-factor" / "confirm")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<ConfirmRequest>(limit))
        .then(confirm);
    let disable = warp::path!("auth" / "second-factor")
        .and(warp::delete())
        .and(caller)
        .and(client_ip(state.clone()))
        .and(json_body::<DisableRequest>(limit))
        .then(disable);
    let reset = warp::path!("users" / Uuid / "second-factor")
        .and(warp::delete())
        .and(principal(state.clone()))
        .and(with_state(state))
        .then(reset);
    status
        .or(begin)
        .unify()
        .or(confirm)
        .unify()
        .or(disable)
        .unify()
        .or(reset)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(status, begin, confirm, disable, reset))]
pub struct Api;

/// My second factor
#[utoipa::path(get, path = "/api/v1/auth/second-factor", tag = "auth", operation_id = "second_factor_status",
    responses((status = 200, description = "Whether the caller's second factor is on, and whether their role requires one", body = SecondFactorStatus)))]
#[tracing::instrument(skip_all)]
async fn status(caller: Principal, state: AppState) -> Result<Response> {
    let status = service::status(state.pool(), state.auth(), &caller).await?;
    Ok(api::json(StatusCode::OK, &status))
}

/// Start enrolling a second factor
///
/// A new secret for an authenticator app, not in force until confirmed with a code;
/// asking again replaces one not confirmed yet.
#[utoipa::path(post, path = "/api/v1/auth/second-factor", tag = "auth", operation_id = "begin_second_factor",
    responses(
        (status = 201, description = "The secret (base32) and its `otpauth://` URI", body = Enrolment),
        (status = 409, description = "`conflict`: the second factor is already on"),
    ))]
#[tracing::instrument(skip_all)]
async fn begin(caller: Principal, state: AppState) -> Result<Response> {
    let enrolment = service::begin(state.pool(), state.auth(), &caller).await?;
    Ok(api::json(StatusCode::CREATED, &enrolment))
}

/// Confirm the second factor
///
/// Turns it on with a code from the app; answers the 10 recovery codes, this once.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/confirm", tag = "auth", operation_id = "confirm_second_factor",
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "On; the recovery codes, shown only now", body = RecoveryCodes),
        (status = 409, description = "`conflict`: no enrolment is waiting, or the factor is already on"),
        (status = 422, description = "`validation_failed`: `code` is not 6 digits or does not match the secret"),
    ))]
#[tracing::instrument(skip_all)]
async fn confirm(caller: Principal, state: AppState, body: ConfirmRequest) -> Result<Response> {
    let codes = service::confirm(state.pool(), state.auth(), state.clock(), &caller, &body.code).await?;
    Ok(api::json(StatusCode::OK, &codes))
}

/// Turn the second factor off
///
/// With the caller's password and, while it is on, a code from the app or a recovery
/// code; also drops an enrolment in progress.
#[utoipa::path(delete, path = "/api/v1/auth/second-factor", tag = "auth", operation_id = "disable_second_factor",
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Off; signing in takes the password alone"),
        (status = 403, description = "`forbidden`: the caller's role requires a second factor"),
        (status = 422, description = "`validation_failed`: the password is wrong, or the code or recovery code is missing or \
            wrong (either counts as a failed login)"),
        (status = 429, description = "`rate_limited`: too many failed logins for this user from this address"),
    ))]
#[tracing::instrument(skip_all)]
async fn disable(caller: Principal, state: AppState, ip: String, body: DisableRequest) -> Result<Response> {
    let proof = Proof::from_login(body.code, body.recovery_code)?;
    service::disable(state.pool(), state.auth(), state.clock(), &ip, &caller, body.password, &proof).await?;
    Ok(no_content())
}

/// Reset a user's second factor
///
/// For a user who lost their phone and their recovery codes: their factor is removed;
/// they sign in with the password and, if their role requires one, enrol again.
#[utoipa::path(delete, path = "/api/v1/users/{id}/second-factor", tag = "users", operation_id = "reset_second_factor",
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 204, description = "The user has no second factor now"),
        (status = 403, description = "`forbidden`: only admins reset a second factor"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
async fn reset(user_id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    service::reset(state.pool(), state.auth(), &caller, user_id).await?;
    Ok(no_content())
}
