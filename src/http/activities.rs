//! Activities (the contact timeline) and promises to pay.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::activity::{ActivityType, CreateActivity, Outcome, from_wire};
use crate::domain::document::Entity;
use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::promise::{CreatePromise, PromiseStatus};
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::paging::{PageRequest, decode_cursor};
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::lists::accounts::{Problems, list_values};
use crate::lists::values::{self, boolean, instant};
use crate::state::AppState;
use crate::store::accounts;
use crate::store::activities::{self, ActivityFilter, ActivityRow};
use crate::store::promises::{self, PromiseRow};

#[derive(Serialize)]
pub struct ActivityView {
    pub id: Uuid,
    pub account_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub direction: Option<String>,
    pub outcome: Option<String>,
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

#[derive(Serialize)]
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
    fn new(row: PromiseRow, currency: Currency) -> Result<Self> {
        let status = from_wire::<PromiseStatus>(&row.status)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("promise {} has status {}", row.id, row.status)))?;
        Ok(Self {
            id: row.id,
            account_id: row.account_id,
            amount: currency.format(row.amount),
            currency: currency.code().to_owned(),
            due_date: row.due_date,
            status,
            created_by: row.created_by,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        })
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
        .then(|id, p, s, w, b| async move { respond(log(id, p, s, w, b).await) });
    let timeline = warp::path!("accounts" / Uuid / "activities")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|id, p, s, q| async move { respond(timeline(id, p, s, q).await) });
    let list = warp::path!("activities")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|p, s, q| async move { respond(list(p, s, q).await) });
    let promise = warp::path!("accounts" / Uuid / "promises")
        .and(warp::post())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<CreatePromise>(limit))
        .then(|id, p, s, w, b| async move { respond(promise(id, p, s, w, b).await) });
    let promises = warp::path!("accounts" / Uuid / "promises")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|id, p, s, q| async move { respond(promises(id, p, s, q).await) });
    let cancel = warp::path!("promises" / Uuid / "cancel")
        .and(warp::post())
        .and(caller)
        .and(wait_for())
        .then(|id, p, s, w| async move { respond(cancel(id, p, s, w).await) });
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
        .boxed()
}

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn log(account_id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: CreateActivity) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    let activity = body.validate(Utc::now()).map_err(Error::validation)?;
    let mut tx = state.pool().begin().await?;
    let account = accounts::lock(&mut tx, account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    caller.require_work_on(account.assigned_agent_id)?;
    let row = activities::insert(&mut tx, account_id, &activity, caller.user_id).await?;
    if let Some(next) = activity.next_action_at {
        accounts::set_next_action(&mut tx, account_id, next, caller.user_id).await?;
    }
    let version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(activity_id = %row.id, "activity logged");
    wait_until_indexed(&state, wait, &[(Entity::Account, account_id, version)]).await?;
    Ok(api::json(StatusCode::CREATED, &ActivityView::from(row)))
}

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn timeline(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let page = PageRequest::from_query(&raw)?;
    accounts::get(state.pool(), account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    let filter = ActivityFilter {
        account_ids: vec![account_id],
        ..ActivityFilter::default()
    };
    let rows = activities::list(state.pool(), &filter, page.after, page.fetch()).await?;
    let total = activities::count(state.pool(), &filter).await?;
    let body = page.finish(rows, total, |a| (a.occurred_at, a.id), |a| Ok(ActivityView::from(a)))?;
    Ok(api::json(StatusCode::OK, &body))
}

#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let mut p = Problems::default();
    let mut filter = ActivityFilter::default();
    let (mut page_size, mut cursor) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.as_ref();
        match key.as_ref() {
            "account_id" => {
                for v in list_values(value) {
                    filter
                        .account_ids
                        .extend(p.parse("account_id", v, |v| Uuid::parse_str(v).ok(), "an account id"));
                }
            }
            "agent_id" => {
                filter.agent_id = match value.trim() {
                    "me" => Some(caller.user_id),
                    other => p.parse("agent_id", other, |v| Uuid::parse_str(v).ok(), "a user id or `me`"),
                }
            }
            "type" => {
                for v in list_values(value) {
                    let kind = p.parse("type", v, from_wire::<ActivityType>, "an activity type");
                    filter.types.extend(kind.map(|_| v.to_owned()));
                }
            }
            "outcome" => {
                for v in list_values(value) {
                    let outcome = p.parse("outcome", v, from_wire::<Outcome>, "an outcome code");
                    filter.outcomes.extend(outcome.map(|_| v.to_owned()));
                }
            }
            "from" => filter.from = p.parse("from", value, instant, values::DATE_OR_TIME),
            "to" => filter.to = p.parse("to", value, instant, values::DATE_OR_TIME),
            "include_deleted" => filter.include_deleted = p.parse("include_deleted", value, boolean, "true or false").unwrap_or(false),
            "page_size" => page_size = p.parse("page_size", value, |v| v.parse::<u32>().ok(), "a number"),
            "cursor" => cursor = Some(value.to_owned()),
            other => p.push(other, "unknown parameter"),
        }
    }
    if filter.account_ids.len() > 1000 {
        p.push("account_id", "at most 1000 accounts at once");
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        p.push("from", "must be before to");
    }
    p.finish()?;
    if filter.include_deleted {
        caller.require(Action::RestoreAccount)?;
    }
    if let Some(cursor) = &cursor {
        decode_cursor(cursor)?;
    }
    let page = PageRequest::new(page_size, cursor.as_deref())?;
    let rows = activities::list(state.pool(), &filter, page.after, page.fetch()).await?;
    let total = activities::count(state.pool(), &filter).await?;
    let body = page.finish(rows, total, |a| (a.occurred_at, a.id), |a| Ok(ActivityView::from(a)))?;
    Ok(api::json(StatusCode::OK, &body))
}

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn promise(account_id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: CreatePromise) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    let mut tx = state.pool().begin().await?;
    let account = accounts::lock(&mut tx, account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    caller.require_work_on(account.assigned_agent_id)?;
    let currency = account.currency()?;
    let tz: Tz = account.timezone.parse().unwrap_or(Tz::UTC);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let (amount, due_date) = body.validate(currency, today).map_err(Error::validation)?;
    let row = promises::insert(&mut tx, account_id, amount, due_date, caller.user_id).await?;
    let version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(promise_id = %row.id, "promise to pay recorded");
    wait_until_indexed(&state, wait, &[(Entity::Account, account_id, version)]).await?;
    Ok(api::json(StatusCode::CREATED, &PromiseView::new(row, currency)?))
}

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn promises(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let page = PageRequest::from_query(&raw)?;
    let account = accounts::get(state.pool(), account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    let currency = account.currency()?;
    let rows = promises::for_account(state.pool(), account_id, page.after, page.fetch()).await?;
    let total = promises::count_for_account(state.pool(), account_id).await?;
    let body = page.finish(rows, total, |p| (p.created_at, p.id), |p| PromiseView::new(p, currency))?;
    Ok(api::json(StatusCode::OK, &body))
}

#[tracing::instrument(skip_all, fields(promise_id = %id))]
async fn cancel(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    let existing = promises::get(state.pool(), id).await?.ok_or_else(|| Error::not_found("promise"))?;
    let mut tx = state.pool().begin().await?;
    let account = accounts::lock_including_deleted(&mut tx, existing.account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    caller.require_work_on(account.assigned_agent_id)?;
    let Some(row) = promises::cancel(&mut tx, id).await? else {
        return Err(Error::new(
            Code::InvalidTransition,
            format!("this promise is {}; only an open promise can be cancelled", existing.status),
        )
        .with_extension("allowed", serde_json::json!([])));
    };
    let version = accounts::version(&mut tx, account.id).await?;
    tx.commit().await?;
    tracing::info!("promise to pay cancelled");
    wait_until_indexed(&state, wait, &[(Entity::Account, account.id, version)]).await?;
    Ok(api::json(StatusCode::OK, &PromiseView::new(row, account.currency()?)?))
}
