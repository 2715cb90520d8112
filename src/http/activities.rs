//! Activities (the contact timeline) and promises to pay.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::activity::{ActivityType, CreateActivity, Direction, Outcome};
use crate::domain::document::Entity;
use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::promise::{CreatePromise, PromiseStatus};
use crate::domain::wrap_up::WrapUp;
use crate::error::Result;
use crate::http::ListPage;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::replay;
use crate::http::indexed::WaitForParam;
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::lists::activities::ActivityListParams;
use crate::lists::activities::{self as activity_list, ActivityList};
use crate::service::activities::{self as service_activities, ActivityRow};
use crate::service::payments::PaymentView;
use crate::service::promises::{self as service_promises, PromiseRow};
use crate::service::wrap_up::{self as service_wrap_up, Answer, WrappedUp};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    pub account_id: Uuid,
    #[serde(rename = "type")]
    pub kind: ActivityType,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
    pub notes: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<ActivityRow> for ActivityView {
    fn from(row: ActivityRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            kind: row.kind,
            direction: row.direction,
            outcome: row.outcome,
            notes: row.notes,
            occurred_at: row.occurred_at,
            next_action_at: row.next_action_at,
            agent_id: row.agent_id,
            created_at: row.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PromiseView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub due_date: NaiveDate,
    pub status: PromiseStatus,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl PromiseView {
    pub fn new(row: PromiseRow, currency: Currency) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            amount: currency.format(row.amount),
            currency: currency.code().to_owned(),
            due_date: row.due_date,
            status: row.status,
            created_by: row.created_by,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        }
    }
}

/// What a wrap-up recorded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WrapUpView {
    pub activity: ActivityView,
    pub promise: Option<PromiseView>,
    pub payment: Option<PaymentView>,
    /// The account's version after the wrap-up (`wait_for=indexed` waits for it).
    pub account_version: i64,
}

impl WrapUpView {
    fn new(done: &WrappedUp) -> Self {
        Self {
            activity: ActivityView::from(done.activity.clone()),
            promise: done.promise.clone().map(|p| PromiseView::new(p, done.currency)),
            payment: done.payment.clone().map(PaymentView::from),
            account_version: done.account_version,
        }
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let log = warp::path!("accounts" / Uuid / "activities")
        .and(warp::post())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<CreateActivity>(limit))
        .then(log);
    let timeline = warp::path!("accounts" / Uuid / "activities")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(timeline);
    let list = warp::path!("activities")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let promise = warp::path!("accounts" / Uuid / "promises")
        .and(warp::post())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<CreatePromise>(limit))
        .then(promise);
    let promises = warp::path!("accounts" / Uuid / "promises")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(promises);
    let wrap_up = warp::path!("accounts" / Uuid / "wrap-up")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(wait_for())
        .and(json_body::<WrapUp>(limit))
        .then(wrap_up);
    let cancel = warp::path!("promises" / Uuid / "cancel")
        .and(warp::post())
        .and(caller)
        .and(wait_for())
        .then(cancel);
    log.or(timeline)
        .unify()
        .or(list)
        .unify()
        .or(promise)
        .unify()
        .or(promises)
        .unify()
        .or(cancel)
        .unify()
        .or(wrap_up)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(log, timeline, list, promise, promises, cancel, wrap_up))]
pub struct Api;

/// Log a contact on an account
#[utoipa::path(post, path = "/api/v1/accounts/{id}/activities", tag = "activities", operation_id = "log_activity",
    params(("id" = Uuid, Path, description = "The account contacted"), WaitForParam),
    request_body = CreateActivity,
    responses(
        (status = 201, description = "The activity", body = ActivityView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`contact_blocked`: the contact-compliance guard refuses this outbound attempt; \
                                      `rule`, `channel` and `next_allowed_at` say why and until when. Nothing is recorded"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn log(account_id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: CreateActivity) -> Result<Response> {
    let (row, version) = service_activities::log(state.pool(), &caller, account_id, body, state.clock().now()).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, account_id, version)]).await?;
    Ok(api::json(StatusCode::CREATED, &ActivityView::from(row)))
}

