//! An account's timeline: activities, payments, promises, plans and their events,
//! overrides, assignments, edits and reads by other agents, newest first in one list.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::timeline::TimelineKind;
use crate::error::Result;
use crate::service::Window;
use crate::service::accounts::readable;
use crate::store::timeline::{self, Position};

pub use crate::store::timeline::TimelineRow;

/// A page of an account's timeline and the currency its amounts are in.
pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    pub total: i64,
    pub currency: Currency,
}

/// The entries of `account_id` of the `kinds` asked for (all when empty), newest first,
/// for a caller who reads the account in full.
pub async fn page(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    kinds: &[TimelineKind],
    window: Window<Position>,
) -> Result<Timeline> {
    let account = readable(pool, caller, account_id).await?;
    let rows = timeline::page(pool, account_id, kinds, window.after, window.limit).await?;
    let total = timeline::count(pool, account_id, kinds).await?;
    Ok(Timeline {
        rows,
        total,
        currency: account.currency,
    })
}
