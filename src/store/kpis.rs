//! Manager KPIs: the daily bucket snapshot, the bucket moves between two snapshots, and
//! the event figures per UTC day, agent and bucket (kept once a day is over), which the
//! service groups.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::account::Bucket;
use crate::domain::activity::wire_name;
use crate::domain::kpi::{self, ATTEMPT_DIRECTION, ATTEMPT_TYPES, NOT_A_CURE, RIGHT_PARTY_OUTCOMES};
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

/// Activities of one kept or computed day group: by the user who logged them and the
/// account's bucket in the snapshot of their day.
#[derive(Debug, FromRow)]
pub struct WorkRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    /// The distinct accounts worked.
    pub accounts: Vec<Uuid>,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
}

/// Promises by the user who made them and the account's bucket on the day they were made.
#[derive(Debug, FromRow)]
pub struct PromiseRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    pub made: i64,
    pub kept: i64,
    pub broken: i64,
}

/// Completed payments by the agent and bucket of the account in the snapshot of the day
/// they were received.
#[derive(Debug, FromRow)]
pub struct CollectedRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    pub currency: String,
    pub amount: Decimal,
}

/// Accounts by their bucket in the opening and the closing snapshot, by the agent they
/// were assigned to at the opening.
#[derive(Debug, FromRow)]
pub struct MoveRow {
    pub agent_id: Option<Uuid>,
    pub opening_bucket: String,
    pub closing_bucket: String,
    pub accounts: i64,
    pub cured: i64,
}

/// The event figures of a period: what the kept days hold and what the others compute.
#[derive(Debug, Default)]
pub struct DayFigures {
    pub work: Vec<WorkRow>,
    pub promises: Vec<PromiseRow>,
    pub collected: Vec<CollectedRow>,
}

/// One kind of per-day figure: the table its kept days are in, its columns after `day`,
/// and the statement that computes them from the events of `[$1, $2)`, grouped by day,
/// agent and bucket (the bucket and, for payments, the agent from the snapshot of the
/// event's UTC day).
struct DayFigure {
    table: &'static str,
    columns: &'static str,
    compute: String,
}

const SNAPSHOT_OF_THE_DAY: &str = "LEFT JOIN account_day_snapshots s ON s.day = e.day AND s.account_id = e.account_id";

fn work_figure() -> DayFigure {
    let attempt = format!(
        "direction = '{}' AND type IN ({})",
        wire_name(&ATTEMPT_DIRECTION),
        kpi::sql_list(&ATTEMPT_TYPES)
    );
    let right_party = format!("outcome IN ({})", kpi::sql_list(&RIGHT_PARTY_OUTCOMES));
    DayFigure {
        table: "kpi_day_work",
        columns: "agent_id, bucket, accounts, contact_attempts, right_party_contacts",
        compute: format!(
            "SELECT e.day, e.agent_id, s.bucket, array_agg(DISTINCT e.account_id) AS accounts,
                    count(*) FILTER (WHERE e.attempt) AS contact_attempts,
                    count(*) FILTER (WHERE e.attempt AND e.right_party) AS right_party_contacts
             FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, agent_id, account_id,
                          {attempt} AS attempt, {right_party} AS right_party
                   FROM activities WHERE occurred_at >= $1 AND occurred_at < $2) e
             {SNAPSHOT_OF_THE_DAY}
             GROUP BY e.day, e.agent_id, s.bucket"
        ),
    }
}

fn promise_figure() -> DayFigure {
    DayFigure {
        table: "kpi_day_promises",
        columns: "agent_id, bucket, made, kept, broken",
        compute: format!(
            "SELECT e.day, e.agent_id, s.bucket, count(*) AS made, count(*) FILTER (WHERE e.status = 'kept') AS kept,
                    count(*) FILTER (WHERE e.status = 'broken') AS broken
             FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, created_by AS agent_id, account_id, status
                   FROM promises WHERE created_at >= $1 AND created_at < $2) e
             {SNAPSHOT_OF_THE_DAY}
             GROUP BY e.day, e.agent_id, s.bucket"
        ),
    }
}