/// An account's contact timeline
#[utoipa::path(get, path = "/api/v1/accounts/{id}/activities", tag = "activities", operation_id = "list_account_activities",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's contact timeline, newest first", body = ListPage<ActivityView>),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn timeline(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service_activities::for_account(state.pool(), &caller, account_id, page.window()).await?;
    let body = page.finish(rows, total, |a| (a.occurred_at, a.id), |a| Ok(ActivityView::from(a)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// List activities across accounts
#[utoipa::path(get, path = "/api/v1/activities", tag = "activities", operation_id = "list_activities",
    params(ActivityListParams),
    responses(
        (status = 200, description = "Activities across accounts, newest first", body = ListPage<ActivityView>),
        (status = 403, description = "The role may not read accounts, or `include_deleted` without the right"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let ActivityList { filter, page_size, cursor } = activity_list::parse(&raw, &caller)?;
    let page = PageRequest::new(Some(page_size), cursor.as_deref())?;
    let (rows, total) = service_activities::list(state.pool(), &caller, &filter, page.window()).await?;
    let body = page.finish(rows, total, |a| (a.occurred_at, a.id), |a| Ok(ActivityView::from(a)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Record a promise to pay
#[utoipa::path(post, path = "/api/v1/accounts/{id}/promises", tag = "promises", operation_id = "create_promise",
    params(("id" = Uuid, Path, description = "The account that promises"), WaitForParam),
    request_body = CreatePromise,
    responses(
        (status = 201, description = "The open promise", body = PromiseView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`promise_already_open`, or the account's status allows no promise"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn promise(account_id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: CreatePromise) -> Result<Response> {
    let made = service_promises::make(state.pool(), &caller, account_id, body, state.clock().now()).await?;
    wait_until_indexed(&state, wait, &[(Entity::Account, account_id, made.account_version)]).await?;
    Ok(api::json(StatusCode::CREATED, &PromiseView::new(made.row, made.currency)))
}

/// An account's promises to pay
#[utoipa::path(get, path = "/api/v1/accounts/{id}/promises", tag = "promises", operation_id = "list_account_promises",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's promises, newest first", body = ListPage<PromiseView>),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn promises(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total, currency) = service_promises::for_account(state.pool(), &caller, account_id, page.window()).await?;
    let body = page.finish(rows, total, |p| (p.created_at, p.id), |p| Ok(PromiseView::new(p, currency)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Cancel an open promise
#[utoipa::path(post, path = "/api/v1/promises/{id}/cancel", tag = "promises", operation_id = "cancel_promise",
    params(("id" = Uuid, Path, description = "The promise's id"), WaitForParam),
    responses(
        (status = 200, description = "The cancelled promise", body = PromiseView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`invalid_transition`: the promise is no longer open"),
    ))]
#[tracing::instrument(skip_all, fields(promise_id = %id))]
async fn cancel(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    let cancelled = service_promises::cancel(state.pool(), &caller, id, state.clock().now()).await?;
    let account = (Entity::Account, cancelled.row.account_id, cancelled.account_version);
    wait_until_indexed(&state, wait, &[account]).await?;
    Ok(api::json(StatusCode::OK, &PromiseView::new(cancelled.row, cancelled.currency)))
}

/// Wrap up a call
#[utoipa::path(post, path = "/api/v1/accounts/{id}/wrap-up", tag = "activities", operation_id = "wrap_up",
    params(("id" = Uuid, Path, description = "The account the call was about"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key answers the first result"),
        WaitForParam),
    request_body = WrapUp,
    responses(
        (status = 201, description = "The contact, and the promise and payment made on it, recorded together; \
                                      `idempotency-replayed: true` on a replay", body = WrapUpView),
        (status = 403, description = "The role may not work this account (an agent wraps up only an inbound contact and a payment \
                                      on an account that is not theirs)"),
        (status = 409, description = "`contact_blocked` or `promise_already_open`; or `conflict`: the call named (`call_id`) is wrapped up \
                                      already or never reached the debtor. Nothing is recorded"),
        (status = 422, description = "`validation_failed` (fields named `contact.…`, `promise.…`, `payment.…`), `currency_mismatch` \
                                      or `overpayment`: nothing is recorded"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn wrap_up(
    account_id: Uuid,
    caller: Principal,
    state: AppState,
    key: Option<String>,
    wait: WaitForIndexed,
    body: WrapUp,
) -> Result<Response> {
    let view = |done: &WrappedUp| Ok(serde_json::to_value(WrapUpView::new(done)).map_err(anyhow::Error::from)?);
    let now = state.clock().now();
    let done = match service_wrap_up::record(state.pool(), &caller, account_id, key.as_deref(), body, now, view).await? {
        Answer::Fresh(done) => *done,
        Answer::Replayed(first) => return Ok(replay(first)),
    };
    let mut documents = vec![(Entity::Account, account_id, done.account_version)];
    if let Some(payment) = &done.payment {
        documents.push((Entity::Payment, payment.id, payment.search_version));
    }
    wait_until_indexed(&state, wait, &documents).await?;
    Ok(api::json(StatusCode::CREATED, &WrapUpView::new(&done)))
}
