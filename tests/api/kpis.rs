//! `GET /api/v1/kpis`: every figure against its definition (docs/features/kpis.md) computed here in
//! plain SQL on random data, per grouping; who may ask and which portfolios' figures they
//! read; the parameters' checks; teams; and the bucket snapshot.

use std::collections::{BTreeMap, BTreeSet};

use arrears::domain::role::Role;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, error_fields, eventually, spawn_app, status_json};

/// A move between buckets in the plain-SQL check: opening, closing, accounts, cured.
type Move = (String, String, i64, i64);

const BUCKETS: [&str; 6] = ["current", "1-29", "30-59", "60-89", "90-119", "120+"];
const STATUSES: [&str; 8] = [
    "active",
    "delinquent",
    "promise_to_pay",
    "payment_plan",
    "disputed",
    "paid",
    "settled",
    "closed",
];
const TYPES: [&str; 7] = ["call", "sms", "whatsapp", "email", "letter", "visit", "note"];
const OUTCOMES: [&str; 8] = [
    "right_party",
    "wrong_party",
    "no_answer",
    "left_message",
    "refused",
    "promise_to_pay",
    "dispute",
    "paid",
];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "JPY"];

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// A random instant from three days before `start` to two days after `end`, or one of
/// the window's edges.
fn instant_around(rng: &mut StdRng, start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
    match rng.random_range(0..10) {
        0 => start,
        1 => end,
        2 => end - Duration::microseconds(1),
        _ => {
            let span = (end - start).num_seconds() + 5 * 86_400;
            start - Duration::days(3) + Duration::seconds(rng.random_range(0..span))
        }
    }
}

fn maybe<T: Copy>(rng: &mut StdRng, values: &[T], none_one_in: u32) -> Option<T> {
    (rng.random_range(0..none_one_in) != 0).then(|| *values.choose(rng).unwrap())
}

