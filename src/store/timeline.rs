//! An account's timeline read from the tables behind it and the audit trail, and the
//! record of who opened an account that is not theirs.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::domain::timeline::TimelineKind;
use crate::error::Result;
use crate::store::audit_log::{self, NewEntry};

/// Where a timeline page starts: the time and key of the last entry read.
pub type Position = (DateTime<Utc>, String);

/// One entry: when, what, who (a user, or none for the system), an amount in the
/// account's currency for the kinds that carry one, and the kind's own details.
#[derive(Clone, Debug, FromRow)]
pub struct TimelineRow {
    pub at: DateTime<Utc>,
    /// `kind:id`, unique within the account's timeline: the cursor's tie-breaker.
    pub key: String,
    pub kind: TimelineKind,
    pub actor: Option<Uuid>,
    pub actor_name: Option<String>,
    pub amount: Option<Decimal>,
    pub data: serde_json::Value,
}

/// Every source of the timeline, each naming its entries' kind, time, key, actor,
/// amount and details. Each reads one account (`$1`) through its own index.
const ENTRIES: &str = "
    SELECT a.created_at AS at, 'created:' || a.id AS key, 'created' AS kind, a.created_by AS actor,
           NULL::numeric AS amount, jsonb_build_object('account_number', a.account_number) AS data
    FROM accounts a WHERE a.id = $1
    UNION ALL
    SELECT c.occurred_at, 'contact:' || c.id, 'contact', c.agent_id, NULL,
           jsonb_build_object('activity_id', c.id, 'type', c.type, 'direction', c.direction, 'outcome', c.outcome,
                              'notes', c.notes, 'next_action_at', c.next_action_at)
    FROM activities c WHERE c.account_id = $1
    UNION ALL
    SELECT p.received_at, 'payment:' || p.id, 'payment', p.created_by, p.amount,
           jsonb_build_object('payment_id', p.id, 'method', p.method, 'status', p.status, 'reference', p.reference,
                              'failure_reason', p.failure_reason)
    FROM payments p WHERE p.account_id = $1
    UNION ALL
    SELECT r.created_at, 'promise:' || r.id, 'promise', r.created_by, r.amount,
           jsonb_build_object('promise_id', r.id, 'due_date', r.due_date, 'status', r.status)
    FROM promises r WHERE r.account_id = $1
    UNION ALL
    SELECT r.resolved_at, 'promise_resolved:' || r.id, 'promise_resolved', NULL, r.amount,
           jsonb_build_object('promise_id', r.id, 'due_date', r.due_date, 'status', r.status)
    FROM promises r WHERE r.account_id = $1 AND r.resolved_at IS NOT NULL
    UNION ALL
    SELECT l.created_at, 'plan:' || l.id, 'plan', l.created_by, l.total,
           jsonb_build_object('plan_id', l.id, 'frequency', l.frequency, 'first_due_date', l.first_due_date,
                              'instalment_count', (SELECT count(*) FROM plan_instalments i WHERE i.plan_id = l.id),
                              'status', l.status)
    FROM plans l WHERE l.account_id = $1
    UNION ALL
    SELECT l.resolved_at, 'plan_resolved:' || l.id, 'plan_resolved', NULL, l.total,
           jsonb_build_object('plan_id', l.id, 'status', l.status)
    FROM plans l WHERE l.account_id = $1 AND l.resolved_at IS NOT NULL
    UNION ALL
    SELECT i.missed_at, 'instalment_missed:' || l.id || ':' || i.seq, 'instalment_missed', NULL, i.amount,
           jsonb_build_object('plan_id', l.id, 'seq', i.seq, 'due_date', i.due_date)
    FROM plans l JOIN plan_instalments i ON i.plan_id = l.id
    WHERE l.account_id = $1 AND i.missed_at IS NOT NULL
    UNION ALL
    SELECT o.created_at, 'override_granted:' || o.id, 'override_granted', o.granted_by, NULL,
           jsonb_build_object('override_id', o.id, 'channel', o.channel, 'reason', o.reason, 'expires_at', o.expires_at)
    FROM contact_overrides o WHERE o.account_id = $1
    UNION ALL
    SELECT o.used_at, 'override_used:' || o.id, 'override_used', NULL, NULL,
           jsonb_build_object('override_id', o.id, 'channel', o.channel, 'rule', o.rule, 'activity_id', o.activity_id)
    FROM contact_overrides o WHERE o.account_id = $1 AND o.used_at IS NOT NULL
    UNION ALL
    SELECT h.at, CASE WHEN h.details -> 'changes' ? 'assigned_agent_id' THEN 'assignment:' ELSE 'edit:' END || h.id,
           CASE WHEN h.details -> 'changes' ? 'assigned_agent_id' THEN 'assignment' ELSE 'edit' END, h.actor, NULL,
           jsonb_build_object('changes', h.details -> 'changes', 'by_rule', h.by_rule, 'db_user', h.db_user)
    FROM audit_log h WHERE h.account_id = $1 AND h.action = 'account.update'
    UNION ALL
    SELECT x.at, 'access:' || x.id, 'access', x.actor, NULL, '{}'::jsonb
    FROM audit_log x WHERE x.account_id = $1 AND x.action = 'account.read_summary'";

/// At most `limit` entries of the account `account` newest first, after `after`, of the
/// `kinds` asked for (every kind when empty).
pub async fn page(pool: &PgPool, account: Uuid, kinds: &[TimelineKind], after: Option<Position>, limit: i64) -> Result<Vec<TimelineRow>> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let (after_at, after_key) = after.unzip();
    let rows = sqlx::query_as::<_, TimelineRow>(sqlx::AssertSqlSafe(format!(
        "SELECT e.at, e.key, e.kind, e.actor, u.name AS actor_name, e.amount, e.data
         FROM ({ENTRIES}) e LEFT JOIN users u ON u.id = e.actor
         WHERE (cardinality($2::text[]) = 0 OR e.kind = ANY($2))
           AND ($3::timestamptz IS NULL OR (e.at, e.key) < ($3, $4))
         ORDER BY e.at DESC, e.key DESC
         LIMIT $5"
    )))
    .bind(account)
    .bind(&kinds)
    .bind(after_at)
    .bind(after_key)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// How many entries of the `kinds` asked for (every kind when empty) `account` has.
pub async fn count(pool: &PgPool, account: Uuid, kinds: &[TimelineKind]) -> Result<i64> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ({ENTRIES}) e WHERE cardinality($2::text[]) = 0 OR e.kind = ANY($2)"
    )))
    .bind(account)
    .bind(&kinds)
    .fetch_one(pool)
    .await?;
    Ok(total)
}

/// Records that `user` opened the account `account` (an agent reading the summary of
/// an account that is not theirs).
pub async fn record_access(pool: &PgPool, account: Uuid, user: Uuid) -> Result<()> {
    let mut conn = pool.acquire().await?;
    audit_log::append(
        &mut conn,
        NewEntry {
            actor: Some(user),
            address: None,
            action: "account.read_summary",
            entity: "account",
            entity_id: Some(account.to_string()),
            account_id: Some(account),
            details: serde_json::json!({}),
        },
    )
    .await
}
