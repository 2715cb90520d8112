//! `/api/v1/accounts` by id: create, read, patch, soft delete, restore. Reads come from SQL.

use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::account::{CreateAccount, PatchAccount};
use crate::domain::document::Entity;
use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::http::account_view::{AccountView, account_response, shown_response};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::indexed::WaitForParam;
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::query::raw_query;
use crate::http::{self as api, ListPage, etag, no_content, respond};
use crate::lists::accounts::AccountListParams;
use crate::lists::accounts::{self as account_list, encode_search_cursor, facets_json};
use crate::search::highlight::highlight;
use crate::service::accounts as service;
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("accounts")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list)
        .or(warp::path!("accounts")
            .and(warp::post())
            .and(caller.clone())
            .and(wait_for())
            .and(json_body::<CreateAccount>(limit))
            .then(create))
        .unify()
        .or(warp::path!("accounts" / Uuid).and(warp::get()).and(caller.clone()).then(get))
        .unify()
        .or(warp::path!("accounts" / Uuid)
            .and(warp::patch())
            .and(caller.clone())
            .and(warp::header::optional::<String>("if-match"))
            .and(wait_for())
            .and(json_body::<PatchAccount>(limit))
            .then(patch))
        .unify()
        .or(warp::path!("accounts" / Uuid)
            .and(warp::delete())
            .and(caller.clone())
            .and(wait_for())
            .then(delete))
        .unify()
        .or(warp::path!("accounts" / Uuid / "restore")
            .and(warp::post())
            .and(caller)
            .and(wait_for())
            .then(restore))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, get, patch, delete, restore))]
pub struct Api;

/// Search and list accounts
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", operation_id = "list_accounts",
    params(AccountListParams),
    responses(
        (status = 200, description = "A page of accounts from the index; `highlight` when `q` is given", body = ListPage<ListItem, api::Counted>),
        (status = 403, description = "The role may not read accounts, or `include_deleted` without the right"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let today = Utc::now().date_naive();
    let service::Found { page, text, sort } = service::search(state.pool(), state.search().as_ref(), &caller, &raw, today).await?;
    let mut data = Vec::with_capacity(page.hits.len());
    for hit in page.hits {
        let highlight = text.as_deref().map(|t| highlight(&hit.doc.doc, t));
        data.push(ListItem {
            account: AccountView::from_shown(hit.doc, today)?,
            highlight,
        });
    }
    let body = ListPage {
        data,
        total: page.total,
        next_cursor: page
            .next
            .map(|after| encode_search_cursor(after, &account_list::sort_signature(sort))),
        facets: facets_json(&page.facets),
        more: api::Counted {
            total_is_lower_bound: page.total_is_lower_bound,
        },
    };
    Ok(api::json(StatusCode::OK, &body))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ListItem {
    #[serde(flatten)]
    account: AccountView,
    #[serde(skip_serializing_if = "Option::is_none")]
    highlight: Option<Map<String, Value>>,
}

/// Create an account
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", operation_id = "create_account",
    params(WaitForParam),
    request_body = CreateAccount,
    responses(
        (status = 201, description = "The account, with its ETag and Location", body = AccountView),
        (status = 403, description = "The role may not create accounts, or assign them"),
        (status = 409, description = "`duplicate_account_number`"),
    ))]
#[tracing::instrument(skip_all)]
async fn create(caller: Principal, state: AppState, wait: WaitForIndexed, body: CreateAccount) -> Result<Response> {
    let doc = service::create(state.pool(), state.phone_region(), &caller, body).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, doc.id, doc.search_version)]).await?;
    let location = format!("/api/v1/accounts/{}", doc.id);
    let mut response = account_response(StatusCode::CREATED, doc)?;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Read an account
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "get_account",
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account from SQL, with its ETag and its owner's name. An agent reads a summary \
                                      (`access: summary`) of an account that is not theirs, and the read is recorded", body = AccountView),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    shown_response(StatusCode::OK, service::get(state.pool(), &caller, id).await?)
}

/// `If-Match` holds a list of entity tags or `*`.
fn if_match_satisfied(if_match: Option<&str>, current_version: i64) -> bool {
    let Some(header) = if_match else { return true };
    let current = etag(current_version);
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag == current)
}

/// Change an account
#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "update_account",
    params(("id" = Uuid, Path, description = "The account's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; a changed account answers 412"),
        WaitForParam),
    request_body = PatchAccount,
    responses(
        (status = 200, description = "The changed account, with its ETag", body = AccountView),
        (status = 403, description = "`field_forbidden`: the role may not change these fields of this account (an agent: \
                                      fields outside the workflow, clearing a contact restriction, leaving `disputed`)"),
        (status = 409, description = "`duplicate_account_number`, or a currency fixed by payments, an open promise or an active plan"),
        (status = 412, description = "`precondition_failed`: If-Match names another version"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn patch(
    id: Uuid,
    caller: Principal,
    state: AppState,
    if_match: Option<String>,
    wait: WaitForIndexed,
    body: PatchAccount,
) -> Result<Response> {
    let precondition = |version| {
        if if_match_satisfied(if_match.as_deref(), version) {
            Ok(())
        } else {
            Err(Error::new(
                Code::PreconditionFailed,
                format!("the account changed since you read it; its ETag is now {}", etag(version)),
            ))
        }
    };
    let doc = service::update(state.pool(), state.phone_region(), &caller, id, precondition, body).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, id, doc.search_version)]).await?;
    account_response(StatusCode::OK, doc)
}

/// Delete an account (restorable)
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "delete_account",
    params(("id" = Uuid, Path, description = "The account's id"), WaitForParam),
    responses(
        (status = 204, description = "Soft-deleted (restorable)"),
        (status = 403, description = "The role may not delete accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn delete(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    let version = service::delete(state.pool(), &caller, id).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, id, version)]).await?;
    Ok(no_content())
}

/// Restore a deleted account
#[utoipa::path(post, path = "/api/v1/accounts/{id}/restore", tag = "accounts", operation_id = "restore_account",
    params(("id" = Uuid, Path, description = "The account's id"), WaitForParam),
    responses(
        (status = 200, description = "The restored account", body = AccountView),
        (status = 403, description = "The role may not restore accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn restore(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    let doc = service::restore(state.pool(), &caller, id).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, id, doc.search_version)]).await?;
    account_response(StatusCode::OK, doc)
}
