//! Payment plans: making one on an account and cancelling an active one. Allocating
//! payments is the payment trigger's; missing instalments and breaking plans is the
//! scheduler's (`jobs::plans`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::plan::CreatePlan;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::service::Window;
use crate::service::accounts::{lock_for, readable, readable_as};
use crate::service::portfolios;
use crate::store::plans::{self, PlanFilter};
use crate::store::{self, accounts};

pub use crate::store::plans::{InstalmentRow, PlanRow};

/// A plan as a write left it, with its instalments and its account's new version.
pub struct Planned {
    pub row: PlanRow,
    pub instalments: Vec<InstalmentRow>,
    pub account_version: i64,
}

/// Records `body` on `account_id` for `caller`; the first date is checked against the
/// date of `now` in the debtor's time zone and the total against the balance.
pub async fn make(pool: &PgPool, caller: &Principal, account_id: Uuid, body: CreatePlan, now: DateTime<Utc>) -> Result<Planned> {
    caller.require(Action::WorkAccount)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    let currency = account.currency;
    let today = account.today(now);
    let plan = body.validate(currency, today, account.current_balance).map_err(Error::validation)?;
    let row = plans::insert(&mut tx, account_id, &plan, caller.user_id).await?;
    let account_version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(plan_id = %row.id, instalments = plan.instalments.len(), "payment plan made");
    let instalments = plans::instalments(pool, row.id).await?;
    Ok(Planned {
        row,
        instalments,
        account_version,
    })
}

/// Cancels the active plan `id`; any other is refused with the allowed transitions.
pub async fn cancel(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<Planned> {
    caller.require(Action::WorkAccount)?;
    let mut conn = pool.acquire().await?;
    let existing = plans::get(&mut conn, id).await?.ok_or_else(|| Error::not_found("plan"))?;
    drop(conn);
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    // A deleted account's plans are hidden as it is: 404, as a read of them.
    let account = lock_for(&mut tx, caller, existing.account_id, "plan").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    let Some(row) = plans::cancel(&mut tx, id).await? else {
        return Err(Error::new(
            Code::InvalidTransition,
            format!("this plan is {}; only an active plan can be cancelled", existing.status.as_str()),
        )
        .with_extension("allowed", serde_json::json!([])));
    };
    let account_version = accounts::version(&mut tx, account.id).await?;
    tx.commit().await?;
    tracing::info!(plan_id = %id, "payment plan cancelled");
    let instalments = plans::instalments(pool, id).await?;
    Ok(Planned {
        row,
        instalments,
        account_version,
    })
}

/// The plan `id` with its instalments; a deleted account's plans are hidden as it is.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<(PlanRow, Vec<InstalmentRow>)> {
    caller.require(Action::ReadAccounts)?;
    let mut conn = pool.acquire().await?;
    let row = plans::get(&mut conn, id).await?.ok_or_else(|| Error::not_found("plan"))?;
    drop(conn);
    readable_as(pool, caller, row.account_id, "plan").await?;
    let instalments = plans::instalments(pool, id).await?;
    Ok((row, instalments))
}

/// The plans of `account_id`, newest first, and how many it holds.
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<PlanRow>, i64)> {
    readable(pool, caller, account_id).await?;
    let filter = PlanFilter {
        account_ids: vec![account_id],
        ..PlanFilter::default()
    };
    list(pool, caller, &filter, window).await
}

/// Plans of live accounts matching `filter`, newest first, and how many match.
pub async fn list(pool: &PgPool, caller: &Principal, filter: &PlanFilter, window: Window) -> Result<(Vec<PlanRow>, i64)> {
    caller.require(Action::ReadAccounts)?;
    let filter = PlanFilter {
        scope: portfolios::search_scope(pool, caller).await?,
        worked_by: (!caller.can(Action::ReadAnyAccount)).then_some(caller.user_id),
        ..filter.clone()
    };
    let rows = plans::list(pool, &filter, window.after, window.limit).await?;
    Ok((rows, plans::count(pool, &filter).await?))
}
