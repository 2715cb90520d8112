//! Accounts: create, change, soft delete and restore one, with the rules each applies
//! whichever adapter calls it.

use chrono::NaiveDate;
use phonenumber::country;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::account::{AccountFields, CreateAccount, PatchAccount, RESOLVE_OWING_REFUSAL, lift_refusal, resolves_owing};
use crate::domain::document::AccountDoc;
use crate::domain::portfolio::{NOT_GRANTED, NOT_YOURS_TO_PLACE};
use crate::domain::principal::Principal;
use crate::domain::privacy::Access;
use crate::domain::refusal::Denied;
use crate::domain::role::{Action, NOT_ASSIGNABLE, NOT_YOURS_TO_READ};
use crate::domain::search::{AccountQuery, Sort};
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::accounts as account_list;
use crate::search::{Hit, SearchIndex, SearchPage};
use crate::service::fields;
use crate::service::portfolios;
use crate::store::accounts::{self, AccountRow};
use crate::store::{self, timeline, users};

/// A page of accounts from the index, each as the caller may read it, with what the
/// caller asked for that shapes the answer (the words to highlight, the sort its cursor
/// belongs to).
pub struct Found {
    pub page: SearchPage<Shown>,
    pub text: Option<String>,
    pub sort: Sort,
}

/// An account as one caller may read it ([`Access`]), with its owner's name where the
/// answer names it.
pub struct Shown {
    pub doc: AccountDoc,
    pub access: Access,
    pub owner_name: Option<String>,
}

impl Shown {
    /// `doc` as `caller` may read it.
    pub fn to(caller: &Principal, doc: AccountDoc) -> Shown {
        let access = Access::of(caller, doc.assigned_agent_id);
        Shown {
            doc: access.apply(doc),
            access,
            owner_name: None,
        }
    }
}

/// The index query `raw` (the accounts list grammar) asks for `caller`: custom fields
/// resolved against the live definitions, and limited to the accounts `caller` sees by
/// their portfolio. The search, exports and bulk updates select accounts with it.
pub async fn query(pool: &PgPool, caller: &Principal, raw: &str, today: NaiveDate) -> Result<AccountQuery> {
    let fields = fields::for_list(pool, raw).await?;
    let query = account_list::parse(raw, caller, today, &fields)?;
    portfolios::scoped(pool, caller, query).await
}

/// The accounts matching `raw` (the accounts list grammar) that `caller` may read: any
/// agent finds any account (a debtor calls whoever answers), and reads a summary of those
/// that are not theirs.
pub async fn search(pool: &PgPool, index: &dyn SearchIndex, caller: &Principal, raw: &str, today: NaiveDate) -> Result<Found> {
    caller.require(Action::ReadAccounts)?;
    let query = query(pool, caller, raw, today).await?;
    let (text, sort) = (query.text.clone(), query.sort);
    let page = index.search(query).await?;
    let page = SearchPage {
        hits: page
            .hits
            .into_iter()
            .map(|hit| Hit {
                doc: Shown::to(caller, hit.doc),
                score: hit.score,
            })
            .collect(),
        total: page.total,
        total_is_lower_bound: page.total_is_lower_bound,
        next: page.next,
        facets: page.facets,
    };
    Ok(Found { page, text, sort })
}

/// The account `id` with its summary (payments, contact, promise, plan) and its owner's
/// name, from SQL, as `caller` may read it. An agent's read of an account that is not
/// theirs is recorded (who, when, which account) and shows the summary only.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<Shown> {
    caller.require(Action::ReadAccounts)?;
    let row = get_for(pool, caller, id, "account").await?;
    let owner_name = match row.assigned_agent_id {
        Some(owner) => users::by_id(pool, owner).await?.map(|u| u.name),
        None => None,
    };
    let mut shown = Shown::to(caller, document(pool, row).await?);
    if shown.access == Access::Summary {
        timeline::record_access(pool, id, caller.user_id).await?;
        tracing::info!(account_id = %id, "an agent opened an account not assigned to them");
    }
    shown.owner_name = owner_name;
    Ok(shown)
}

