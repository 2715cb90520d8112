//! Portfolios as operations: admins create, change, delete and restore them and grant
//! them to users and teams; managers and admins read them. Every change is recorded in
//! the audit trail under the caller.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use sqlx::{PgConnection, PgPool};

use crate::domain::compliance::{Policy, PortfolioPolicy};
use crate::domain::portfolio::{Grantee, NewGrant, NewPortfolio, PortfolioPatch, Scope};
use crate::domain::principal::Principal;
use crate::domain::role::{Action, Role, allows};
use crate::domain::search::AccountQuery;
use crate::error::{Code, Error, FieldError, Result};
use crate::service::Window;
use crate::store::{self, compliance, portfolios, users};

pub use crate::store::portfolios::{GrantRow, PortfolioRow};

fn name_taken(name: &str) -> Error {
    Error::with_fields(
        Code::Conflict,
        format!("a live portfolio is already named {name:?}"),
        vec![FieldError::new("name", "is taken by another live portfolio")],
    )
}

/// Maps the live-name refusal to its 409; other errors pass.
fn written(result: sqlx::Result<PortfolioRow>, name: &str) -> Result<PortfolioRow> {
    result.map_err(|e| {
        if portfolios::is_name_taken(&e) {
            name_taken(name)
        } else {
            e.into()
        }
    })
}

/// The accounts `caller` sees and works by their portfolio (docs/features/portfolios.md,
/// "Who sees a portfolio's accounts"): admins every account; managers those of the
/// portfolios granted to them, their team or its members; others those granted to them
/// or their team. Accounts in no portfolio are within everyone's scope.
pub async fn scope(conn: &mut PgConnection, caller: &Principal) -> Result<Scope> {
    scope_of(conn, caller.user_id, caller.role).await
}

/// The scope of the user `user` in `role`, as [`scope`] gives a caller's.
pub async fn scope_of(conn: &mut PgConnection, user: Uuid, role: Role) -> Result<Scope> {
    if allows(role, Action::WorkEveryPortfolio) {
        return Ok(Scope::Every);
    }
    Ok(Scope::Granted(portfolios::granted_to(conn, user, role == Role::Manager).await?))
}

/// Whether an account in `portfolio` is within `caller`'s scope.
pub async fn in_scope(conn: &mut PgConnection, caller: &Principal, portfolio: Option<Uuid>) -> Result<bool> {
    Ok(portfolio.is_none() || scope(conn, caller).await?.admits(portfolio))
}

/// The scopes of the users accounts are assigned to, each read once: one assignment, or
/// every row of a bulk update or an import chunk.
#[derive(Default)]
pub struct Assignees(HashMap<Uuid, Option<Scope>>);

impl Assignees {
    /// Whether an account in `portfolio` may go to `agent` (docs/features/portfolios.md,
    /// "Who sees a portfolio's accounts"). To no one, or to a disabled user (whom the
    /// assignee checks refuse on their own): yes.
    pub async fn admit(&mut self, conn: &mut PgConnection, agent: Option<Uuid>, portfolio: Option<Uuid>) -> Result<bool> {
        let (Some(agent), Some(_)) = (agent, portfolio) else {
            return Ok(true);
        };
        let scope = match self.0.entry(agent) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let scope = match users::standing(conn, agent).await? {
                    Some(role) => Some(scope_of(conn, agent, role).await?),
                    None => None,
                };
                unknown.insert(scope)
            }
        };
        Ok(scope.as_ref().is_none_or(|scope| scope.admits(portfolio)))
    }
}

/// `query` limited to the accounts `caller` sees by their portfolio.
pub async fn scoped(pool: &PgPool, caller: &Principal, mut query: AccountQuery) -> Result<AccountQuery> {
    query.portfolio_scope = search_scope(pool, caller).await?;
    Ok(query)
}

/// How long a search scope read from SQL answers a user's searches. As for sessions
/// (`auth::session_cache::TTL`): the process that grants, revokes or changes a user
/// forgets every scope at once, so there the change is immediate, and other API
/// processes (and changes made in SQL) follow within this.
pub const SCOPE_TTL: Duration = Duration::from_secs(2);
/// Scopes kept at most; past it, expired ones are dropped (all, if none expired).
const SCOPES_KEPT: usize = 100_000;

