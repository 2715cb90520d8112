//! `/api/v1/portfolios`: creditor clients' placements and who is granted to work them.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::compliance::{Policy, PortfolioPolicy};
use crate::domain::portfolio::{NewGrant, NewPortfolio, PortfolioPatch};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, no_content, respond};
use crate::service::portfolios::{self as service, ContactPolicy, GrantRow, PortfolioRow};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct PortfolioView {
    id: Uuid,
    name: String,
    client: Option<String>,
    placement_date: Option<NaiveDate>,
    /// Percent, as a decimal string.
    #[schema(value_type = Option<String>, example = "18.5")]
    commission_rate: Option<Decimal>,
    /// Days past due after which an active account becomes delinquent (`null`: the
    /// server's `OVERDUE_AFTER_DAYS`).
    delinquent_after_days: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Set when the portfolio was deleted (it can be restored).
    deleted_at: Option<DateTime<Utc>>,
}

impl From<PortfolioRow> for PortfolioView {
    fn from(row: PortfolioRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            client: row.client,
            placement_date: row.placement_date,
            commission_rate: row.commission_rate.map(|r| r.normalize()),
            delinquent_after_days: row.delinquent_after_days,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct GrantView {
    id: Uuid,
    portfolio_id: Uuid,
    /// The user granted, or null for a team grant.
    user_id: Option<Uuid>,
    user_name: Option<String>,
    /// The team granted (every member of it), or null for a user grant.
    team: Option<String>,
    granted_at: DateTime<Utc>,
}

impl From<GrantRow> for GrantView {
    fn from(row: GrantRow) -> Self {
        Self {
            id: row.id,
            portfolio_id: row.portfolio_id,
            user_id: row.user_id,
            user_name: row.user_name,
            team: row.team,
            granted_at: row.granted_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ContactPolicyView {
    portfolio_id: Uuid,
    /// What the portfolio sets of its own; null fields follow the agency's policy.
    own: PortfolioPolicy,
    /// The policy the guard applies to the portfolio's accounts.
    in_force: Policy,
    /// The agency's policy, which each field `own` leaves null follows.
    agency: Policy,
}

impl ContactPolicyView {
    fn new(portfolio_id: Uuid, policy: ContactPolicy) -> Self {
        Self {
            portfolio_id,
            own: policy.own,
            in_force: policy.in_force,
            agency: policy.agency,
        }
    }
}

/// `GET /portfolios` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PortfolioQuery {
    /// Deleted portfolios too.
    #[serde(default)]
    include_deleted: bool,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /portfolios/{id}` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OnePortfolioQuery {
    /// A deleted portfolio too (otherwise 404, as after any `DELETE`).
    #[serde(default)]
    include_deleted: bool,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("portfolios")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let create = warp::path!("portfolios")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<NewPortfolio>(limit))
        .then(create);
    let get = warp::path!("portfolios" / Uuid)
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(get);
    let update = warp::path!("portfolios" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(json_body::<PortfolioPatch>(limit))
        .then(update);
    let delete = warp::path!("portfolios" / Uuid)
        .and(warp::delete())
        .and(caller.clone())
        .then(delete);
    let restore = warp::path!("portfolios" / Uuid / "restore")
        .and(warp::post())
        .and(caller.clone())
        .then(restore);
    let grants = warp::path!("portfolios" / Uuid / "grants")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(grants);
    let grant = warp::path!("portfolios" / Uuid / "grants")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<NewGrant>(limit))
        .then(grant);
    let contact_policy = warp::path!("portfolios" / Uuid / "contact-policy")
        .and(warp::get())
        .and(caller.clone())
        .then(contact_policy);
    let set_contact_policy = warp::path!("portfolios" / Uuid / "contact-policy")
        .and(warp::put())
        .and(caller.clone())
        .and(json_body::<PortfolioPolicy>(limit))
        .then(set_contact_policy);
    let revoke = warp::path!("portfolios" / Uuid / "grants" / Uuid)
        .and(warp::delete())
        .and(caller)
        .then(revoke);
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(restore)
        .unify()
        .or(grants)
        .unify()
        .or(grant)
        .unify()
        .or(revoke)
        .unify()
        .or(contact_policy)
        .unify()
        .or(set_contact_policy)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    get,
    update,
    delete,
    restore,
    grants,
    grant,
    revoke,
    contact_policy,
    set_contact_policy
))]
pub struct Api;

/// List portfolios
#[utoipa::path(get, path = "/api/v1/portfolios", tag = "portfolios", operation_id = "list_portfolios",
    params(PortfolioQuery),
    responses(
        (status = 200, description = "Portfolios by name", body = ListPage<PortfolioView>),
        (status = 403, description = "Managers and admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: PortfolioQuery = parse_query(&raw)?;
    let page: PageRequest<(String, Uuid)> = PageRequest::new(query.page_size, query.cursor.as_deref())?;
    let (rows, total) = service::list(state.pool(), &caller, query.include_deleted, page.window()).await?;
    let body = page.finish(rows, total, |p| (p.sort_name.clone(), p.id), |p| Ok(PortfolioView::from(p)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Create a portfolio
#[utoipa::path(post, path = "/api/v1/portfolios", tag = "portfolios", operation_id = "create_portfolio",
    request_body = NewPortfolio,
    responses(
        (status = 201, description = "The portfolio", body = PortfolioView),
        (status = 403, description = "Admins only"),
        (status = 409, description = "`conflict`: a live portfolio has this name"),
        (status = 422, description = "`validation_failed`, naming each field"),
    ))]
#[tracing::instrument(skip_all)]
async fn create(caller: Principal, state: AppState, body: NewPortfolio) -> Result<Response> {
    let row = service::create(state.pool(), &caller, body).await?;
    Ok(api::json(StatusCode::CREATED, &PortfolioView::from(row)))
}

/// Read a portfolio
#[utoipa::path(get, path = "/api/v1/portfolios/{id}", tag = "portfolios", operation_id = "get_portfolio",
    params(("id" = Uuid, Path, description = "The portfolio's id"), OnePortfolioQuery),
    responses(
        (status = 200, description = "The portfolio (a deleted one only when `include_deleted`)", body = PortfolioView),
        (status = 403, description = "Managers and admins only"),
        (status = 404, description = "`not_found`: none, or deleted and not asked for"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: OnePortfolioQuery = parse_query(&raw)?;
    let row = service::get(state.pool(), &caller, id, query.include_deleted).await?;
    Ok(api::json(StatusCode::OK, &PortfolioView::from(row)))
}

/// Change a portfolio
#[utoipa::path(patch, path = "/api/v1/portfolios/{id}", tag = "portfolios", operation_id = "update_portfolio",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    request_body = PortfolioPatch,
    responses(
        (status = 200, description = "The portfolio after the change", body = PortfolioView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`conflict`: the new name is taken, or the portfolio is deleted"),
        (status = 422, description = "`validation_failed`, naming each field"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn update(id: Uuid, caller: Principal, state: AppState, patch: PortfolioPatch) -> Result<Response> {
    let row = service::update(state.pool(), &caller, id, patch).await?;
    Ok(api::json(StatusCode::OK, &PortfolioView::from(row)))
}

/// Delete a portfolio
#[utoipa::path(delete, path = "/api/v1/portfolios/{id}", tag = "portfolios", operation_id = "delete_portfolio",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    responses(
        (status = 200, description = "The portfolio, marked deleted; it keeps its row and can be restored", body = PortfolioView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`conflict`: already deleted"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn delete(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::set_deleted(state.pool(), &caller, id, true).await?;
    Ok(api::json(StatusCode::OK, &PortfolioView::from(row)))
}

/// Restore a deleted portfolio
#[utoipa::path(post, path = "/api/v1/portfolios/{id}/restore", tag = "portfolios", operation_id = "restore_portfolio",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    responses(
        (status = 200, description = "The portfolio, live again", body = PortfolioView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`conflict`: not deleted, or a live portfolio took its name meanwhile"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn restore(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::set_deleted(state.pool(), &caller, id, false).await?;
    Ok(api::json(StatusCode::OK, &PortfolioView::from(row)))
}

/// List a portfolio's grants
#[utoipa::path(get, path = "/api/v1/portfolios/{id}/grants", tag = "portfolios", operation_id = "list_portfolio_grants",
    params(("id" = Uuid, Path, description = "The portfolio's id"), PageQuery),
    responses(
        (status = 200, description = "Who is granted the portfolio, newest grant first", body = ListPage<GrantView>),
        (status = 403, description = "Managers and admins only"),
        (status = 404, description = "`not_found`"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn grants(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::grants(state.pool(), &caller, id, page.window()).await?;
    let body = page.finish(rows, total, |g| (g.granted_at, g.id), |g| Ok(GrantView::from(g)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Grant a portfolio to a user or a team
#[utoipa::path(post, path = "/api/v1/portfolios/{id}/grants", tag = "portfolios", operation_id = "grant_portfolio",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    request_body = NewGrant,
    responses(
        (status = 201, description = "The grant", body = GrantView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`conflict`: already granted to them, or the portfolio is deleted"),
        (status = 422, description = "`validation_failed`: name exactly one of `user_id` (a user who works accounts) and `team`"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn grant(id: Uuid, caller: Principal, state: AppState, body: NewGrant) -> Result<Response> {
    let row = service::grant(state.pool(), &caller, id, body).await?;
    Ok(api::json(StatusCode::CREATED, &GrantView::from(row)))
}

/// Revoke a grant
#[utoipa::path(delete, path = "/api/v1/portfolios/{id}/grants/{grant_id}", tag = "portfolios", operation_id = "revoke_portfolio_grant",
    params(("id" = Uuid, Path, description = "The portfolio's id"), ("grant_id" = Uuid, Path, description = "The grant's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn revoke(id: Uuid, grant_id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    service::revoke(state.pool(), &caller, id, grant_id).await?;
    Ok(no_content())
}

/// Read a portfolio's contact policy
#[utoipa::path(get, path = "/api/v1/portfolios/{id}/contact-policy", tag = "portfolios", operation_id = "get_portfolio_contact_policy",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    responses(
        (status = 200, description = "What the portfolio sets of its own, and the policy in force for its accounts", body = ContactPolicyView),
        (status = 403, description = "Managers and admins only"),
        (status = 404, description = "`not_found`"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn contact_policy(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let policy = service::contact_policy(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &ContactPolicyView::new(id, policy)))
}

/// Set a portfolio's contact policy
///
/// Replaces what the portfolio sets of its own: each field given replaces the agency's,
/// each absent or null one follows it. `{}` makes the portfolio follow the agency's
/// policy entirely. The portfolio's accounts are indexed again when it changes.
#[utoipa::path(put, path = "/api/v1/portfolios/{id}/contact-policy", tag = "portfolios", operation_id = "set_portfolio_contact_policy",
    params(("id" = Uuid, Path, description = "The portfolio's id")),
    request_body = PortfolioPolicy,
    responses(
        (status = 200, description = "The portfolio's contact policy after the change", body = ContactPolicyView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`conflict`: the portfolio is deleted"),
        (status = 422, description = "`validation_failed`, naming each field"),
    ))]
#[tracing::instrument(skip_all, fields(portfolio_id = %id))]
async fn set_contact_policy(id: Uuid, caller: Principal, state: AppState, body: PortfolioPolicy) -> Result<Response> {
    let policy = service::set_contact_policy(state.pool(), &caller, id, body).await?;
    Ok(api::json(StatusCode::OK, &ContactPolicyView::new(id, policy)))
}
