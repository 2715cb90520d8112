//! Manager KPIs: the daily bucket snapshot, the bucket moves between two snapshots, and
//! the event figures per UTC day, agent, bucket and portfolio (kept once a day is over,
//! and summed per month once every day of a month is kept), which the service groups.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, Utc};
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
    if !claim_snapshot_day(&mut tx, day).await? {
        return Ok(None);
    }
    let written = snapshot_accounts(&mut tx, day).await?;
    tx.commit().await?;
    Ok(Some(written))
}

/// Adds to `day`'s snapshot the accounts not deleted that it lacks, taking the day if
/// no one has: for a load of accounts made after the day's snapshot (`arrears seed`).
/// Returns the accounts written.
#[tracing::instrument(skip_all, fields(%day))]
pub async fn complete_snapshot(pool: &PgPool, day: NaiveDate) -> Result<u64> {
    let mut tx = pool.begin().await?;
    claim_snapshot_day(&mut tx, day).await?;
    let written = snapshot_accounts(&mut tx, day).await?;
    tx.commit().await?;
    Ok(written)
}

/// Inserts `day`'s row in `account_snapshot_days`: whether this call inserted it.
async fn claim_snapshot_day(tx: &mut PgConnection, day: NaiveDate) -> Result<bool> {
    let claimed: Option<NaiveDate> =
        sqlx::query_scalar("INSERT INTO account_snapshot_days (day) VALUES ($1) ON CONFLICT DO NOTHING RETURNING day")
            .bind(day)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(claimed.is_some())
}

/// Writes the accounts not deleted that `day`'s snapshot lacks, with their bucket and
/// portfolio on that day, and counts them in the day's row. Returns the accounts written.
async fn snapshot_accounts(tx: &mut PgConnection, day: NaiveDate) -> Result<u64> {
    let resolved = kpi::resolved_statuses()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let days = format!("CASE WHEN due_date IS NULL OR status IN ({resolved}) THEN 0 ELSE greatest($1 - due_date, 0) END");
    let bucket = kpi::sql_bucket_of(&days);
    let written = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO account_day_snapshots (day, account_id, bucket, assigned_agent_id, status, current_balance, currency, ordinal,
                                            portfolio_id)
         SELECT $1, id, {bucket}, assigned_agent_id, status, current_balance, currency, ordinal, portfolio_id
         FROM accounts WHERE deleted_at IS NULL
         ON CONFLICT DO NOTHING"
    )))
    .bind(day)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE account_snapshot_days SET accounts = accounts + $2 WHERE day = $1")
        .bind(day)
        .bind(i64::try_from(written).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    Ok(written)
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

/// Whose figures a request reads, by their account's portfolio: the accounts of the
/// portfolios `ids` (of any when `None`) and, when `none`, the accounts in no portfolio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portfolios {
    pub ids: Option<Vec<Uuid>>,
    pub none: bool,
}

impl Portfolios {
    /// Every account's figures.
    pub const EVERY: Portfolios = Portfolios { ids: None, none: true };

    /// Whether an account in `portfolio` is among these: [`ADMITTED`] for rows read
    /// whole (a kept month's, from memory).
    fn admits(&self, portfolio: Option<Uuid>) -> bool {
        match portfolio {
            None => self.none,
            Some(id) => self.ids.as_ref().is_none_or(|ids| ids.contains(&id)),
        }
    }
}

/// Whether a row's `portfolio_id` is among the [`Portfolios`] bound as `$3` (`ids`) and
/// `$4` (`none`): [`Portfolios::admits`] in SQL.
const ADMITTED: &str = "CASE WHEN portfolio_id IS NULL THEN $4::boolean ELSE ($3::uuid[] IS NULL OR portfolio_id = ANY($3)) END";

/// Activities of one kept or computed day group: by the user who logged them and the
/// account's bucket in the snapshot of their day.
#[derive(Debug, FromRow)]
pub struct WorkRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    pub portfolio_id: Option<Uuid>,
    /// The distinct accounts worked, as their ordinals: read them with [`ordinals`].
    pub accounts: Vec<u8>,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
}

