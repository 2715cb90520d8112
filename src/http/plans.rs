//! Payment plans: making one on an account, reading, listing and cancelling. Reads come
//! from SQL.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::document::Entity;
use crate::domain::plan::{CreatePlan, Frequency, InstalmentStatus, PlanStatus};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::indexed::WaitForParam;
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::raw_query;
use crate::http::{self as api, ListPage, respond};
use crate::lists::plans::{self as plan_list, PlanList, PlanListParams};
use crate::service::plans::{self as service, InstalmentRow, PlanRow};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub total: String,
    pub currency: String,
    pub frequency: Frequency,
    /// Monthly plans: the day instalments after the first fall on.
    pub day_of_month: Option<i16>,
    pub first_due_date: NaiveDate,
    pub status: PlanStatus,
    pub instalment_count: i64,
    /// Completed payments allocated to the instalments so far.
    pub paid_total: String,
    pub missed_count: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Only on a single plan's answers (create, read, cancel); lists leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instalments: Option<Vec<InstalmentView>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InstalmentView {
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: String,
    pub paid_amount: String,
    pub status: InstalmentStatus,
    pub paid_at: Option<DateTime<Utc>>,
    pub missed_at: Option<DateTime<Utc>>,
}

impl PlanView {
    fn new(row: PlanRow, instalments: Option<Vec<InstalmentRow>>) -> Self {
        let currency = row.currency;
        let instalments = instalments.map(|rows| {
            rows.into_iter()
                .map(|i| InstalmentView {
                    seq: i.seq,
                    due_date: i.due_date,
                    amount: currency.format(i.amount),
                    paid_amount: currency.format(i.paid_amount),
                    status: InstalmentStatus::of(i.amount, i.paid_amount, i.missed_at.is_some()),
                    paid_at: i.paid_at,
                    missed_at: i.missed_at,
                })
                .collect()
        });
        Self {
            id: row.id,
            account_id: row.account_id,
            total: currency.format(row.total),
            currency: currency.code().to_owned(),
            frequency: row.frequency,
            day_of_month: row.day_of_month,
            first_due_date: row.first_due_date,
            status: row.status,
            instalment_count: row.instalment_count,
            paid_total: currency.format(row.paid_total),
            missed_count: row.missed_count,
            created_by: row.created_by,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
            instalments,
        }
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let create = warp::path!("accounts" / Uuid / "plans")
        .and(warp::post())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<CreatePlan>(limit))
        .then(create);
    let for_account = warp::path!("accounts" / Uuid / "plans")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(for_account);
    let list = warp::path!("plans")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let get = warp::path!("plans" / Uuid).and(warp::get()).and(caller.clone()).then(get);
    let cancel = warp::path!("plans" / Uuid / "cancel")
        .and(warp::post())
        .and(caller)
        .and(wait_for())
        .then(cancel);
    create
        .or(for_account)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(cancel)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, for_account, list, get, cancel))]
pub struct Api;

/// Make a payment plan
#[utoipa::path(post, path = "/api/v1/accounts/{id}/plans", tag = "plans", operation_id = "create_plan",
    params(("id" = Uuid, Path, description = "The account the plan pays off"), WaitForParam),
    request_body = CreatePlan,
    responses(
        (status = 201, description = "The active plan with its instalments", body = PlanView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`plan_already_active`: the account has an active plan"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn create(account_id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: CreatePlan) -> Result<Response> {
    let planned = service::make(state.pool(), &caller, account_id, body, state.clock().now()).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, account_id, planned.account_version)]).await?;
    let view = PlanView::new(planned.row, Some(planned.instalments));
    Ok(api::json(StatusCode::CREATED, &view))
}

/// An account's payment plans
#[utoipa::path(get, path = "/api/v1/accounts/{id}/plans", tag = "plans", operation_id = "list_account_plans",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's plans, newest first (without instalments)", body = ListPage<PlanView>),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn for_account(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::for_account(state.pool(), &caller, account_id, page.window()).await?;
    plans_page(page, rows, total)
}

/// List payment plans
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", operation_id = "list_plans",
    params(PlanListParams),
    responses(
        (status = 200, description = "Plans of live accounts, newest first (without instalments)", body = ListPage<PlanView>),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let PlanList { filter, page_size, cursor } = plan_list::parse(&raw, &caller)?;
    let page = PageRequest::new(Some(page_size), cursor.as_deref())?;
    let (rows, total) = service::list(state.pool(), &caller, &filter, page.window()).await?;
    plans_page(page, rows, total)
}

fn plans_page(page: PageRequest, rows: Vec<PlanRow>, total: i64) -> Result<Response> {
    let body = page.finish(rows, total, |p| (p.created_at, p.id), |p| Ok(PlanView::new(p, None)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Read a payment plan
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", operation_id = "get_plan",
    params(("id" = Uuid, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "The plan with its instalments", body = PlanView),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(plan_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let (row, instalments) = service::get(state.pool(), &caller, id).await?;
    let view = PlanView::new(row, Some(instalments));
    Ok(api::json(StatusCode::OK, &view))
}

/// Cancel a payment plan
#[utoipa::path(post, path = "/api/v1/plans/{id}/cancel", tag = "plans", operation_id = "cancel_plan",
    params(("id" = Uuid, Path, description = "The plan's id"), WaitForParam),
    responses(
        (status = 200, description = "The cancelled plan with its instalments", body = PlanView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`invalid_transition`: the plan is no longer active"),
    ))]
#[tracing::instrument(skip_all, fields(plan_id = %id))]
async fn cancel(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    let cancelled = service::cancel(state.pool(), &caller, id).await?;
    let account = (Entity::Account, cancelled.row.account_id, cancelled.account_version);
    wait_until_indexed(&state, wait, &[account]).await?;
    let view = PlanView::new(cancelled.row, Some(cancelled.instalments));
    Ok(api::json(StatusCode::OK, &view))
}