/// Agents in teams (one without), two portfolios, accounts in them or in none, snapshots
/// of every day in `days` (an account's portfolio in them mostly its own, sometimes
/// another), activities, promises and payments around `[start, end)`, straight into SQL.
/// Returns the portfolios.
async fn seed(pool: &PgPool, rng: &mut StdRng, days: &[NaiveDate], start: DateTime<Utc>, end: DateTime<Utc>) -> [Uuid; 2] {
    let mut agents = Vec::new();
    for (i, team) in [Some("north"), Some("north"), Some("south"), None].into_iter().enumerate() {
        let email = format!("kpi-agent-{i}-{}@example.com", Uuid::new_v4().simple());
        let row = arrears::store::users::insert_in_team(pool, None, &email, "Agent", Role::Agent, "x", team)
            .await
            .unwrap();
        agents.push(row.id);
    }
    let portfolios = [Uuid::new_v4(), Uuid::new_v4()];
    for (id, name) in portfolios.iter().zip(["KPI Alpha", "KPI Beta"]) {
        sqlx::query("INSERT INTO portfolios (id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(pool)
            .await
            .unwrap();
    }
    let mut accounts = Vec::new();
    for i in 0..40 {
        let id = Uuid::new_v4();
        let currency = *CURRENCIES.choose(rng).unwrap();
        let portfolio = maybe(rng, &portfolios, 3);
        sqlx::query(
            "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency,
                                   due_date, assigned_agent_id, portfolio_id)
             VALUES ($1, $2, 'Debtor', 1000000, 1000000, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(format!("KPI-{i}"))
        .bind(currency)
        .bind(start.date_naive() - Duration::days(rng.random_range(0..200)))
        .bind(maybe(rng, &agents, 5))
        .bind(portfolio)
        .execute(pool)
        .await
        .unwrap();
        accounts.push((id, currency, portfolio));
    }
    for day in days {
        sqlx::query("INSERT INTO account_snapshot_days (day) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(day)
            .execute(pool)
            .await
            .unwrap();
        for (account, currency, portfolio) in &accounts {
            if rng.random_range(0..10) == 0 {
                continue;
            }
            // The account was in another portfolio (or none) on one day in five.
            let portfolio = if rng.random_range(0..5) == 0 {
                maybe(rng, &portfolios, 3)
            } else {
                *portfolio
            };
            // Half the rows carry the account's ordinal, as the scheduler's do; the others
            // are like rows taken before snapshots carried it.
            sqlx::query(
                "INSERT INTO account_day_snapshots (day, account_id, bucket, assigned_agent_id, status, current_balance, currency,
                                                    ordinal, portfolio_id)
                 VALUES ($1, $2, $3, $4, $5, 100, $6, CASE WHEN $7 THEN (SELECT ordinal FROM accounts WHERE id = $2) END, $8)",
            )
            .bind(day)
            .bind(account)
            .bind(*BUCKETS.choose(rng).unwrap())
            .bind(maybe(rng, &agents, 5))
            .bind(*STATUSES.choose(rng).unwrap())
            .bind(currency)
            .bind(rng.random_bool(0.5))
            .bind(portfolio)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    for _ in 0..300 {
        let (account, _, _) = accounts.choose(rng).unwrap();
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(*TYPES.choose(rng).unwrap())
        .bind(maybe(rng, &["inbound", "outbound", "outbound"], 6))
        .bind(maybe(rng, &OUTCOMES, 4))
        .bind(instant_around(rng, start, end))
        .bind(maybe(rng, &agents, 6))
        .execute(pool)
        .await
        .unwrap();
    }
    for _ in 0..80 {
        let (account, currency, _) = accounts.choose(rng).unwrap();
        let amount = match *currency {
            "JPY" => Decimal::from(rng.random_range(1..100_000)),
            _ => Decimal::new(rng.random_range(1..10_000_000), 2),
        };
        sqlx::query(
            "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at)
             VALUES ($1, $2, $3, $4, 'card', $5, $6)",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(amount)
        .bind(currency)
        .bind(*["completed", "completed", "pending", "failed", "refunded"].choose(rng).unwrap())
        .bind(instant_around(rng, start, end))
        .execute(pool)
        .await
        .unwrap();
    }
    for (account, _, _) in &accounts {
        for n in 0..rng.random_range(0..4) {
            let status = if n == 0 {
                *["open", "kept", "broken", "cancelled"].choose(rng).unwrap()
            } else {
                *["kept", "broken", "cancelled"].choose(rng).unwrap()
            };
            sqlx::query(
                "INSERT INTO promises (id, account_id, amount, due_date, status, created_by, created_at)
                 VALUES ($1, $2, 10, $3, $4, $5, $6)",
            )
            .bind(Uuid::new_v4())
            .bind(account)
            .bind(start.date_naive())
            .bind(status)
            .bind(maybe(rng, &agents, 6))
            .bind(instant_around(rng, start, end))
            .execute(pool)
            .await
            .unwrap();
        }
    }
    portfolios
}

fn rate(part: i64, whole: i64) -> Value {
    if whole > 0 {
        rounded(json!(part as f64 / whole as f64))
    } else {
        Value::Null
    }
}

/// The key of a row for `group_by`, in SQL written apart from the service's: `user` is
/// the user the row counts for, `account` its account, `day` the UTC day of its event
/// (whose snapshot gives the bucket and the portfolio).
fn key_sql(group_by: &str, user: &str, account: &str, day: &str) -> String {
    match group_by {
        "agent" => format!("{user}::text"),
        "team" => format!("(SELECT team FROM users WHERE id = {user})"),
        "portfolio" => portfolio_sql(account, day),
        _ => format!("(SELECT bucket FROM account_day_snapshots WHERE day = {day} AND account_id = {account})"),
    }
}

/// The portfolio an event counts for, as text: its account's in the snapshot of the
/// event's UTC day `day`, or the account's own when that snapshot lacks the account.
fn portfolio_sql(account: &str, day: &str) -> String {
    let snapshot = format!("FROM account_day_snapshots WHERE day = {day} AND account_id = {account}");
    format!(
        "(CASE WHEN EXISTS (SELECT 1 {snapshot}) THEN (SELECT portfolio_id::text {snapshot})
               ELSE (SELECT portfolio_id::text FROM accounts WHERE id = {account}) END)"
    )
}

/// The agent a payment's money counts for: the one its account was assigned to in the
/// snapshot of the payment's UTC day `day`, or the account's own when that snapshot lacks
/// the account.
fn agent_sql(account: &str, day: &str) -> String {
    let snapshot = format!("FROM account_day_snapshots WHERE day = {day} AND account_id = {account}");
    format!(
        "(CASE WHEN EXISTS (SELECT 1 {snapshot}) THEN (SELECT assigned_agent_id {snapshot})
               ELSE (SELECT assigned_agent_id FROM accounts WHERE id = {account}) END)"
    )
}

/// Every user: what a request without `agent` or `team` counts.
const EVERYONE: &str = "TRUE";

/// Every portfolio: what an admin reads.
const EVERY_PORTFOLIO: &str = "TRUE";

/// The UTC day of the instant in `column`.
fn utc_day(column: &str) -> String {
    format!("({column} AT TIME ZONE 'UTC')::date")
}

type Figures = BTreeMap<Option<String>, BTreeMap<&'static str, Value>>;

/// The definitions of docs/features/kpis.md, in plain SQL, for each group (key `Some`) and in total
/// (the `None` entry of the second map), counting the rows whose portfolio (text, `{p}`)
/// satisfies `admitted` and whose user (`{u}`, the one the row counts for) satisfies
/// `who`; grouped by agent or team, every agent (or team of one) that `who` admits is a
/// group, with nothing counted too.
async fn expected(
    pool: &PgPool,
    group_by: &str,
    from: NaiveDate,
    to: NaiveDate,
    closing: NaiveDate,
    admitted: &str,
    who: &str,
) -> (Figures, BTreeMap<&'static str, Value>) {
    let admits = |portfolio: &str, user: &str| format!("{} AND {}", admitted.replace("{p}", portfolio), who.replace("{u}", user));
    let (start, end) = (midnight(from), midnight(to + Duration::days(1)));
    let mut groups: Figures = BTreeMap::new();
    let mut total = zero();
    for by_group in [true, false] {
        let key = |user: &str, account: &str, day: &str| {
            if by_group {
                key_sql(group_by, user, account, day)
            } else {
                "NULL::text".to_owned()
            }
        };
        let work: Vec<(Option<String>, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} AS key, count(DISTINCT account_id),
                    count(*) FILTER (WHERE direction = 'outbound' AND type <> 'note'),
                    count(*) FILTER (WHERE direction = 'outbound' AND type <> 'note'
                                       AND outcome IN ('right_party', 'promise_to_pay', 'dispute', 'paid'))
             FROM activities a WHERE occurred_at >= $1 AND occurred_at < $2 AND {} GROUP BY 1",
            key("a.agent_id", "a.account_id", &utc_day("a.occurred_at")),
            admits(&portfolio_sql("a.account_id", &utc_day("a.occurred_at")), "a.agent_id")
        )))
        .bind(start)
        .bind(end)
        .bind(from)
        .fetch_all(pool)
        .await
        .unwrap();
        let channels: Vec<(Option<String>, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} AS key, type, count(*),
                    count(*) FILTER (WHERE outcome IN ('right_party', 'promise_to_pay', 'dispute', 'paid'))
             FROM activities a WHERE occurred_at >= $1 AND occurred_at < $2 AND direction = 'outbound' AND type <> 'note'
               AND {} GROUP BY 1, 2 ORDER BY 2",
            key("a.agent_id", "a.account_id", &utc_day("a.occurred_at")),
            admits(&portfolio_sql("a.account_id", &utc_day("a.occurred_at")), "a.agent_id")
        )))
        .bind(start)
        .bind(end)
        .bind(from)
        .fetch_all(pool)
        .await
        .unwrap();
        let promises: Vec<(Option<String>, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} AS key, count(*), count(*) FILTER (WHERE status = 'kept'), count(*) FILTER (WHERE status = 'broken')
             FROM promises p WHERE created_at >= $1 AND created_at < $2 AND {} GROUP BY 1",
            key("p.created_by", "p.account_id", &utc_day("p.created_at")),
            admits(&portfolio_sql("p.account_id", &utc_day("p.created_at")), "p.created_by")
        )))
        .bind(start)
        .bind(end)
        .bind(from)
        .fetch_all(pool)
        .await
        .unwrap();
        let collector = agent_sql("p.account_id", &utc_day("p.received_at"));
        let collected: Vec<(Option<String>, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} AS key, p.currency, round(sum(p.amount), CASE p.currency WHEN 'JPY' THEN 0 ELSE 2 END)::text
             FROM payments p WHERE status = 'completed' AND received_at >= $1 AND received_at < $2 AND {}
             GROUP BY 1, 2 ORDER BY 2",
            key(&collector, "p.account_id", &utc_day("p.received_at")),
            admits(&portfolio_sql("p.account_id", &utc_day("p.received_at")), &collector)
        )))
        .bind(start)
        .bind(end)
        .bind(from)
        .fetch_all(pool)
        .await
        .unwrap();
        let moves: Vec<(Option<String>, String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} AS key, o.bucket, c.bucket, count(*),
                    count(*) FILTER (WHERE o.bucket <> 'current' AND c.bucket = 'current' AND c.status <> 'closed')
             FROM account_day_snapshots o JOIN account_day_snapshots c ON c.account_id = o.account_id AND c.day = $4
             WHERE o.day = $3 AND {} GROUP BY 1, 2, 3",
            match (by_group, group_by) {
                (true, "bucket") => "o.bucket".to_owned(),
                (true, "portfolio") => "o.portfolio_id::text".to_owned(),
                _ => key("o.assigned_agent_id", "o.account_id", "$3"),
            },
            admits("o.portfolio_id::text", "o.assigned_agent_id")
        )))
        .bind(start)
        .bind(end)
        .bind(from)
        .bind(closing)
        .fetch_all(pool)
        .await
        .unwrap();
        for (key, worked, attempts, rpc) in work {
            let f = slot(&mut groups, &mut total, by_group, key);
            f.insert("accounts_worked", json!(worked));
            f.insert("contact_attempts", json!(attempts));
            f.insert("right_party_contacts", json!(rpc));
            f.insert("right_party_contact_rate", rate(rpc, attempts));
        }
        for (key, channel, attempts, rpc) in channels {
            let f = slot(&mut groups, &mut total, by_group, key);
            f.get_mut("channels").unwrap().as_array_mut().unwrap().push(json!({
                "channel": channel,
                "contact_attempts": attempts,
                "right_party_contacts": rpc,
                "right_party_contact_rate": rounded(rate(rpc, attempts)),
            }));
        }
        for (key, made, kept, broken) in promises {
            let f = slot(&mut groups, &mut total, by_group, key);
            f.insert("promises_made", json!(made));
            f.insert("promises_kept", json!(kept));
            f.insert("promises_broken", json!(broken));
            f.insert("promise_kept_rate", rate(kept, kept + broken));
        }
        for (key, currency, amount) in collected {
            let f = slot(&mut groups, &mut total, by_group, key);
            f.get_mut("collected")
                .unwrap()
                .as_array_mut()
                .unwrap()
                .push(json!({"currency": currency, "amount": amount}));
        }
        let mut by_key: BTreeMap<Option<String>, Vec<Move>> = BTreeMap::new();
        for (key, opening, closing, accounts, cured) in moves {
            by_key.entry(key).or_default().push((opening, closing, accounts, cured));
        }
        for (key, rows) in by_key {
            let opening_count = |bucket: &str| rows.iter().filter(|r| r.0 == bucket).map(|r| r.2).sum::<i64>();
            let delinquent: i64 = rows.iter().filter(|r| r.0 != "current").map(|r| r.2).sum();
            let cured: i64 = rows.iter().map(|r| r.3).sum();
            let rolls = roll_set(
                rows.iter()
                    .map(|r| json!({"from_bucket": r.0, "to_bucket": r.1, "accounts": r.2, "rate": rate(r.2, opening_count(&r.0))})),
            );
            let f = slot(&mut groups, &mut total, by_group, key);
            f.insert("delinquent_at_opening", json!(delinquent));
            f.insert("cured", json!(cured));
            f.insert("cure_rate", rate(cured, delinquent));
            f.insert("roll_rates", rolls);
        }
    }
    if matches!(group_by, "agent" | "team") {
        let listed: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT {} FROM users u WHERE role = 'agent' AND NOT disabled AND deleted_at IS NULL AND {}",
            if group_by == "agent" { "u.id::text" } else { "u.team" },
            who.replace("{u}", "u.id")
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        for key in listed.into_iter().flatten() {
            groups.entry(Some(key)).or_insert_with(zero);
        }
    }
    (groups, total)
}