/// A [`WorkRow`]'s attempts split by channel (the activity's type).
#[derive(Debug, FromRow)]
pub struct ChannelRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    pub portfolio_id: Option<Uuid>,
    pub channel: String,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
}

/// Promises by the user who made them and the account's bucket on the day they were made.
#[derive(Debug, FromRow)]
pub struct PromiseRow {
    pub agent_id: Option<Uuid>,
    pub bucket: Option<String>,
    pub portfolio_id: Option<Uuid>,
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
    pub portfolio_id: Option<Uuid>,
    pub currency: String,
    pub amount: Decimal,
}

/// Accounts by their bucket in the opening and the closing snapshot, by the agent they
/// were assigned to and the portfolio they were in at the opening.
#[derive(Debug, FromRow)]
pub struct MoveRow {
    pub agent_id: Option<Uuid>,
    pub portfolio_id: Option<Uuid>,
    pub opening_bucket: String,
    pub closing_bucket: String,
    pub accounts: i64,
    pub cured: i64,
}

/// A figure row's account's portfolio, by which a request admits it.
pub trait InPortfolio {
    fn portfolio_id(&self) -> Option<Uuid>;
}

macro_rules! in_portfolio {
    ($($row:ty),*) => {
        $(impl InPortfolio for $row {
            fn portfolio_id(&self) -> Option<Uuid> {
                self.portfolio_id
            }
        })*
    };
}
in_portfolio!(WorkRow, ChannelRow, PromiseRow, CollectedRow);

/// Rows of each per-day figure.
#[derive(Debug, Default)]
pub struct FigureRows {
    pub work: Vec<WorkRow>,
    pub channels: Vec<ChannelRow>,
    pub promises: Vec<PromiseRow>,
    pub collected: Vec<CollectedRow>,
}

/// The event figures of a period: the rows of its days kept in part and those computed
/// from the events, of the admitted portfolios, and the rows of its kept months and of
/// its days kept whole outside them, every portfolio's as held in memory ([`KeptRows`]).
/// Read them with [`DayFigures::rows`].
#[derive(Debug)]
pub struct DayFigures {
    days: FigureRows,
    held: Vec<Arc<Kept>>,
    portfolios: Portfolios,
}

impl DayFigures {
    /// The period's rows of one figure (`of` picks it), of the admitted portfolios only.
    pub fn rows<'a, T: InPortfolio + 'a>(&'a self, of: fn(&FigureRows) -> &[T]) -> impl Iterator<Item = &'a T> + 'a {
        of(&self.days).iter().chain(
            self.held
                .iter()
                .flat_map(move |kept| of(&kept.rows).iter())
                .filter(|row| self.portfolios.admits(row.portfolio_id())),
        )
    }
}

/// A kept period whose rows a server holds: a month, or a day kept whole.
#[derive(Debug, Clone, Copy)]
enum Period {
    Month(NaiveDate),
    Day(NaiveDate),
}

impl Period {
    /// The period's first day.
    fn date(self) -> NaiveDate {
        match self {
            Period::Month(date) | Period::Day(date) => date,
        }
    }

    /// The statement that reads the period's kept rows of `figure`, every portfolio's.
    fn statement(self, figure: &DayFigure) -> String {
        match self {
            Period::Month(_) => format!("SELECT {} FROM {} WHERE month = $1", figure.columns, figure.month_table),
            Period::Day(_) => format!("SELECT {} FROM {} WHERE day = $1", figure.columns, figure.table),
        }
    }
}

/// A kept period's rows, every portfolio's, as kept by its `generation` (migrations 0056
/// and 0057).
#[derive(Debug)]
struct Kept {
    generation: i64,
    rows: FigureRows,
}

/// The rows of the kept months and of the days kept whole that requests last read, held
/// in memory: a kept period's rows never change while it stays kept (a late write drops
/// it, and keeping it again gives it a new generation), so a year's request reads them
/// from the database once, not each time (docs/features/kpis.md, "Kept rows in memory").
/// It holds the latest [`KeptRows::MONTHS`] months and [`KeptRows::DAYS`] days at most.
#[derive(Debug, Default)]
pub struct KeptRows {
    months: Mutex<BTreeMap<NaiveDate, Arc<Kept>>>,
    days: Mutex<BTreeMap<NaiveDate, Arc<Kept>>>,
}

