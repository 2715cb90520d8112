//! `GET /api/v1/payments/stats` against the truth computed here from SQL rows, on random
//! payments placed around local midnights of several timezones.

use std::collections::{BTreeMap, BTreeSet};

use arrears::domain::role::Role;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, error_fields, eventually, id_of, spawn_app, status_json, ts};

const METHODS: [&str; 6] = ["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

fn money(amount: Decimal) -> String {
    let mut value = amount;
    value.rescale(2);
    value.to_string()
}

fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap_or_else(|| panic!("midnight of {day} is ambiguous in {tz:?}"))
        .with_timezone(&Utc)
}

fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap()
}

struct Row {
    amount: Decimal,
    status: String,
    method: String,
    received_at: DateTime<Utc>,
    currency: String,
}

async fn rows(app: &TestApp) -> Vec<Row> {
    let raw: Vec<(Decimal, String, String, DateTime<Utc>, String)> =
        sqlx::query_as("SELECT amount, status, method, received_at, currency FROM payments")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    raw.into_iter()
        .map(|(amount, status, method, received_at, currency)| Row {
            amount,
            status,
            method,
            received_at,
            currency,
        })
        .collect()
}

/// (count, sum) of completed payments of `currency` whose local date is in `from..=to`.
fn completed_between(rows: &[Row], currency: &str, tz: Tz, from: NaiveDate, to: NaiveDate) -> (u64, Decimal) {
    rows.iter()
        .filter(|r| r.currency == currency && r.status == "completed")
        .filter(|r| {
            let day = r.received_at.with_timezone(&tz).date_naive();
            from <= day && day <= to
        })
        .fold((0, Decimal::ZERO), |(n, sum), r| (n + 1, sum + r.amount))
}

fn grouped(rows: &[&Row], by_status: bool) -> BTreeMap<String, (u64, String)> {
    let mut groups: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
    for r in rows {
        let key = if by_status { &r.status } else { &r.method };
        let entry = groups.entry(key.clone()).or_insert((0, Decimal::ZERO));
        entry.0 += 1;
        entry.1 += r.amount;
    }
    groups.into_iter().map(|(k, (n, sum))| (k, (n, money(sum)))).collect()
}

fn served_groups(value: &Value, what: &str) -> BTreeMap<String, (u64, String)> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is an array: {value}"))
        .iter()
        .filter(|g| g["count"].as_u64().unwrap() > 0)
        .map(|g| {
            (
                g["value"].as_str().unwrap().to_owned(),
                (
                    g["count"].as_u64().unwrap(),
                    g["sum"].as_str().unwrap_or_else(|| panic!("sum: {g}")).to_owned(),
                ),
            )
        })
        .collect()
}

fn window(value: &Value, expected: (u64, Decimal), what: &str) {
    assert_eq!(value["count"], json!(expected.0), "{what} count: {value}");
    assert_eq!(value["amount"], money(expected.1), "{what} amount: {value}");
}

/// Compares one `currencies[]` entry with the truth for `from..=to` in `tz`.
fn check_currency(block: &Value, rows: &[Row], (tz, interval): (Tz, &str), from: NaiveDate, to: NaiveDate, today: NaiveDate, label: &str) {
    let currency = block["currency"].as_str().unwrap_or_else(|| panic!("{label}: currency: {block}"));
    let label = format!("{label} {currency}");
    window(
        &block["today"],
        completed_between(rows, currency, tz, today, today),
        &format!("{label} today"),
    );
    window(
        &block["this_week"],
        completed_between(rows, currency, tz, week_start(today), today),
        &format!("{label} this_week"),
    );
    window(
        &block["this_month"],
        completed_between(rows, currency, tz, month_start(today), today),
        &format!("{label} this_month"),
    );

    let series = block["series"].as_array().unwrap_or_else(|| panic!("{label}: series: {block}"));
    // The periods: each day, or each week (from Monday) or month the range touches, cut
    // to the range.
    let start_of = |day: NaiveDate| match interval {
        "week" => week_start(day),
        "month" => month_start(day),
        _ => day,
    };
    let mut periods: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut day = from;
    while day <= to {
        match periods.last_mut() {
            Some((first, last)) if start_of(*first) == start_of(day) => *last = day,
            _ => periods.push((day, day)),
        }
        day = day.succ_opt().unwrap();
    }
    assert_eq!(
        series.len(),
        periods.len(),
        "{label}: one series entry per {interval} of the range, empty ones included"
    );
    for (entry, (first, last)) in series.iter().zip(&periods) {
        assert_eq!(entry["date"], first.to_string(), "{label}: series in date order");
        assert_eq!(entry["days"], json!((*last - *first).num_days() + 1), "{label}: {entry}");
        let (n, sum) = completed_between(rows, currency, tz, *first, *last);
        assert_eq!(entry["count"], json!(n), "{label} series {first}: {entry}");
        assert_eq!(entry["amount"], money(sum), "{label} series {first}: {entry}");
    }

    let in_range: Vec<&Row> = rows
        .iter()
        .filter(|r| r.currency == currency)
        .filter(|r| {
            let day = r.received_at.with_timezone(&tz).date_naive();
            from <= day && day <= to
        })
        .collect();
    assert_eq!(
        served_groups(&block["by_status"], "by_status"),
        grouped(&in_range, true),
        "{label} by_status"
    );
    assert_eq!(
        served_groups(&block["by_method"], "by_method"),
        grouped(&in_range, false),
        "{label} by_method"
    );
    let completed = in_range.iter().filter(|r| r.status == "completed").count();
    let failed = in_range.iter().filter(|r| r.status == "failed").count();
    assert_eq!(block["failed_count"], json!(failed), "{label} failed_count");
    if completed + failed == 0 {
        assert!(block["success_rate"].is_null(), "{label}: no outcome, no rate: {block}");
    } else {
        let want = completed as f64 / (completed + failed) as f64;
        let rate = &block["success_rate"];
        let got = rate
            .as_f64()
            .or_else(|| rate.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("{label}: success_rate is a number: {rate}"));
        assert!(
            (got - want).abs() < 0.0005,
            "{label} success_rate {got} != {want} ({completed}/{completed}+{failed})"
        );
    }
}