/// The figures of group `key`, or of all when `by_group` is false.
fn slot<'a>(
    groups: &'a mut Figures,
    total: &'a mut BTreeMap<&'static str, Value>,
    by_group: bool,
    key: Option<String>,
) -> &'a mut BTreeMap<&'static str, Value> {
    if by_group { groups.entry(key).or_insert_with(zero) } else { total }
}

/// A rate rounded to 9 decimals, so that a last-digit difference in reading a float
/// back from JSON does not count.
fn rounded(value: Value) -> Value {
    match value.as_f64() {
        Some(x) if value.is_f64() => json!((x * 1e9).round() / 1e9),
        _ => value,
    }
}

/// Roll rates as a set of their JSON texts, rates rounded.
fn roll_set(rolls: impl Iterator<Item = Value>) -> Value {
    let texts: BTreeSet<String> = rolls
        .map(|mut roll| {
            roll["rate"] = rounded(roll["rate"].take());
            roll.to_string()
        })
        .collect();
    json!(texts)
}

fn zero() -> BTreeMap<&'static str, Value> {
    let mut f = BTreeMap::new();
    for name in [
        "accounts_worked",
        "contact_attempts",
        "right_party_contacts",
        "promises_made",
        "promises_kept",
        "promises_broken",
        "delinquent_at_opening",
        "cured",
    ] {
        f.insert(name, json!(0));
    }
    for name in ["right_party_contact_rate", "promise_kept_rate", "cure_rate"] {
        f.insert(name, Value::Null);
    }
    f.insert("collected", json!([]));
    f.insert("channels", json!([]));
    f.insert("roll_rates", json!(BTreeSet::<String>::new()));
    f
}

/// The figures of an answer's group, the roll rates as a set.
fn figures(answer: &Value) -> BTreeMap<&'static str, Value> {
    let mut f = zero();
    for name in f.clone().keys() {
        let value = answer[*name].clone();
        let value = if *name == "roll_rates" {
            roll_set(value.as_array().unwrap().iter().cloned())
        } else if *name == "channels" {
            let mut channels = value;
            for channel in channels.as_array_mut().unwrap() {
                channel["right_party_contact_rate"] = rounded(channel["right_party_contact_rate"].take());
            }
            channels
        } else {
            rounded(value)
        };
        f.insert(name, value);
    }
    f
}

/// Asks for every grouping of three periods around `from..=to` and compares each answer
/// with the plain SQL, every portfolio counted (the caller of `token` an admin); `when`
/// says what the database held.
async fn every_answer_is_its_definition(app: &TestApp, token: &str, from: NaiveDate, to: NaiveDate, when: &str) {
    every_answer_counts(app, token, "", EVERY_PORTFOLIO, from, to, when).await;
}

/// [`every_answer_is_its_definition`] for the caller of `token` asking with `query` (say
/// `&portfolio=...`), whose answers count the rows `admitted` admits (see [`expected`]).
async fn every_answer_counts(app: &TestApp, token: &str, query: &str, admitted: &str, from: NaiveDate, to: NaiveDate, when: &str) {
    every_answer_counts_for(app, token, query, (admitted, EVERYONE), from, to, when).await;
}

