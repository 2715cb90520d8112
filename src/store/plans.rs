//! Payment plans and their instalments. Payments are allocated to instalments, and plans
//! completed, by the payment trigger (`allocate_plan_payments`, migration 0017); missed
//! instalments and broken plans by [`mark_missed`], run by the plan scheduler.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::plan::{Frequency, NewPlan, PlanStatus};
use crate::domain::search::AgentFilter;
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

/// A plan with what its list and view show of its account and instalments.
#[derive(Clone, Debug, FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub total: Decimal,
    pub frequency: Frequency,
    pub day_of_month: Option<i16>,
    pub first_due_date: NaiveDate,
    pub status: PlanStatus,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub currency: Currency,
    pub assigned_agent_id: Option<Uuid>,
    pub instalment_count: i64,
    pub paid_total: Decimal,
    pub missed_count: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct InstalmentRow {
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: Decimal,
    pub paid_amount: Decimal,
    pub paid_at: Option<DateTime<Utc>>,
    pub missed_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT p.id, p.account_id, p.total, p.frequency, p.day_of_month, p.first_due_date, p.status,
        p.created_by, p.created_at, p.resolved_at, a.currency, a.assigned_agent_id,
        i.n AS instalment_count, i.paid AS paid_total, i.missed AS missed_count
    FROM plans p JOIN accounts a ON a.id = p.account_id
    CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(paid_amount), 0) AS paid,
                               count(*) FILTER (WHERE missed_at IS NOT NULL) AS missed
                        FROM plan_instalments WHERE plan_id = p.id) i";

