//! `GET /api/v1/accounts/{id}/history` and `GET /api/v1/audit`: the audit trail, newest
//! first in keyset pages, or every matching entry as one CSV file (`format=csv`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::audit_log::Filter as AuditFilter;
use crate::domain::principal::Principal;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::filters::{principal, with_state};
use crate::http::paging::PageRequest;
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, Counted, FileBytes, ListPage, attachment, respond};
use crate::service::audit_log::{self as service, AuditPage, AuditRow, COUNT_CAP, Scope};
use crate::state::AppState;

/// One entry of the audit trail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `<entity>.<verb>`: `account.create`, `account.update`, `account.delete`,
    /// `account.read_summary`, `payment.create`, `payment.update`, `promise.create`,
    /// `plan.update`, `override.create`, `user.update`, `job.create`, `session.login`,
    /// `session.refresh`, `session.logout`, `session.login_failed` ...
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub account_id: Option<Uuid>,
    /// The user the change was made as; null for a scheduler or a statement outside the
    /// application (then `db_user` says who).
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    /// The job or scheduler that made it (`import:<id>`, `bulk_update:<id>`, `scheduler:promises`).
    pub job: Option<String>,
    /// The database role of the session that made it.
    pub db_user: String,
    /// The client's address and the request's id; shown to admins only.
    pub address: Option<String>,
    pub request_id: Option<String>,
    /// Made by a rule (another table's trigger), not by the statement the actor issued.
    pub by_rule: bool,
    /// `{"row": {...}}` for a creation or deletion, `{"changes": {field: {before, after}}}`
    /// for an update; secrets show only as changed.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRow> for AuditEntryView {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            action: row.action,
            entity: row.entity,
            entity_id: row.entity_id,
            account_id: row.account_id,
            actor_id: row.actor,
            actor_name: row.actor_name,
            job: row.job,
            db_user: row.db_user,
            address: row.address,
            request_id: row.request_id,
            by_rule: row.by_rule,
            details: row.details,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only what this user did.
    actor_id: Option<Uuid>,
    /// Only entries about this kind of record: account, payment, promise, plan, override,
    /// user, session, job, contact_policy, portfolio, portfolio_grant,
    /// portfolio_contact_policy.
    entity: Option<String>,
    /// Only entries about this record (with `entity`).
    entity_id: Option<String>,
    /// Only this action (`account.update`), or every action on an entity (`account.`).
    action: Option<String>,
    /// Only entries of this account.
    account_id: Option<Uuid>,
    /// From this instant (inclusive), RFC 3339.
    from: Option<DateTime<Utc>>,
    /// Before this instant (exclusive), RFC 3339.
    to: Option<DateTime<Utc>>,
    /// `json` (pages, the default) or `csv` (every matching entry in one file).
    format: Option<String>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only what this user did.
    actor_id: Option<Uuid>,
    /// Only this action (`account.update`), or every action on an entity (`payment.`).
    action: Option<String>,
    /// From this instant (inclusive), RFC 3339.
    from: Option<DateTime<Utc>>,
    /// Before this instant (exclusive), RFC 3339.
    to: Option<DateTime<Utc>>,
    /// `json` (pages, the default) or `csv` (every matching entry in one file).
    format: Option<String>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A name an entry is filed under: lowercase letters, `_` and `.`, at most 64 characters.
fn name(field: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(v) if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.') => {
            Err(Error::with_fields(
                Code::InvalidParameter,
                format!("{field} {v:?} is not an entity or action name"),
                vec![FieldError::new(field, "lowercase letters, `_` and `.`, at most 64 characters")],
            ))
        }
        other => Ok(other),
    }
}

fn range(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<()> {
    match (from, to) {
        (Some(f), Some(t)) if f >= t => Err(Error::with_fields(
            Code::InvalidParameter,
            "`from` must be before `to`",
            vec![FieldError::new("to", "after `from`")],
        )),
        _ => Ok(()),
    }
}

/// Whether `format` asks for the CSV file.
fn wants_csv(format: Option<&str>) -> Result<bool> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(Error::with_fields(
            Code::InvalidParameter,
            format!("format `{other}` is not supported; use json or csv"),
            vec![FieldError::new("format", "json or csv")],
        )),
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("accounts" / Uuid / "history")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(history)
        .or(warp::path!("audit").and(warp::get()).and(caller).and(raw_query()).then(audit))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(history, audit))]
pub struct Api;

async fn answer(
    caller: &Principal,
    state: &AppState,
    scope: Scope,
    filter: AuditFilter,
    page: PageRequest<(DateTime<Utc>, i64)>,
    csv: bool,
) -> Result<Response> {
    if csv {
        let chunks = service::export_csv(state.pool(), caller, scope, filter).await?;
        let name = if matches!(scope, Scope::Log) { "audit" } else { "history" };
        return Ok(attachment(chunks, "text/csv; charset=utf-8", name, "csv"));
    }
    let AuditPage { rows, total } = service::page(state.pool(), caller, scope, filter, page.window()).await?;
    let more = Counted {
        total_is_lower_bound: total >= COUNT_CAP,
    };
    let body = page.finish_with(rows, total, |r| (r.at, r.id), |r| Ok(AuditEntryView::from(r)), more)?;
    Ok(api::json(StatusCode::OK, &body))
}

/// An account's history
#[utoipa::path(get, path = "/api/v1/accounts/{id}/history", tag = "audit", operation_id = "account_history",
    params(("id" = Uuid, Path, description = "The account's id (deleted accounts too)"), HistoryQuery),
    responses(
        (status = 200, description = "Every recorded change to the account and its payments, promises, plans and overrides, \
                                      and other agents' reads of it, newest first; with `format=csv`, all of them as a file",
            content((ListPage<AuditEntryView, Counted> = "application/json"), (FileBytes = "text/csv"))),
        (status = 403, description = "Managers, admins and the agent the account is assigned to only"),
        (status = 404, description = "No such account"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn history(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: HistoryQuery = parse_query(&raw)?;
    range(query.from, query.to)?;
    let csv = wants_csv(query.format.as_deref())?;
    let filter = AuditFilter {
        actor: query.actor_id,
        action: name("action", query.action)?,
        from: query.from,
        to: query.to,
        ..AuditFilter::default()
    };
    let page = PageRequest::new(query.page_size, query.cursor.as_deref())?;
    answer(&caller, &state, Scope::Account(account_id), filter, page, csv).await
}

/// The audit trail
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "audit_log",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries matching the filters, newest first; with `format=csv`, all of them as a file",
            content((ListPage<AuditEntryView, Counted> = "application/json"), (FileBytes = "text/csv"))),
        (status = 403, description = "Admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn audit(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: AuditQuery = parse_query(&raw)?;
    range(query.from, query.to)?;
    let csv = wants_csv(query.format.as_deref())?;
    if query.entity_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 200) {
        return Err(Error::with_fields(
            Code::InvalidParameter,
            "entity_id: 1 to 200 characters",
            vec![FieldError::new("entity_id", "1 to 200 characters")],
        ));
    }
    let filter = AuditFilter {
        actor: query.actor_id,
        entity: name("entity", query.entity)?,
        entity_id: query.entity_id,
        action: name("action", query.action)?,
        account: query.account_id,
        from: query.from,
        to: query.to,
    };
    let page = PageRequest::new(query.page_size, query.cursor.as_deref())?;
    answer(&caller, &state, Scope::Log, filter, page, csv).await
}
