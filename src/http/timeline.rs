//! `GET /api/v1/accounts/{id}/timeline`: everything that happened to an account in one
//! newest-first keyset list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::timeline::TimelineKind;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::ListPage;
use crate::http::filters::{principal, with_state};
use crate::http::paging::PageRequest;
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, respond};
use crate::service::timeline::{self as service, Timeline, TimelineRow};
use crate::state::AppState;

/// One thing that happened to the account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TimelineEntryView {
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// Who did it; null for the system (a scheduler, a rule, a statement outside the API).
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    /// In the account's currency, for payments, promises, plans and missed instalments.
    pub amount: Option<String>,
    pub currency: Option<String>,
    /// The kind's own details (docs/features/accounts.md#timeline): a contact's type,
    /// direction, outcome and notes; a payment's method and status; an edit's fields with
    /// their values before and after; and so on.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl TimelineEntryView {
    fn new(row: TimelineRow, currency: Currency) -> Self {
        Self {
            at: row.at,
            kind: row.kind,
            actor_id: row.actor,
            actor_name: row.actor_name,
            amount: row.amount.map(|a| currency.format(a)),
            currency: row.amount.map(|_| currency.code().to_owned()),
            data: row.data,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// Only these kinds, comma-separated (`contact,payment`); every kind when absent.
    kind: Option<String>,
    /// Rows per page.
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The kinds `text` names, comma-separated; an unknown one is named in the 400.
fn kinds(text: Option<&str>) -> Result<Vec<TimelineKind>> {
    let Some(text) = text else { return Ok(Vec::new()) };
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            TimelineKind::parse(k).ok_or_else(|| {
                let known: Vec<&str> = TimelineKind::ALL.iter().map(|k| k.as_str()).collect();
                Error::with_fields(
                    Code::InvalidParameter,
                    format!("kind {k:?} is not a timeline kind; use one of {}", known.join(", ")),
                    vec![FieldError::new("kind", format!("one of {}", known.join(", ")))],
                )
            })
        })
        .collect()
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("accounts" / Uuid / "timeline")
        .and(warp::get())
        .and(caller)
        .and(raw_query())
        .then(timeline)
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(timeline))]
pub struct Api;

/// An account's timeline
#[utoipa::path(get, path = "/api/v1/accounts/{id}/timeline", tag = "accounts", operation_id = "account_timeline",
    params(("id" = Uuid, Path, description = "The account's id"), TimelineQuery),
    responses(
        (status = 200, description = "Contacts, payments, promises, plans and their events, overrides, assignments, edits \
                                      and other agents' reads of the account, newest first", body = ListPage<TimelineEntryView>),
        (status = 403, description = "The role may not read this account in full (an agent reads others' accounts' summary only)"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn timeline(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: TimelineQuery = parse_query(&raw)?;
    let kinds = kinds(query.kind.as_deref())?;
    let page = PageRequest::<(DateTime<Utc>, String)>::new(query.page_size, query.cursor.as_deref())?;
    let Timeline { rows, total, currency } = service::page(state.pool(), &caller, account_id, &kinds, page.window()).await?;
    let body = page.finish(rows, total, |e| (e.at, e.key.clone()), |e| Ok(TimelineEntryView::new(e, currency)))?;
    Ok(api::json(StatusCode::OK, &body))
}
