//! Runs an import chunk by chunk. Each chunk locks its staged rows, validates them as
//! the API would, creates or updates the accounts, and records every row's outcome and
//! the job's counters in the same transaction: a crash replays at most an uncommitted
//! chunk, and no row is applied twice. A dry run does the same work inside a savepoint
//! it rolls back, so its answer is the real one and nothing is written.

use std::collections::HashMap;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::account::AccountFields;
use crate::domain::contact::parse_region;
use crate::domain::custom_field::Catalog;
use crate::domain::portfolio::{NOT_GRANTED, NOT_YOURS_TO_PLACE, Scope};
use crate::domain::role::{Action, NOT_ASSIGNABLE, Role, allows};
use crate::error::Result;
use crate::import::RowError;
use crate::import::columns::Column;
use crate::import::rows::{self, Agents, Context, Portfolios, Values};
use crate::jobs::Stop;
use crate::service::imports::{ImportParams, Mode};
use crate::service::portfolios;
use crate::store;
use crate::store::accounts::{self, AccountRow};
use crate::store::imports::{self, ChunkOutcome};
use crate::store::jobs::{self, JobRow};
use crate::store::notifications;
use crate::store::users;
use crate::telemetry::metrics;

/// Rows per transaction.
pub const CHUNK: i64 = 5000;
/// Rows per INSERT or UPDATE statement; a failing statement is retried row by row, so
/// this also bounds that retry.
const INSERT_BATCH: usize = CHUNK as usize;

pub async fn run(pool: &PgPool, job: &JobRow, shutdown: &watch::Receiver<bool>) -> Result<Stop> {
    let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    super::chunks(pool, job.id, shutdown, || run_chunk(pool, job.id, &params)).await
}

/// The job's result once it ended: outcome counts and what was not imported. A dry run
/// created and updated nothing: its counts are what the import `would_create` and
/// `would_update`.
pub async fn summary(pool: &PgPool, job: &JobRow) -> Result<serde_json::Value> {
    let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    let (created, updated, failed) = imports::counts(pool, job.id).await?;
    let dry_run = params.mode == Mode::DryRun;
    let done = |count: i64| if dry_run { 0 } else { count };
    let would = |count: i64| dry_run.then_some(count);
    Ok(serde_json::json!({
        "mode": params.mode,
        "dry_run": dry_run,
        "created": done(created),
        "updated": done(updated),
        "would_create": would(created),
        "would_update": would(updated),
        "failed": failed,
        "locale": params.locale,
        "file_name": params.file_name,
        "format": params.format,
        "sheet": params.sheet,
        "unknown_columns": params.mapping.unknown,
        "errors_url": format!("/api/v1/imports/{}/errors.xlsx", job.id),
    }))
}

/// What became of a row in this chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Failed,
}

struct Settled {
    outcome: Outcome,
    errors: Vec<RowError>,
}

/// What a valid row will do.
enum Plan {
    Create(Uuid, AccountFields),
    Update(Uuid, AccountFields),
}

impl Plan {
    fn fields(&self) -> &AccountFields {
        match self {
            Plan::Create(_, fields) | Plan::Update(_, fields) => fields,
        }
    }
}

/// Whether `role` may run this import (as the upload handler checks it): create
/// accounts, update any account in upsert mode, assign them when a column does. Each
/// chunk checks the importer as they are when it runs.
fn may_import(role: Role, params: &ImportParams) -> bool {
    allows(role, Action::CreateAccount)
        && (params.mode == Mode::Create || allows(role, Action::UpdateAnyAccount))
        && (!params.mapping.has(Column::AssignedAgentId) || allows(role, Action::AssignAccount))
}

