//! `POST /api/v1/accounts/{id}/wrap-up`: the end of a call in one request.

use serde::Serialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::document::Entity;
use crate::domain::principal::Principal;
use crate::domain::wrap_up::WrapUp;
use crate::error::Result;
use crate::http::activities::{ActivityView, PromiseView};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::replay;
use crate::http::indexed::{WaitForIndexed, WaitForParam, wait_for, wait_until_indexed};
use crate::http::{self as api, respond};
use crate::service::payments::PaymentView;
use crate::service::wrap_up::{self as service, Answer, WrappedUp};
use crate::state::AppState;

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
    warp::path!("accounts" / Uuid / "wrap-up")
        .and(warp::post())
        .and(caller)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(wait_for())
        .and(json_body::<WrapUp>(limit))
        .then(wrap_up)
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(wrap_up))]
pub struct Api;

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
        (status = 409, description = "`contact_blocked` or `promise_already_open`: nothing is recorded"),
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
    let done = match service::record(state.pool(), &caller, account_id, key.as_deref(), body, now, view).await? {
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