/// [`every_answer_counts`] of the users `who` admits (`agent=` or `team=` in `query`).
async fn every_answer_counts_for(
    app: &TestApp,
    token: &str,
    query: &str,
    (admitted, who): (&str, &str),
    from: NaiveDate,
    to: NaiveDate,
    when: &str,
) {
    let today = app.clock.now().date_naive();
    for (from, to, closing) in [
        (from, to, to + Duration::days(1)),
        (to, today, today),
        (from + Duration::days(1), to, to + Duration::days(1)),
    ] {
        for group_by in ["agent", "team", "bucket", "portfolio"] {
            let path = format!("/api/v1/kpis?from={from}&to={to}&group_by={group_by}{query}");
            let (status, body) = status_json(app.get(&path, token).await).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body["opening_day"], json!(from), "{path}");
            assert_eq!(body["closing_day"], json!(closing), "{path}");
            let (groups, total) = expected(&app.pool, group_by, from, to, closing, admitted, who).await;
            let got: Figures = body["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| (g["key"].as_str().map(str::to_owned), figures(g)))
                .collect();
            assert_eq!(got, groups, "{path} {when}");
            assert_eq!(figures(&body["total"]), total, "{path} {when}");
            assert!(
                admitted != EVERY_PORTFOLIO || who != EVERYONE || total["contact_attempts"].as_i64().unwrap() > 0,
                "the seed gives {path} something to count"
            );
            for group in body["groups"].as_array().unwrap() {
                let table = match group_by {
                    "portfolio" => "portfolios",
                    "agent" => "users",
                    _ => "",
                };
                let name: Option<String> = match group["key"].as_str() {
                    Some(id) if !table.is_empty() => {
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT name FROM {table} WHERE id::text = $1")))
                            .bind(id)
                            .fetch_one(&app.pool)
                            .await
                            .unwrap()
                    }
                    _ => None,
                };
                assert_eq!(
                    group["name"],
                    json!(name),
                    "{path}: an agent's or a portfolio's group is labelled with its name"
                );
            }
        }
    }
}

/// Keeps every day the scheduler would keep at the app's clock; returns how many.
async fn keep_days(app: &TestApp) -> usize {
    let days = arrears::store::kpis::days_to_keep(&app.pool, app.clock.now().date_naive())
        .await
        .unwrap();
    for day in &days {
        arrears::store::kpis::keep_day(&app.pool, *day).await.unwrap();
    }
    days.len()
}

/// Holds the app's clock at the wall clock's now, so that the test's "today" and the
/// app's are one day even when the test runs across midnight: the seeds write events
/// relative to now and SQL stamps rows with its own now, so the instant is not a fixed
/// date. Returns it.
fn hold_clock(app: &TestApp) -> DateTime<Utc> {
    let now = Utc::now();
    app.clock.set(now);
    now
}

#[tokio::test]
async fn every_figure_equals_its_definition_in_sql_for_every_grouping_computed_kept_and_dropped() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let mut rng = StdRng::seed_from_u64(24);
    let today = hold_clock(&app).date_naive();
    let (from, to) = (today - Duration::days(20), today - Duration::days(6));
    let days: Vec<NaiveDate> = (from - Duration::days(3)).iter_days().take_while(|d| *d <= today).collect();
    // Today's snapshot is taken before the seed writes its own.
    scheduler_took_today(&app).await;
    seed(&app.pool, &mut rng, &days, midnight(from), midnight(to + Duration::days(1))).await;
    every_answer_is_its_definition(&app, &admin.token, from, to, "with no day kept").await;

    assert!(keep_days(&app).await >= 20, "every day with an event before today is kept");
    assert_eq!(keep_days(&app).await, 0, "a kept day is kept once");
    every_answer_is_its_definition(&app, &admin.token, from, to, "with the days kept").await;

    // Late writes to kept days drop them: a backdated call, a refund, a broken promise,
    // a snapshot row removed by hand.
    let account: Uuid = sqlx::query_scalar("SELECT id FROM accounts ORDER BY account_number LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let late = midnight(from + Duration::days(2)) + Duration::hours(13);
    sqlx::query(
        "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
         VALUES ($1, $2, 'call', 'outbound', 'right_party', $3, (SELECT id FROM users WHERE team = 'south' LIMIT 1))",
    )
    .bind(Uuid::new_v4())
    .bind(account)
    .bind(late)
    .execute(&app.pool)
    .await
    .unwrap();
    for sql in [
        "UPDATE payments SET status = 'refunded' WHERE id = (SELECT id FROM payments WHERE status = 'completed'
             AND received_at >= $1 AND received_at < $2 ORDER BY id LIMIT 1)",
        "UPDATE promises SET status = 'broken' WHERE id = (SELECT id FROM promises WHERE status = 'kept'
             AND created_at >= $1 AND created_at < $2 ORDER BY id LIMIT 1)",
        "DELETE FROM account_day_snapshots WHERE (day, account_id) = (SELECT day, account_id FROM account_day_snapshots
             WHERE day = ($1 AT TIME ZONE 'UTC')::date + 3 ORDER BY account_id LIMIT 1)",
    ] {
        let changed = sqlx::query(sql)
            .bind(midnight(from))
            .bind(midnight(to))
            .execute(&app.pool)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(changed, 1, "{sql}");
    }
    every_answer_is_its_definition(&app, &admin.token, from, to, "after late writes").await;
    assert!(keep_days(&app).await >= 1, "the dropped days are kept again");
    every_answer_is_its_definition(&app, &admin.token, from, to, "with the dropped days kept again").await;
}

/// Keeps every month the scheduler would keep at the app's clock; returns those kept.
async fn keep_months(app: &TestApp) -> Vec<NaiveDate> {
    let months = arrears::store::kpis::months_to_keep(&app.pool, app.clock.now().date_naive())
        .await
        .unwrap();
    let mut kept = Vec::new();
    for month in months {
        if arrears::store::kpis::keep_month(&app.pool, month).await.unwrap() {
            kept.push(month);
        }
    }
    kept
}

