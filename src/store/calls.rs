//! Calls (`calls`) and the phones agents take them on (`agent_phones`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow, Serialize, utoipa::ToSchema)]
pub struct CallRow {
    pub id: Uuid,
    /// `outbound` (placed from the console) or `inbound` (a debtor called).
    pub direction: String,
    /// The account called, or the caller's only account.
    pub account_id: Option<Uuid>,
    /// The call's activity on the timeline, once the debtor was on the line.
    pub activity_id: Option<Uuid>,
    /// Who placed or answered it.
    pub agent_id: Option<Uuid>,
    pub debtor_number: String,
    /// `placed`, `ringing`, `connecting`, `in_progress` or `ended`.
    pub status: String,
    /// How it ended: `answered`, `busy`, `no_answer`, `failed`, `canceled`, `refused`
    /// (the guard stopped it as it connected), `agent_missed` (the agent's phone was not
    /// answered) or `missed` (no agent took the debtor's call).
    pub result: Option<String>,
    /// The guard's rule, when it stopped the call.
    pub refused_rule: Option<String>,
    /// How long the debtor was on the line.
    pub duration_seconds: Option<i32>,
    /// The recording at the provider, when calls are recorded.
    pub recording_url: Option<String>,
    pub provider: String,
    pub wrapped_up_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, direction, account_id, activity_id, agent_id, debtor_number, status, result, refused_rule,
    duration_seconds, recording_url, provider, wrapped_up_at, created_at, ended_at";

/// A call before the provider has it.
pub struct NewCall<'a> {
    pub id: Uuid,
    pub direction: &'a str,
    pub account_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub debtor_number: &'a str,
    pub agent_number: Option<&'a str>,
    pub provider: &'a str,
    pub provider_call_id: &'a str,
    pub status: &'a str,
}

pub async fn insert(conn: &mut PgConnection, call: &NewCall<'_>) -> Result<CallRow> {
    Ok(sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO calls (id, direction, account_id, agent_id, debtor_number, agent_number, provider, provider_call_id, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (provider, provider_call_id) DO UPDATE SET updated_at = calls.updated_at
         RETURNING {COLUMNS}"
    )))
    .bind(call.id)
    .bind(call.direction)
    .bind(call.account_id)
    .bind(call.agent_id)
    .bind(call.debtor_number)
    .bind(call.agent_number)
    .bind(call.provider)
    .bind(call.provider_call_id)
    .bind(call.status)
    .fetch_one(conn)
    .await?)
}

/// Call `id`, locked until `tx` ends, if the provider's id of it is `provider_call_id`.
pub async fn lock(tx: &mut PgConnection, id: Uuid, provider_call_id: &str) -> Result<Option<CallRow>> {
    Ok(sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls WHERE id = $1 AND provider_call_id = $2 FOR UPDATE"
    )))
    .bind(id)
    .bind(provider_call_id)
    .fetch_optional(tx)
    .await?)
}

