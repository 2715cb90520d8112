//! Accounts: create, change, soft delete and restore one, with the rules each applies
//! whichever adapter calls it.

use chrono::NaiveDate;
use phonenumber::country;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::account::{AccountFields, CreateAccount, PatchAccount, lift_refusal};
use crate::domain::document::AccountDoc;
use crate::domain::principal::Principal;
use crate::domain::role::{Action, NOT_ASSIGNABLE};
use crate::domain::search::{AccountQuery, Sort};
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::accounts as account_list;
use crate::search::{SearchIndex, SearchPage};
use crate::store::accounts::{self, AccountRow};
use crate::store::users;

/// A page of accounts from the index, with what the caller asked for that shapes the
/// answer (the words to highlight, the sort its cursor belongs to).
pub struct Found {
    pub page: SearchPage,
    pub text: Option<String>,
    pub sort: Sort,
}

/// The accounts matching `raw` (the accounts list grammar) that `caller` may read.
pub async fn search(index: &dyn SearchIndex, caller: &Principal, raw: &str, today: NaiveDate) -> Result<Found> {
    caller.require(Action::ReadAccounts)?;
    let query: AccountQuery = account_list::parse(raw, caller, today)?;
    let (text, sort) = (query.text.clone(), query.sort);
    let page = index.search(query).await?;
    Ok(Found { page, text, sort })
}

/// The account `id` with its summary (payments, contact, promise, plan), from SQL.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AccountDoc> {
    caller.require(Action::ReadAccounts)?;
    let row = accounts::get(pool, id).await?.ok_or_else(|| Error::not_found("account"))?;
    document(pool, row).await
}

/// The account `id` that a read of one of its children (payments, promises, plans,
/// activities) is about: it must exist and `caller` must be allowed to read accounts.
pub async fn readable(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AccountRow> {
    caller.require(Action::ReadAccounts)?;
    accounts::get(pool, id).await?.ok_or_else(|| Error::not_found("account"))
}

/// `row` with its summary, as every answer about one account shows it.
pub async fn document(pool: &PgPool, row: AccountRow) -> Result<AccountDoc> {
    let mut conn = pool.acquire().await?;
    accounts::document(&mut conn, row).await
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

/// Creates an account from `body`; phone numbers without a country code are read in
/// `phone_region`.
pub async fn create(pool: &PgPool, phone_region: country::Id, caller: &Principal, body: CreateAccount) -> Result<AccountDoc> {
    caller.require(Action::CreateAccount)?;
    let fields = AccountFields::from_create(body, phone_region).map_err(Error::validation)?;
    if fields.assigned_agent_id.is_some() {
        caller.require(Action::AssignAccount)?;
        check_assignee(pool, fields.assigned_agent_id).await?;
    }
    let row = accounts::insert(pool, &fields, caller.user_id).await?;
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
    let mut tx = pool.begin().await?;
    let current = accounts::lock(&mut tx, id).await?.ok_or_else(|| Error::not_found("account"))?;
    let before = current.fields();
    authorize_patch(caller, &current, &before, &patch)?;
    precondition(current.search_version)?;
    let assignee = patch.assigned_agent_id.flatten();
    let reassigned = patch.assigned_agent_id.is_some() && assignee != current.assigned_agent_id;
    let fields = before.apply(patch, phone_region).map_err(Error::validation)?;
    if reassigned {
        caller.require(Action::AssignAccount)?;
        check_assignee(pool, assignee).await?;
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
    let row = accounts::set_deleted(pool, id, deleted, caller.user_id)
        .await?
        .ok_or_else(|| Error::not_found(missing))?;
    tracing::info!(account_id = %id, deleted, "account deletion flag set");
    Ok(row)
}
