//! The contact-compliance guard: what each channel allows now on an account, managers'
//! one-attempt overrides, and verifying a dispute.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::compliance::Channel;
use crate::domain::document::Entity;
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::account_view::{AccountView, account_response};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::indexed::{WaitForIndexed, WaitForParam, wait_for, wait_until_indexed};
use crate::http::paging::PageRequest;
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, respond};
use crate::service::compliance::{self as service, GrantOverride, OverrideRow};
use crate::state::AppState;

/// What the guard says about one channel now.
#[derive(Serialize, utoipa::ToSchema)]
struct ChannelStanding {
    channel: Channel,
    allowed: bool,
    /// The rule that refuses it (null when allowed).
    rule: Option<&'static str>,
    /// When it opens again (null when allowed, or when waiting does not open it).
    next_allowed_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ContactStanding {
    account_id: Uuid,
    channels: Vec<ChannelStanding>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OverrideView {
    id: Uuid,
    account_id: Uuid,
    channel: Channel,
    reason: String,
    granted_by: Uuid,
    created_at: DateTime<Utc>,
    /// Unused after this, the override no longer lets an attempt through.
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    /// The attempt it let through.
    activity_id: Option<Uuid>,
    /// The rule the attempt would otherwise have broken.
    rule: Option<String>,
}

impl From<OverrideRow> for OverrideView {
    fn from(row: OverrideRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            channel: row.channel,
            reason: row.reason,
            granted_by: row.granted_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            activity_id: row.activity_id,
            rule: row.rule,
        }
    }
}

/// `GET /contact-overrides` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OverrideQuery {
    /// Only this account's overrides.
    account_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let standing = warp::path!("accounts" / Uuid / "contact")
        .and(warp::get())
        .and(caller.clone())
        .then(standing);
    let grant = warp::path!("accounts" / Uuid / "contact-overrides")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<GrantOverride>(limit))
        .then(grant);
    let list = warp::path!("contact-overrides")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let verify = warp::path!("accounts" / Uuid / "dispute-verification")
        .and(warp::post())
        .and(caller)
        .and(wait_for())
        .then(verify);
    standing.or(grant).unify().or(list).unify().or(verify).unify().map(respond).boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(standing, grant, list, verify))]
pub struct Api;

/// Whether each channel may contact the debtor now
#[utoipa::path(get, path = "/api/v1/accounts/{id}/contact", tag = "compliance", operation_id = "contact_standing",
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "For each channel, whether an outbound attempt now would pass the guard", body = ContactStanding),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn standing(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let answers = service::standing_now(state.pool(), &caller, id, state.clock().now()).await?;
    let channels = answers
        .into_iter()
        .map(|(channel, answer)| match answer {
            Ok(()) => ChannelStanding {
                channel,
                allowed: true,
                rule: None,
                next_allowed_at: None,
            },
            Err(refusal) => ChannelStanding {
                channel,
                allowed: false,
                rule: Some(refusal.rule.as_str()),
                next_allowed_at: refusal.next_allowed_at,
            },
        })
        .collect();
    Ok(api::json(StatusCode::OK, &ContactStanding { account_id: id, channels }))
}

/// Override the contact guard once
#[utoipa::path(post, path = "/api/v1/accounts/{id}/contact-overrides", tag = "compliance", operation_id = "grant_contact_override",
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = GrantOverride,
    responses(
        (status = 201, description = "The override: the next attempt on its channel passes the guard, once, until it expires", body = OverrideView),
        (status = 403, description = "Only managers and admins override the guard"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn grant(id: Uuid, caller: Principal, state: AppState, body: GrantOverride) -> Result<Response> {
    let row = service::grant(state.pool(), &caller, id, body, state.clock().now()).await?;
    Ok(api::json(StatusCode::CREATED, &OverrideView::from(row)))
}

/// List contact-guard overrides
#[utoipa::path(get, path = "/api/v1/contact-overrides", tag = "compliance", operation_id = "list_contact_overrides",
    params(OverrideQuery),
    responses(
        (status = 200, description = "Overrides, newest first", body = ListPage<OverrideView>),
        (status = 403, description = "Only managers and admins read overrides"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: OverrideQuery = parse_query(&raw)?;
    let page = PageRequest::new(query.page_size, query.cursor.as_deref())?;
    let (rows, total) = service::list(state.pool(), &caller, query.account_id, page.after, page.fetch()).await?;
    let body = page.finish(rows, total, |o| (o.created_at, o.id), |o| Ok(OverrideView::from(o)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Verify an account's dispute
#[utoipa::path(post, path = "/api/v1/accounts/{id}/dispute-verification", tag = "compliance", operation_id = "verify_dispute",
    params(("id" = Uuid, Path, description = "The disputed account"), WaitForParam),
    responses(
        (status = 200, description = "The account; its dispute no longer blocks contact", body = AccountView),
        (status = 403, description = "Only managers and admins verify disputes"),
        (status = 409, description = "`not_disputed`: the account is not disputed"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %id))]
async fn verify(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    let doc = service::verify_dispute(state.pool(), &caller, id).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, id, doc.search_version)]).await?;
    account_response(StatusCode::OK, doc)
}