/// Settles the next chunk; returns how many rows it settled (0: the job is done).
pub async fn run_chunk(pool: &PgPool, job: Uuid, params: &ImportParams) -> Result<usize> {
    let region = parse_region(&params.region).map_err(|e| anyhow::anyhow!("import region: {e}"))?;
    let mut tx = store::begin_for_job(pool, &format!("import:{job}"), Some(params.actor)).await?;
    store::fields::hold_shared(&mut tx).await?;
    let staged = imports::next(&mut tx, job, CHUNK).await?;
    if staged.is_empty() {
        return Ok(0);
    }
    let submitter = users::standing(&mut tx, params.actor)
        .await?
        .filter(|role| may_import(*role, params));
    let values: Vec<Values<'_>> = staged.iter().map(|r| Values::new(&params.mapping, &r.cells)).collect();
    let scope = match submitter {
        Some(role) => portfolios::scope_of(&mut tx, params.actor, role).await?,
        None => Scope::Granted(Vec::new()),
    };
    let agents = resolve_agents(&mut tx, &values).await?;
    let portfolios = resolve_portfolios(&mut tx, &values, &scope).await?;
    let catalog = Catalog::new(store::fields::live(&mut tx).await?);
    let context = Context {
        headers: &params.headers,
        mapping: &params.mapping,
        region,
        locale: params.locale,
        agents: &agents,
        portfolios: &portfolios,
        catalog: &catalog,
    };
    let existing = match params.mode {
        Mode::Create => HashMap::new(),
        Mode::Upsert | Mode::DryRun => lock_existing(&mut tx, &values).await?,
    };
    let mut assignees = portfolios::Assignees::default();
    let agent_column = params.mapping.header(&params.headers, Column::AssignedAgentId).to_owned();
    let mut settled: Vec<Settled> = Vec::with_capacity(staged.len());
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    for (index, values) in values.iter().enumerate() {
        let number = values.account_number().and_then(|n| n.ok());
        let plan = match number.as_ref().and_then(|n| existing.get(n)) {
            _ if submitter.is_none() => Err(vec![RowError {
                column: String::new(),
                message: "the importer is disabled or may no longer make this import".to_owned(),
            }]),
            Some(current) if current.deleted_at.is_some() => Err(vec![RowError {
                column: params.mapping.header(&params.headers, Column::AccountNumber).to_owned(),
                message: format!("account {} is deleted; restore it before importing over it", current.account_number),
            }]),
            Some(current) if !scope.admits(current.portfolio_id) => Err(vec![RowError {
                column: params.mapping.header(&params.headers, Column::AccountNumber).to_owned(),
                message: format!("account {} is in a portfolio not granted to you", current.account_number),
            }]),
            Some(current) => {
                rows::for_update(&context, values, current.fields(), current.search_version).map(|f| Plan::Update(current.id, f))
            }
            None => rows::for_create(&context, values).map(|f| Plan::Create(Uuid::now_v7(), f)),
        };
        // An account goes only to an agent granted its portfolio (checked when the row
        // gives it an agent or a portfolio).
        let before = number
            .as_ref()
            .and_then(|n| existing.get(n))
            .map(|c| (c.assigned_agent_id, c.portfolio_id));
        let plan = match plan {
            Ok(plan)
                if before != Some((plan.fields().assigned_agent_id, plan.fields().portfolio_id))
                    && !assignees
                        .admit(&mut tx, plan.fields().assigned_agent_id, plan.fields().portfolio_id)
                        .await? =>
            {
                Err(vec![RowError {
                    column: agent_column.clone(),
                    message: NOT_GRANTED.to_owned(),
                }])
            }
            other => other,
        };
        // A row refused when staged fails with everything else wrong with it, so one
        // upload shows all of a row's errors.
        let refusals = &staged[index].refusals;
        let plan = match plan {
            Ok(_) if !refusals.is_empty() => Err(refusals.clone()),
            Err(errors) if !refusals.is_empty() => Err(refusals.iter().cloned().chain(errors).collect()),
            other => other,
        };
        settled.push(Settled {
            outcome: Outcome::Failed,
            errors: Vec::new(),
        });
        match plan {
            Ok(plan) => plans.push((index, plan)),
            Err(errors) => settled[index].errors = errors,
        }
    }
    // Imported accounts are announced by the job's events, not one event per row, and
    // their agents are told once per import.
    imports::quiet_account_events(&mut tx).await?;
    notifications::batch_with_job(&mut tx, job).await?;
    {
        let mut work = Connection::begin(&mut *tx).await?;
        apply(&mut work, params, plans, &mut settled).await?;
        if params.mode == Mode::DryRun {
            work.rollback().await?;
        } else {
            work.commit().await?;
        }
    }
    let count = |outcome| settled.iter().filter(|s| s.outcome == outcome).count() as i64;
    let chunk = ChunkOutcome {
        through: staged.last().map_or(0, |r| r.seq),
        created: count(Outcome::Created),
        updated: count(Outcome::Updated),
        failures: staged
            .iter()
            .zip(&mut settled)
            .filter(|(_, s)| s.outcome == Outcome::Failed)
            .map(|(row, s)| (row.seq, std::mem::take(&mut s.errors)))
            .collect(),
    };
    imports::settle(&mut tx, job, &chunk).await?;
    jobs::advance(&mut tx, job, staged.len() as i64, chunk.failures.len() as i64).await?;
    tx.commit().await?;
    metrics::import_rows(staged.len() as u64);
    Ok(staged.len())
}