async fn kept_months(app: &TestApp) -> Vec<NaiveDate> {
    sqlx::query_scalar("SELECT month FROM kpi_months ORDER BY month")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// The ordinals of a month's accounts worked as its kept rows hold them, and as the
/// rows of its kept days hold them.
async fn month_ordinals(app: &TestApp, month: NaiveDate) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(length(accounts) / 4), 0) FROM kpi_month_work WHERE month = $1)::bigint,
                (SELECT coalesce(sum(length(accounts) / 4), 0) FROM kpi_day_work
                 WHERE day >= $1 AND day < ($1 + interval '1 month')::date)::bigint",
    )
    .bind(month)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_month_whose_days_are_kept_is_kept_once_and_its_held_rows_and_a_held_days_give_way_to_a_late_write() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let mut rng = StdRng::seed_from_u64(26);
    let today = hold_clock(&app).date_naive();
    // The month before last, whole, and a few days either side of it.
    let month = today.with_day(1).unwrap() - Months::new(2);
    let last_month = month + Months::new(1);
    let (from, to) = (month - Duration::days(2), last_month + Duration::days(1));
    let days: Vec<NaiveDate> = (from - Duration::days(3)).iter_days().take_while(|d| *d <= today).collect();
    scheduler_took_today(&app).await;
    let [alpha, _] = seed(&app.pool, &mut rng, &days, midnight(from), midnight(to + Duration::days(1))).await;
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{alpha}/grants"),
        &json!({"user_id": manager.id}),
    )
    .await;
    let within = format!("({{p}} IS NULL OR {{p}} = '{alpha}')");
    assert_eq!(keep_months(&app).await, Vec::<NaiveDate>::new(), "no month is kept before its days");
    keep_days(&app).await;
    // The month the events begin in has days before them, which are not kept.
    assert_eq!(keep_months(&app).await, [month, last_month], "the months whose every day is kept");
    assert_eq!(keep_months(&app).await, Vec::<NaiveDate>::new(), "a kept month is kept once");
    let (in_month, in_days) = month_ordinals(&app, month).await;
    assert!(
        in_month > 0 && in_month < in_days,
        "an account worked on several days of a month is held once: {in_month} of {in_days}"
    );
    // The server holds a kept month's rows, every portfolio's, once read: the admin's
    // request reads them, the manager's is answered from them, its portfolio's only.
    every_answer_is_its_definition(&app, &admin.token, from, to, "with the month kept").await;
    every_answer_counts(&app, &manager.token, "", &within, from, to, "with the month kept").await;

    // A late write to one of its days drops the day and the month; the scheduler keeps
    // both again.
    let account: Uuid = sqlx::query_scalar("SELECT id FROM accounts ORDER BY account_number LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let late_call = |day: NaiveDate| {
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
             VALUES ($1, $2, 'call', 'outbound', 'right_party', $3, (SELECT id FROM users WHERE team = 'north' LIMIT 1))",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(midnight(day) + Duration::hours(9))
    };
    late_call(month + Duration::days(10)).execute(&app.pool).await.unwrap();
    assert_eq!(kept_months(&app).await, [last_month]);
    every_answer_is_its_definition(&app, &admin.token, from, to, "after a late write to the month").await;
    app.run_schedulers().await;
    assert_eq!(kept_months(&app).await, [month, last_month]);
    // Kept again, the month is read again, not answered from the rows held before.
    every_answer_is_its_definition(&app, &admin.token, from, to, "with the month kept again").await;
    every_answer_counts(&app, &manager.token, "", &within, from, to, "with the month kept again").await;

    // The days kept whole outside the months are held too, and the same way: the first
    // day of the period, held since the first request, is dropped by a late write, and
    // once kept again it is read again.
    late_call(from).execute(&app.pool).await.unwrap();
    every_answer_is_its_definition(&app, &admin.token, from, to, "after a late write to a held day").await;
    app.run_schedulers().await;
    every_answer_is_its_definition(&app, &admin.token, from, to, "with the held day kept again").await;
    every_answer_counts(&app, &manager.token, "", &within, from, to, "with the held day kept again").await;
}

#[tokio::test]
async fn today_kept_up_to_an_instant_counts_each_event_once_and_a_backdated_write_drops_it() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let mut rng = StdRng::seed_from_u64(25);
    let now = hold_clock(&app);
    let today = now.date_naive();
    let (from, to) = (today - Duration::days(4), today - Duration::days(2));
    let days: Vec<NaiveDate> = (from - Duration::days(3)).iter_days().take_while(|d| *d <= today).collect();
    scheduler_took_today(&app).await;
    // Events from a week ago up to now, today's among them.
    seed(&app.pool, &mut rng, &days, midnight(from), now - Duration::days(2)).await;
    let account: Uuid = sqlx::query_scalar("SELECT id FROM accounts ORDER BY account_number LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let payment = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at)
         SELECT $1, id, 12, currency, 'card', 'completed', $2 FROM accounts WHERE id = $3",
    )
    .bind(payment)
    .bind(midnight(today) + Duration::seconds(2))
    .bind(account)
    .execute(&app.pool)
    .await
    .unwrap();
    every_answer_is_its_definition(&app, &admin.token, from, to, "with nothing kept").await;

    keep_days(&app).await;
    let kept_at = now;
    assert!(arrears::store::kpis::keep_today(&app.pool, kept_at).await.unwrap());
    every_answer_is_its_definition(&app, &admin.token, from, to, "with today kept up to an instant").await;

    // A write after the kept part is computed; one before it drops the part.
    let call = |at: DateTime<Utc>| {
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
             VALUES ($1, $2, 'call', 'outbound', 'right_party', $3, (SELECT id FROM users WHERE team = 'north' LIMIT 1))",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(at)
    };
    call(kept_at + Duration::milliseconds(1)).execute(&app.pool).await.unwrap();
    every_answer_is_its_definition(&app, &admin.token, from, to, "after a write past the kept part").await;
    // The part grows by the events since it ended: that write, counted once.
    assert!(
        !arrears::store::kpis::keep_today(&app.pool, kept_at + Duration::seconds(1))
            .await
            .unwrap()
    );
    assert!(
        arrears::store::kpis::keep_today(&app.pool, kept_at + Duration::minutes(2))
            .await
            .unwrap()
    );
    every_answer_is_its_definition(&app, &admin.token, from, to, "with today's kept part grown").await;
    call(midnight(today) + Duration::seconds(1)).execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE payments SET status = 'refunded' WHERE id = $1")
        .bind(payment)
        .execute(&app.pool)
        .await
        .unwrap();
    every_answer_is_its_definition(&app, &admin.token, from, to, "after backdated writes").await;
    assert!(
        arrears::store::kpis::keep_today(&app.pool, kept_at + Duration::minutes(4))
            .await
            .unwrap()
    );
    every_answer_is_its_definition(&app, &admin.token, from, to, "with today kept again").await;
}

