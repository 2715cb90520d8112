//! Activities: append-only; the trigger re-indexes the account they belong to.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::activity::{ActivityType, Direction, NewActivity, Outcome};
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow)]
pub struct ActivityRow {
    pub id: Uuid,
    pub account_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: ActivityType,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
    pub notes: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, type, direction, outcome, notes, occurred_at, next_action_at, agent_id, created_at";

/// Records `activity` as the server received it at `created_at` (the instant the contact
/// guard counts calls by), logged by `agent` (`None`: the system, for a message the
/// debtor sent in).
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
pub async fn insert(
    tx: &mut PgConnection,
    account_id: Uuid,
    activity: &NewActivity,
    agent: Option<Uuid>,
    created_at: DateTime<Utc>,
) -> Result<ActivityRow> {
    Ok(sqlx::query_as::<_, ActivityRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO activities (id, account_id, type, direction, outcome, notes, occurred_at, next_action_at, agent_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(account_id)
    .bind(activity.kind)
    .bind(activity.direction)
    .bind(activity.outcome)
    .bind(activity.notes.as_deref())
    .bind(activity.occurred_at)
    .bind(activity.next_action_at)
    .bind(agent)
    .bind(created_at)
    .fetch_one(tx)
    .await?)
}

/// Completes activity `id` (a call's, logged as it connected) with what its wrap-up
/// says: the outcome, and the notes and next action when given.
pub async fn complete(
    tx: &mut PgConnection,
    id: Uuid,
    outcome: Option<Outcome>,
    notes: Option<&str>,
    next_action_at: Option<DateTime<Utc>>,
) -> Result<ActivityRow> {
    Ok(sqlx::query_as::<_, ActivityRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE activities SET outcome = coalesce($2, outcome), notes = coalesce($3, notes),
                next_action_at = coalesce($4, next_action_at)
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(outcome)
    .bind(notes)
    .bind(next_action_at)
    .fetch_one(tx)
    .await?)
}

/// What `GET /activities` may filter on; empty lists mean "any".
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub account_ids: Vec<Uuid>,
    pub agent_id: Option<Uuid>,
    pub types: Vec<ActivityType>,
    pub outcomes: Vec<Outcome>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Also the activities of deleted accounts (managers only).
    pub include_deleted: bool,
    /// Only those this user logged or that are on accounts assigned to them (an agent's
    /// reach, docs/security.md#what-an-agent-reads).
    pub visible_to: Option<Uuid>,
    /// Only activities of accounts in these portfolios or in none (`None`: every
    /// account): the caller's scope.
    pub scope: Option<Vec<Uuid>>,
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &ActivityFilter) {
    qb.push(" WHERE true");
    if !filter.include_deleted {
        qb.push(" AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = activities.account_id AND a.deleted_at IS NULL)");
    }
    if !filter.account_ids.is_empty() {
        qb.push(" AND account_id = ANY(").push_bind(filter.account_ids.clone()).push(")");
    }
    if let Some(agent) = filter.agent_id {
        qb.push(" AND agent_id = ").push_bind(agent);
    }
    if let Some(user) = filter.visible_to {
        qb.push(" AND (agent_id = ")
            .push_bind(user)
            .push(" OR EXISTS (SELECT 1 FROM accounts a WHERE a.id = activities.account_id AND a.assigned_agent_id = ")
            .push_bind(user)
            .push("))");
    }
    super::portfolios::push_scope(qb, "activities.account_id", filter.scope.as_deref());
    if !filter.types.is_empty() {
        qb.push(" AND type = ANY(").push_bind(filter.types.clone()).push(")");
    }
    if !filter.outcomes.is_empty() {
        qb.push(" AND outcome = ANY(").push_bind(filter.outcomes.clone()).push(")");
    }
    if let Some(from) = filter.from {
        qb.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        qb.push(" AND occurred_at < ").push_bind(to);
    }
}

/// Newest first, after a keyset position.
pub async fn list(pool: &PgPool, filter: &ActivityFilter, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<ActivityRow>> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM activities"));
    push_filter(&mut query, filter);
    NewestFirst::by("occurred_at", "id").page(pool, query, after, limit).await
}

pub async fn count(pool: &PgPool, filter: &ActivityFilter) -> Result<i64> {
    let mut query = QueryBuilder::new("SELECT count(*) FROM activities");
    push_filter(&mut query, filter);
    keyset::count(pool, query).await
}
