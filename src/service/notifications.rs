//! The notification center: a user reads and marks only their own notifications.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::principal::Principal;
use crate::error::{Error, Result};
use crate::service::Window;
use crate::store::notifications;

pub use crate::store::notifications::{NotificationRow, Position};

/// A page of the caller's notifications, unread first.
pub struct Inbox {
    pub rows: Vec<NotificationRow>,
    /// How many the list holds (all, or the unread ones when only those were asked for).
    pub total: i64,
    /// How many are unread in all.
    pub unread: i64,
}

/// The caller's notifications (only the unread ones when `unread_only`), unread first.
pub async fn list(pool: &PgPool, caller: &Principal, unread_only: bool, window: Window<Position>) -> Result<Inbox> {
    let rows = notifications::list(pool, caller.user_id, unread_only, window.after, window.limit).await?;
    let total = notifications::count(pool, caller.user_id, unread_only).await?;
    let unread = unread_count(pool, caller).await?;
    Ok(Inbox { rows, total, unread })
}

/// How many of the caller's notifications are unread.
pub async fn unread_count(pool: &PgPool, caller: &Principal) -> Result<i64> {
    notifications::count(pool, caller.user_id, true).await
}

/// Marks the caller's notification `id` read.
pub async fn mark_read(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<NotificationRow> {
    notifications::mark_read(pool, caller.user_id, id)
        .await?
        .ok_or_else(|| Error::not_found("notification"))
}

/// Marks all the caller's notifications read; returns how many were unread.
pub async fn mark_all_read(pool: &PgPool, caller: &Principal) -> Result<u64> {
    notifications::mark_all_read(pool, caller.user_id).await
}