/// The search scopes read recently, by user and role. A search otherwise costs one SQL
/// read of the grants, and it was the only statement of one (docs/benchmarks.md).
#[derive(Default)]
struct Scopes {
    /// Counts the forgettings: a scope read before one is not kept after it.
    generation: u64,
    read: HashMap<(Uuid, Role), (Instant, Vec<Uuid>)>,
}

static SCOPES: LazyLock<Mutex<Scopes>> = LazyLock::new(Default::default);

fn scopes() -> std::sync::MutexGuard<'static, Scopes> {
    SCOPES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forgets every search scope read: a grant, a revoke or a user's new team or role may
/// change anyone's (a manager's spans their team's members).
pub fn forget_scopes() {
    let mut scopes = scopes();
    scopes.generation += 1;
    scopes.read.clear();
}

/// What [`AccountQuery::portfolio_scope`] limits `caller`'s searches to.
pub async fn search_scope(pool: &PgPool, caller: &Principal) -> Result<Option<Vec<Uuid>>> {
    if caller.can(Action::WorkEveryPortfolio) {
        return Ok(None);
    }
    let key = (caller.user_id, caller.role);
    let generation = {
        let scopes = scopes();
        if let Some((_, granted)) = scopes.read.get(&key).filter(|(read, _)| read.elapsed() < SCOPE_TTL) {
            return Ok(Some(granted.clone()));
        }
        scopes.generation
    };
    let read = Instant::now();
    let granted = scope(&mut *pool.acquire().await?, caller).await?.into_search();
    let mut scopes = scopes();
    if let Some(granted) = granted.as_ref().filter(|_| scopes.generation == generation) {
        if scopes.read.len() >= SCOPES_KEPT {
            scopes.read.retain(|_, (at, _)| at.elapsed() < SCOPE_TTL);
            if scopes.read.len() >= SCOPES_KEPT {
                scopes.read.clear();
            }
        }
        scopes.read.insert(key, (read, granted.clone()));
    }
    Ok(granted)
}

/// Portfolio `id` locked for a change: 404 when there is none, 409 when it is deleted
/// (`change` says what waits for its restore, e.g. "granting it").
async fn lock_live(tx: &mut PgConnection, id: Uuid, change: &str) -> Result<PortfolioRow> {
    let current = portfolios::get(tx, id, true).await?.ok_or_else(|| Error::not_found("portfolio"))?;
    if current.deleted_at.is_some() {
        return Err(Error::new(
            Code::Conflict,
            format!("this portfolio is deleted; restore it before {change}"),
        ));
    }
    Ok(current)
}

pub async fn create(pool: &PgPool, caller: &Principal, body: NewPortfolio) -> Result<PortfolioRow> {
    caller.require(Action::ManagePortfolios)?;
    let fields = body.validate().map_err(Error::validation)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let row = written(
        portfolios::insert(&mut tx, Uuid::now_v7(), &fields, caller.user_id).await,
        &fields.name,
    )?;
    tx.commit().await?;
    Ok(row)
}

/// A portfolio; a deleted one only when `include_deleted`.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid, include_deleted: bool) -> Result<PortfolioRow> {
    caller.require(Action::ReadPortfolios)?;
    portfolios::get(&mut *pool.acquire().await?, id, false)
        .await?
        .filter(|row| include_deleted || row.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("portfolio"))
}

/// Portfolios by name; deleted ones too when `include_deleted`.
pub async fn list(
    pool: &PgPool,
    caller: &Principal,
    include_deleted: bool,
    window: Window<(String, Uuid)>,
) -> Result<(Vec<PortfolioRow>, i64)> {
    caller.require(Action::ReadPortfolios)?;
    let rows = portfolios::page(pool, include_deleted, window.after, window.limit).await?;
    Ok((rows, portfolios::count(pool, include_deleted).await?))
}