/// Fetches stats and checks them, per day, week and month; retries if the local date
/// changed during the request.
async fn check_stats(app: &TestApp, token: &str, tz_param: Option<&str>, range: Option<(i64, i64)>) {
    for interval in [None, Some("week"), Some("month")] {
        check_stats_by(app, token, tz_param, range, interval).await;
    }
}

async fn check_stats_by(app: &TestApp, token: &str, tz_param: Option<&str>, range: Option<(i64, i64)>, interval: Option<&str>) {
    let tz: Tz = tz_param.unwrap_or("UTC").parse().unwrap();
    let truth = rows(app).await;
    for _ in 0..3 {
        let today = Utc::now().with_timezone(&tz).date_naive();
        let (from, to) = match range {
            Some((back_from, back_to)) => (today - Duration::days(back_from), today - Duration::days(back_to)),
            None => (today - Duration::days(29), today),
        };
        let mut query = Vec::new();
        if let Some(name) = tz_param {
            query.push(format!("tz={name}"));
        }
        if range.is_some() {
            query.push(format!("from={from}&to={to}"));
        }
        if let Some(interval) = interval {
            query.push(format!("interval={interval}"));
        }
        let path = format!("/api/v1/payments/stats?{}", query.join("&"));
        let (status, stats) = status_json(app.get(&path, token).await).await;
        assert_eq!(status, StatusCode::OK, "{path}: {stats}");
        if Utc::now().with_timezone(&tz).date_naive() != today {
            continue;
        }
        let label = path.clone();
        assert_eq!(stats["tz"], tz_param.unwrap_or("UTC"), "{label}");
        assert_eq!(stats["from"], from.to_string(), "{label}");
        assert_eq!(stats["to"], to.to_string(), "{label}");
        assert_eq!(stats["interval"], interval.unwrap_or("day"), "{label}");
        let blocks = stats["currencies"].as_array().unwrap_or_else(|| panic!("{label}: {stats}"));
        let served: BTreeSet<String> = blocks.iter().map(|b| b["currency"].as_str().unwrap().to_owned()).collect();
        assert_eq!(served.len(), blocks.len(), "{label}: one entry per currency");
        assert_eq!(served, BTreeSet::from(["EUR".to_owned(), "USD".to_owned()]), "{label}");
        for block in blocks {
            check_currency(block, &truth, (tz, interval.unwrap_or("day")), from, to, today, &label);
        }
        return;
    }
    panic!("the local date kept changing");
}

