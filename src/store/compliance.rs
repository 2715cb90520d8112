//! The contact guard's tables: the policy, the zones of countries, what an account's
//! rows say about contacting its debtor, and managers' overrides.

use std::collections::HashMap;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::activity::{Outcome, from_wire, wire_name};
use crate::domain::compliance::{CallHistory, Channel, ContactInputs, Policy, PortfolioPolicy, Rule, Standing, guard_zones};
use crate::error::{Error, Result};
use crate::store::keyset::{self, NewestFirst};
use crate::store::portfolios;

/// A policy as the `contact_policies` view holds it (read it as a [`Policy`]).
#[derive(Clone, Debug, FromRow)]
pub struct PolicyRow {
    window_start: NaiveTime,
    window_end: NaiveTime,
    window_channels: Vec<Channel>,
    call_attempt_limit: i32,
    call_attempt_days: i32,
    conversation_days: i32,
    conversation_outcomes: Vec<String>,
    override_minutes: i32,
}

impl From<PolicyRow> for Policy {
    fn from(row: PolicyRow) -> Policy {
        let number = |n: i32| u32::try_from(n).unwrap_or(0);
        Policy {
            window_start: row.window_start,
            window_end: row.window_end,
            window_channels: row.window_channels,
            call_attempt_limit: number(row.call_attempt_limit).max(1),
            call_attempt_days: number(row.call_attempt_days),
            conversation_days: number(row.conversation_days),
            conversation_outcomes: row.conversation_outcomes.iter().filter_map(|o| from_wire::<Outcome>(o)).collect(),
            override_minutes: number(row.override_minutes),
        }
    }
}

/// The columns of [`PolicyRow`] from the policy [`policy_join`] joins.
pub const POLICY_COLUMNS: &str = "pol.window_start, pol.window_end, pol.window_channels, pol.call_attempt_limit, \
     pol.call_attempt_days, pol.conversation_days, pol.conversation_outcomes, pol.override_minutes";

/// Joins, as `pol`, the policy in force for the rows of `alias` (a table with a
/// `portfolio_id`): their portfolio's, or the agency's when it has none of its own. The
/// one place that chooses an account's policy.
pub fn policy_join(alias: &str) -> String {
    format!(
        "CROSS JOIN LATERAL (SELECT * FROM contact_policies p
                             WHERE p.portfolio_id = {alias}.portfolio_id OR p.portfolio_id IS NULL
                             ORDER BY p.portfolio_id NULLS LAST LIMIT 1) pol"
    )
}

/// The policy in force for the accounts of `portfolio` (`None`: in no portfolio).
pub async fn policy_of(conn: &mut PgConnection, portfolio: Option<Uuid>) -> Result<Policy> {
    let row = sqlx::query_as::<_, PolicyRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {POLICY_COLUMNS} FROM (SELECT $1::uuid AS portfolio_id) x {}",
        policy_join("x")
    )))
    .bind(portfolio)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::Internal(anyhow::anyhow!("the contact_policy row is missing")))?;
    Ok(row.into())
}

#[derive(FromRow)]
struct PortfolioPolicyRow {
    window_start: Option<NaiveTime>,
    window_end: Option<NaiveTime>,
    window_channels: Option<Vec<Channel>>,
    call_attempt_limit: Option<i32>,
    call_attempt_days: Option<i32>,
    conversation_days: Option<i32>,
    conversation_outcomes: Option<Vec<String>>,
    override_minutes: Option<i32>,
}

/// What `portfolio` sets of its own policy (nothing when it has no row).
pub async fn portfolio_policy(conn: &mut PgConnection, portfolio: Uuid) -> Result<PortfolioPolicy> {
    let row = sqlx::query_as::<_, PortfolioPolicyRow>(
        "SELECT window_start, window_end, window_channels, call_attempt_limit, call_attempt_days,
                conversation_days, conversation_outcomes, override_minutes
         FROM portfolio_contact_policies WHERE portfolio_id = $1",
    )
    .bind(portfolio)
    .fetch_optional(conn)
    .await?;
    let number = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok());
    Ok(row.map_or_else(PortfolioPolicy::default, |r| PortfolioPolicy {
        window_start: r.window_start,
        window_end: r.window_end,
        window_channels: r.window_channels,
        call_attempt_limit: number(r.call_attempt_limit),
        call_attempt_days: number(r.call_attempt_days),
        conversation_days: number(r.conversation_days),
        conversation_outcomes: r
            .conversation_outcomes
            .map(|o| o.iter().filter_map(|o| from_wire::<Outcome>(o)).collect()),
        override_minutes: number(r.override_minutes),
    }))
}