impl KeptRows {
    /// As many months as a request can cover.
    const MONTHS: usize = (kpi::MAX_DAYS / 28 + 1) as usize;
    /// As many days as a request can cover.
    const DAYS: usize = kpi::MAX_DAYS as usize;

    /// Where `period`'s rows are held, and how many that place holds.
    fn place(&self, period: Period) -> (&Mutex<BTreeMap<NaiveDate, Arc<Kept>>>, usize) {
        match period {
            Period::Month(_) => (&self.months, Self::MONTHS),
            Period::Day(_) => (&self.days, Self::DAYS),
        }
    }

    /// The rows of `period` as kept by `generation`: held, or read in `tx` and held.
    async fn rows(&self, tx: &mut PgConnection, period: Period, generation: i64) -> Result<Arc<Kept>> {
        let ((place, most), date) = (self.place(period), period.date());
        let lock = || place.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(kept) = lock().get(&date).filter(|kept| kept.generation == generation) {
            return Ok(Arc::clone(kept));
        }
        let kept = Arc::new(Kept {
            generation,
            rows: FigureRows {
                work: kept_rows(tx, &work_figure(), period).await?,
                channels: kept_rows(tx, &channel_figure(), period).await?,
                promises: kept_rows(tx, &promise_figure(), period).await?,
                collected: kept_rows(tx, &collected_figure(), period).await?,
            },
        });
        let mut held = lock();
        held.insert(date, Arc::clone(&kept));
        while held.len() > most {
            held.pop_first();
        }
        Ok(kept)
    }
}

/// One kind of per-day figure: the table its kept days are in and the one its kept
/// months are in, their columns after `day` or `month`, those columns summed over the
/// kept rows of a period per `group` (the same names), the statement that sums a
/// month's kept days when they do not simply add up ([`DayFigure::month_statement`]),
/// and the statement that computes them from the events of `[$1, $2)`, grouped by day,
/// agent, bucket and portfolio (the bucket, the portfolio and, for payments, the agent
/// from the snapshot of the event's UTC day).
struct DayFigure {
    table: &'static str,
    month_table: &'static str,
    columns: &'static str,
    summed: &'static str,
    group: &'static str,
    month: Option<&'static str>,
    compute: String,
}

impl DayFigure {
    /// The statement that sums the kept days of `[$1, $2)` into a month's rows (its
    /// columns, per group).
    fn month_statement(&self) -> String {
        self.month.map_or_else(
            || {
                format!(
                    "SELECT {} FROM {} WHERE day >= $1 AND day < $2 GROUP BY {}",
                    self.summed, self.table, self.group
                )
            },
            str::to_owned,
        )
    }
}

/// The ordinals of a [`WorkRow`]'s accounts: 4 bytes each, big-endian (as
/// `string_agg(DISTINCT int4send(ordinal), '')` leaves them, ascending, per day or
/// month; migrations 0021 and 0055). A row summed over days and months holds each one's
/// in turn.
pub fn ordinals(accounts: &[u8]) -> impl Iterator<Item = u32> + '_ {
    accounts
        .chunks_exact(4)
        .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

const SNAPSHOT_OF_THE_DAY: &str = "LEFT JOIN account_day_snapshots s ON s.day = e.day AND s.account_id = e.account_id";

/// An event's account's portfolio, `p.id`: the one of the snapshot of its day, or the
/// account's now when the day's snapshot lacks it (an account created that day), so that
/// an account of a portfolio never counts as one in none for want of a snapshot.
const PORTFOLIO_OF_THE_DAY: &str = "CROSS JOIN LATERAL (SELECT CASE WHEN s.account_id IS NULL
                                        THEN (SELECT a.portfolio_id FROM accounts a WHERE a.id = e.account_id)
                                        ELSE s.portfolio_id END AS id) p";

/// A payment's account's agent, `g.id`: the one assigned in the snapshot of its day, or
/// the account's now when the day's snapshot lacks it (an account created that day), so
/// that the money collected on a new account counts for its agent, as its portfolio does.
const AGENT_OF_THE_DAY: &str = "CROSS JOIN LATERAL (SELECT CASE WHEN s.account_id IS NULL
                                    THEN (SELECT a.assigned_agent_id FROM accounts a WHERE a.id = e.account_id)
                                    ELSE s.assigned_agent_id END AS id) g";

