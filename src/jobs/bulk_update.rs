//! Runs a bulk update chunk by chunk. Each chunk locks its items and accounts, applies
//! the patch to the rows the submitter may change, and records every row's outcome and
//! the job's counters in the same transaction: a crash replays at most an uncommitted
//! chunk, and no row is applied twice.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::account::{MAX_TAGS, RESOLVE_OWING_REFUSAL, leaves_dispute, lift_refusal, resolves_owing};
use crate::domain::bulk::{BulkParams, BulkPatch};
use crate::domain::custom_field::Catalog;
use crate::domain::portfolio::{NOT_GRANTED, Scope};
use crate::domain::role::{Action, NOT_ASSIGNED, Role, allows, works_account};
use crate::error::Result;
use crate::jobs::Stop;
use crate::service::portfolios;
use crate::store::accounts::Locked;
use crate::store::jobs::{self, JobRow};
use crate::store::{self, accounts, notifications, users};

/// Rows per transaction: large enough that per-statement costs vanish (5,000 measured
/// 2.4x faster than 1,000), small enough that a replayed chunk is cheap.
pub const CHUNK: i64 = 5000;

pub async fn run(pool: &PgPool, job: &JobRow, shutdown: &watch::Receiver<bool>) -> Result<Stop> {
    let params: BulkParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    super::chunks(pool, job.id, shutdown, || run_chunk(pool, job.id, &params)).await
}

/// Whether `role` may submit `patch` (as the HTTP handler checks it at submission).
fn permitted(role: Role, patch: &BulkPatch) -> bool {
    allows(role, Action::WorkAccount)
        && (patch.assign.is_none() || allows(role, Action::AssignAccount))
        && (!patch.manages() || allows(role, Action::UpdateAnyAccount))
        && (!patch.flags.lifts() || allows(role, Action::LiftContactBlocks))
}

/// Each account's new custom fields (and portfolio) checked as a PATCH's would be: the
/// accounts that pass with their new `custom_fields`, and why each other one is refused.
async fn checked_custom_fields(
    conn: &mut PgConnection,
    ids: &[Uuid],
    patch: &BulkPatch,
) -> Result<(Vec<(Uuid, Map<String, Value>)>, HashMap<Uuid, String>)> {
    let catalog = Catalog::new(store::fields::live(conn).await?);
    let mut passed = Vec::with_capacity(ids.len());
    let mut refused = HashMap::new();
    for row in accounts::by_ids(conn, ids).await? {
        let portfolio = patch.portfolio.unwrap_or(row.portfolio_id);
        let map = patch.custom_fields_of(&row.custom_fields);
        match row.fields().with_custom_fields(map, portfolio, &catalog) {
            Ok(fields) => passed.push((row.id, fields.custom_fields)),
            Err(errors) => {
                let why: Vec<String> = errors.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                refused.insert(row.id, why.join("; "));
            }
        }
    }
    Ok((passed, refused))
}

/// Applies the next chunk; returns how many items it settled (0: the job is done).
pub async fn run_chunk(pool: &PgPool, job: Uuid, params: &BulkParams) -> Result<usize> {
    let mut tx = store::begin_for_job(pool, &format!("bulk_update:{job}"), Some(params.actor)).await?;
    store::fields::hold_shared(&mut tx).await?;
    let items = jobs::next_items(&mut tx, job, CHUNK).await?;
    if items.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = items.iter().map(|i| i.1).collect();
    let locked: HashMap<Uuid, Locked> = accounts::lock_assignees(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let role = users::standing(&mut tx, params.actor)
        .await?
        .filter(|role| permitted(*role, &params.patch));
    // Agents may dispute accounts in bulk, never move them out of dispute.
    let may_lift = role.is_some_and(|role| allows(role, Action::LiftContactBlocks));
    // Nor close, settle or mark paid an account that still owes.
    let may_resolve_owing = role.is_some_and(|role| allows(role, Action::ResolveOwingAccount));
    let scope = match role {
        Some(role) => portfolios::scope_of(&mut tx, params.actor, role).await?,
        None => Scope::Granted(Vec::new()),
    };
    let mut assignees = portfolios::Assignees::default();
    let mut refused: HashMap<Uuid, String> = HashMap::new();
    let mut allowed = Vec::with_capacity(ids.len());
    for id in &ids {
        let reason = match locked.get(id) {
            _ if role.is_none() => Some("the submitter is disabled or may no longer make this change".to_owned()),
            None => Some("account not found".to_owned()),
            Some(row) if !scope.admits(row.portfolio_id) => Some("account not found".to_owned()),
            Some(row) if role.is_some_and(|role| !works_account(role, params.actor, row.assigned_agent_id)) => {
                Some(NOT_ASSIGNED.to_owned())
            }
            Some(row) if params.from_agent.is_some_and(|from| row.assigned_agent_id != Some(from)) => {
                Some("no longer assigned to the agent whose accounts were moved".to_owned())
            }
            Some(row) if !may_lift && leaves_dispute(row.status, params.patch.status) => Some(lift_refusal("status").to_owned()),
            Some(row) if !may_resolve_owing && resolves_owing(row.status, row.current_balance, params.patch.status) => {
                Some(RESOLVE_OWING_REFUSAL.to_owned())
            }
            Some(row) => {
                let agent = params.patch.assign.unwrap_or(row.assigned_agent_id);
                let portfolio = params.patch.portfolio.unwrap_or(row.portfolio_id);
                let moved = params.patch.assign.is_some() || params.patch.portfolio.is_some();
                (moved && !assignees.admit(&mut tx, agent, portfolio).await?).then(|| format!("assigned_agent_id: {NOT_GRANTED}"))
            }
        };
        match reason {
            Some(reason) => {
                refused.insert(*id, reason);
            }
            None => allowed.push(*id),
        }
    }
    // An agent given accounts by the whole job is told once.
    notifications::batch_with_job(&mut tx, job).await?;
    let mut custom = Vec::new();
    if params.patch.checks_each_account() {
        let (passed, failed) = checked_custom_fields(&mut tx, &allowed, &params.patch).await?;
        allowed.retain(|id| !failed.contains_key(id));
        refused.extend(failed);
        custom = passed;
    }
    let updated = accounts::apply_bulk_patch(&mut tx, &allowed, &params.patch, &custom, params.actor).await?;
    let updated: std::collections::HashSet<Uuid> = updated.into_iter().collect();
    let outcomes: Vec<(i32, Option<String>)> = items
        .iter()
        .map(|(seq, id)| {
            let error = match refused.get(id) {
                Some(reason) => Some(reason.clone()),
                None if updated.contains(id) => None,
                None => Some(format!("the account would have more than {MAX_TAGS} tags")),
            };
            (*seq, error)
        })
        .collect();
    jobs::record(&mut tx, job, &outcomes).await?;
    tx.commit().await?;
    Ok(items.len())
}
