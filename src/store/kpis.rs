//! Manager KPIs: the daily bucket snapshot and the figures, each one grouped statement
//! that also yields its total (GROUPING SETS).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgPool};

use crate::domain::account::Bucket;
use crate::domain::activity::wire_name;
use crate::domain::kpi::{self, ATTEMPT_DIRECTION, ATTEMPT_TYPES, GroupBy, NOT_A_CURE, RIGHT_PARTY_OUTCOMES};
use crate::error::Result;

/// Snapshots `day` for every account not deleted, unless that day was taken already.
/// Returns the accounts written, `None` when another run took the day. The day's row is
/// inserted first: a second process at the same time waits on it and then skips.
#[tracing::instrument(skip_all, fields(%day))]
pub async fn take_snapshot(pool: &PgPool, day: NaiveDate) -> Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    let claimed: Option<NaiveDate> =
        sqlx::query_scalar("INSERT INTO account_snapshot_days (day) VALUES ($1) ON CONFLICT DO NOTHING RETURNING day")
            .bind(day)
            .fetch_optional(&mut *tx)
            .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let resolved = kpi::resolved_statuses()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let days = format!("CASE WHEN due_date IS NULL OR status IN ({resolved}) THEN 0 ELSE greatest($1 - due_date, 0) END");
    let bucket = kpi::sql_bucket_of(&days);
    let written = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO account_day_snapshots (day, account_id, bucket, assigned_agent_id, status, current_balance, currency)
         SELECT $1, id, {bucket}, assigned_agent_id, status, current_balance, currency
         FROM accounts WHERE deleted_at IS NULL
         ON CONFLICT DO NOTHING"
    )))
    .bind(day)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE account_snapshot_days SET accounts = $2 WHERE day = $1")
        .bind(day)
        .bind(i64::try_from(written).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(written))
}

/// What a KPI request covers: `[start, end)` for events, and the snapshot days that
/// open and close the period.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub opening: NaiveDate,
    pub closing: NaiveDate,
}

#[derive(Debug, FromRow)]
pub struct WorkRow {
    pub key: Option<String>,
    pub total: bool,
    pub accounts_worked: i64,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
}

#[derive(Debug, FromRow)]
pub struct PromiseRow {
    pub key: Option<String>,
    pub total: bool,
    pub made: i64,
    pub kept: i64,
    pub broken: i64,
}

#[derive(Debug, FromRow)]
pub struct CollectedRow {
    pub key: Option<String>,
    pub total: bool,
    pub currency: String,
    pub amount: Decimal,
}

#[derive(Debug, FromRow)]
pub struct MoveRow {
    pub key: Option<String>,
    pub total: bool,
    pub opening_bucket: String,
    pub closing_bucket: String,
    pub accounts: i64,
    pub cured: i64,
}

/// The group key of a row and the join it needs: `user` is the column naming the user
/// the row counts for, `account` the column naming its account. `$3` is the opening day.
fn group(by: GroupBy, user: &str, account: &str) -> (String, String) {
    match by {
        GroupBy::Agent => (format!("{user}::text"), String::new()),
        GroupBy::Team => ("u.team".to_owned(), format!("LEFT JOIN users u ON u.id = {user}")),
        GroupBy::Bucket => (
            "s.bucket".to_owned(),
            format!("LEFT JOIN account_day_snapshots s ON s.day = $3 AND s.account_id = {account}"),
        ),
    }
}

/// Accounts worked, contact attempts and right-party contacts, by who logged them.
#[tracing::instrument(skip_all)]
pub async fn work(pool: &PgPool, by: GroupBy, window: Window) -> Result<Vec<WorkRow>> {
    let (key, join) = group(by, "a.agent_id", "a.account_id");
    let attempt = format!(
        "a.direction = '{}' AND a.type IN ({})",
        wire_name(&ATTEMPT_DIRECTION),
        kpi::sql_list(&ATTEMPT_TYPES)
    );
    let right_party = format!("a.outcome IN ({})", kpi::sql_list(&RIGHT_PARTY_OUTCOMES));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, GROUPING(key) = 1 AS total, count(DISTINCT account_id) AS accounts_worked,
                count(*) FILTER (WHERE attempt) AS contact_attempts,
                count(*) FILTER (WHERE attempt AND right_party) AS right_party_contacts
         FROM (SELECT {key} AS key, a.account_id, {attempt} AS attempt, coalesce({right_party}, false) AS right_party
               FROM activities a {join}
               WHERE a.occurred_at >= $1 AND a.occurred_at < $2) w
         GROUP BY GROUPING SETS ((key), ())"
    )))
    .bind(window.start)
    .bind(window.end)
    .bind(window.opening)
    .fetch_all(pool)
    .await?)
}