/// An event's account's ordinal: from the snapshot of its day, looked up only without one
/// (or in a snapshot taken before snapshots carried it). A join with `accounts` instead
/// made the planner scan every account for a day's events.
const ORDINAL: &str = "coalesce(s.ordinal, (SELECT a.ordinal FROM accounts a WHERE a.id = e.account_id))";

/// SQL expressions over an activity's columns: whether it is a contact attempt, and
/// whether it reached the right party (the KPIs' definitions, also the reporting documents').
pub(super) fn attempt_and_right_party() -> (String, String) {
    let attempt = format!(
        "direction = '{}' AND type IN ({})",
        wire_name(&ATTEMPT_DIRECTION),
        kpi::sql_list(&ATTEMPT_TYPES)
    );
    let right_party = format!("outcome IN ({})", kpi::sql_list(&RIGHT_PARTY_OUTCOMES));
    (attempt, right_party)
}

fn work_figure() -> DayFigure {
    let (attempt, right_party) = attempt_and_right_party();
    DayFigure {
        table: "kpi_day_work",
        month_table: "kpi_month_work",
        columns: "agent_id, bucket, portfolio_id, accounts, contact_attempts, right_party_contacts",
        summed: "agent_id, bucket, portfolio_id, string_agg(accounts, ''::bytea) AS accounts,
                 sum(contact_attempts)::bigint AS contact_attempts, sum(right_party_contacts)::bigint AS right_party_contacts",
        group: "agent_id, bucket, portfolio_id",
        // A month holds each account once: the days' ordinals one per row (the counts
        // from each day's first), distinct.
        month: Some(
            "SELECT d.agent_id, d.bucket, d.portfolio_id,
                       string_agg(DISTINCT substring(d.accounts FROM n FOR 4), ''::bytea) AS accounts,
                       (sum(d.contact_attempts) FILTER (WHERE n = 1))::bigint AS contact_attempts,
                       (sum(d.right_party_contacts) FILTER (WHERE n = 1))::bigint AS right_party_contacts
                FROM kpi_day_work d CROSS JOIN LATERAL generate_series(1, greatest(length(d.accounts), 1), 4) n
                WHERE d.day >= $1 AND d.day < $2
                GROUP BY d.agent_id, d.bucket, d.portfolio_id",
        ),
        compute: format!(
            "SELECT e.day, e.agent_id, s.bucket, p.id AS portfolio_id,
                    string_agg(DISTINCT int4send({ORDINAL}), ''::bytea) AS accounts,
                    count(*) FILTER (WHERE e.attempt) AS contact_attempts,
                    count(*) FILTER (WHERE e.attempt AND e.right_party) AS right_party_contacts
             FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, agent_id, account_id,
                          {attempt} AS attempt, {right_party} AS right_party
                   FROM activities WHERE occurred_at >= $1 AND occurred_at < $2) e
             {SNAPSHOT_OF_THE_DAY} {PORTFOLIO_OF_THE_DAY}
             GROUP BY e.day, e.agent_id, s.bucket, p.id"
        ),
    }
}

fn channel_figure() -> DayFigure {
    let (attempt, right_party) = attempt_and_right_party();
    DayFigure {
        table: "kpi_day_channels",
        month_table: "kpi_month_channels",
        columns: "agent_id, bucket, portfolio_id, channel, contact_attempts, right_party_contacts",
        summed: "agent_id, bucket, portfolio_id, channel, sum(contact_attempts)::bigint AS contact_attempts,
                 sum(right_party_contacts)::bigint AS right_party_contacts",
        group: "agent_id, bucket, portfolio_id, channel",
        month: None,
        compute: format!(
            "SELECT e.day, e.agent_id, s.bucket, p.id AS portfolio_id, e.channel,
                    count(*) AS contact_attempts, count(*) FILTER (WHERE e.right_party) AS right_party_contacts
             FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, agent_id, account_id, type AS channel,
                          {right_party} AS right_party
                   FROM activities WHERE occurred_at >= $1 AND occurred_at < $2 AND {attempt}) e
             {SNAPSHOT_OF_THE_DAY} {PORTFOLIO_OF_THE_DAY}
             GROUP BY e.day, e.agent_id, s.bucket, p.id, e.channel"
        ),
    }
}