#[tokio::test]
async fn a_manager_reads_only_the_figures_of_their_portfolios_and_the_filter_narrows_to_one() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let mut rng = StdRng::seed_from_u64(26);
    let today = hold_clock(&app).date_naive();
    let (from, to) = (today - Duration::days(12), today - Duration::days(3));
    let days: Vec<NaiveDate> = (from - Duration::days(3)).iter_days().take_while(|d| *d <= today).collect();
    scheduler_took_today(&app).await;
    let [alpha, beta] = seed(&app.pool, &mut rng, &days, midnight(from), midnight(to + Duration::days(1))).await;
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{alpha}/grants"),
        &json!({"user_id": manager.id}),
    )
    .await;
    let (_, beta_total) = expected(
        &app.pool,
        "agent",
        from,
        to,
        to + Duration::days(1),
        &format!("{{p}} = '{beta}'"),
        EVERYONE,
    )
    .await;
    assert_ne!(
        beta_total["collected"],
        json!([]),
        "the seed collects in beta, which the manager must not see"
    );

    let within = format!("({{p}} IS NULL OR {{p}} = '{alpha}')");
    let (only_alpha, only_beta) = (format!("{{p}} = '{alpha}'"), format!("{{p}} = '{beta}'"));
    for when in ["with no day kept", "with the days kept"] {
        if when == "with the days kept" {
            assert!(keep_days(&app).await >= 10, "every day with an event before today is kept");
        }
        every_answer_counts(&app, &manager.token, "", &within, from, to, when).await;
        every_answer_counts(&app, &manager.token, &format!("&portfolio={alpha}"), &only_alpha, from, to, when).await;
        every_answer_counts(&app, &manager.token, "&portfolio=none", "{p} IS NULL", from, to, when).await;
        every_answer_counts(&app, &admin.token, &format!("&portfolio={beta}"), &only_beta, from, to, when).await;
        every_answer_is_its_definition(&app, &admin.token, from, to, when).await;
    }

    let path = format!("/api/v1/kpis?from={from}&to={to}&group_by=portfolio");
    let (_, mine) = status_json(app.get(&path, &manager.token).await).await;
    let keys: Vec<&Value> = mine["groups"].as_array().unwrap().iter().map(|g| &g["key"]).collect();
    assert_eq!(
        keys,
        [&json!(alpha), &Value::Null],
        "the manager's portfolio and the accounts in none"
    );
    assert_eq!(mine["groups"][0]["name"], "KPI Alpha");
    assert_eq!(mine["portfolio"], Value::Null);
    let (_, everyone) = status_json(app.get(&path, &admin.token).await).await;
    assert_eq!(
        everyone["groups"].as_array().unwrap().len(),
        3,
        "an admin sees both portfolios and none"
    );
    let (_, filtered) = status_json(app.get(&format!("{path}&portfolio={beta}"), &admin.token).await).await;
    assert_eq!(filtered["portfolio"], json!(beta));

    for (token, portfolio) in [
        (&manager.token, beta.to_string()),
        (&manager.token, Uuid::new_v4().to_string()),
        (&admin.token, Uuid::new_v4().to_string()),
        (&admin.token, "alpha".to_owned()),
        (&admin.token, String::new()),
    ] {
        app.assert_refused_parameter(token, &format!("/api/v1/kpis?portfolio={portfolio}"), "portfolio")
            .await;
    }
}

#[tokio::test]
async fn a_day_kept_while_late_writes_land_is_never_kept_without_them() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let account = Uuid::parse_str(account["id"].as_str().unwrap()).unwrap();
    let day = Utc::now().date_naive() - Duration::days(3);
    let kept_attempts = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT sum(contact_attempts)::bigint FROM kpi_day_work w JOIN kpi_days k USING (day) WHERE day = $1",
        )
        .bind(day)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let write_at = |n: i64| {
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at)
             VALUES ($1, $2, 'call', 'outbound', 'no_answer', $3)",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(midnight(day) + Duration::minutes(n))
    };
    // The race, made to happen: a write to the day is under way (inserted, not yet
    // committed) when the day is kept. The keep is seen waiting for it in pg_locks, and
    // what it keeps once the write commits holds the write.
    let mut under_way = app.pool.begin().await.unwrap();
    write_at(0).execute(&mut *under_way).await.unwrap();
    let keeping = tokio::spawn({
        let pool = app.pool.clone();
        async move { arrears::store::kpis::keep_day(&pool, day).await }
    });
    eventually("the keep waits for the write under way", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'kpi_days' AND NOT l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    under_way.commit().await.unwrap();
    assert!(keeping.await.unwrap().unwrap(), "the keep ran once the write committed");
    assert_eq!(kept_attempts().await, Some(1), "what it kept holds the write it waited for");
    // Then writes and keeps interleaved as they come, each commit a moment after its insert.
    for n in 1..=40_i64 {
        let write = async {
            let mut tx = app.pool.begin().await.unwrap();
            write_at(n).execute(&mut *tx).await.unwrap();
            // The commit comes a moment after the insert, as a busy one would.
            tokio::time::sleep(std::time::Duration::from_millis(n as u64 % 5)).await;
            tx.commit().await.unwrap();
        };
        let (_, kept) = tokio::join!(write, arrears::store::kpis::keep_day(&app.pool, day));
        kept.unwrap();
        // Either the day is dropped (then kept again below) or it holds every write.
        if let Some(attempts) = kept_attempts().await {
            assert_eq!(attempts, n + 1, "the day kept at write {n} holds every committed write");
        }
        arrears::store::kpis::keep_day(&app.pool, day).await.unwrap();
        assert_eq!(kept_attempts().await, Some(n + 1), "kept after write {n}");
    }
}

