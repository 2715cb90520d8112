//! `GET /api/v1/payments` and `GET /api/v1/payments/stats`: parameters and answers.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::payment::{Method, PaymentStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{AgentFilter, PaymentFacet, PaymentQuery, PaymentSort, PaymentSortField, StatsQuery, start_of_day};
use crate::error::Result;
use crate::lists::accounts::{MAX_QUERY_CHARS, Problems, decode_cursor, list_values, page_size, signature};
use crate::lists::values::{self, amount, boolean, end_instant, instant};
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

pub fn parse(raw: &str, caller: &Principal) -> Result<PaymentQuery> {
    let mut query = PaymentQuery::default();
    let mut p = Problems::default();
    let mut sort = None;
    let mut cursor = None;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.as_ref();
        match key.as_ref() {
            "q" => {
                let text = value.trim();
                if text.chars().count() > MAX_QUERY_CHARS {
                    p.push("q", format!("must be at most {MAX_QUERY_CHARS} characters"));
                } else if !text.is_empty() {
                    query.text = Some(text.to_owned());
                }
            }
            "status" => {
                for v in list_values(value) {
                    query
                        .statuses
                        .extend(p.parse("status", v, PaymentStatus::parse, "a payment status"));
                }
            }
            "method" => {
                for v in list_values(value) {
                    query.methods.extend(p.parse("method", v, Method::parse, "a payment method"));
                }
            }
            "min_amount" => query.min_amount = p.parse("min_amount", value, amount, values::AMOUNT),
            "max_amount" => query.max_amount = p.parse("max_amount", value, amount, values::AMOUNT),
            "from" => query.from = p.parse("from", value, instant, values::DATE_OR_TIME),
            "to" => query.to = p.parse("to", value, end_instant, values::DATE_OR_TIME),
            "account_id" => query.account_id = p.parse("account_id", value, |v| Uuid::parse_str(v).ok(), "an account id"),
            "include_deleted" => query.include_deleted = p.parse("include_deleted", value, boolean, "true or false").unwrap_or(false),
            "assigned_agent_id" => {
                query.agent = match value.trim() {
                    "me" => Some(AgentFilter::Agent(caller.user_id)),
                    "unassigned" => Some(AgentFilter::Unassigned),
                    other => p
                        .parse(
                            "assigned_agent_id",
                            other,
                            |v| Uuid::parse_str(v).ok(),
                            "a user id, `me` or `unassigned`",
                        )
                        .map(AgentFilter::Agent),
                }
            }
            "sort" => {
                sort = p.parse(
                    "sort",
                    value,
                    parse_sort,
                    "a sort field (received_at, amount, updated or updated_at; `-` for descending)",
                )
            }
            "page_size" => query.page_size = page_size(&mut p, value),
            "cursor" => cursor = Some(value.to_owned()),
            "facets" => {
                for v in list_values(value) {
                    let facet = p.parse(
                        "facets",
                        v,
                        |name| PaymentFacet::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
                        "a facet (status, method)",
                    );
                    query.facets.extend(facet.filter(|f| !query.facets.contains(f)));
                }
            }
            other => p.push(other, "unknown parameter"),
        }
    }
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
        query.after = decode_cursor(&cursor, &sort_signature(query.sort), relevance)
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

pub fn parse_stats(raw: &str, now: DateTime<Utc>) -> Result<StatsRequest> {
    let mut p = Problems::default();
    let (mut tz, mut from, mut to) = (Tz::UTC, None, None);
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.as_ref();
        match key.as_ref() {
            "tz" => {
                tz = p
                    .parse("tz", value, |v| v.parse::<Tz>().ok(), "an IANA timezone such as Europe/Paris")
                    .unwrap_or(Tz::UTC)
            }
            "from" => from = p.parse("from", value, values::date, values::DATE),
            "to" => to = p.parse("to", value, values::date, values::DATE),
            other => p.push(other, "unknown parameter"),
        }
    }
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