fn promise_figure() -> DayFigure {
    DayFigure {
        table: "kpi_day_promises",
        month_table: "kpi_month_promises",
        columns: "agent_id, bucket, portfolio_id, made, kept, broken",
        summed: "agent_id, bucket, portfolio_id, sum(made)::bigint AS made, sum(kept)::bigint AS kept,
                 sum(broken)::bigint AS broken",
        group: "agent_id, bucket, portfolio_id",
        month: None,
        compute: format!(
            "SELECT e.day, e.agent_id, s.bucket, p.id AS portfolio_id, count(*) AS made, count(*) FILTER (WHERE e.status = 'kept') AS kept,
                    count(*) FILTER (WHERE e.status = 'broken') AS broken
             FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, created_by AS agent_id, account_id, status
                   FROM promises WHERE created_at >= $1 AND created_at < $2) e
             {SNAPSHOT_OF_THE_DAY} {PORTFOLIO_OF_THE_DAY}
             GROUP BY e.day, e.agent_id, s.bucket, p.id"
        ),
    }
}

fn collected_figure() -> DayFigure {
    DayFigure {
        table: "kpi_day_collected",
        month_table: "kpi_month_collected",
        columns: "agent_id, bucket, portfolio_id, currency, amount",
        summed: "agent_id, bucket, portfolio_id, currency, sum(amount) AS amount",
        group: "agent_id, bucket, portfolio_id, currency",
        month: None,
        compute: format!(
            "SELECT e.day, g.id AS agent_id, s.bucket, p.id AS portfolio_id, e.currency, sum(e.amount) AS amount
             FROM (SELECT (received_at AT TIME ZONE 'UTC')::date AS day, account_id, currency, amount
                   FROM payments WHERE status = 'completed' AND received_at >= $1 AND received_at < $2) e
             {SNAPSHOT_OF_THE_DAY} {PORTFOLIO_OF_THE_DAY} {AGENT_OF_THE_DAY}
             GROUP BY e.day, g.id, s.bucket, p.id, e.currency"
        ),
    }
}

/// Every figure, in the order a keeping writes them.
fn figures() -> [DayFigure; 4] {
    [work_figure(), channel_figure(), promise_figure(), collected_figure()]
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
         WHERE first.at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM kpi_days k WHERE k.day = d::date AND k.kept_until >= d + interval '1 day')
         ORDER BY 1",
    )
    .bind(today - chrono::Duration::days(kpi::MAX_DAYS - 1))
    .bind(today - chrono::Duration::days(1))
    .fetch_all(pool)
    .await?)
}

/// Keeps the figures of `day`, a day that is over, unless they are kept already (a day
/// kept only in part is kept again whole). Returns whether this call kept them.
pub async fn keep_day(pool: &PgPool, day: NaiveDate) -> Result<bool> {
    let end = day_start(day + chrono::Duration::days(1));
    keep(pool, day, end, end).await
}

/// How old today's kept part may be before [`keep_today`] keeps it again.
pub const TODAY_KEPT_FOR: chrono::Duration = chrono::Duration::seconds(30);

/// Keeps today's (`now`'s UTC day) figures up to `now`, unless a part kept less than
/// [`TODAY_KEPT_FOR`] ago is there; a request then computes only the events from `now`
/// on. A kept part grows by the events since it ends, so the lock is held for about a
/// minute's events, not the day's. Returns whether this call kept them.
pub async fn keep_today(pool: &PgPool, now: DateTime<Utc>) -> Result<bool> {
    keep(pool, now.date_naive(), now, now - TODAY_KEPT_FOR).await
}