#[tokio::test]
async fn a_month_kept_while_late_writes_land_is_never_kept_without_them_and_holds_up_no_other_write() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let account = app.account(&manager.token, json!({})).await;
        accounts.push(Uuid::parse_str(account["id"].as_str().unwrap()).unwrap());
    }
    // The late writes are calls on the first account; the write to today is on the other,
    // so that it waits for nothing of theirs.
    let (account, other) = (accounts[0], accounts[1]);
    let month = Utc::now().date_naive().with_day(1).unwrap() - Months::new(2);
    let days: Vec<NaiveDate> = month.iter_days().take_while(|d| *d < month + Months::new(1)).collect();
    let kept_attempts = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT sum(contact_attempts)::bigint FROM kpi_month_work w JOIN kpi_months m USING (month) WHERE month = $1",
        )
        .bind(month)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let call = |account: Uuid, at: DateTime<Utc>| {
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at)
             VALUES ($1, $2, 'call', 'outbound', 'no_answer', $3)",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(at)
    };
    let write_at = |at: DateTime<Utc>| call(account, at);
    let keep_all = || async {
        for day in &days {
            arrears::store::kpis::keep_day(&app.pool, *day).await.unwrap();
        }
        arrears::store::kpis::keep_month(&app.pool, month).await.unwrap()
    };
    write_at(midnight(month) + Duration::hours(1)).execute(&app.pool).await.unwrap();
    assert!(keep_all().await);
    assert_eq!(kept_attempts().await, Some(1));

    // The race, made to happen: a late write to a day of the month is under way (it has
    // dropped the day and the month, not yet committed) when the month is kept again.
    // The keep waits for it; meanwhile a write to today goes on; once the late write
    // commits, the day is gone and the month is not kept without it.
    let mut under_way = app.pool.begin().await.unwrap();
    write_at(midnight(month + Duration::days(9)) + Duration::hours(2))
        .execute(&mut *under_way)
        .await
        .unwrap();
    let keeping = tokio::spawn({
        let pool = app.pool.clone();
        async move { arrears::store::kpis::keep_month(&pool, month).await }
    });
    eventually("the keep waits for the write under way", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    tokio::time::timeout(std::time::Duration::from_secs(10), call(other, Utc::now()).execute(&app.pool))
        .await
        .expect("a write to today is not held up by a month's keeping")
        .unwrap();
    under_way.commit().await.unwrap();
    assert!(!keeping.await.unwrap().unwrap(), "the month is not kept without its dropped day");
    assert_eq!(kept_attempts().await, None);
    assert!(keep_all().await);
    assert_eq!(kept_attempts().await, Some(2), "kept again, with the late write");

    // Then late writes and keeps interleaved as they come, each commit a moment after
    // its insert.
    for n in 1..=20_i64 {
        let write = async {
            let mut tx = app.pool.begin().await.unwrap();
            write_at(midnight(days[n as usize % days.len()]) + Duration::minutes(n))
                .execute(&mut *tx)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(n as u64 % 5)).await;
            tx.commit().await.unwrap();
        };
        let (_, kept) = tokio::join!(write, arrears::store::kpis::keep_month(&app.pool, month));
        kept.unwrap();
        // Either the month is dropped (then kept again below) or it holds every write.
        if let Some(attempts) = kept_attempts().await {
            assert_eq!(attempts, n + 2, "the month kept at write {n} holds every committed write");
        }
        assert!(keep_all().await || kept_attempts().await.is_some());
        assert_eq!(kept_attempts().await, Some(n + 2), "kept after write {n}");
    }
}

