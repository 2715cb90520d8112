//! Payments: record, read, change status along the state machine, simulate a
//! processor, search (index) and statistics (index aggregations).

use chrono::Utc;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::document::Entity;
use crate::domain::payment::{CreatePayment, PatchPayment, Simulate};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::replay;
use crate::http::indexed::WaitForParam;
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, ListPage, respond, with_etag};
use crate::lists::accounts::{encode_search_cursor, facets_json};
use crate::lists::payments::{PaymentListParams, PaymentStats, StatsParams};
use crate::service::payments::{self as service, PaymentView, Recorded, Simulated};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let create = warp::path!("accounts" / Uuid / "payments")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(wait_for())
        .and(json_body::<CreatePayment>(limit))
        .then(create);
    let for_account = warp::path!("accounts" / Uuid / "payments")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(for_account);
    let search = warp::path!("payments")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(search);
    let stats = warp::path!("payments" / "stats")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(stats);
    let get = warp::path!("payments" / Uuid).and(warp::get()).and(caller.clone()).then(get);
    let patch = warp::path!("payments" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<PatchPayment>(limit))
        .then(patch);
    let simulate = warp::path!("payments" / Uuid / "simulate")
        .and(warp::post())
        .and(caller)
        .and(json_body::<Simulate>(limit))
        .then(simulate);
    create
        .or(for_account)
        .unify()
        .or(search)
        .unify()
        .or(stats)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(simulate)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, for_account, search, stats, get, patch, simulate))]
pub struct Api;

/// Record a payment
#[utoipa::path(post, path = "/api/v1/accounts/{id}/payments", tag = "payments", operation_id = "create_payment",
    params(("id" = Uuid, Path, description = "The account paid"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key answers the first result"),
        WaitForParam),
    request_body = CreatePayment,
    responses(
        (status = 201, description = "The payment, with its ETag and Location; `idempotency-replayed: true` on a replay", body = PaymentView),
        (status = 403, description = "The role may not record payments on this account"),
        (status = 422, description = "`validation_failed`, `currency_mismatch`, `overpayment` or `idempotency_key_reused`"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn create(
    account_id: Uuid,
    caller: Principal,
    state: AppState,
    key: Option<String>,
    wait: WaitForIndexed,
    body: CreatePayment,
) -> Result<Response> {
    let recorded = service::record(state.pool(), state.payment_writer(), &caller, account_id, key.as_deref(), body).await?;
    let (row, account_version) = match recorded {
        Recorded::Fresh { payment, account_version } => (payment, account_version),
        Recorded::Replayed(first) => return Ok(replay(first)),
    };
    let (payment_id, version) = (row.id, row.search_version);
    let documents = [
        (Entity::Payment, payment_id, version),
        (Entity::Account, account_id, account_version),
    ];
    wait_until_indexed(&state, wait, &documents).await?;
    let view = PaymentView::from(row);
    let mut response = with_etag(api::json(StatusCode::CREATED, &view), version);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/payments/{payment_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// An account's payments
#[utoipa::path(get, path = "/api/v1/accounts/{id}/payments", tag = "payments", operation_id = "list_account_payments",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's payments from SQL, newest first", body = ListPage<PaymentView>),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn for_account(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::for_account(state.pool(), &caller, account_id, page.window()).await?;
    let body = page.finish(rows, total, |p| (p.received_at, p.id), |p| Ok(PaymentView::from(p)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Read a payment
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", operation_id = "get_payment",
    params(("id" = Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The payment from SQL, with its ETag", body = PaymentView),
        (status = 403, description = "The role may not read accounts"),
    ))]
#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::get(state.pool(), &caller, id).await?;
    let version = row.search_version;
    Ok(with_etag(api::json(StatusCode::OK, &PaymentView::from(row)), version))
}

/// Change a payment's status
#[utoipa::path(patch, path = "/api/v1/payments/{id}", tag = "payments", operation_id = "update_payment_status",
    params(("id" = Uuid, Path, description = "The payment's id"), WaitForParam),
    request_body = PatchPayment,
    responses(
        (status = 200, description = "The payment in its new status, with its ETag", body = PaymentView),
        (status = 403, description = "The role may not make this change"),
        (status = 409, description = "`invalid_transition`, with the statuses `allowed`"),
    ))]
#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn patch(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: PatchPayment) -> Result<Response> {
    let (row, account_version) = service::change_status(state.pool(), &caller, id, body).await?;
    wait_until_indexed(
        &state,
        wait,
        &[
            (Entity::Payment, row.id, row.search_version),
            (Entity::Account, row.account_id, account_version),
        ],
    )
    .await?;
    let version = row.search_version;
    Ok(with_etag(api::json(StatusCode::OK, &PaymentView::from(row)), version))
}

/// Simulate the processor's answer
#[utoipa::path(post, path = "/api/v1/payments/{id}/simulate", tag = "payments", operation_id = "simulate_payment",
    params(("id" = Uuid, Path, description = "A pending payment's id")),
    request_body = Simulate,
    responses(
        (status = 200, description = "The processor answered at once", body = PaymentView),
        (status = 202, description = "`delay`: the processor answers later; the payment stays pending meanwhile", body = PaymentView),
        (status = 403, description = "The role may not change payments"),
        (status = 409, description = "`invalid_transition`: the payment is not pending"),
    ))]
#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn simulate(id: Uuid, caller: Principal, state: AppState, body: Simulate) -> Result<Response> {
    match service::simulate(state.pool(), &caller, id, body.outcome).await? {
        Simulated::Now(row) => Ok(api::json(StatusCode::OK, &PaymentView::from(row))),
        Simulated::Later(row) => Ok(api::json(StatusCode::ACCEPTED, &PaymentView::from(row))),
    }
}

/// Search and list payments
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", operation_id = "search_payments",
    params(PaymentListParams),
    responses(
        (status = 200, description = "A page of payments from the index, with the account fields they were found by", body = ListPage<PaymentView, api::Counted>),
        (status = 403, description = "The role may not read accounts, or `include_deleted` without the right"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn search(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let (page, signature) = service::search(state.pool(), state.search().as_ref(), &caller, &raw).await?;
    let data: Vec<PaymentView> = page.hits.into_iter().map(|hit| PaymentView::from(hit.doc)).collect();
    let body = ListPage {
        data,
        total: page.total,
        next_cursor: page.next.map(|after| encode_search_cursor(after, &signature)),
        facets: facets_json(&page.facets),
        more: api::Counted {
            total_is_lower_bound: page.total_is_lower_bound,
        },
    };
    Ok(api::json(StatusCode::OK, &body))
}

/// Payment statistics
#[utoipa::path(get, path = "/api/v1/payments/stats", tag = "payments", operation_id = "payment_stats",
    params(StatsParams),
    responses(
        (status = 200, description = "Payment statistics per currency over local days", body = PaymentStats),
        (status = 403, description = "The role may not read accounts"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn stats(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let stats = service::stats(state.pool(), state.search().as_ref(), &caller, &raw, Utc::now()).await?;
    Ok(api::json(StatusCode::OK, &stats))
}