/// Keeps the figures of `day`'s events before `until` when its kept part ends before
/// `stale_before`: a day that is over is kept again whole (one row per group), a part of
/// today grows by the events from where it ends. It locks `kpi_days` against the writes
/// that drop kept days (they wait for it, and it waits for the ones under way), so a write
/// to the day before `until` either is in what it reads or drops what it keeps, with
/// every part kept before.
#[tracing::instrument(skip_all, fields(%day, %until))]
async fn keep(pool: &PgPool, day: NaiveDate, until: DateTime<Utc>, stale_before: DateTime<Utc>) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE kpi_days IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let kept: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT kept_until FROM kpi_days WHERE day = $1")
        .bind(day)
        .fetch_optional(&mut *tx)
        .await?;
    let over = until >= day_start(day + chrono::Duration::days(1));
    let from = match kept {
        Some(kept) if kept >= stale_before => return Ok(false),
        Some(kept) if !over => kept,
        _ => day_start(day),
    };
    sqlx::query(
        "INSERT INTO kpi_days (day, kept_until) VALUES ($1, $2)
         ON CONFLICT (day) DO UPDATE SET kept_until = excluded.kept_until, computed_at = now(), generation = DEFAULT",
    )
    .bind(day)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    for figure in figures() {
        if from == day_start(day) {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE day = $1", figure.table)))
                .bind(day)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (day, {}) {}",
            figure.table, figure.columns, figure.compute
        )))
        .bind(from)
        .bind(until)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The first day of the month after `month`'s.
fn next_month(month: NaiveDate) -> NaiveDate {
    month.with_day(1).unwrap_or(month) + Months::new(1)
}

/// The months that are over before `today`'s (UTC) and that a request may cover, whose
/// every day is kept whole and that are not kept: what [`keep_month`] has to do.
pub async fn months_to_keep(pool: &PgPool, today: NaiveDate) -> Result<Vec<NaiveDate>> {
    Ok(sqlx::query_scalar(
        "SELECT m::date FROM generate_series(kpi_month_of($1)::timestamp, kpi_month_of($2)::timestamp - interval '1 month',
                                             interval '1 month') m
         WHERE NOT EXISTS (SELECT 1 FROM kpi_months k WHERE k.month = m::date)
           AND (SELECT count(*) FROM kpi_days d
                WHERE d.day >= m::date AND d.day < (m + interval '1 month')::date
                  AND d.kept_until >= ((d.day + 1)::timestamp AT TIME ZONE 'UTC'))
               = (m + interval '1 month')::date - m::date
         ORDER BY 1",
    )
    .bind(today - chrono::Duration::days(kpi::MAX_DAYS - 1))
    .bind(today)
    .fetch_all(pool)
    .await?)
}

/// Keeps `month` (its first day): its kept days summed into one row per group, each
/// account worked once per group. Only a month whose every day is kept whole is kept.
/// It locks those days' rows, not the table: a write that would drop one of them (and
/// with it the month: migration 0055) waits until the month is kept and then drops it,
/// and a write under way that dropped one is waited for; every other write goes on
/// meanwhile (a month takes seconds to keep). A second keeper of the month at the same
/// time waits on the first one's claim and then finds it kept. Returns whether this
/// call kept it.
#[tracing::instrument(skip_all, fields(%month))]
pub async fn keep_month(pool: &PgPool, month: NaiveDate) -> Result<bool> {
    let end = next_month(month);
    if month.day() != 1 {
        return Ok(false);
    }
    let mut tx = pool.begin().await?;
    let whole_days: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT day FROM kpi_days
                               WHERE day >= $1 AND day < $2 AND kept_until >= ((day + 1)::timestamp AT TIME ZONE 'UTC')
                               FOR SHARE) d",
    )
    .bind(month)
    .bind(end)
    .fetch_one(&mut *tx)
    .await?;
    if whole_days != (end - month).num_days() {
        return Ok(false);
    }
    let claimed: Option<NaiveDate> =
        sqlx::query_scalar("INSERT INTO kpi_months (month) VALUES ($1) ON CONFLICT DO NOTHING RETURNING month")
            .bind(month)
            .fetch_optional(&mut *tx)
            .await?;
    if claimed.is_none() {
        return Ok(false);
    }
    for figure in figures() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (month, {}) SELECT $1, f.* FROM ({}) f",
            figure.month_table,
            figure.columns,
            figure.month_statement()
        )))
        .bind(month)
        .bind(end)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The rows of `figure` for the accounts of `portfolios`: the rows of the days kept in
