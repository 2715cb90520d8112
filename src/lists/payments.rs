//! `GET /api/v1/payments` and `GET /api/v1/payments/stats`: parameters and answers.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::payment::{Method, PaymentStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{Counted, Interval, PaymentFacet, PaymentQuery, PaymentSort, PaymentSortField, StatsQuery, start_of_day};
use crate::error::Result;
use crate::lists::accounts::{decode_search_cursor, signature};
use crate::lists::params::{self, Param, Problems, schema};
use crate::lists::values::{self, amount, end_instant, instant};
use crate::search::{CurrencyStats, StatValue, Tally};

/// Statistics cover at most this many days.
pub const MAX_STATS_DAYS: i64 = 366;

pub fn sort_signature(sort: PaymentSort) -> String {
    signature(sort.field.name(), sort.descending)
}

fn parse_sort(text: &str) -> Option<PaymentSort> {
    let (name, descending) = super::sort_direction(text);
    PaymentSortField::named(name).map(|field| PaymentSort { field, descending })
}

/// What the payment list's parameters fill in, before the rules between them apply.
struct Request {
    caller: Uuid,
    query: PaymentQuery,
    sort: Option<PaymentSort>,
    cursor: Option<String>,
}

const SORTS: &str = "a sort field (received_at, amount, updated or updated_at; `-` for descending)";

/// The payment list's parameters, each declared once.
const PARAMS: &[Param<Request>] = &[
    Param::new(
        "q",
        "Full-text search: reference, the account's number and debtor name.",
        schema::words,
        |r, v| r.query.text = v.text(),
    ),
    Param::new("status", "", schema::list::<PaymentStatus>, |r, v| {
        r.query.statuses.extend(v.each(PaymentStatus::parse, "a payment status"))
    }),
    Param::new("method", "", schema::list::<Method>, |r, v| {
        r.query.methods.extend(v.each(Method::parse, "a payment method"))
    }),
    Param::new("min_amount", "A non-negative decimal amount.", schema::amount, |r, v| {
        r.query.min_amount = v.one(amount, values::AMOUNT)
    }),
    Param::new("max_amount", "", schema::amount, |r, v| {
        r.query.max_amount = v.one(amount, values::AMOUNT)
    }),
    Param::new(
        "from",
        "Received at or after: an RFC 3339 time, or a date (its first instant, UTC).",
        schema::text,
        |r, v| r.query.from = v.one(instant, values::DATE_OR_TIME),
    ),
    Param::new(
        "to",
        "Received before: an RFC 3339 time, or a date (included whole).",
        schema::text,
        |r, v| r.query.to = v.one(end_instant, values::DATE_OR_TIME),
    ),
    Param::new("account_id", "", schema::id, |r, v| {
        r.query.account_id = v.one(|v| Uuid::parse_str(v).ok(), "an account id")
    }),
    Param::new(
        "include_deleted",
        "Payments of soft-deleted accounts too (managers and admins).",
        schema::one::<bool>,
        |r, v| r.query.include_deleted = v.boolean().unwrap_or(false),
    ),
    Param::new(
        "assigned_agent_id",
        "A user id, `me` or `unassigned`: the account's agent.",
        schema::text,
        |r, v| r.query.agent = v.agent(r.caller),
    ),
    Param::new(
        "sort",
        "received_at, amount, updated or updated_at; `-` first for descending. Relevance with `q`, else `-received_at`.",
        schema::text,
        |r, v| r.sort = v.one(parse_sort, SORTS),
    ),
    Param::new("page_size", "", schema::search_page_size, |r, v| {
        r.query.page_size = v.search_page_size()
    }),
    Param::new("cursor", "`next_cursor` of the previous page (same sort).", schema::text, |r, v| {
        r.cursor = Some(v.raw().to_owned())
    }),
    Param::new("exact_total", super::EXACT_TOTAL, schema::one::<bool>, |r, v| {
        r.query.counted = super::counted(v.boolean())
    }),
    Param::new(
        "facets",
        "Comma-separated: status, method, failure_reason.",
        schema::text,
        |r, v| {
            for facet in v.each(PaymentFacet::named, "a facet (status, method, failure_reason)") {
                if !r.query.facets.contains(&facet) {
                    r.query.facets.push(facet);
                }
            }
        },
    ),
];

