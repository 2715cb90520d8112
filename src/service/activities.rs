//! Activities: logging a contact on an account, with the account's next action.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::activity::{CreateActivity, NewActivity};
use crate::domain::compliance::Channel;
use crate::domain::principal::Principal;
use crate::domain::role::{Action, works_account};
use crate::error::{Code, Error, FieldError, Result};
use crate::service::Window;
use crate::service::accounts::{lock_for, readable};
use crate::service::compliance;
use crate::service::portfolios;
use crate::store::activities::{self, ActivityFilter};

use crate::store::accounts::AccountRow;
pub use crate::store::activities::ActivityRow;
use crate::store::compliance as store_compliance;
use crate::store::{self, accounts, queue};

/// Logs `body` on `account_id` for `caller` at `now` (the server's time, which the guard
/// judges and the activity records): the activity and the account's new version.
pub async fn log(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    body: CreateActivity,
    now: DateTime<Utc>,
) -> Result<(ActivityRow, i64)> {
    caller.require(Action::WorkAccount)?;
    let activity = body.validate(now).map_err(Error::validation)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    let row = log_locked(&mut tx, caller, &account, &activity, now).await?;
    let version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(activity_id = %row.id, "activity logged");
    Ok((row, version))
}

/// Logs `activity` on `account`, which `tx` holds locked: the rules of [`log`]. An
/// inbound contact may be logged on any account (a debtor calls whoever answers); any
/// other only on an account the caller works. The guard judges an attempt at `now`.
pub async fn log_locked(
    tx: &mut PgConnection,
    caller: &Principal,
    account: &AccountRow,
    activity: &NewActivity,
    now: DateTime<Utc>,
) -> Result<ActivityRow> {
    let account_id = account.id;
    if !works_account(caller.role, caller.user_id, account.assigned_agent_id) {
        if !activity.is_inbound_contact() {
            caller.require_work_on(account.assigned_agent_id)?;
        }
        if activity.next_action_at.is_some() {
            let why = "only the account's own agent or a manager schedules its next action";
            return Err(Error::with_fields(
                Code::FieldForbidden,
                why,
                vec![FieldError::new("next_action_at", why)],
            ));
        }
    }
    let attempt = Channel::of_attempt(activity.kind, activity.direction);
    let verdict = match attempt {
        // Judged at the server's time: a client's `occurred_at` cannot move an attempt
        // into the window (a call at 05:36 claimed for the afternoon before).
        Some(channel) => compliance::decide(&mut *tx, account_id, channel, now).await?,
        None => Ok(()),
    };
    let row = activities::insert(&mut *tx, account_id, activity, Some(caller.user_id), now).await?;
    if let (Some(channel), Err(refusal)) = (attempt, verdict) {
        let used = store_compliance::use_override(&mut *tx, account_id, channel, row.id, refusal.rule.as_str(), now).await?;
        match used {
            Some(override_id) => tracing::info!(%override_id, rule = refusal.rule.as_str(), "contact override used"),
            None => return Err(compliance::blocked(channel, refusal)),
        }
    }
    queue::release(&mut *tx, account_id).await?;
    if let Some(next) = activity.next_action_at {
        accounts::set_next_action(&mut *tx, account_id, next, caller.user_id).await?;
    }
    Ok(row)
}

/// The contact timeline of `account_id`, newest first, and how many activities it holds.
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<ActivityRow>, i64)> {
    readable(pool, caller, account_id).await?;
    let filter = ActivityFilter {
        account_ids: vec![account_id],
        ..ActivityFilter::default()
    };
    list(pool, caller, &filter, window).await
}

/// Activities across accounts matching `filter`, newest first, and how many match: for an
/// agent, those they logged and those on their accounts.
pub async fn list(pool: &PgPool, caller: &Principal, filter: &ActivityFilter, window: Window) -> Result<(Vec<ActivityRow>, i64)> {
    caller.require(Action::ReadAccounts)?;
    let filter = ActivityFilter {
        visible_to: (!caller.can(Action::ReadAnyAccount)).then_some(caller.user_id),
        scope: portfolios::search_scope(pool, caller).await?,
        ..filter.clone()
    };
    let rows = activities::list(pool, &filter, window.after, window.limit).await?;
    Ok((rows, activities::count(pool, &filter).await?))
}