/// Writes the planned rows: updates, then creates, each as one statement per batch. An
/// account number taken since validation is that row's error; a statement that fails is
/// retried row by row, so one unwritable row fails alone.
async fn apply(conn: &mut PgConnection, params: &ImportParams, plans: Vec<(usize, Plan)>, settled: &mut [Settled]) -> Result<()> {
    let number_column = {
        let header = params.mapping.header(&params.headers, Column::AccountNumber);
        if header.is_empty() { Column::AccountNumber.name() } else { header }.to_owned()
    };
    let (mut creates, mut updates) = (Vec::new(), Vec::new());
    for (index, plan) in plans {
        match plan {
            Plan::Create(id, fields) => creates.push((index, id, fields)),
            Plan::Update(id, fields) => updates.push((index, id, fields)),
        }
    }
    for (rows, outcome) in [(updates, Outcome::Updated), (creates, Outcome::Created)] {
        for batch in rows.chunks(INSERT_BATCH) {
            let all: Vec<(Uuid, &AccountFields)> = batch.iter().map(|(_, id, f)| (*id, f)).collect();
            let mut savepoint = Connection::begin(&mut *conn).await?;
            let written = match write(&mut savepoint, outcome, &all, params.actor).await {
                Ok(ids) => {
                    savepoint.commit().await?;
                    ids
                }
                Err(_) => {
                    savepoint.rollback().await?;
                    let mut ids = Vec::new();
                    for (index, id, fields) in batch {
                        let mut one = Connection::begin(&mut *conn).await?;
                        match write(&mut one, outcome, &[(*id, fields)], params.actor).await {
                            Ok(done) => {
                                one.commit().await?;
                                ids.extend(done);
                            }
                            Err(err) => {
                                one.rollback().await?;
                                settled[*index].errors = vec![unwritable(&number_column, &err)];
                            }
                        }
                    }
                    ids
                }
            };
            let written: std::collections::HashSet<Uuid> = written.into_iter().collect();
            for (index, id, fields) in batch {
                if written.contains(id) {
                    settled[*index].outcome = outcome;
                } else if settled[*index].errors.is_empty() {
                    let number = fields.account_number.as_deref().unwrap_or_default();
                    settled[*index].errors = vec![RowError {
                        column: number_column.clone(),
                        message: format!("account number {number} already exists; use mode upsert to update it"),
                    }];
                }
            }
        }
    }
    Ok(())
}

async fn write(conn: &mut PgConnection, outcome: Outcome, rows: &[(Uuid, &AccountFields)], actor: Uuid) -> Result<Vec<Uuid>> {
    match outcome {
        Outcome::Updated => accounts::update_many(conn, rows, actor).await,
        _ => accounts::insert_many(conn, rows, actor).await,
    }
}

fn unwritable(column: &str, err: &crate::error::Error) -> RowError {
    tracing::warn!(error = %err, "an import row could not be written");
    RowError {
        column: column.to_owned(),
        // The database's own words stay in the log: they may quote other rows' values
        // and the schema.
        message: "the row could not be saved; the server log has the reason".to_owned(),
    }
}

/// The distinct lookup keys ([`rows::agent_key`]) of the rows' cells in `column`.
fn cell_keys(values: &[Values<'_>], column: Column) -> Vec<String> {
    let keys: std::collections::BTreeSet<String> = values.iter().filter_map(|v| v.get(column)).map(rows::agent_key).collect();
    keys.into_iter().collect()
}

/// Agent cells, by id or email: who may be assigned accounts.
async fn resolve_agents(conn: &mut PgConnection, values: &[Values<'_>]) -> Result<Agents> {
    let keys = cell_keys(values, Column::AssignedAgentId);
    if keys.is_empty() {
        return Ok(Agents::new());
    }
    let ids: Vec<Uuid> = keys.iter().filter_map(|k| Uuid::parse_str(k).ok()).collect();
    let users = users::standings_by_id_or_email(&mut *conn, &ids, &keys).await?;
    let mut agents = Agents::new();
    for (id, email, role, disabled) in users {
        let verdict = if disabled || !Role::stored(&role).works_accounts() {
            Err(NOT_ASSIGNABLE.to_owned())
        } else {
            Ok(id)
        };
        agents.insert(id.to_string(), verdict.clone());
        agents.insert(email, verdict);
    }
    Ok(agents)
}

/// The portfolios the rows name, by id or name (case-insensitive): a live one within the
/// importer's `scope`, or why an account cannot be placed in it.
async fn resolve_portfolios(conn: &mut PgConnection, values: &[Values<'_>], scope: &Scope) -> Result<Portfolios> {
    let keys = cell_keys(values, Column::Portfolio);
    if keys.is_empty() {
        return Ok(Portfolios::new());
    }
    let ids: Vec<Uuid> = keys.iter().filter_map(|k| Uuid::parse_str(k).ok()).collect();
    let mut portfolios = Portfolios::new();
    for row in store::portfolios::by_ids_or_names(&mut *conn, &ids, &keys).await? {
        let verdict = match row.deleted_at {
            Some(_) => Err("the portfolio is deleted; restore it first".to_owned()),
            None if !scope.admits(Some(row.id)) => Err(NOT_YOURS_TO_PLACE.to_owned()),
            None => Ok(row.id),
        };
        portfolios.entry(row.id.to_string()).or_insert_with(|| verdict.clone());
        portfolios.entry(row.sort_name).or_insert(verdict);
    }
    Ok(portfolios)
}

/// The accounts the rows name, locked for the chunk (deleted ones too, to say so).
async fn lock_existing(conn: &mut PgConnection, values: &[Values<'_>]) -> Result<HashMap<String, AccountRow>> {
    let numbers: Vec<String> = values.iter().filter_map(|v| v.account_number()?.ok()).collect();
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = accounts::lock_by_numbers(conn, &numbers).await?;
    Ok(rows.into_iter().map(|r| (r.account_number.clone(), r)).collect())
}
