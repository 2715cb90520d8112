//! `/api/v1/auth`: register, login, refresh, logout, me.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::auth::gate::login_refused;
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::domain::contact::normalize_email;
use crate::domain::principal::Principal;
use crate::domain::role::Role;
use crate::error::{Code, Error, Result};
use crate::http::filters::{client_ip, json_body, principal, with_state};
use crate::http::{self as api, no_content, respond};
use crate::service::users::{self as users_service, CreateUser, UserView};
use crate::state::AppState;
use crate::store::sessions::{self, Rotation};
use crate::store::users::{self, UserRow};

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

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let register = warp::path!("auth" / "register")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.clone()))
        .and(json_body::<RegisterRequest>(limit))
        .then(|s, ip, b| async move { respond(register(s, ip, b).await) });
    let login = warp::path!("auth" / "login")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.clone()))
        .and(json_body::<LoginRequest>(limit))
        .then(|s, ip, b| async move { respond(login(s, ip, b).await) });
    let refresh = warp::path!("auth" / "refresh")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json_body::<RefreshRequest>(limit))
        .then(|s, b| async move { respond(refresh(s, b).await) });
    let logout = warp::path!("auth" / "logout")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json_body::<RefreshRequest>(limit))
        .then(|s, b| async move { respond(logout(s, b).await) });
    let me = warp::path!("auth" / "me")
        .and(warp::get())
        .and(principal(state.clone()))
        .and(with_state(state))
        .then(|p, s| async move { respond(me(p, s).await) });
    register
        .or(login)
        .unify()
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .boxed()
}

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

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login", security(()),
    request_body(content = LoginRequest, example = json!({"email": "agent@example.com", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Tokens and the user", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`: unknown email, wrong password or disabled user (one answer)"),
        (status = 429, description = "`rate_limited`, with Retry-After: too many failures, too many sign-ins to the account or from the address this minute, or the address holds its share of the hashing queue"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn login(state: AppState, ip: String, body: LoginRequest) -> Result<Response> {
    let email = normalize_email(&body.email).unwrap_or_else(|_| body.email.trim().to_lowercase());
    state.auth().check_lockout(&ip, &email)?;
    state.auth().check_login_budget(&ip, &email)?;
    let user = users::by_email(state.pool(), &email).await?;
    // Over the address's budget of failures, only a user who signed in from this address
    // before is still judged: one device guessing made-up emails cannot lock an office
    // out, and guesses at anyone else (password spraying) are refused without a hash.
    let over_budget = state.auth().address_over_budget(&ip);
    if let Some(wait) = over_budget {
        let since = Utc::now() - chrono::Duration::days(KNOWN_ADDRESS_DAYS);
        let known = match &user {
            Some(u) => sessions::signed_in_from(state.pool(), u.id, &ip, since).await?,
            None => false,
        };
        if !known {
            return Err(login_refused(wait));
        }
    }
    // Unknown email, wrong password and disabled user: one answer, after one hash
    // verification each, so neither the answer nor its time tells them apart.
    let hash = user
        .as_ref()
        .map_or_else(|| state.auth().dummy_hash().to_owned(), |u| u.password_hash.clone());
    let verified = state.auth().hashers().verify(&ip, body.password, hash).await?;
    let Some(user) = user.filter(|u| verified && !u.disabled) else {
        state.auth().record_login_failure(&ip, &email);
        return Err(match over_budget {
            Some(wait) => login_refused(wait),
            None => Error::new(Code::InvalidCredentials, "email or password is wrong"),
        });
    };
    state.auth().spend_login_success(&ip, &email)?;
    let (refresh_token, hash) = new_refresh_token();
    let expires_at = Utc::now() + state.settings().refresh_token_ttl();
    let Some(session_id) = sessions::create(state.pool(), user.id, &ip, expires_at, &hash).await? else {
        // Disabled between the password check and now: the same answer as any failure.
        return Err(Error::new(Code::InvalidCredentials, "email or password is wrong"));
    };
    tracing::info!(user_id = %user.id, session_id = %session_id, "login");
    token_response(&state, &user, session_id, refresh_token)
}

/// How long a sign-in from an address keeps its user known there (see [`login`]).
const KNOWN_ADDRESS_DAYS: i64 = 90;

fn token_response(state: &AppState, user: &UserRow, session_id: uuid::Uuid, refresh_token: String) -> Result<Response> {
    let access_token = state.auth().keys().issue(user.id, session_id)?;
    let body = TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.auth().keys().access_ttl().as_secs(),
        user: UserView::from(user),
    };
    Ok(api::json(StatusCode::OK, &body))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "refresh", security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenResponse),
        (status = 401, description = "`refresh_token_invalid`, or `refresh_token_reused` (the session is revoked)"),
    ))]
#[tracing::instrument(skip_all)]
async fn refresh(state: AppState, body: RefreshRequest) -> Result<Response> {
    let (new_token, new_hash) = new_refresh_token();
    match sessions::rotate(state.pool(), &hash_refresh_token(&body.refresh_token), &new_hash).await? {
        Rotation::Rotated { session_id, user_id } => {
            let user = users::by_id(state.pool(), user_id)
                .await?
                .ok_or_else(|| Error::new(Code::RefreshTokenInvalid, "the user no longer exists"))?;
            token_response(&state, &user, session_id, new_token)
        }
        Rotation::Reused { user_id } => {
            state.sessions_changed(user_id).await;
            tracing::warn!("refresh token reused; session revoked");
            Err(Error::new(
                Code::RefreshTokenReused,
                "this refresh token was already used; the session is revoked, log in again",
            ))
        }
        Rotation::Invalid => Err(Error::new(
            Code::RefreshTokenInvalid,
            "the refresh token is unknown, expired or revoked",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout", security(()),
    request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked (whether or not the token existed)")))]
/// Always 204: telling whether the token existed would help nobody but an attacker.
#[tracing::instrument(skip_all)]
async fn logout(state: AppState, body: RefreshRequest) -> Result<Response> {
    if let Some(user_id) = sessions::revoke_by_token(state.pool(), &hash_refresh_token(&body.refresh_token)).await? {
        state.sessions_changed(user_id).await;
    }
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", operation_id = "me",
    responses((status = 200, description = "The caller", body = UserView)))]
async fn me(caller: Principal, state: AppState) -> Result<Response> {
    let user = users::by_id(state.pool(), caller.user_id)
        .await?
        .ok_or_else(|| Error::new(Code::Unauthorized, "the user no longer exists"))?;
    Ok(api::json(StatusCode::OK, &UserView::from(&user)))
}