params::described_by!(
    /// The payment list's parameters (repeatable ones also take comma-separated values).
    PaymentListParams,
    PARAMS
);

pub fn parse(raw: &str, caller: &Principal) -> Result<PaymentQuery> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        query: PaymentQuery {
            counted: Counted::LIST,
            ..PaymentQuery::default()
        },
        sort: None,
        cursor: None,
    };
    params::read(raw, PARAMS, &mut request, &mut p);
    let Request {
        mut query, sort, cursor, ..
    } = request;
    if let (Some(min), Some(max)) = (query.min_amount, query.max_amount)
        && min > max
    {
        p.push("min_amount", "must not exceed max_amount");
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        p.push("from", "must be before to");
    }
    query.sort = sort.unwrap_or(PaymentSort {
        field: if query.text.is_some() {
            PaymentSortField::Relevance
        } else {
            PaymentSortField::ReceivedAt
        },
        descending: true,
    });
    if let Some(cursor) = cursor {
        let relevance = query.sort.field == PaymentSortField::Relevance;
        query.after = decode_search_cursor(&cursor, &sort_signature(query.sort), relevance)
            .map_err(|m| p.push("cursor", m))
            .ok();
    }
    p.finish()?;
    if query.include_deleted {
        caller.require(Action::RestoreAccount)?;
    }
    Ok(query)
}

/// A statistics request: the local days asked for and their instants.
#[derive(Clone, Debug)]
pub struct StatsRequest {
    pub tz: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub interval: Interval,
    pub query: StatsQuery,
}

/// What the statistics' parameters fill in: the time zone, the first and last day, and
/// the series' interval.
type StatsDays = (Tz, Option<NaiveDate>, Option<NaiveDate>, Interval);

/// The statistics' parameters.
const STATS_PARAMS: &[Param<StatsDays>] = &[
    Param::new(
        "tz",
        "The IANA time zone whose days are counted (such as Europe/Paris); UTC when absent.",
        schema::text,
        |r, v| {
            r.0 = v
                .one(|v| v.parse::<Tz>().ok(), "an IANA timezone such as Europe/Paris")
                .unwrap_or(Tz::UTC)
        },
    ),
    Param::new("from", "The first day; 29 days before `to` when absent.", schema::date, |r, v| {
        r.1 = v.one(values::date, values::DATE)
    }),
    Param::new(
        "to",
        "The last day; today (in `tz`) when absent. At most 366 days in all.",
        schema::date,
        |r, v| r.2 = v.one(values::date, values::DATE),
    ),
    Param::new(
        "interval",
        "The series' periods: `day` (default), `week` (ISO weeks, from Monday) or `month`, in `tz`.",
        schema::one::<Interval>,
        |r, v| {
            if let Some(interval) = v.one(Interval::parse, "day, week or month") {
                r.3 = interval;
            }
        },
    ),
];

params::described_by!(
    /// The payment statistics' parameters.
    StatsParams,
    STATS_PARAMS
);

pub fn parse_stats(raw: &str, now: DateTime<Utc>) -> Result<StatsRequest> {
    let mut p = Problems::default();
    let mut request = (Tz::UTC, None, None, Interval::Day);
    params::read(raw, STATS_PARAMS, &mut request, &mut p);
    let (tz, from, to, interval) = request;
    let today = now.with_timezone(&tz).date_naive();
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - chrono::Duration::days(29));
    if from > to {
        p.push("from", "must not be after to");
    } else if (to - from).num_days() + 1 > MAX_STATS_DAYS {
        p.push("from", format!("the range may span at most {MAX_STATS_DAYS} days"));
    }
    p.finish()?;
    Ok(StatsRequest {
        tz,
        from,
        to,
        interval,
        query: StatsQuery::new(tz, from, to, today),
    })
}

fn money(currency: Option<Currency>, amount: rust_decimal::Decimal) -> String {
    match currency {
        Some(c) => c.format(amount),
        None => amount.normalize().to_string(),
    }
}

