//! `/api/v1/auth`: register, login, refresh, logout, me.

use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::domain::role::Role;
use crate::error::{Code, Error, Result};
use crate::http::filters::{client_ip, enrolling_principal, json_body, user_agent, with_state};
use crate::http::{self as api, no_content, respond};
use crate::service::second_factor::Proof;
use crate::service::sessions::{self, Tokens};
use crate::service::users::{self as users_service, CreateUser, UserView};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    email: String,
    name: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
    /// The 6 digits the authenticator app shows, for a user with a second factor on.
    code: Option<String>,
    /// One of the user's recovery codes, instead of `code`; each works once.
    recovery_code: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    user: UserView,
}

impl From<Tokens> for TokenResponse {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            user: tokens.user,
        }
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let anyone = with_state(state.clone());
    warp::path!("auth" / "register")
        .and(warp::post())
        .and(anyone.clone())
        .and(client_ip(state.clone()))
        .and(json_body::<RegisterRequest>(limit))
        .then(register)
        .or(warp::path!("auth" / "login")
            .and(warp::post())
            .and(anyone.clone())
            .and(client_ip(state.clone()))
            .and(user_agent())
            .and(json_body::<LoginRequest>(limit))
            .then(login))
        .unify()
        .or(warp::path!("auth" / "refresh")
            .and(warp::post())
            .and(anyone.clone())
            .and(client_ip(state.clone()))
            .and(json_body::<RefreshRequest>(limit))
            .then(refresh))
        .unify()
        .or(warp::path!("auth" / "logout")
            .and(warp::post())
            .and(anyone)
            .and(client_ip(state.clone()))
            .and(json_body::<RefreshRequest>(limit))
            .then(logout))
        .unify()
        .or(warp::path!("auth" / "options")
            .and(warp::get())
            .and(with_state(state.clone()))
            .then(options))
        .unify()
        .or(warp::path!("auth" / "me")
            .and(warp::get())
            .and(enrolling_principal(state.clone()))
            .and(with_state(state))
            .then(me))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login, refresh, logout, options, me))]
pub struct Api;

/// Register (as pending)
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", operation_id = "register", security(()),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The user, `pending` until an admin gives a role. A taken email gets the same answer (its owner is notified), so registration tells nobody which emails exist", body = UserView),
        (status = 403, description = "`registration_disabled`"),
        (status = 429, description = "`rate_limited`: too many registrations from this address"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn register(state: AppState, ip: String, body: RegisterRequest) -> Result<Response> {
    if !state.settings().allow_registration {
        return Err(Error::new(
            Code::RegistrationDisabled,
            "self-registration is switched off; ask an admin for an account",
        ));
    }
    state.auth().spend_registration(&ip)?;
    let user = users_service::register(
        state.pool(),
        state.auth().hashers(),
        CreateUser::new(body.email, body.name, Role::Pending, body.password),
    )
    .await?;
    Ok(api::json(StatusCode::CREATED, &user))
}

/// Sign in
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login", security(()),
    request_body(content = LoginRequest, example = json!({"email": "agent@example.com", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Tokens and the user", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`: unknown email, wrong password or disabled user (one answer); `second_factor_required`: the password is right and the user has a second factor on, send `code` or `recovery_code`; `second_factor_invalid`: the code is wrong or used (counts as a failed login)"),
        (status = 422, description = "`validation_failed`: `code` is not 6 digits, or both `code` and `recovery_code` were sent"),
        (status = 429, description = "`rate_limited`, with Retry-After: too many failures, too many sign-ins to the account or from the address this minute, or the address holds its share of the hashing queue"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn login(state: AppState, ip: String, user_agent: Option<String>, body: LoginRequest) -> Result<Response> {
    let proof = Proof::from_login(body.code, body.recovery_code)?;
    let tokens = state
        .sessions()
        .login(&ip, user_agent.as_deref(), &body.email, body.password, proof)
        .await?;
    Ok(api::json(StatusCode::OK, &TokenResponse::from(tokens)))
}

/// Refresh the tokens
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "refresh", security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenResponse),
        (status = 401, description = "`refresh_token_invalid`, or `refresh_token_reused` (the session is revoked)"),
    ))]
#[tracing::instrument(skip_all)]
async fn refresh(state: AppState, ip: String, body: RefreshRequest) -> Result<Response> {
    let tokens = state.sessions().refresh(&ip, &body.refresh_token).await?;
    Ok(api::json(StatusCode::OK, &TokenResponse::from(tokens)))
}

/// Sign out
///
/// Always 204: telling whether the token existed would help nobody but an attacker.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout", security(()),
    request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked (whether or not the token existed)")))]
#[tracing::instrument(skip_all)]
async fn logout(state: AppState, ip: String, body: RefreshRequest) -> Result<Response> {
    state.sessions().logout(&ip, &body.refresh_token).await?;
    Ok(no_content())
}

/// What a sign-in screen may offer before anyone signs in.
#[derive(Serialize, utoipa::ToSchema)]
struct AuthOptions {
    /// Whether `POST /api/v1/auth/register` is open (users it creates wait for an admin).
    registration: bool,
}

/// Sign-in options
#[utoipa::path(get, path = "/api/v1/auth/options", tag = "auth", operation_id = "auth_options", security(()),
    responses((status = 200, description = "What the sign-in screen may offer", body = AuthOptions)))]
async fn options(state: AppState) -> Result<Response> {
    let options = AuthOptions {
        registration: state.settings().allow_registration,
    };
    Ok(api::json(StatusCode::OK, &options))
}

/// The signed-in user
///
/// Also answers a user who must enrol a second factor before anything else.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", operation_id = "me",
    responses((status = 200, description = "The caller", body = UserView)))]
async fn me(caller: Principal, state: AppState) -> Result<Response> {
    Ok(api::json(StatusCode::OK, &sessions::me(state.pool(), &caller).await?))
}