/// Replaces `portfolio`'s own policy (removes it when `policy` sets nothing). Returns
/// whether anything changed.
pub async fn set_portfolio_policy(tx: &mut PgConnection, portfolio: Uuid, policy: &PortfolioPolicy, actor: Uuid) -> Result<bool> {
    if policy.is_empty() {
        let gone = sqlx::query("DELETE FROM portfolio_contact_policies WHERE portfolio_id = $1")
            .bind(portfolio)
            .execute(tx)
            .await?;
        return Ok(gone.rows_affected() > 0);
    }
    let number = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let outcomes: Option<Vec<String>> = policy.conversation_outcomes.as_ref().map(|o| o.iter().map(wire_name).collect());
    let written = sqlx::query(
        "INSERT INTO portfolio_contact_policies AS p (portfolio_id, window_start, window_end, window_channels,
                call_attempt_limit, call_attempt_days, conversation_days, conversation_outcomes, override_minutes, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (portfolio_id) DO UPDATE SET
             window_start = $2, window_end = $3, window_channels = $4, call_attempt_limit = $5,
             call_attempt_days = $6, conversation_days = $7, conversation_outcomes = $8, override_minutes = $9,
             updated_by = $10, updated_at = now()
         WHERE (p.window_start, p.window_end, p.window_channels, p.call_attempt_limit, p.call_attempt_days,
                p.conversation_days, p.conversation_outcomes, p.override_minutes)
               IS DISTINCT FROM ($2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(portfolio)
    .bind(policy.window_start)
    .bind(policy.window_end)
    .bind(&policy.window_channels)
    .bind(number(policy.call_attempt_limit))
    .bind(number(policy.call_attempt_days))
    .bind(number(policy.conversation_days))
    .bind(outcomes)
    .bind(number(policy.override_minutes))
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(written.rows_affected() > 0)
}

/// What the guard knows about one account as of an instant.
#[derive(Clone, Debug)]
pub struct Facts {
    /// The policy in force for the account (its portfolio's, or the agency's).
    pub policy: Policy,
    pub standing: Standing,
    /// The debtor's zone, or every zone the window must fit when it is unknown.
    pub zones: Vec<Tz>,
    pub history: CallHistory,
}

#[derive(FromRow)]
struct FactsRow {
    id: Uuid,
    timezone: String,
    alternate_timezones: Vec<String>,
    cease_communication: bool,
    do_not_call: bool,
    do_not_email: bool,
    unverified_dispute: bool,
    limit_th_latest_call: Option<DateTime<Utc>>,
    last_conversation: Option<DateTime<Utc>>,
    zones: Vec<String>,
    #[sqlx(flatten)]
    policy: PolicyRow,
}

/// The guard's facts for `ids` counting calls the server recorded up to `at` (all of
/// them when `None`), each under its own policy. Calls count from `created_at`, the
/// server's clock that judges the attempts too, never from a client's `occurred_at`:
/// backdating a call cannot move it out of the period early.
pub async fn facts(conn: &mut PgConnection, ids: &[Uuid], at: Option<DateTime<Utc>>) -> Result<HashMap<Uuid, Facts>> {
    let rows = sqlx::query_as::<_, FactsRow>(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.timezone, a.alternate_timezones, a.cease_communication, a.do_not_call,
                a.do_not_email, (a.status = 'disputed' AND a.dispute_verified_at IS NULL) AS unverified_dispute,
                (SELECT created_at FROM activities
                  WHERE account_id = a.id AND type = 'call' AND direction = 'outbound'
                    AND created_at <= coalesce($2, 'infinity')
                  ORDER BY created_at DESC OFFSET pol.call_attempt_limit - 1 LIMIT 1) AS limit_th_latest_call,
                (SELECT max(created_at) FROM activities
                  WHERE account_id = a.id AND type = 'call' AND outcome = ANY(pol.conversation_outcomes)
                    AND created_at <= coalesce($2, 'infinity')) AS last_conversation,
                coalesce((SELECT array_agg(timezone ORDER BY timezone) FROM contact_zones
                           WHERE country = coalesce(
                               (SELECT country FROM contact_zones WHERE country = upper(a.address_country) LIMIT 1), '*')),
                         '{{}}') AS zones,
                {POLICY_COLUMNS}
         FROM accounts a {}
         WHERE a.id = ANY($1)",
        policy_join("a")
    )))
    .bind(ids)
    .bind(at)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let zones = guard_zones(&r.timezone, &r.alternate_timezones, &r.zones);
            let facts = Facts {
                policy: r.policy.into(),
                standing: Standing {
                    cease_communication: r.cease_communication,
                    do_not_call: r.do_not_call,
                    do_not_email: r.do_not_email,
                    unverified_dispute: r.unverified_dispute,
                },
                zones,
                history: CallHistory {
                    limit_th_latest_call: r.limit_th_latest_call,
                    last_conversation: r.last_conversation,
                },
            };
            (r.id, facts)
        })
        .collect())
}