/// part (`partly`, normally today's or none) summed per group, and the rows computed from
/// the events in `unkept`, one statement per range (a day a late write dropped months ago
/// does not make a request read the events between it and today).
async fn figure_rows<T>(
    tx: &mut PgConnection,
    figure: &DayFigure,
    portfolios: &Portfolios,
    partly: &[NaiveDate],
    unkept: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let summed = format!(
        "SELECT {summed} FROM {table} WHERE day >= $1 AND day < $2 AND {ADMITTED} GROUP BY {group}",
        summed = figure.summed,
        table = figure.table,
        group = figure.group
    );
    let mut rows: Vec<T> = Vec::new();
    for day in partly {
        rows.extend(
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(summed.clone()))
                .bind(day)
                .bind(*day + chrono::Duration::days(1))
                .bind(&portfolios.ids)
                .bind(portfolios.none)
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    let compute = format!("SELECT * FROM ({}) f WHERE {ADMITTED}", figure.compute);
    for (start, end) in unkept {
        rows.extend(
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(compute.clone()))
                .bind(start)
                .bind(end)
                .bind(&portfolios.ids)
                .bind(portfolios.none)
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    Ok(rows)
}

/// The rows of `figure` kept for `period`, every portfolio's.
async fn kept_rows<T>(tx: &mut PgConnection, figure: &DayFigure, period: Period) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(period.statement(figure)))
        .bind(period.date())
        .fetch_all(&mut *tx)
        .await?)
}

/// What the kept days of `window` leave to compute from the events: per day, from its
/// kept part's end (its start when not kept) to its end, consecutive ranges joined.
fn unkept(window: Window, kept: &[(NaiveDate, DateTime<Utc>)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for day in window.opening.iter_days().take_while(|day| day_start(*day) < window.end) {
        let end = day_start(day + chrono::Duration::days(1)).min(window.end);
        let start = kept
            .iter()
            .find(|(kept, _)| *kept == day)
            .map_or(day_start(day), |(_, until)| (*until).clamp(day_start(day), end));
        match ranges.last_mut() {
            _ if start >= end => {}
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// The activities, promises and payments of the window on the accounts of `portfolios`,
/// read in one snapshot of the database so that a day kept or dropped meanwhile is
/// counted once; the rows of the kept months and of the days kept whole outside them from
/// `held` when it holds them as kept in that snapshot.
#[tracing::instrument(skip_all)]
pub async fn day_figures(pool: &PgPool, held: &KeptRows, window: Window, portfolios: &Portfolios) -> Result<DayFigures> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let kept: Vec<(NaiveDate, DateTime<Utc>, i64)> =
        sqlx::query_as("SELECT day, kept_until, generation FROM kpi_days WHERE day >= $1 AND day < $2")
            .bind(window.opening)
            .bind(window.end.date_naive())
            .fetch_all(&mut *tx)
            .await?;
    let spans: Vec<(NaiveDate, DateTime<Utc>)> = kept.iter().map(|(day, until, _)| (*day, *until)).collect();
    let unkept = unkept(window, &spans);
    // The kept months wholly within the window: their rows stand for their days'.
    let months: Vec<(NaiveDate, i64)> =
        sqlx::query_as("SELECT month, generation FROM kpi_months WHERE month >= $1 AND (month + interval '1 month')::date <= $2")
            .bind(window.opening)
            .bind(window.end.date_naive())
            .fetch_all(&mut *tx)
            .await?;
    let in_a_month = |day: NaiveDate| months.iter().any(|(month, _)| *month <= day && day < next_month(*month));
    let (whole, partly): (Vec<_>, Vec<_>) = kept
        .iter()
        .filter(|(day, _, _)| !in_a_month(*day))
        .partition(|(day, until, _)| *until >= day_start(*day + chrono::Duration::days(1)));
    let partly: Vec<NaiveDate> = partly.iter().map(|(day, _, _)| *day).collect();
    let days = FigureRows {
        work: figure_rows(&mut tx, &work_figure(), portfolios, &partly, &unkept).await?,
        channels: figure_rows(&mut tx, &channel_figure(), portfolios, &partly, &unkept).await?,
        promises: figure_rows(&mut tx, &promise_figure(), portfolios, &partly, &unkept).await?,
        collected: figure_rows(&mut tx, &collected_figure(), portfolios, &partly, &unkept).await?,
    };
    let periods = months
        .iter()
        .map(|(month, generation)| (Period::Month(*month), *generation))
        .chain(whole.iter().map(|(day, _, generation)| (Period::Day(*day), *generation)));
    let mut rows = Vec::with_capacity(months.len() + whole.len());
    for (period, generation) in periods {
        rows.push(held.rows(&mut tx, period, generation).await?);
    }
    tx.commit().await?;
    Ok(DayFigures {
        days,
        held: rows,
        portfolios: portfolios.clone(),
    })
}

/// Drops every kept day and month: for loads that wrote events with the triggers
/// switched off.
pub async fn forget_days(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("DELETE FROM kpi_months").execute(&mut *conn).await?;
    sqlx::query("DELETE FROM kpi_days").execute(conn).await?;
    Ok(())
}

/// Keeps the bucket moves from the `opening` to the `closing` snapshot, by the agent
/// assigned and the portfolio at the opening, unless they are kept already or a day's snapshot is not
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
            "INSERT INTO kpi_moves (opening, closing, agent_id, portfolio_id, opening_bucket, closing_bucket, accounts, cured)
             SELECT $1, $2, o.assigned_agent_id, o.portfolio_id, o.bucket, c.bucket, count(*),
                    count(*) FILTER (WHERE o.bucket <> '{current}' AND c.bucket = '{current}' AND c.status <> '{not_a_cure}')
             FROM account_day_snapshots o
             JOIN account_day_snapshots c ON c.day = $2 AND c.account_id = o.account_id
             WHERE o.day = $1
             GROUP BY o.assigned_agent_id, o.portfolio_id, o.bucket, c.bucket"
        )))
        .bind(opening)
        .bind(closing)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The bucket moves from the opening to the closing snapshot of `window` of the accounts