fn collected_figure() -> DayFigure {
    DayFigure {
        table: "kpi_day_collected",
        columns: "agent_id, bucket, currency, amount",
        compute: format!(
            "SELECT e.day, s.assigned_agent_id AS agent_id, s.bucket, e.currency, sum(e.amount) AS amount
             FROM (SELECT (received_at AT TIME ZONE 'UTC')::date AS day, account_id, currency, amount
                   FROM payments WHERE status = 'completed' AND received_at >= $1 AND received_at < $2) e
             {SNAPSHOT_OF_THE_DAY}
             GROUP BY e.day, s.assigned_agent_id, s.bucket, e.currency"
        ),
    }
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The days before `today` (UTC) a request may cover that are not kept, from the first
/// day with an event on: what [`keep_day`] has to do.
pub async fn days_to_keep(pool: &PgPool, today: NaiveDate) -> Result<Vec<NaiveDate>> {
    Ok(sqlx::query_scalar(
        "WITH first AS (SELECT least((SELECT min(occurred_at) FROM activities), (SELECT min(created_at) FROM promises),
                                     (SELECT min(received_at) FROM payments WHERE status = 'completed')) AS at)
         SELECT d::date FROM first,
                generate_series(greatest($1::date, (first.at AT TIME ZONE 'UTC')::date), $2::date, interval '1 day') d
         WHERE first.at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM kpi_days k WHERE k.day = d::date)
         ORDER BY 1",
    )
    .bind(today - chrono::Duration::days(kpi::MAX_DAYS - 1))
    .bind(today - chrono::Duration::days(1))
    .fetch_all(pool)
    .await?)
}

/// Keeps the figures of `day`, a day that is over, unless they are kept already.
/// Returns whether this call kept them. It locks `kpi_days` against the writes that
/// drop kept days (they wait for it, and it waits for the ones under way), so a write
/// to the day either is in what it reads or drops what it keeps.
#[tracing::instrument(skip_all, fields(%day))]
pub async fn keep_day(pool: &PgPool, day: NaiveDate) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE kpi_days IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let claimed: Option<NaiveDate> = sqlx::query_scalar("INSERT INTO kpi_days (day) VALUES ($1) ON CONFLICT DO NOTHING RETURNING day")
        .bind(day)
        .fetch_optional(&mut *tx)
        .await?;
    if claimed.is_none() {
        return Ok(false);
    }
    for figure in [work_figure(), promise_figure(), collected_figure()] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (day, {}) {}",
            figure.table, figure.columns, figure.compute
        )))
        .bind(day_start(day))
        .bind(day_start(day + chrono::Duration::days(1)))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The rows of `figure` for the days `opening..end` of `window`: the kept days' rows and
/// the other days' computed ones, one statement per run of consecutive days not kept (a
/// day a late write dropped months ago does not make a request read the events between
/// it and today).
async fn figure_rows<T>(tx: &mut PgConnection, figure: &DayFigure, window: Window, missing: &[NaiveDate]) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut rows: Vec<T> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {} WHERE day >= $1 AND day < $2",
        figure.columns, figure.table
    )))
    .bind(window.opening)
    .bind(window.end.date_naive())
    .fetch_all(&mut *tx)
    .await?;
    for run in missing.chunk_by(|day, next| *day + chrono::Duration::days(1) == *next) {
        rows.extend(
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(figure.compute.clone()))
                .bind(day_start(run[0]))
                .bind(day_start(run[run.len() - 1] + chrono::Duration::days(1)))
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    Ok(rows)
}

/// The activities, promises and payments of the window, read in one snapshot of the
/// database so that a day kept or dropped meanwhile is counted once.
#[tracing::instrument(skip_all)]
pub async fn day_figures(pool: &PgPool, window: Window) -> Result<DayFigures> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let kept: Vec<NaiveDate> = sqlx::query_scalar("SELECT day FROM kpi_days WHERE day >= $1 AND day < $2")
        .bind(window.opening)
        .bind(window.end.date_naive())
        .fetch_all(&mut *tx)
        .await?;
    let missing: Vec<NaiveDate> = window
        .opening
        .iter_days()
        .take_while(|day| day_start(*day) < window.end)
        .filter(|day| !kept.contains(day))
        .collect();
    let figures = DayFigures {
        work: figure_rows(&mut tx, &work_figure(), window, &missing).await?,
        promises: figure_rows(&mut tx, &promise_figure(), window, &missing).await?,
        collected: figure_rows(&mut tx, &collected_figure(), window, &missing).await?,
    };
    tx.commit().await?;
    Ok(figures)
}

/// Drops every kept day: for loads that wrote events with the triggers switched off.
pub async fn forget_days(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("DELETE FROM kpi_days").execute(conn).await?;
    Ok(())
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

/// The bucket moves from the opening to the closing snapshot of `window`, by the agent
/// assigned at the opening; read from the kept moves ([`keep_moves`] first).
#[tracing::instrument(skip_all)]
pub async fn moves(pool: &PgPool, window: Window) -> Result<Vec<MoveRow>> {
    if !keep_moves(pool, window.opening, window.closing).await? {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT agent_id, opening_bucket, closing_bucket, accounts, cured FROM kpi_moves WHERE opening = $1 AND closing = $2",
    )
    .bind(window.opening)
    .bind(window.closing)
    .fetch_all(pool)
    .await?)
}
