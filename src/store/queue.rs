//! The work queue's tables: the dates its reason tiers select on, and claims (an
//! agent's hold on the account `POST /queue/next` gave them).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::error::Result;
use crate::store::compliance::{self, POLICY_COLUMNS, PolicyRow};

/// The dates of one account that place it in a reason tier of the queue.
#[derive(Clone, Copy, Debug, Default, FromRow)]
pub struct ReasonDates {
    pub id: Uuid,
    /// Due date of the latest broken promise.
    pub broken_promise_due: Option<NaiveDate>,
    /// Due date of the oldest missed and still unpaid instalment of the active plan.
    pub plan_missed_due: Option<NaiveDate>,
}

/// The reason dates of `ids`.
pub async fn reason_dates(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, ReasonDates>> {
    let rows = sqlx::query_as::<_, ReasonDates>(
        "SELECT a.id,
                (SELECT max(due_date) FROM promises WHERE account_id = a.id AND status = 'broken') AS broken_promise_due,
                (SELECT min(i.due_date) FROM plans p JOIN plan_instalments i ON i.plan_id = p.id
                  WHERE p.account_id = a.id AND p.status = 'active'
                    AND i.missed_at IS NOT NULL AND i.paid_amount < i.amount) AS plan_missed_due
         FROM unnest($1::uuid[]) AS a(id)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// Ends any claim on the account (an activity was logged on it).
pub async fn release(tx: &mut PgConnection, account_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM queue_claims WHERE account_id = $1")
        .bind(account_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Claims for `agent` the first of `candidates` (in order) that is live, assigned to
/// them or to nobody, and not held by another agent's live claim, for `seconds`; an
/// unassigned account becomes theirs. The agent's earlier claims end. Two agents never
/// hold the same account: a row another claim is locking is skipped, and the upsert only
/// replaces an expired claim or the agent's own. One statement, so one round trip: its
/// parts see one snapshot, and the release leaves the claimed row to the upsert.
pub async fn claim(conn: &mut PgConnection, agent: Uuid, candidates: &[Uuid], seconds: i64) -> Result<Option<(Uuid, DateTime<Utc>)>> {
    let claimed = sqlx::query_as(
        "WITH pick AS (
             SELECT a.id FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, ord)
             JOIN accounts a ON a.id = c.id
             WHERE a.deleted_at IS NULL AND (a.assigned_agent_id = $2 OR a.assigned_agent_id IS NULL)
               AND NOT EXISTS (SELECT 1 FROM queue_claims q
                               WHERE q.account_id = a.id AND q.expires_at > now() AND q.agent_id <> $2)
             ORDER BY c.ord
             LIMIT 1
             FOR UPDATE OF a SKIP LOCKED
         ), claimed AS (
             INSERT INTO queue_claims (account_id, agent_id, expires_at)
             SELECT id, $2, now() + make_interval(secs => $3) FROM pick
             ON CONFLICT (account_id) DO UPDATE
                 SET agent_id = EXCLUDED.agent_id, claimed_at = now(), expires_at = EXCLUDED.expires_at
                 WHERE queue_claims.expires_at <= now() OR queue_claims.agent_id = EXCLUDED.agent_id
             RETURNING account_id, expires_at
         ), released AS (
             DELETE FROM queue_claims
             WHERE agent_id = $2 AND account_id NOT IN (SELECT account_id FROM claimed)
         ), assigned AS (
             UPDATE accounts SET assigned_agent_id = $2, updated_by = $2, updated_at = now()
             WHERE id IN (SELECT account_id FROM claimed) AND assigned_agent_id IS NULL
         )
         SELECT account_id, expires_at FROM claimed",
    )
    .bind(candidates)
    .bind(agent)
    .bind(seconds as f64)
    .fetch_optional(conn)
    .await?;
    Ok(claimed)
}

/// Accounts of one queue that the contact guard sees alike: the same standing, zones and
/// policy.
#[derive(Clone, Debug, FromRow)]
pub struct StandingGroup {
    pub timezone: String,
    /// Other zones the debtor may be in (domain::debtor_zone).
    pub alternate_timezones: Vec<String>,
    /// The zones of the address's country (or of the default country `*`), used when
    /// `timezone` says nothing about where the debtor lives.
    pub country_zones: Vec<String>,
    pub cease_communication: bool,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub unverified_dispute: bool,
    pub accounts: i64,
    /// The policy in force for these accounts (their portfolio's, or the agency's).
    #[sqlx(flatten)]
    pub policy: PolicyRow,
}

/// The live accounts of an agent's queue (`None`: the unassigned ones) in one of
/// `statuses`, in no portfolio or one of `scope` (`None`: any), grouped by what the
/// guard reads of them: one aggregate over the queue's rows by the assignee index,
/// returning a row per distinct zone, flag set and portfolio (a few dozen), never the
/// accounts themselves.
pub async fn standings(
    conn: &mut PgConnection,
    agent: Option<Uuid>,
    statuses: &[&str],
    scope: Option<&[Uuid]>,
) -> Result<Vec<StandingGroup>> {
    let owner = if agent.is_some() {
        "a.assigned_agent_id = $1"
    } else {
        "a.assigned_agent_id IS NULL AND $1::uuid IS NULL"
    };
    let rows = sqlx::query_as::<_, StandingGroup>(sqlx::AssertSqlSafe(format!(
        "WITH g AS (
             SELECT a.timezone, a.alternate_timezones, upper(coalesce(a.address_country, '')) AS country,
                    a.cease_communication,
                    a.do_not_call, a.do_not_email,
                    (a.status = 'disputed' AND a.dispute_verified_at IS NULL) AS unverified_dispute,
                    a.portfolio_id, count(*) AS accounts
             FROM accounts a
             WHERE a.deleted_at IS NULL AND a.status = ANY($2) AND {owner}
               AND ($3::uuid[] IS NULL OR a.portfolio_id IS NULL OR a.portfolio_id = ANY($3))
             GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
         )
         SELECT g.timezone, g.alternate_timezones, g.cease_communication, g.do_not_call, g.do_not_email, g.unverified_dispute, g.accounts,
                coalesce((SELECT array_agg(z.timezone ORDER BY z.timezone) FROM contact_zones z
                           WHERE z.country = coalesce(
                               (SELECT country FROM contact_zones WHERE country = g.country LIMIT 1), '*')),
                         '{{}}') AS country_zones,
                {POLICY_COLUMNS}
         FROM g {}",
        compliance::policy_join("g")
    )))
    .bind(agent)
    .bind(statuses)
    .bind(scope)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}