/// of `portfolios` at the opening, by the agent assigned at the opening; read from the
/// kept moves ([`keep_moves`] first).
#[tracing::instrument(skip_all)]
pub async fn moves(pool: &PgPool, window: Window, portfolios: &Portfolios) -> Result<Vec<MoveRow>> {
    if !keep_moves(pool, window.opening, window.closing).await? {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT agent_id, portfolio_id, opening_bucket, closing_bucket, accounts, cured FROM kpi_moves
         WHERE opening = $1 AND closing = $2 AND {ADMITTED}"
    )))
    .bind(window.opening)
    .bind(window.closing)
    .bind(&portfolios.ids)
    .bind(portfolios.none)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_events_to_compute_start_where_each_kept_day_ends_and_join_across_days() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let window = Window {
            start: at(1, 0),
            end: at(6, 0),
            opening: day(1),
            closing: day(6),
        };
        // Days 1 and 3 kept whole, 4 up to 09:00, 5 up to 07:00; 2 not kept.
        let kept = [(day(1), at(2, 0)), (day(3), at(4, 0)), (day(4), at(4, 9)), (day(5), at(5, 7))];
        assert_eq!(
            unkept(window, &kept),
            vec![(at(2, 0), at(3, 0)), (at(4, 9), at(5, 0)), (at(5, 7), at(6, 0))]
        );
        let (two, four) = (kept[..1].to_vec(), [(day(4), at(4, 9))]);
        assert_eq!(unkept(window, &two), vec![(at(2, 0), at(6, 0))]);
        assert_eq!(unkept(window, &four), vec![(at(1, 0), at(4, 0)), (at(4, 9), at(6, 0))]);
        assert_eq!(unkept(window, &[]), vec![(at(1, 0), at(6, 0))]);
        let all: Vec<_> = (1..=5).map(|d| (day(d), at(d + 1, 0))).collect();
        assert_eq!(unkept(window, &all), vec![]);
        // Today, the window's end: kept up to 09:00 leaves 09:00 to its midnight.
        let today = Window {
            end: at(5, 0),
            opening: day(4),
            ..window
        };
        assert_eq!(unkept(today, &kept), vec![(at(4, 9), at(5, 0))]);
    }
}
