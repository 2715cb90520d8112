//! The notification center: the caller's notifications, unread first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::notification::{self, NotificationKind};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::ListPage;
use crate::http::filters::{principal, with_state};
use crate::http::paging::PageRequest;
use crate::http::query::parse_query;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::service::notifications::{self as service, Inbox, NotificationRow, Position};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub kind: NotificationKind,
    /// What it says; a batch says how many ("102 accounts assigned to you").
    pub title: String,
    /// How many events the notification stands for (1 unless batched).
    pub count: i64,
    /// The console route it leads to (`#/account/<id>`, a search for a batch,
    /// `#/imports` for a finished job); absent when it leads nowhere.
    pub link: Option<String>,
    pub data: Value,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<NotificationRow> for NotificationView {
    fn from(row: NotificationRow) -> Self {
        let mut data = row.data.0;
        crate::domain::event::format_money(&mut data);
        let count = i64::from(row.count);
        Self {
            id: row.id,
            kind: row.kind,
            title: notification::title(row.kind, count, &row.title),
            count,
            link: notification::link(row.kind, count, &data),
            data,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}

/// What the notification list adds to a page: how many are unread in all.
#[derive(Serialize, utoipa::ToSchema)]
struct Unread {
    unread_count: i64,
}

/// How many notifications `read-all` marked read.
#[derive(Serialize, utoipa::ToSchema)]
struct ReadAll {
    updated: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    unread_only: Option<bool>,
    page_size: Option<u32>,
    cursor: Option<String>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("notifications")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let unread = warp::path!("notifications" / "unread-count")
        .and(warp::get())
        .and(caller.clone())
        .then(unread);
    let read = warp::path!("notifications" / Uuid / "read")
        .and(warp::post())
        .and(caller.clone())
        .then(read);
    let read_all = warp::path!("notifications" / "read-all")
        .and(warp::post())
        .and(caller)
        .then(read_all);
    list.or(unread).unify().or(read_all).unify().or(read).unify().map(respond).boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, unread, read, read_all))]
pub struct Api;

/// List my notifications
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", operation_id = "list_notifications",
    params(ListQuery),
    responses((status = 200, description = "The caller's notifications, unread first", body = ListPage<NotificationView, Unread>)))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: ListQuery = parse_query(&raw)?;
    let page = PageRequest::<Position>::new(query.page_size, query.cursor.as_deref())?;
    let unread_only = query.unread_only.unwrap_or(false);
    let Inbox { rows, total, unread } = service::list(state.pool(), &caller, unread_only, page.window()).await?;
    let body = page.finish_with(
        rows,
        total,
        |n| (n.read_at.is_some(), n.created_at, n.id),
        |n| Ok(NotificationView::from(n)),
        Unread { unread_count: unread },
    )?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Count my unread notifications
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications", operation_id = "count_unread_notifications",
    responses((status = 200, description = "How many are unread", body = Unread)))]
async fn unread(caller: Principal, state: AppState) -> Result<Response> {
    let unread = service::unread_count(state.pool(), &caller).await?;
    Ok(api::json(StatusCode::OK, &Unread { unread_count: unread }))
}

/// Mark a notification read
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications", operation_id = "read_notification",
    params(("id" = Uuid, Path, description = "The notification's id")),
    responses((status = 200, description = "The notification, read", body = NotificationView)))]
#[tracing::instrument(skip_all, fields(notification_id = %id))]
async fn read(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::mark_read(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &NotificationView::from(row)))
}

/// Mark all my notifications read
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications", operation_id = "read_all_notifications",
    responses((status = 200, description = "How many were marked read", body = ReadAll)))]
async fn read_all(caller: Principal, state: AppState) -> Result<Response> {
    let updated = service::mark_all_read(state.pool(), &caller).await?;
    Ok(api::json(StatusCode::OK, &ReadAll { updated }))
}