/// Call `id`, locked until `tx` ends.
pub async fn lock_by_id(tx: &mut PgConnection, id: Uuid) -> Result<Option<CallRow>> {
    Ok(
        sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM calls WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(tx)
            .await?,
    )
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<CallRow>> {
    Ok(
        sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM calls WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// What a step of the call changes; `None` leaves a column as it is.
#[derive(Default)]
pub struct Progress<'a> {
    pub status: Option<&'a str>,
    pub result: Option<&'a str>,
    pub refused_rule: Option<&'a str>,
    pub agent_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub activity_id: Option<Uuid>,
    pub duration_seconds: Option<i32>,
    pub recording_url: Option<&'a str>,
}

/// Moves call `id` on; an ended call gets its end time once.
pub async fn progress(tx: &mut PgConnection, id: Uuid, change: &Progress<'_>) -> Result<CallRow> {
    Ok(sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET status = coalesce($2, status), result = coalesce($3, result),
                refused_rule = coalesce($4, refused_rule), agent_id = coalesce($5, agent_id),
                account_id = coalesce($6, account_id), activity_id = coalesce($7, activity_id),
                duration_seconds = coalesce($8, duration_seconds), recording_url = coalesce($9, recording_url),
                ended_at = CASE WHEN coalesce($2, status) = 'ended' THEN coalesce(ended_at, now()) END,
                updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.status)
    .bind(change.result)
    .bind(change.refused_rule)
    .bind(change.agent_id)
    .bind(change.account_id)
    .bind(change.activity_id)
    .bind(change.duration_seconds)
    .bind(change.recording_url)
    .fetch_one(tx)
    .await?)
}

/// Marks call `id` wrapped up.
pub async fn wrapped_up(tx: &mut PgConnection, id: Uuid) -> Result<CallRow> {
    Ok(sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET wrapped_up_at = now(), updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_one(tx)
    .await?)
}

const NEWEST_FIRST: NewestFirst = NewestFirst::by("created_at", "id");

/// A page of `agent`'s calls (every agent's when `None`), newest first.
pub async fn list(pool: &PgPool, agent: Option<Uuid>, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<CallRow>> {
    let select = format!("SELECT {COLUMNS} FROM calls");
    NEWEST_FIRST
        .page(pool, keyset::rows_where(&select, "agent_id", agent), after, limit)
        .await
}

pub async fn count(pool: &PgPool, agent: Option<Uuid>) -> Result<i64> {
    keyset::count(pool, keyset::rows_where("SELECT count(*) FROM calls", "agent_id", agent)).await
}

/// Sends `kind` with `data` to `user` alone, when `tx` commits.
pub async fn tell(tx: &mut PgConnection, user: Uuid, kind: &str, data: serde_json::Value) -> Result<()> {
    sqlx::query("SELECT emit_event($1, $2, '{}', $3)")
        .bind(kind)
        .bind(user)
        .bind(data)
        .execute(tx)
        .await?;
    Ok(())
}

/// The phone `user` takes calls on.
pub async fn agent_phone(conn: &mut PgConnection, user: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT phone FROM agent_phones WHERE user_id = $1")
        .bind(user)
        .fetch_optional(conn)
        .await?)
}

/// Sets (or, with `None`, removes) the phone `user` takes calls on.
pub async fn set_agent_phone(pool: &PgPool, user: Uuid, phone: Option<&str>) -> Result<()> {
    match phone {
        Some(phone) => {
            sqlx::query(
                "INSERT INTO agent_phones (user_id, phone) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET phone = EXCLUDED.phone, updated_at = now()",
            )
            .bind(user)
            .bind(phone)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM agent_phones WHERE user_id = $1")
                .bind(user)
                .execute(pool)
                .await?
        }
    };
    Ok(())
}

/// The most agents a debtor's call rings at once (Twilio dials at most ten numbers).
pub const MAX_RINGING: i64 = 10;

/// Who a call from a debtor with accounts assigned to `owners` rings: those of them
/// with a phone who are active; when none of them is, every active agent with a phone
/// (a floor's hunt group), the ones who answered least recently first. At most
/// [`MAX_RINGING`], with their numbers.
pub async fn who_rings(conn: &mut PgConnection, owners: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    let active = "FROM agent_phones p JOIN users u ON u.id = p.user_id
                  WHERE NOT u.disabled AND u.deleted_at IS NULL AND u.role IN ('agent', 'manager', 'admin')";
    let owners_ring: Vec<(Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, p.phone {active} AND u.id = ANY($1) ORDER BY u.id LIMIT $2"
    )))
    .bind(owners)
    .bind(MAX_RINGING)
    .fetch_all(&mut *conn)
    .await?;
    if !owners_ring.is_empty() {
        return Ok(owners_ring);
    }
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, p.phone {active} AND u.role = 'agent'
         ORDER BY (SELECT max(c.created_at) FROM calls c WHERE c.agent_id = u.id AND c.direction = 'inbound') NULLS FIRST, u.id
         LIMIT $1"
    )))
    .bind(MAX_RINGING)
    .fetch_all(conn)
    .await?)
}