#[tokio::test]
async fn stats_equal_the_sql_truth_in_every_timezone() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let usd = id_of(
        &app.account(&manager.token, json!({"original_balance": "10000000.00", "currency": "USD"}))
            .await,
    );
    let eur = id_of(
        &app.account(&manager.token, json!({"original_balance": "10000000.00", "currency": "EUR"}))
            .await,
    );

    // Instants one second either side of local midnights that decide buckets: today,
    // the week's and the month's first day, a day in the middle, and the first day
    // of the default range.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let mut instants = Vec::new();
    for tz in [chrono_tz::UTC, chrono_tz::America::New_York, chrono_tz::Asia::Tokyo] {
        let today = now.with_timezone(&tz).date_naive();
        for day in [
            today,
            week_start(today),
            month_start(today),
            today - Duration::days(3),
            today - Duration::days(29),
        ] {
            let midnight = local_midnight(tz, day);
            instants.push(midnight - Duration::seconds(1));
            instants.push(midnight);
        }
    }
    assert!(instants.iter().all(|at| *at <= now));
    while instants.len() < 60 {
        instants.push(now - Duration::seconds(rand::random_range(60..40 * 86_400_i64)));
    }

    for (i, at) in instants.iter().enumerate() {
        let account = if i % 3 == 2 { &eur } else { &usd };
        let currency = if i % 3 == 2 { "EUR" } else { "USD" };
        let amount = Decimal::new(rand::random_range(100..=50_000_i64), 2);
        let method = METHODS[rand::random_range(0..METHODS.len())];
        // 0-3 completed, 4 pending, 5-6 failed, 7-8 refunded, 9 reversed.
        let plan = if i < 30 { i % 10 } else { rand::random_range(0..10_usize) };
        let status = if (4..=6).contains(&plan) { "pending" } else { "completed" };
        let body = json!({"amount": money(amount), "currency": currency, "method": method, "status": status,
                          "received_at": ts(*at)});
        let response = app
            .post(
                &format!("/api/v1/accounts/{account}/payments?wait_for=indexed"),
                Some(&manager.token),
                &body,
            )
            .await;
        let (code, payment) = status_json(response).await;
        assert_eq!(code, StatusCode::CREATED, "{body}: {payment}");
        let target = match plan {
            5 | 6 => Some("failed"),
            7 | 8 => Some("refunded"),
            9 => Some("reversed"),
            _ => None,
        };
        if let Some(target) = target {
            let response = app
                .patch(
                    &format!("/api/v1/payments/{}?wait_for=indexed", id_of(&payment)),
                    &manager.token,
                    &json!({"status": target}),
                )
                .await;
            let (code, patched) = status_json(response).await;
            assert_eq!(code, StatusCode::OK, "-> {target}: {patched}");
            assert_eq!(patched["status"], target);
        }
    }
    let truth = rows(&app).await;
    assert_eq!(truth.len(), 60);
    for status in ["completed", "pending", "failed", "refunded", "reversed"] {
        assert!(truth.iter().any(|r| r.status == status), "the data has {status} payments");
    }

    // The index holds every payment in its final state.
    let mut want_status: BTreeMap<String, u64> = BTreeMap::new();
    for r in &truth {
        *want_status.entry(r.status.clone()).or_default() += 1;
    }
    eventually("the index holds every payment's final status", || async {
        let (status, page) = status_json(app.get("/api/v1/payments?facets=status&page_size=1", &viewer.token).await).await;
        if status != StatusCode::OK || page["total"] != 60 {
            return false;
        }
        let got: BTreeMap<String, u64> = page["facets"]["status"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter(|v| v["count"].as_u64().unwrap_or(0) > 0)
                    .map(|v| (v["value"].as_str().unwrap_or_default().to_owned(), v["count"].as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        got == want_status
    })
    .await;

    for tz in [None, Some("UTC"), Some("America/New_York"), Some("Asia/Tokyo")] {
        check_stats(&app, &viewer.token, tz, None).await;
        check_stats(&app, &viewer.token, tz, Some((39, 0))).await;
    }
    // A range that ends before today: today/this_week/this_month still count today.
    check_stats(&app, &viewer.token, Some("America/New_York"), Some((20, 2))).await;
}

#[tokio::test]
async fn stats_parameters_are_checked() {
    let app = spawn_app().await;
    let viewer = app.user(Role::Viewer).await;
    for (query, fields) in [
        ("tz=Mars/Olympus", &["tz"][..]),
        ("tz=EST5EDT_nope", &["tz"][..]),
        ("from=2026-03-10&to=2026-03-01", &["from", "to"][..]),
        ("from=2025-01-01&to=2026-01-10", &["from", "to"][..]),
        ("from=2024-06-01&to=2026-06-01", &["from", "to"][..]),
        ("from=yesterday", &["from"][..]),
        ("to=2026-13-01", &["to"][..]),
        ("bogus=1", &["bogus"][..]),
        ("interval=year", &["interval"][..]),
        ("interval=", &["interval"][..]),
    ] {
        let response = app.get(&format!("/api/v1/payments/stats?{query}"), &viewer.token).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        let named = error_fields(&problem);
        assert!(
            !named.is_empty() && named.iter().all(|f| fields.contains(&f.as_str())),
            "{query}: {named:?}"
        );
    }
    // 366 days, both ends included, is the longest span allowed.
    let (status, stats) = status_json(
        app.get("/api/v1/payments/stats?from=2024-01-01&to=2024-12-31&tz=Asia/Tokyo", &viewer.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["from"], "2024-01-01");
    assert_eq!(stats["to"], "2024-12-31");
    assert_eq!(stats["tz"], "Asia/Tokyo");
    assert_eq!(stats["currencies"], json!([]), "no payments, no currencies");
    let (status, stats) = status_json(app.get("/api/v1/payments/stats", &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let today = Utc::now().date_naive();
    assert_eq!(stats["tz"], "UTC");
    assert_eq!(stats["to"], today.to_string());
    assert_eq!(stats["from"], (today - Duration::days(29)).to_string());
}
