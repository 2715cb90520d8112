//! `/api/v1/queue`: an agent's accounts in the order to work them, and claiming the next.

use chrono::{DateTime, Utc};
use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::compliance::Channel;
use crate::domain::principal::Principal;
use crate::domain::queue::{Hold, Reason};
use crate::error::Result;
use crate::http::account_view::AccountView;
use crate::http::filters::{principal, with_state};
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, no_content, respond};
use crate::lists::queue::{self as queue_list, NextParams, QueueParams, QueueRequest};
use crate::service::portfolios;
use crate::service::queue::{self as service, Ask, Explanation, Owner};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct QueueItem {
    /// Why the account is where it is.
    reason: Reason,
    account: AccountView,
}

/// What a queue page adds to a list: why the queue holds what it holds.
#[derive(Serialize, utoipa::ToSchema)]
struct QueueMore {
    /// On the first page (no `cursor`): how many accounts the contact guard holds back on
    /// the channel now and by what, when the earliest held-back debtor's window opens,
    /// and which channels have work now. Null on later pages.
    explanation: Option<ExplanationView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ExplanationView {
    /// The channel asked for.
    channel: Channel,
    /// The queue's accounts whatever the guard says: live, and neither paid, settled nor closed.
    workable: u64,
    /// Of those, how many the guard holds back on the channel now (the sum of `held_back_by`).
    held_back: u64,
    /// The held-back accounts by what holds them (only what holds some back).
    held_back_by: Vec<HoldCount>,
    /// When the first account held back by the calling hours (`outside_window`) becomes
    /// contactable, and that debtor's zone; null when the hours hold none back.
    window_opens: Option<WindowOpening>,
    /// Every channel with the number of the queue's accounts contactable on it now.
    channels: Vec<ChannelCount>,
    /// Of an agent's own queue: the team queue's unassigned accounts contactable on the
    /// channel now, which `POST /queue/next` claims once the agent's own are worked; null
    /// when the queue asked for is the team's.
    team_contactable: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct HoldCount {
    hold: Hold,
    accounts: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct WindowOpening {
    /// The instant (UTC).
    at: DateTime<Utc>,
    /// The debtor's IANA zone, in which `at` is the window's start (e.g. 08:00).
    zone: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ChannelCount {
    channel: Channel,
    accounts: u64,
}

impl From<Explanation> for ExplanationView {
    fn from(e: Explanation) -> Self {
        ExplanationView {
            channel: e.channel,
            workable: e.workable,
            held_back: e.held_back_total(),
            held_back_by: e
                .held_back
                .into_iter()
                .map(|(hold, accounts)| HoldCount { hold, accounts })
                .collect(),
            window_opens: e.opens.map(|o| WindowOpening { at: o.at, zone: o.zone }),
            channels: e
                .channels
                .into_iter()
                .map(|(channel, accounts)| ChannelCount { channel, accounts })
                .collect(),
            team_contactable: e.team,
        }
    }
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
                                      next actions due, missed plan instalments, then by score; accounts the guard blocks \
                                      on the channel now are left out, and the first page's `explanation` says how many \
                                      and why, when calling hours open, and which channels have work now",
         body = ListPage<QueueItem, QueueMore>),
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
    let first = start.is_none();
    let ask = Ask {
        owner,
        channel,
        scope: portfolios::search_scope(state.pool(), &caller).await?,
        now,
    };
    let page = service::page(state.search().as_ref(), &ask, start, page_size).await?;
    let explanation = if first {
        let explained = service::explain(state.pool(), state.search().as_ref(), &ask, page.total).await?;
        Some(ExplanationView::from(explained))
    } else {
        None
    };
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
        more: QueueMore { explanation },
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
        params.skip,
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
