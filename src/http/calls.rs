//! Calls from the console: placing one to an account's debtor, the caller's calls, and
//! the phone the caller takes calls on (a call's wrap-up is the account's,
//! `POST /accounts/{id}/wrap-up` with its `call_id`). The provider's
//! side of each call is `http::webhooks` (the voice webhooks).

use serde::Serialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::raw_query;
use crate::http::{self as api, ListPage, respond};
use crate::service::calls::{self as service, AgentPhone, CallRow};
use crate::state::AppState;

/// The phone the caller takes calls on.
#[derive(Serialize, utoipa::ToSchema)]
struct PhoneView {
    /// E.164; null when none is set.
    phone: Option<String>,
    /// Who places the calls (`local`: nothing rings, `twilio`).
    provider: &'static str,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let place = warp::path!("accounts" / Uuid / "calls")
        .and(warp::post())
        .and(caller.clone())
        .then(place);
    let list = warp::path!("calls")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let get = warp::path!("calls" / Uuid).and(warp::get()).and(caller.clone()).then(get);
    let phone = warp::path!("me" / "phone").and(warp::get()).and(caller.clone()).then(phone);
    let set_phone = warp::path!("me" / "phone")
        .and(warp::put())
        .and(caller)
        .and(json_body::<AgentPhone>(limit))
        .then(set_phone);
    place
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(phone)
        .unify()
        .or(set_phone)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(place, list, get, phone, set_phone))]
pub struct Api;

/// Call the debtor
#[utoipa::path(post, path = "/api/v1/accounts/{id}/calls", tag = "calls", operation_id = "place_call",
    params(("id" = Uuid, Path, description = "The account")),
    responses(
        (status = 201, description = "Placed: the caller's own phone rings; when they answer, the guard decides again and the debtor is dialled. Its progress comes as `call.updated` events", body = CallRow),
        (status = 403, description = "The caller does not work this account"),
        (status = 404, description = "No such account in the caller's reach"),
        (status = 409, description = "`contact_blocked` (the guard refuses a call now: `rule`, `next_allowed_at`), `no_recipient` (the account has no phone) or `no_agent_phone` (the caller has set no phone to ring)"),
        (status = 502, description = "`call_not_placed`: the provider refused the call (its reason in `detail`)"),
        (status = 503, description = "`service_unavailable`: the provider could not be reached; try again"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn place(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let call = service::place(state.pool(), state.dialer(), &caller, id, state.clock().now()).await?;
    Ok(api::json(StatusCode::CREATED, &call))
}

/// List calls
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", operation_id = "list_calls",
    params(PageQuery),
    responses((status = 200, description = "The caller's calls, newest first (every agent's for managers and admins)", body = ListPage<CallRow>)))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::list(state.pool(), &caller, None, page.window()).await?;
    let body = page.finish(rows, total, |c| (c.created_at, c.id), Ok)?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Read a call
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls", operation_id = "get_call",
    params(("id" = Uuid, Path, description = "The call")),
    responses(
        (status = 200, description = "The call", body = CallRow),
        (status = 404, description = "No such call of the caller's (managers read every call)"),
    ))]
#[tracing::instrument(skip_all, fields(call_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    Ok(api::json(StatusCode::OK, &service::get(state.pool(), &caller, id).await?))
}

/// Read my phone for calls
#[utoipa::path(get, path = "/api/v1/me/phone", tag = "calls", operation_id = "get_my_phone",
    responses((status = 200, description = "The phone the caller takes calls on", body = PhoneView)))]
async fn phone(caller: Principal, state: AppState) -> Result<Response> {
    let phone = service::phone(state.pool(), &caller).await?;
    let provider = state.dialer().name();
    Ok(api::json(StatusCode::OK, &PhoneView { phone, provider }))
}

/// Set my phone for calls
#[utoipa::path(put, path = "/api/v1/me/phone", tag = "calls", operation_id = "set_my_phone",
    request_body = AgentPhone,
    responses(
        (status = 200, description = "The phone the caller takes calls on, in E.164", body = PhoneView),
        (status = 403, description = "The caller's role places no calls"),
        (status = 422, description = "`validation_failed`: not a phone number"),
    ))]
async fn set_phone(caller: Principal, state: AppState, body: AgentPhone) -> Result<Response> {
    let phone = service::set_phone(state.pool(), &caller, body, state.phone_region()).await?;
    let provider = state.dialer().name();
    Ok(api::json(StatusCode::OK, &PhoneView { phone, provider }))
}
