//! Promises to pay: making one on an account and cancelling an open one. Breaking
//! overdue ones is the scheduler's (`jobs::promises`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::promise::CreatePromise;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::service::Window;
use crate::service::accounts::{lock_for, readable};
use crate::store::accounts::AccountRow;
use crate::store::{self, accounts, promises};

pub use crate::store::promises::PromiseRow;

/// A promise as a write left it: the row, its account's currency and new version.
pub struct Promised {
    pub row: PromiseRow,
    pub currency: Currency,
    pub account_version: i64,
}

/// Records `body` on `account_id` for `caller`; the due date is checked against the date
/// of `now` in the debtor's time zone.
pub async fn make(pool: &PgPool, caller: &Principal, account_id: Uuid, body: CreatePromise, now: DateTime<Utc>) -> Result<Promised> {
    caller.require(Action::WorkAccount)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    let row = make_locked(&mut tx, caller, &account, body, now).await?;
    let account_version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(promise_id = %row.id, "promise to pay recorded");
    Ok(Promised {
        row,
        currency: account.currency,
        account_version,
    })
}

/// Records `body` on `account`, which `tx` holds locked: the rules of [`make`].
pub async fn make_locked(
    tx: &mut PgConnection,
    caller: &Principal,
    account: &AccountRow,
    body: CreatePromise,
    now: DateTime<Utc>,
) -> Result<PromiseRow> {
    caller.require_work_on(account.assigned_agent_id)?;
    let (amount, due_date) = body.validate(account.currency, account.today(now)).map_err(Error::validation)?;
    promises::insert(tx, account.id, amount, due_date, caller.user_id).await
}

/// Cancels the open promise `id` at `now`; any other is refused with the allowed transitions.
pub async fn cancel(pool: &PgPool, caller: &Principal, id: Uuid, now: DateTime<Utc>) -> Result<Promised> {
    caller.require(Action::WorkAccount)?;
    let existing = promises::get(pool, id).await?.ok_or_else(|| Error::not_found("promise"))?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    // A deleted account's promises are hidden as it is: 404, as a read of them.
    let account = lock_for(&mut tx, caller, existing.account_id, "promise").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    let Some(row) = promises::cancel(&mut tx, id, now).await? else {
        return Err(Error::new(
            Code::InvalidTransition,
            format!(
                "this promise is {}; only an open promise can be cancelled",
                existing.status.as_str()
            ),
        )
        .with_extension("allowed", serde_json::json!([])));
    };
    let account_version = accounts::version(&mut tx, account.id).await?;
    tx.commit().await?;
    tracing::info!(promise_id = %id, "promise to pay cancelled");
    Ok(Promised {
        row,
        currency: account.currency,
        account_version,
    })
}

/// The promises of `account_id`, newest first, how many it holds, and its currency.
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<PromiseRow>, i64, Currency)> {
    let account = readable(pool, caller, account_id).await?;
    let rows = promises::for_account(pool, account_id, window.after, window.limit).await?;
    let total = promises::count_for_account(pool, account_id).await?;
    Ok((rows, total, account.currency))
}