/// The account `id` that a read of one of its children (payments, promises, plans,
/// activities, timeline) is about: it must exist and `caller` must read it in full.
pub async fn readable(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AccountRow> {
    readable_as(pool, caller, id, "account").await
}

/// [`readable`], for a read of one child (a document, a message) found by its own id:
/// an account that does not exist or is out of the caller's scope is answered as if
/// the child were missing (404 naming `missing`).
pub async fn readable_as(pool: &PgPool, caller: &Principal, id: Uuid, missing: &str) -> Result<AccountRow> {
    caller.require(Action::ReadAccounts)?;
    let row = get_for(pool, caller, id, missing).await?;
    if Access::of(caller, row.assigned_agent_id) == Access::Summary {
        return Err(Denied(NOT_YOURS_TO_READ.to_owned()).into());
    }
    Ok(row)
}

/// `row` with its summary, as every answer about one account shows it.
pub async fn document(pool: &PgPool, row: AccountRow) -> Result<AccountDoc> {
    let mut conn = pool.acquire().await?;
    accounts::document(&mut conn, row).await
}

/// The live account `id` locked in `tx` for `caller`. One outside the caller's
/// portfolios is answered as if it did not exist (404 naming `missing`, what was asked
/// for), so its existence does not leak.
pub async fn lock_for(tx: &mut PgConnection, caller: &Principal, id: Uuid, missing: &str) -> Result<AccountRow> {
    let row = accounts::lock(tx, id).await?.ok_or_else(|| Error::not_found(missing))?;
    if !portfolios::in_scope(tx, caller, row.portfolio_id).await? {
        return Err(Error::not_found(missing));
    }
    Ok(row)
}

/// The live account `id` as [`lock_for`] finds it, without locking it.
pub async fn get_for(pool: &PgPool, caller: &Principal, id: Uuid, missing: &str) -> Result<AccountRow> {
    let row = accounts::get(pool, id).await?.ok_or_else(|| Error::not_found(missing))?;
    if !portfolios::in_scope(&mut *pool.acquire().await?, caller, row.portfolio_id).await? {
        return Err(Error::not_found(missing));
    }
    Ok(row)
}

/// An assignee must be an enabled user who works accounts.
pub async fn check_assignee(pool: &PgPool, agent_id: Option<Uuid>) -> Result<()> {
    let Some(id) = agent_id else { return Ok(()) };
    let user = users::by_id(pool, id).await?;
    match user {
        Some(u) if !u.disabled && u.role().works_accounts() => Ok(()),
        Some(_) => Err(Error::field("assigned_agent_id", NOT_ASSIGNABLE)),
        None => Err(Error::field("assigned_agent_id", "no such user")),
    }
}

/// An account's agent must be granted its portfolio: refused, naming
/// `assigned_agent_id`, when `agent` is not ([`portfolios::Assignees::admit`]).
pub async fn check_granted(conn: &mut PgConnection, agent: Option<Uuid>, portfolio: Option<Uuid>) -> Result<()> {
    if portfolios::Assignees::default().admit(conn, agent, portfolio).await? {
        Ok(())
    } else {
        Err(Error::field("assigned_agent_id", NOT_GRANTED))
    }
}

/// `caller` may place an account in a live portfolio within their scope only (an
/// account they could not see afterwards is not theirs to place); a refusal names `field`.
pub async fn check_portfolio(conn: &mut PgConnection, caller: &Principal, portfolio: Option<Uuid>, field: &str) -> Result<()> {
    let Some(id) = portfolio else { return Ok(()) };
    match store::portfolios::get(conn, id, false).await? {
        Some(p) if p.deleted_at.is_some() => Err(Error::field(field, "the portfolio is deleted; restore it first")),
        Some(_) if !portfolios::in_scope(conn, caller, portfolio).await? => Err(Error::field(field, NOT_YOURS_TO_PLACE)),
        Some(_) => Ok(()),
        None => Err(Error::field(field, "no such portfolio")),
    }
}

/// Creates an account from `body`; phone numbers without a country code are read in
/// `phone_region`, and `custom_fields` is checked against the live definitions.
pub async fn create(pool: &PgPool, phone_region: country::Id, caller: &Principal, body: CreateAccount) -> Result<AccountDoc> {
    caller.require(Action::CreateAccount)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    store::fields::hold_shared(&mut tx).await?;
    let catalog = fields::catalog(&mut tx).await?;
    let fields = AccountFields::from_create(body, phone_region, &catalog).map_err(Error::validation)?;
    check_portfolio(&mut tx, caller, fields.portfolio_id, "portfolio_id").await?;
    if fields.assigned_agent_id.is_some() {
        caller.require(Action::AssignAccount)?;
        check_assignee(pool, fields.assigned_agent_id).await?;
        check_granted(&mut tx, fields.assigned_agent_id, fields.portfolio_id).await?;
    }
    let row = accounts::insert(&mut tx, &fields, caller.user_id).await?;
    tx.commit().await?;
    tracing::info!(account_id = %row.id, "account created");
    document(pool, row).await
}

/// Role rules for a patch, checked against the current state of the account: agents
/// change only workflow fields of their accounts, and only managers and admins lift a
/// legal block (every refused field is named).
fn authorize_patch(caller: &Principal, current: &AccountRow, before: &AccountFields, patch: &PatchAccount) -> Result<()> {
    let mut refused = Vec::new();
    if !caller.can(Action::UpdateAnyAccount) {
        caller.require(Action::UpdateAssignedWorkflow)?;
        caller.require_assigned(current.assigned_agent_id)?;
        let outside = patch.non_workflow_fields().into_iter();
        refused.extend(outside.map(|f| FieldError::new(f, "your role may not change this field")));
    }
    if !caller.can(Action::LiftContactBlocks) {
        let lifted = patch.lifted_blocks(before).into_iter();
        refused.extend(lifted.map(|f| FieldError::new(f, lift_refusal(f))));
    }
    if !caller.can(Action::ResolveOwingAccount) && resolves_owing(current.status, current.current_balance, patch.status) {
        refused.push(FieldError::new("status", RESOLVE_OWING_REFUSAL));
    }
    if refused.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = refused.iter().map(|e| e.field.as_str()).collect();
    let detail = format!("your role may not make these changes: {}", names.join(", "));
    Err(Error::with_fields(Code::FieldForbidden, detail, refused))
}

/// Applies `patch` to the account `id` under its lock, once `precondition` accepts the
/// version the caller's change is made against (an adapter's optimistic lock).
pub async fn update(
    pool: &PgPool,
    phone_region: country::Id,
    caller: &Principal,
    id: Uuid,
    precondition: impl FnOnce(i64) -> Result<()>,
    patch: PatchAccount,
) -> Result<AccountDoc> {
    caller.require(Action::ReadAccounts)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    store::fields::hold_shared(&mut tx).await?;
    let current = lock_for(&mut tx, caller, id, "account").await?;
    let before = current.fields();
    authorize_patch(caller, &current, &before, &patch)?;
    precondition(current.search_version)?;
    let assignee = patch.assigned_agent_id.flatten();
    let reassigned = patch.assigned_agent_id.is_some() && assignee != current.assigned_agent_id;
    let portfolio_changed = patch.portfolio_id.is_some_and(|p| p != current.portfolio_id);
    let catalog = fields::catalog(&mut tx).await?;
    let fields = before.apply(patch, phone_region, &catalog).map_err(Error::validation)?;
    if portfolio_changed {
        check_portfolio(&mut tx, caller, fields.portfolio_id, "portfolio_id").await?;
    }
    if reassigned {
        caller.require(Action::AssignAccount)?;
        check_assignee(pool, assignee).await?;
    }
    if reassigned || portfolio_changed {
        check_granted(&mut tx, fields.assigned_agent_id, fields.portfolio_id).await?;
    }
    let row = accounts::update(&mut tx, id, &fields, caller.user_id).await?;
    tx.commit().await?;
    tracing::info!(account_id = %id, search_version = row.search_version, "account updated");
    document(pool, row).await
}

/// Soft-deletes the account `id`; returns the account's version.
pub async fn delete(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<i64> {
    Ok(set_deleted(pool, caller, id, true).await?.search_version)
}

/// Restores the soft-deleted account `id`.
pub async fn restore(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AccountDoc> {
    let row = set_deleted(pool, caller, id, false).await?;
    document(pool, row).await
}

async fn set_deleted(pool: &PgPool, caller: &Principal, id: Uuid, deleted: bool) -> Result<AccountRow> {
    let (action, missing) = if deleted {
        (Action::DeleteAccount, "account")
    } else {
        (Action::RestoreAccount, "deleted account")
    };
    caller.require(action)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let row = accounts::set_deleted(&mut tx, id, deleted, caller.user_id)
        .await?
        .ok_or_else(|| Error::not_found(missing))?;
    if !portfolios::in_scope(&mut tx, caller, row.portfolio_id).await? {
        // Rolled back with the transaction.
        return Err(Error::not_found(missing));
    }
    tx.commit().await?;
    tracing::info!(account_id = %id, deleted, "account deletion flag set");
    Ok(row)
}
