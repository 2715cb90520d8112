//! `/api/v1/queue`: an agent's accounts in the order to work them, and claiming the next.

use chrono::{DateTime, Utc};
use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::compliance::Channel;
use crate::domain::principal::Principal;
use crate::domain::queue::Reason;
use crate::error::Result;
use crate::http::account_view::AccountView;
use crate::http::filters::{principal, with_state};
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, no_content, respond};
use crate::lists::queue::{self as queue_list, NextParams, QueueParams, QueueRequest};
use crate::service::queue::{self as service, Owner};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct QueueItem {
    /// Why the account is where it is.
    reason: Reason,
    account: AccountView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ClaimedView {
    reason: Reason,
    /// The account is the caller's alone until then, or until they log an activity.
    claim_expires_at: DateTime<Utc>,
    account: AccountView,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("queue")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let next = warp::path!("queue" / "next")
        .and(warp::post())
        .and(caller)
        .and(raw_query())
        .then(next);
    list.or(next).unify().map(respond).boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, next))]
pub struct Api;

/// My work queue
#[utoipa::path(get, path = "/api/v1/queue", tag = "queue", operation_id = "work_queue",
    params(QueueParams),
    responses(
        (status = 200, description = "The queue from the index: broken promises due yesterday, promises due today, \
                                      next actions due, then by score; accounts the guard blocks on the channel now are left out",
         body = ListPage<QueueItem>),
        (status = 403, description = "The role does not work accounts, or another agent's or the team queue without the right"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let QueueRequest {
        agent,
        channel,
        page_size,
        start,
    } = queue_list::parse(&raw, &caller)?;
    let owner = Owner::resolve(&caller, agent)?;
    let now = state.clock().now();
    let page = service::page(state.search().as_ref(), owner, channel, start, page_size, now).await?;
    let today = now.date_naive();
    let data = page
        .entries
        .into_iter()
        .map(|e| {
            Ok(QueueItem {
                reason: e.reason,
                account: AccountView::from_doc(e.doc, today)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let body = ListPage {
        data,
        total: page.total,
        next_cursor: page.next.map(queue_list::encode_cursor),
        facets: Default::default(),
        more: api::NoMore {},
    };
    Ok(api::json(StatusCode::OK, &body))
}

/// Claim the next account to work
#[utoipa::path(post, path = "/api/v1/queue/next", tag = "queue", operation_id = "claim_next",
    params(NextParams),
    responses(
        (status = 200, description = "The account claimed for the caller: the top of their queue, else of the team queue \
                                      (an unassigned account becomes theirs)", body = ClaimedView),
        (status = 204, description = "Nothing in the caller's or the team queue can be worked on the channel now"),
        (status = 403, description = "The role does not work accounts"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn next(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let params: NextParams = parse_query(&raw)?;
    let channel = params.channel.unwrap_or(Channel::Call);
    let seconds = state.settings().queue_claim_secs;
    let Some(claimed) = service::next(
        state.pool(),
        state.search().as_ref(),
        &caller,
        channel,
        seconds,
        state.clock().now(),
    )
    .await?
    else {
        return Ok(no_content());
    };
    let body = ClaimedView {
        reason: claimed.reason,
        claim_expires_at: claimed.expires_at,
        account: AccountView::from_doc(claimed.account, state.clock().now().date_naive())?,
    };
    Ok(api::json(StatusCode::OK, &body))
}