pub async fn update(pool: &PgPool, caller: &Principal, id: Uuid, patch: PortfolioPatch) -> Result<PortfolioRow> {
    caller.require(Action::ManagePortfolios)?;
    if patch.is_empty() {
        return Err(Error::field(
            "body",
            "name at least one of name, client, placement_date, commission_rate, delinquent_after_days",
        ));
    }
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let current = lock_live(&mut tx, id, "changing it").await?;
    let fields = patch.apply(current.fields()).map_err(Error::validation)?;
    let row = written(portfolios::update(&mut tx, id, &fields, caller.user_id).await, &fields.name)?;
    if row.name != current.name {
        // The accounts' documents carry the name (for reports): they are indexed again.
        portfolios::touch_accounts(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Deletes (`deleted = true`) or restores the portfolio. Its row stays: accounts and the
/// audit trail still name it. A restored portfolio takes back its name only if no live
/// one has taken it.
pub async fn set_deleted(pool: &PgPool, caller: &Principal, id: Uuid, deleted: bool) -> Result<PortfolioRow> {
    caller.require(Action::ManagePortfolios)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let current = portfolios::get(&mut tx, id, true)
        .await?
        .ok_or_else(|| Error::not_found("portfolio"))?;
    if current.deleted_at.is_some() == deleted {
        let state = if deleted { "already deleted" } else { "not deleted" };
        return Err(Error::new(Code::Conflict, format!("this portfolio is {state}")));
    }
    let row = written(portfolios::set_deleted(&mut tx, id, deleted, caller.user_id).await, &current.name)?;
    tx.commit().await?;
    Ok(row)
}

/// Grants a live portfolio to a user who works accounts, or to a team. Granting what is
/// already granted answers the existing grant's conflict.
pub async fn grant(pool: &PgPool, caller: &Principal, portfolio: Uuid, body: NewGrant) -> Result<GrantRow> {
    caller.require(Action::ManagePortfolios)?;
    let grantee = body.validate().map_err(Error::validation)?;
    if let Grantee::User(user) = &grantee {
        let works = users::by_id(pool, *user)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .is_some_and(|u| Role::stored(&u.role).works_accounts());
        if !works {
            return Err(Error::field("user_id", "no such user who works accounts"));
        }
    }
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    lock_live(&mut tx, portfolio, "granting it").await?;
    let row = portfolios::grant(&mut tx, Uuid::now_v7(), portfolio, &grantee, caller.user_id)
        .await?
        .ok_or_else(|| Error::new(Code::Conflict, "this portfolio is already granted to them"))?;
    tx.commit().await?;
    forget_scopes();
    Ok(row)
}

pub async fn revoke(pool: &PgPool, caller: &Principal, portfolio: Uuid, grant: Uuid) -> Result<()> {
    caller.require(Action::ManagePortfolios)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    if !portfolios::revoke(&mut tx, portfolio, grant).await? {
        return Err(Error::not_found("grant"));
    }
    tx.commit().await?;
    forget_scopes();
    Ok(())
}

/// A portfolio's contact policy: what it sets of its own, the policy in force for its
/// accounts (the agency's where it sets nothing), and the agency's.
pub struct ContactPolicy {
    pub own: PortfolioPolicy,
    pub in_force: Policy,
    pub agency: Policy,
}

/// The contact policy of portfolio `id`, deleted or not.
pub async fn contact_policy(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<ContactPolicy> {
    get(pool, caller, id, true).await?;
    let mut conn = pool.acquire().await?;
    Ok(ContactPolicy {
        own: compliance::portfolio_policy(&mut conn, id).await?,
        in_force: compliance::policy_of(&mut conn, Some(id)).await?,
        agency: compliance::policy_of(&mut conn, None).await?,
    })
}

/// Replaces what portfolio `id` sets of its own contact policy (`policy` setting nothing
/// makes it follow the agency's). When that changes, its accounts are indexed again in
/// the same transaction, so the contact filter and the queue follow the new rules.
pub async fn set_contact_policy(pool: &PgPool, caller: &Principal, id: Uuid, policy: PortfolioPolicy) -> Result<ContactPolicy> {
    caller.require(Action::ManagePortfolios)?;
    let own = policy.normalized();
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    lock_live(&mut tx, id, "changing its contact policy").await?;
    let agency = compliance::policy_of(&mut tx, None).await?;
    let in_force = own.over(&agency).map_err(Error::validation)?;
    if compliance::set_portfolio_policy(&mut tx, id, &own, caller.user_id).await? {
        portfolios::touch_accounts(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(ContactPolicy { own, in_force, agency })
}

/// A portfolio's grants, newest first.
pub async fn grants(pool: &PgPool, caller: &Principal, portfolio: Uuid, window: Window) -> Result<(Vec<GrantRow>, i64)> {
    get(pool, caller, portfolio, true).await?;
    let rows = portfolios::grants(pool, portfolio, window.after, window.limit).await?;
    Ok((rows, portfolios::grant_count(pool, portfolio).await?))
}