/// Promises made in the window, by who made them, with how many are kept and broken.
#[tracing::instrument(skip_all)]
pub async fn promises(pool: &PgPool, by: GroupBy, window: Window) -> Result<Vec<PromiseRow>> {
    let (key, join) = group(by, "p.created_by", "p.account_id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, GROUPING(key) = 1 AS total, count(*) AS made,
                count(*) FILTER (WHERE status = 'kept') AS kept, count(*) FILTER (WHERE status = 'broken') AS broken
         FROM (SELECT {key} AS key, p.status FROM promises p {join}
               WHERE p.created_at >= $1 AND p.created_at < $2) m
         GROUP BY GROUPING SETS ((key), ())"
    )))
    .bind(window.start)
    .bind(window.end)
    .bind(window.opening)
    .fetch_all(pool)
    .await?)
}

/// Completed payments received in the window per currency, by the account's agent.
#[tracing::instrument(skip_all)]
pub async fn collected(pool: &PgPool, by: GroupBy, window: Window) -> Result<Vec<CollectedRow>> {
    let (key, join) = group(by, "ac.assigned_agent_id", "p.account_id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, GROUPING(key) = 1 AS total, currency, sum(amount) AS amount
         FROM (SELECT {key} AS key, p.currency, p.amount
               FROM payments p JOIN accounts ac ON ac.id = p.account_id {join}
               WHERE p.status = 'completed' AND p.received_at >= $1 AND p.received_at < $2) c
         GROUP BY GROUPING SETS ((key, currency), (currency))"
    )))
    .bind(window.start)
    .bind(window.end)
    .bind(window.opening)
    .fetch_all(pool)
    .await?)
}

/// Keeps the bucket moves from the `opening` to the `closing` snapshot, by the agent
/// assigned at the opening, unless they are kept already or a day's snapshot is not
/// complete (then there are none to keep). Returns whether they are kept now. A kept
/// pair costs one read; a second caller at the same time as the one keeping it waits on
/// the pair's row and then finds it kept.
#[tracing::instrument(skip_all, fields(%opening, %closing))]
pub async fn keep_moves(pool: &PgPool, opening: NaiveDate, closing: NaiveDate) -> Result<bool> {
    let kept: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM kpi_move_pairs WHERE opening = $1 AND closing = $2)")
        .bind(opening)
        .bind(closing)
        .fetch_one(pool)
        .await?;
    if kept {
        return Ok(true);
    }
    let mut tx = pool.begin().await?;
    let taken: i64 = sqlx::query_scalar("SELECT count(*) FROM account_snapshot_days WHERE day IN ($1, $2)")
        .bind(opening)
        .bind(closing)
        .fetch_one(&mut *tx)
        .await?;
    if taken < if opening == closing { 1 } else { 2 } {
        return Ok(false);
    }
    let claimed: Option<NaiveDate> =
        sqlx::query_scalar("INSERT INTO kpi_move_pairs (opening, closing) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING opening")
            .bind(opening)
            .bind(closing)
            .fetch_optional(&mut *tx)
            .await?;
    if claimed.is_some() {
        let (current, not_a_cure) = (Bucket::Current.as_str(), NOT_A_CURE.as_str());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO kpi_moves (opening, closing, agent_id, opening_bucket, closing_bucket, accounts, cured)
             SELECT $1, $2, o.assigned_agent_id, o.bucket, c.bucket, count(*),
                    count(*) FILTER (WHERE o.bucket <> '{current}' AND c.bucket = '{current}' AND c.status <> '{not_a_cure}')
             FROM account_day_snapshots o
             JOIN account_day_snapshots c ON c.day = $2 AND c.account_id = o.account_id
             WHERE o.day = $1
             GROUP BY o.assigned_agent_id, o.bucket, c.bucket"
        )))
        .bind(opening)
        .bind(closing)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Accounts by their bucket in the opening and the closing snapshot, by the agent they
/// were assigned to at the opening; `cured` counts the cures among them. Read from the
/// kept moves ([`keep_moves`] first).
#[tracing::instrument(skip_all)]
pub async fn moves(pool: &PgPool, by: GroupBy, window: Window) -> Result<Vec<MoveRow>> {
    if !keep_moves(pool, window.opening, window.closing).await? {
        return Ok(Vec::new());
    }
    let (key, join) = match by {
        GroupBy::Bucket => ("m.opening_bucket".to_owned(), String::new()),
        // Agents and teams: kept moves name no account, which only the bucket grouping needs.
        _ => group(by, "m.agent_id", "NULL"),
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, GROUPING(key) = 1 AS total, opening_bucket, closing_bucket,
                sum(accounts)::bigint AS accounts, sum(cured)::bigint AS cured
         FROM (SELECT {key} AS key, m.opening_bucket, m.closing_bucket, m.accounts, m.cured
               FROM kpi_moves m {join}
               WHERE m.opening = $1 AND m.closing = $2) m
         GROUP BY GROUPING SETS ((key, opening_bucket, closing_bucket), (opening_bucket, closing_bucket))"
    )))
    .bind(window.opening)
    .bind(window.closing)
    .fetch_all(pool)
    .await?)
}