/// The contact filter's inputs of `ids`' documents, as of `now`.
pub async fn contact_inputs(conn: &mut PgConnection, ids: &[Uuid], now: DateTime<Utc>) -> Result<HashMap<Uuid, ContactInputs>> {
    let facts = facts(conn, ids, None).await?;
    Ok(facts
        .into_iter()
        .map(|(id, f)| (id, f.policy.inputs(&f.standing, &f.zones, &f.history, now)))
        .collect())
}

/// Marks a disputed account's dispute verified; `false` when it is not disputed.
pub async fn verify_dispute(tx: &mut PgConnection, account_id: Uuid, actor: Uuid) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE accounts SET dispute_verified_at = now(), updated_by = $2, updated_at = now()
         WHERE id = $1 AND status = 'disputed' AND deleted_at IS NULL",
    )
    .bind(account_id)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Debug, FromRow)]
pub struct OverrideRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub channel: Channel,
    pub reason: String,
    pub granted_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub activity_id: Option<Uuid>,
    pub rule: Option<String>,
}

const OVERRIDE_COLUMNS: &str = "id, account_id, channel, reason, granted_by, created_at, expires_at, used_at, activity_id, rule";

pub async fn grant(
    tx: &mut PgConnection,
    account_id: Uuid,
    channel: Channel,
    reason: &str,
    actor: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<OverrideRow> {
    Ok(sqlx::query_as::<_, OverrideRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contact_overrides (id, account_id, channel, reason, granted_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {OVERRIDE_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(account_id)
    .bind(channel)
    .bind(reason)
    .bind(actor)
    .bind(expires_at)
    .fetch_one(tx)
    .await?)
}

/// The rule that the override used for attempt `activity_id` lifted, while that
/// override is live at `now` (`None` when no override was used for it, or it expired).
pub async fn lifted_for(conn: &mut PgConnection, activity_id: Uuid, now: DateTime<Utc>) -> Result<Option<Rule>> {
    let rule: Option<String> =
        sqlx::query_scalar("SELECT rule FROM contact_overrides WHERE activity_id = $1 AND expires_at > $2 ORDER BY used_at DESC LIMIT 1")
            .bind(activity_id)
            .bind(now)
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(rule.as_deref().and_then(Rule::parse))
}

/// Uses, at `now`, the oldest override of `channel` on the account still live then for
/// `activity_id`, which the guard refused by `rule`. `None` when there is none.
pub async fn use_override(
    tx: &mut PgConnection,
    account_id: Uuid,
    channel: Channel,
    activity_id: Uuid,
    rule: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "UPDATE contact_overrides SET used_at = $5, activity_id = $3, rule = $4
         WHERE id = (SELECT id FROM contact_overrides
                     WHERE account_id = $1 AND channel = $2 AND used_at IS NULL AND expires_at > $5
                     ORDER BY created_at, id LIMIT 1 FOR UPDATE)
         RETURNING id",
    )
    .bind(account_id)
    .bind(channel)
    .bind(activity_id)
    .bind(rule)
    .bind(now)
    .fetch_optional(tx)
    .await?)
}

/// The overrides (of `account_id`) on accounts within `scope`, as
/// [`crate::store::portfolios::push_scope`] reads it.
fn overrides_where(select: &str, account_id: Option<Uuid>, scope: Option<&[Uuid]>) -> QueryBuilder<Postgres> {
    let mut query = keyset::rows_where(select, "account_id", account_id);
    portfolios::push_scope(&mut query, "contact_overrides.account_id", scope);
    query
}

/// A page of overrides on accounts within `scope`, newest first, after `(created_at, id)`.
pub async fn list_overrides(
    pool: &PgPool,
    account_id: Option<Uuid>,
    scope: Option<&[Uuid]>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<OverrideRow>> {
    let query = overrides_where(&format!("SELECT {OVERRIDE_COLUMNS} FROM contact_overrides"), account_id, scope);
    NewestFirst::by("created_at", "id").page(pool, query, after, limit).await
}

pub async fn count_overrides(pool: &PgPool, account_id: Option<Uuid>, scope: Option<&[Uuid]>) -> Result<i64> {
    keyset::count(pool, overrides_where("SELECT count(*) FROM contact_overrides", account_id, scope)).await
}

/// Every zone the guard may use: the accounts' (unknown ones included), the other zones
/// their debtors may be in, and the country lists'.
pub async fn zones_in_use(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE used(timezone) AS (
             (SELECT timezone FROM accounts ORDER BY timezone LIMIT 1)
             UNION ALL
             SELECT (SELECT a.timezone FROM accounts a WHERE a.timezone > u.timezone ORDER BY a.timezone LIMIT 1)
             FROM used u WHERE u.timezone IS NOT NULL
         )
         SELECT timezone FROM used WHERE timezone IS NOT NULL
         UNION SELECT unnest(alternate_timezones) FROM accounts WHERE alternate_timezones <> '{}'
         UNION SELECT timezone FROM contact_zones",
    )
    .fetch_all(pool)
    .await?)
}

