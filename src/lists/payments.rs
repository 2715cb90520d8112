//! `GET /api/v1/payments` and `GET /api/v1/payments/stats`: parameters and answers.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::payment::{Method, PaymentStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{PaymentFacet, PaymentQuery, PaymentSort, PaymentSortField, StatsQuery, start_of_day};
use crate::error::Result;
use crate::lists::accounts::{decode_search_cursor, signature};
use crate::lists::params::{self, Param, Problems};
use crate::lists::values::{self, amount, end_instant, instant};
use crate::search::{CurrencyStats, FacetValue, Tally};

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
    Param::new("q", |r, v| r.query.text = v.text()),
    Param::new("status", |r, v| {
        r.query.statuses.extend(v.each(PaymentStatus::parse, "a payment status"))
    }),
    Param::new("method", |r, v| r.query.methods.extend(v.each(Method::parse, "a payment method"))),
    Param::new("min_amount", |r, v| r.query.min_amount = v.one(amount, values::AMOUNT)),
    Param::new("max_amount", |r, v| r.query.max_amount = v.one(amount, values::AMOUNT)),
    Param::new("from", |r, v| r.query.from = v.one(instant, values::DATE_OR_TIME)),
    Param::new("to", |r, v| r.query.to = v.one(end_instant, values::DATE_OR_TIME)),
    Param::new("account_id", |r, v| {
        r.query.account_id = v.one(|v| Uuid::parse_str(v).ok(), "an account id")
    }),
    Param::new("include_deleted", |r, v| r.query.include_deleted = v.boolean().unwrap_or(false)),
    Param::new("assigned_agent_id", |r, v| r.query.agent = v.agent(r.caller)),
    Param::new("sort", |r, v| r.sort = v.one(parse_sort, SORTS)),
    Param::new("page_size", |r, v| r.query.page_size = v.page_size()),
    Param::new("cursor", |r, v| r.cursor = Some(v.raw().to_owned())),
    Param::new("facets", |r, v| {
        for facet in v.each(PaymentFacet::named, "a facet (status, method)") {
            if !r.query.facets.contains(&facet) {
                r.query.facets.push(facet);
            }
        }
    }),
];

pub fn parse(raw: &str, caller: &Principal) -> Result<PaymentQuery> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        query: PaymentQuery::default(),
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
    pub query: StatsQuery,
}

/// What the statistics' parameters fill in: the time zone and the first and last day.
type StatsDays = (Tz, Option<NaiveDate>, Option<NaiveDate>);

/// The statistics' parameters.
const STATS_PARAMS: &[Param<StatsDays>] = &[
    Param::new("tz", |r, v| {
        r.0 = v
            .one(|v| v.parse::<Tz>().ok(), "an IANA timezone such as Europe/Paris")
            .unwrap_or(Tz::UTC)
    }),
    Param::new("from", |r, v| r.1 = v.one(values::date, values::DATE)),
    Param::new("to", |r, v| r.2 = v.one(values::date, values::DATE)),
];

pub fn parse_stats(raw: &str, now: DateTime<Utc>) -> Result<StatsRequest> {
    let mut p = Problems::default();
    let mut request = (Tz::UTC, None, None);
    params::read(raw, STATS_PARAMS, &mut request, &mut p);
    let (tz, from, to) = request;
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
        query: StatsQuery::new(tz, from, to, today),
    })
}

fn money(currency: Option<Currency>, amount: rust_decimal::Decimal) -> String {
    match currency {
        Some(c) => c.format(amount),
        None => amount.normalize().to_string(),
    }
}

fn tally_json(currency: Option<Currency>, tally: Tally) -> Value {
    json!({"count": tally.count, "amount": money(currency, tally.amount)})
}

fn values_json(currency: Option<Currency>, values: &[FacetValue]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| json!({"value": v.value, "count": v.count, "sum": money(currency, v.sum.unwrap_or_default())}))
            .collect(),
    )
}

/// `{tz, from, to, currencies: [...]}` as documented in the README.
pub fn stats_json(request: &StatsRequest, stats: Vec<CurrencyStats>) -> Result<Value> {
    let currencies: Vec<Value> = stats
        .into_iter()
        .map(|s| {
            let currency = Currency::parse(&s.currency).ok();
            let count_of = |status: &str| s.by_status.iter().find(|v| v.value == status).map_or(0, |v| v.count);
            let (completed, failed) = (count_of("completed"), count_of("failed"));
            let success_rate = (completed + failed > 0).then(|| completed as f64 / (completed + failed) as f64);
            let series: Vec<Value> = request
                .from
                .iter_days()
                .zip(s.series.iter())
                .map(|(date, tally)| json!({"date": date, "count": tally.count, "amount": money(currency, tally.amount)}))
                .collect();
            json!({
                "currency": s.currency,
                "today": tally_json(currency, s.today),
                "this_week": tally_json(currency, s.this_week),
                "this_month": tally_json(currency, s.this_month),
                "series": series,
                "by_status": values_json(currency, &s.by_status),
                "by_method": values_json(currency, &s.by_method),
                "success_rate": success_rate,
                "failed_count": failed,
            })
        })
        .collect();
    Ok(json!({
        "tz": request.tz.name(),
        "from": request.from,
        "to": request.to,
        "day_start": start_of_day(request.tz, request.from),
        "currencies": currencies,
    }))
}