/// Records an active plan and its instalments; the trigger moves the account to
/// `payment_plan` unless its status says something stronger.
pub async fn insert(tx: &mut PgConnection, account_id: Uuid, plan: &NewPlan, actor: Uuid) -> Result<PlanRow> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, account_id, total, frequency, day_of_month, first_due_date, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(account_id)
    .bind(plan.total)
    .bind(plan.frequency)
    .bind(plan.day_of_month.map(|d| d as i16))
    .bind(plan.first_due_date)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let (dates, amounts): (Vec<NaiveDate>, Vec<Decimal>) = plan.instalments.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO plan_instalments (plan_id, seq, due_date, amount)
         SELECT $1, n, d, a FROM unnest($2::date[], $3::numeric[]) WITH ORDINALITY AS s(d, a, n)",
    )
    .bind(id)
    .bind(&dates)
    .bind(&amounts)
    .execute(&mut *tx)
    .await?;
    let row = get(&mut *tx, id).await?;
    row.ok_or_else(|| crate::error::Error::Internal(anyhow::anyhow!("plan {id} vanished")))
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<PlanRow>> {
    Ok(
        sqlx::query_as::<_, PlanRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.id = $1")))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// A plan's instalments in order.
pub async fn instalments(pool: &PgPool, plan_id: Uuid) -> Result<Vec<InstalmentRow>> {
    Ok(sqlx::query_as::<_, InstalmentRow>(
        "SELECT seq, due_date, amount, paid_amount, paid_at, missed_at FROM plan_instalments WHERE plan_id = $1 ORDER BY seq",
    )
    .bind(plan_id)
    .fetch_all(pool)
    .await?)
}

/// Cancels an active plan. `None` when it is not active (any more).
pub async fn cancel(tx: &mut PgConnection, id: Uuid) -> Result<Option<PlanRow>> {
    let cancelled = sqlx::query("UPDATE plans SET status = 'cancelled', resolved_at = now() WHERE id = $1 AND status = 'active'")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if cancelled == 0 {
        return Ok(None);
    }
    get(tx, id).await
}

/// What `GET /plans` may filter on; empty lists mean "any".
#[derive(Clone, Debug, Default)]
pub struct PlanFilter {
    pub statuses: Vec<PlanStatus>,
    pub account_ids: Vec<Uuid>,
    pub agent: Option<AgentFilter>,
    /// Only plans of accounts in these portfolios or in none (`None`: every account),
    /// as [`super::portfolios::push_scope`] reads it: the caller's scope.
    pub scope: Option<Vec<Uuid>>,
    /// Only plans of accounts assigned to this user (an agent's reach,
    /// docs/security.md#what-an-agent-reads).
    pub worked_by: Option<Uuid>,
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &PlanFilter) {
    qb.push(" WHERE a.deleted_at IS NULL");
    if !filter.statuses.is_empty() {
        qb.push(" AND p.status = ANY(").push_bind(filter.statuses.clone()).push(")");
    }
    if !filter.account_ids.is_empty() {
        qb.push(" AND p.account_id = ANY(").push_bind(filter.account_ids.clone()).push(")");
    }
    match filter.agent {
        Some(AgentFilter::Agent(agent)) => {
            qb.push(" AND a.assigned_agent_id = ").push_bind(agent);
        }
        Some(AgentFilter::Unassigned) => {
            qb.push(" AND a.assigned_agent_id IS NULL");
        }
        None => {}
    }
    if let Some(user) = filter.worked_by {
        qb.push(" AND a.assigned_agent_id = ").push_bind(user);
    }
    super::portfolios::push_scope(qb, "p.account_id", filter.scope.as_deref());
}

/// Newest first, after a keyset position.
pub async fn list(pool: &PgPool, filter: &PlanFilter, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<PlanRow>> {
    let mut query = QueryBuilder::new(SELECT);
    push_filter(&mut query, filter);
    NewestFirst::by("p.created_at", "p.id").page(pool, query, after, limit).await
}

pub async fn count(pool: &PgPool, filter: &PlanFilter) -> Result<i64> {
    let mut query = QueryBuilder::new("SELECT count(*) FROM plans p JOIN accounts a ON a.id = p.account_id");
    push_filter(&mut query, filter);
    keyset::count(pool, query).await
}

/// What one scheduler run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Misses {
    pub missed: u64,
    pub broken: u64,
}

/// Marks missed every unpaid instalment of an active plan whose due date plus
/// `grace_days` is before the date of `now` in its account's time zone, then breaks the
/// active plans with `max_misses` missed instalments. Conditional updates in one
/// transaction: running it twice, or from two processes at once, marks (and notifies)
/// each instalment once and breaks each plan once. The accounts concerned are locked
/// first, in id order, as a payment locks its account before its instalments and plan,
/// and only their plans are touched.
pub async fn mark_missed(pool: &PgPool, now: DateTime<Utc>, grace_days: u32, max_misses: u32) -> Result<Misses> {
    let grace = i32::try_from(grace_days).unwrap_or(i32::MAX);
    let mut tx = super::begin_for_job(pool, "scheduler:plans", None).await?;
    let accounts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN plans p ON p.account_id = a.id AND p.status = 'active'
         WHERE EXISTS (SELECT 1 FROM plan_instalments i
                       WHERE i.plan_id = p.id AND i.missed_at IS NULL AND i.paid_amount < i.amount
                         AND i.due_date + $2::int < ($1 AT TIME ZONE a.timezone)::date)
            OR (SELECT count(*) FROM plan_instalments i WHERE i.plan_id = p.id AND i.missed_at IS NOT NULL) >= $3
         ORDER BY a.id FOR NO KEY UPDATE OF a",
    )
    .bind(now)
    .bind(grace)
    .bind(i64::from(max_misses))
    .fetch_all(&mut *tx)
    .await?;
    if accounts.is_empty() {
        return Ok(Misses::default());
    }
    let missed = sqlx::query(
        "UPDATE plan_instalments i SET missed_at = $1
         FROM plans p JOIN accounts a ON a.id = p.account_id
         WHERE i.plan_id = p.id AND p.status = 'active' AND i.missed_at IS NULL
           AND i.paid_amount < i.amount AND i.due_date + $2::int < ($1 AT TIME ZONE a.timezone)::date
           AND a.id = ANY($3)",
    )
    .bind(now)
    .bind(grace)
    .bind(&accounts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let broken = sqlx::query(
        "UPDATE plans p SET status = 'broken', resolved_at = $1
         WHERE p.status = 'active' AND p.account_id = ANY($3)
           AND (SELECT count(*) FROM plan_instalments i WHERE i.plan_id = p.id AND i.missed_at IS NOT NULL) >= $2",
    )
    .bind(now)
    .bind(i64::from(max_misses))
    .bind(&accounts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Misses { missed, broken })
}