#[tokio::test]
async fn only_managers_and_admins_read_kpis() {
    let app = spawn_app().await;
    // The last second of 2026-03-07 in UTC: the period ends on the clock's day.
    app.clock
        .set(DateTime::parse_from_rfc3339("2026-03-07T23:59:59Z").unwrap().with_timezone(&Utc));
    for role in [Role::Agent, Role::Viewer] {
        let user = app.user(role).await;
        assert_problem(app.get("/api/v1/kpis", &user.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let response = app.request(reqwest::Method::GET, "/api/v1/kpis", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for role in [Role::Manager, Role::Admin] {
        let user = app.user(role).await;
        let (status, body) = status_json(app.get("/api/v1/kpis?group_by=team", &user.token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["group_by"], "team");
        assert_eq!(body["to"], "2026-03-07");
    }
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    app.clock
        .set(DateTime::parse_from_rfc3339("2026-11-01T23:59:59Z").unwrap().with_timezone(&Utc));
    let today: NaiveDate = "2026-11-01".parse().unwrap();
    let tomorrow = today + Duration::days(1);
    for (query, field) in [
        ("from=2026-02-30".to_owned(), "from"),
        ("to=yesterday".to_owned(), "to"),
        (format!("from={today}&to={}", today - Duration::days(1)), "from"),
        (format!("from={}&to={today}", today - Duration::days(366)), "from"),
        (format!("to={tomorrow}"), "to"),
        ("group_by=region".to_owned(), "group_by"),
        ("colour=red".to_owned(), "colour"),
    ] {
        app.assert_refused_parameter(&manager.token, &format!("/api/v1/kpis?{query}"), field)
            .await;
    }
    let (status, _) = status_json(
        app.get(
            &format!("/api/v1/kpis?from={}&to={today}", today - Duration::days(365)),
            &manager.token,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "366 days are allowed");
}

#[tokio::test]
async fn admins_put_users_in_teams() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let body = json!({"email": "kpi-team@example.com", "name": "Teamed", "role": "agent",
                      "password": crate::helpers::PASSWORD, "team": " north "});
    let created = app.create(&admin.token, "/api/v1/users", &body).await;
    assert_eq!(created["team"], "north");
    let path = format!("/api/v1/users/{}", created["id"].as_str().unwrap());
    let (status, changed) = status_json(app.patch(&path, &admin.token, &json!({"team": "south"})).await).await;
    assert_eq!((status, &changed["team"]), (StatusCode::OK, &json!("south")));
    let (_, kept) = status_json(app.patch(&path, &admin.token, &json!({"disabled": false})).await).await;
    assert_eq!(kept["team"], "south", "a change without team keeps it");
    let (_, cleared) = status_json(app.patch(&path, &admin.token, &json!({"team": null})).await).await;
    assert_eq!(cleared["team"], Value::Null);
    let problem = assert_problem(
        app.patch(&path, &admin.token, &json!({"team": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["team"]);
    let long = json!({"email": "kpi-long@example.com", "name": "Long", "role": "agent",
                      "password": crate::helpers::PASSWORD, "team": "x".repeat(101)});
    let problem = assert_problem(
        app.post("/api/v1/users", Some(&admin.token), &long).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["team"]);
    let manager = app.user(Role::Manager).await;
    assert_problem(
        app.patch(&path, &manager.token, &json!({"team": "east"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn snapshot_of(pool: &PgPool, day: NaiveDate, account: Uuid) -> Option<(String, Option<Uuid>, String)> {
    sqlx::query_as("SELECT bucket, assigned_agent_id, status FROM account_day_snapshots WHERE day = $1 AND account_id = $2")
        .bind(day)
        .bind(account)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_snapshot_takes_each_day_once_and_its_moves_are_kept_once_even_from_two_runs_at_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let day: NaiveDate = "2026-03-01".parse().unwrap();
    let mut accounts = Vec::new();
    for (due, status) in [
        (Some(day - Duration::days(45)), "delinquent"),
        (Some(day), "active"),
        (None, "active"),
        (Some(day - Duration::days(400)), "paid"),
        (Some(day - Duration::days(120)), "delinquent"),
    ] {
        let account = app.account(&manager.token, json!({"due_date": due, "status": status})).await;
        accounts.push(Uuid::parse_str(account["id"].as_str().unwrap()).unwrap());
    }
    let deleted = app.account(&manager.token, json!({})).await;
    let deleted_id = deleted["id"].as_str().unwrap();
    let response = app.delete(&format!("/api/v1/accounts/{deleted_id}"), &manager.token).await;
    assert!(response.status().is_success(), "{}", response.status());
    let (first, second) = tokio::join!(
        arrears::store::kpis::take_snapshot(&app.pool, day),
        arrears::store::kpis::take_snapshot(&app.pool, day)
    );
    let mut runs = [first.unwrap(), second.unwrap()];
    runs.sort();
    assert_eq!(
        runs,
        [None, Some(accounts.len() as u64)],
        "one run takes the day, the other skips it"
    );
    assert_eq!(arrears::store::kpis::take_snapshot(&app.pool, day).await.unwrap(), None);
    let buckets: Vec<String> = buckets_of(&app.pool, day, &accounts).await;
    assert_eq!(buckets, ["30-59", "current", "current", "current", "120+"]);
    let deleted_id = Uuid::parse_str(deleted_id).unwrap();
    assert_eq!(snapshot_of(&app.pool, day, deleted_id).await, None, "deleted accounts are left out");
    let ordinals_off: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_day_snapshots s JOIN accounts a ON a.id = s.account_id
         WHERE s.day = $1 AND s.ordinal IS DISTINCT FROM a.ordinal",
    )
    .bind(day)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ordinals_off, 0, "each row carries its account's ordinal");

    // The moves between two complete snapshots are kept once, however many ask at once;
    // none are kept while a day's snapshot is missing.
    let keep = || arrears::store::kpis::keep_moves(&app.pool, day, day);
    let (first, second) = tokio::join!(keep(), keep());
    assert_eq!((first.unwrap(), second.unwrap()), (true, true));
    let kept: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM kpi_move_pairs WHERE opening = $1), sum(accounts)::bigint FROM kpi_moves WHERE opening = $1",
    )
    .bind(day)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, (1, accounts.len() as i64));
    // A snapshot row removed by hand drops the kept moves of its day.
    sqlx::query("DELETE FROM account_day_snapshots WHERE day = $1 AND account_id = $2")
        .bind(day)
        .bind(accounts[0])
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(keep().await.unwrap());
    let kept: i64 = sqlx::query_scalar("SELECT sum(accounts)::bigint FROM kpi_moves WHERE opening = $1")
        .bind(day)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, accounts.len() as i64 - 1, "the moves are computed again");
    let next = day + Duration::days(1);
    assert!(!arrears::store::kpis::keep_moves(&app.pool, day, next).await.unwrap());
    let pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM kpi_move_pairs WHERE closing = $1")
        .bind(next)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pairs, 0);
    scheduler_took_today(&app).await;
}

/// Runs the schedulers once, as an API process does when it starts: the clock's day's
/// snapshot is taken.
async fn scheduler_took_today(app: &TestApp) {
    app.run_schedulers().await;
    let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM account_snapshot_days WHERE day = $1)")
        .bind(app.clock.now().date_naive())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(taken, "a scheduler pass takes the clock's day's snapshot");
}

async fn buckets_of(pool: &PgPool, day: NaiveDate, accounts: &[Uuid]) -> Vec<String> {
    let mut buckets = Vec::new();
    for account in accounts {
        buckets.push(snapshot_of(pool, day, *account).await.expect("a snapshot").0);
    }
    buckets
}

#[tokio::test]
async fn the_agent_and_team_filters_count_only_their_users_and_every_agent_is_listed() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let mut rng = StdRng::seed_from_u64(27);
    let today = hold_clock(&app).date_naive();
    let (from, to) = (today - Duration::days(10), today - Duration::days(2));
    let days: Vec<NaiveDate> = (from - Duration::days(3)).iter_days().take_while(|d| *d <= today).collect();
    scheduler_took_today(&app).await;
    seed(&app.pool, &mut rng, &days, midnight(from), midnight(to + Duration::days(1))).await;
    let idle = app.user(Role::Agent).await;
    let south: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE team = 'south'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for when in ["with no day kept", "with the days kept"] {
        if when == "with the days kept" {
            keep_days(&app).await;
        }
        let north = ("TRUE", "{u} IN (SELECT id FROM users WHERE team = 'north')");
        every_answer_counts_for(&app, &admin.token, "&team=north", north, from, to, when).await;
        let one = format!("{{u}} = '{south}'");
        every_answer_counts_for(&app, &admin.token, &format!("&agent={south}"), ("TRUE", &one), from, to, when).await;
        let both = format!("&agent={south}&team=north");
        every_answer_counts_for(&app, &admin.token, &both, ("TRUE", "FALSE"), from, to, when).await;
    }
    let (_, report) = status_json(app.get("/api/v1/kpis", &admin.token).await).await;
    let idle_group = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == json!(idle.id))
        .expect("an agent with nothing done is listed");
    assert_eq!(
        (idle_group["contact_attempts"].clone(), idle_group["collected"].clone()),
        (json!(0), json!([]))
    );
    let (_, filtered) = status_json(app.get(&format!("/api/v1/kpis?team=north&agent={south}"), &admin.token).await).await;
    assert_eq!(
        (filtered["team"].clone(), filtered["agent"].clone()),
        (json!("north"), json!(south))
    );
    assert_eq!(filtered["groups"], json!([]), "the south agent is not in north");

    for (query, field) in [
        ("agent=someone".to_owned(), "agent"),
        (format!("agent={}", Uuid::new_v4()), "agent"),
        ("team=".to_owned(), "team"),
        ("team=nowhere".to_owned(), "team"),
        (format!("team={}", "n".repeat(101)), "team"),
    ] {
        app.assert_refused_parameter(&admin.token, &format!("/api/v1/kpis?{query}"), field)
            .await;
    }
}

#[tokio::test]
async fn money_collected_on_an_account_created_today_counts_for_its_agent() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    hold_clock(&app);
    // Today's snapshot is taken before the account exists, as it is at 00:01 UTC.
    scheduler_took_today(&app).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let id = account["id"].as_str().unwrap();
    app.create_payment(&manager.token, id, &json!({"amount": "40.00", "currency": "USD", "method": "card"}))
        .await;
    for kept in [false, true] {
        if kept {
            let now = app.clock.now();
            arrears::store::kpis::keep_today(&app.pool, now + Duration::seconds(1))
                .await
                .unwrap();
        }
        let (_, report) = status_json(app.get("/api/v1/kpis?group_by=agent", &manager.token).await).await;
        let group = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == json!(agent.id))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            group["collected"],
            json!([{"currency": "USD", "amount": "40.00"}]),
            "kept: {kept}: {report}"
        );
    }
}
