//! Accounts: create, change, soft delete and restore one, with the rules each applies
//! whichever adapter calls it.

use phonenumber::country;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::account::{AccountFields, CreateAccount, PatchAccount, lift_refusal};
use crate::domain::principal::Principal;
use crate::domain::role::{Action, NOT_ASSIGNABLE};
use crate::error::{Code, Error, FieldError, Result};
use crate::store::accounts::{self, AccountRow};
use crate::store::users;

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
pub async fn create(pool: &PgPool, phone_region: country::Id, caller: &Principal, body: CreateAccount) -> Result<AccountRow> {
    caller.require(Action::CreateAccount)?;
    let fields = AccountFields::from_create(body, phone_region).map_err(Error::validation)?;
    if fields.assigned_agent_id.is_some() {
        caller.require(Action::AssignAccount)?;
        check_assignee(pool, fields.assigned_agent_id).await?;
    }
    let row = accounts::insert(pool, &fields, caller.user_id).await?;
    tracing::info!(account_id = %row.id, "account created");
    Ok(row)
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
) -> Result<AccountRow> {
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
    Ok(row)
}

/// Soft-deletes the account `id` (`deleted`) or restores it.
pub async fn set_deleted(pool: &PgPool, caller: &Principal, id: Uuid, deleted: bool) -> Result<AccountRow> {
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