/// Records `zone`'s offset. When it held another one, re-indexes, in the same
/// transaction, the accounts whose window the zone shapes: those in the zone or that may
/// be in it (`alternate_timezones`) and, when
/// the zone is one of a country list's, every account whose zone is unknown (`unknown`
/// names). The row is locked first, so of two processes noticing one change, one does
/// the work. `None` when the offset was new or unchanged.
pub async fn record_zone_offset(pool: &PgPool, zone: &str, offset_minutes: i32, unknown: &[&str]) -> Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    let previous: Option<i32> = sqlx::query_scalar("SELECT offset_minutes FROM contact_zone_offsets WHERE timezone = $1 FOR UPDATE")
        .bind(zone)
        .fetch_optional(&mut *tx)
        .await?;
    let touched = match previous {
        None => {
            sqlx::query("INSERT INTO contact_zone_offsets (timezone, offset_minutes) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(zone)
                .bind(offset_minutes)
                .execute(&mut *tx)
                .await?;
            None
        }
        Some(previous) if previous == offset_minutes => None,
        Some(_) => {
            sqlx::query("UPDATE contact_zone_offsets SET offset_minutes = $2 WHERE timezone = $1")
                .bind(zone)
                .bind(offset_minutes)
                .execute(&mut *tx)
                .await?;
            let touched = sqlx::query(
                "UPDATE accounts SET search_version = 0
                 WHERE deleted_at IS NULL
                   AND (timezone = $1 OR (timezone = ANY($2) AND EXISTS (SELECT 1 FROM contact_zones WHERE timezone = $1))
                        OR (alternate_timezones <> '{}' AND $1 = ANY(alternate_timezones)))",
            )
            .bind(zone)
            .bind(unknown)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Some(touched)
        }
    };
    tx.commit().await?;
    Ok(touched)
}