/// `GET /payments/stats`: completed payments over local days, per currency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PaymentStats {
    /// The IANA time zone the days are counted in.
    pub tz: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The periods of each currency's `series`.
    pub interval: Interval,
    /// The first instant of `from` in `tz`.
    pub day_start: DateTime<Utc>,
    pub currencies: Vec<CurrencyStatsView>,
    /// The latest event committed before the statistics were read (null when none is
    /// kept): a client keeping them current applies the payment events after it, and
    /// replays them from it when its socket signed in later.
    pub last_event_id: Option<i64>,
}

/// One currency's statistics (amounts of different currencies never add up).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CurrencyStatsView {
    pub currency: String,
    /// Completed payments received today, this ISO week and this month.
    pub today: TallyView,
    pub this_week: TallyView,
    pub this_month: TallyView,
    /// Completed payments per period (`interval`) of the range, in order, empty periods
    /// too.
    pub series: Vec<DayView>,
    pub by_status: Vec<StatValueView>,
    pub by_method: Vec<StatValueView>,
    /// completed / (completed + failed); null when neither.
    pub success_rate: Option<f64>,
    pub failed_count: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TallyView {
    pub count: u64,
    pub amount: String,
}

/// One period of a series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DayView {
    /// The period's first day within the range (a week or month the range cuts starts
    /// at `from`).
    pub date: NaiveDate,
    /// The days of the range the period covers (1 for a day; fewer than the week's or
    /// month's at the range's ends).
    pub days: u32,
    pub count: u64,
    pub amount: String,
}

/// Payments of one currency that hold a value, and their amounts' sum.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatValueView {
    pub value: String,
    pub count: u64,
    pub sum: String,
}

fn tally(currency: Option<Currency>, tally: Tally) -> TallyView {
    TallyView {
        count: tally.count,
        amount: money(currency, tally.amount),
    }
}

fn values(currency: Option<Currency>, values: &[StatValue]) -> Vec<StatValueView> {
    values
        .iter()
        .map(|v| StatValueView {
            value: v.value.clone(),
            count: v.count,
            sum: money(currency, v.sum),
        })
        .collect()
}

/// The daily `series` of `request`'s range summed per period of its interval: each
/// period's first day in the range, its days in the range, and its sum.
fn periods(request: &StatsRequest, series: &[Tally]) -> Vec<(NaiveDate, u32, Tally)> {
    let mut out: Vec<(NaiveDate, u32, Tally)> = Vec::new();
    for (day, tally) in request.from.iter_days().zip(series) {
        match out.last_mut() {
            Some((first, days, sum)) if request.interval.start_of(day) == request.interval.start_of(*first) => {
                *days += 1;
                sum.count += tally.count;
                sum.amount += tally.amount;
            }
            _ => out.push((day, 1, *tally)),
        }
    }
    out
}

/// The statistics of `request`, read after the event `last_event_id`, as documented in
/// docs/features/payments.md.
pub fn stats_view(request: &StatsRequest, stats: Vec<CurrencyStats>, last_event_id: Option<i64>) -> PaymentStats {
    let currencies = stats
        .into_iter()
        .map(|s| {
            let currency = Currency::parse(&s.currency).ok();
            let count_of = |status: &str| s.by_status.iter().find(|v| v.value == status).map_or(0, |v| v.count);
            let (completed, failed) = (count_of("completed"), count_of("failed"));
            let success_rate = (completed + failed > 0).then(|| completed as f64 / (completed + failed) as f64);
            let series = periods(request, &s.series)
                .into_iter()
                .map(|(date, days, tally)| DayView {
                    date,
                    days,
                    count: tally.count,
                    amount: money(currency, tally.amount),
                })
                .collect();
            CurrencyStatsView {
                today: tally(currency, s.today),
                this_week: tally(currency, s.this_week),
                this_month: tally(currency, s.this_month),
                series,
                by_status: values(currency, &s.by_status),
                by_method: values(currency, &s.by_method),
                success_rate,
                failed_count: failed,
                currency: s.currency,
            }
        })
        .collect();
    PaymentStats {
        tz: request.tz.name().to_owned(),
        from: request.from,
        to: request.to,
        interval: request.interval,
        day_start: start_of_day(request.tz, request.from),
        currencies,
        last_event_id,
    }
}
