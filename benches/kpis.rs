//! Manager KPI latency: `GET /api/v1/kpis` over `BENCH_ACCOUNTS` accounts (default
//! 1,000,000) with five activities each, a promise for one in five, a payment for one
//! in two, spread over the last year, and the bucket snapshots of the last 30 days and of
//! the day a year ago (the moves, the days that are over, the months whose days are all
//! kept, and today up to now kept first, timed); 30 days per grouping and a whole year,
//! each at `BENCH_CONNECTIONS` connections (4) for `BENCH_SECONDS` (10).
//!
//! The 30 days and the year by agent again from `wrk` in a separate process, with the
//! CPU a request cost the server and PostgreSQL.
//!
//! Run: `bin/bench kpis` (release build; needs PostgreSQL). `BENCH_SEEDED=1` measures
//! the requests again over the data the last run left, without seeding (a before and
//! after of the request path on the same data).

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use arrears::auth::password;
use arrears::domain::role::Role;
use chrono::Utc;
use uuid::Uuid;

const AGENTS: i64 = 50;
const TEAMS: i64 = 5;

async fn timed(pool: &sqlx::PgPool, what: &str, sql: &'static str, rows: i64) {
    let started = Instant::now();
    let mut conn = pool.acquire().await.unwrap();
    arrears::store::bulk_load::skip_triggers(&mut conn, true).await;
    sqlx::query(sql).bind(rows).execute(&mut *conn).await.unwrap();
    arrears::store::bulk_load::skip_triggers(&mut conn, false).await;
    // The triggers that drop kept KPI days did not run: the scheduler may have kept a
    // day before these rows were in it.
    arrears::store::kpis::forget_days(&mut conn).await.unwrap();
    println!("seed {what}: {rows} rows in {:.1} s", started.elapsed().as_secs_f64());
}

/// The agents and teams, `accounts` accounts with their activities, promises, payments
/// and snapshots, the kept moves and days, each timed.
async fn seed(pool: &sqlx::PgPool, accounts: i64) {
    for agent in 0..AGENTS {
        let team = format!("team {}", agent % TEAMS);
        arrears::store::users::insert_in_team(
            pool,
            None,
            &format!("agent-{agent}@example.com"),
            "Agent",
            Role::Agent,
            "x",
            Some(&team),
        )
        .await
        .unwrap();
    }
    // Ids computed from the row number, so that other rows can name an account.
    timed(
        pool,
        "accounts",
        "WITH agents AS (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE role = 'agent')
         INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, due_date,
                               assigned_agent_id, status, search_version)
         SELECT md5(g::text)::uuid, 'K-' || g, 'Debtor ' || g, 1000, 500, CASE WHEN g % 4 = 0 THEN 'EUR' ELSE 'USD' END,
                current_date - (g % 300)::int,
                a.ids[1 + g % 50],
                CASE WHEN g % 300 < 10 THEN 'active' ELSE 'delinquent' END, 0
         FROM generate_series(1, $1) g, agents a",
        accounts,
    )
    .await;
    timed(
        pool,
        "activities",
        "WITH agents AS (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE role = 'agent')
         INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
         SELECT gen_random_uuid(), md5((1 + g % $1)::text)::uuid,
                (ARRAY['call', 'sms', 'email', 'letter', 'visit', 'note'])[1 + g % 6],
                CASE WHEN g % 7 = 0 THEN 'inbound' ELSE 'outbound' END,
                (ARRAY['right_party', 'no_answer', 'left_message', 'promise_to_pay', 'wrong_party'])[1 + g % 5],
                now() - make_interval(secs => (g::bigint * 7919) % (365 * 86400)),
                a.ids[1 + g % 50]
         FROM generate_series(1, $1 * 5) g, agents a",
        accounts,
    )
    .await;
    timed(
        pool,
        "promises",
        "WITH agents AS (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE role = 'agent')
         INSERT INTO promises (id, account_id, amount, due_date, status, created_by, created_at)
         SELECT gen_random_uuid(), md5((g * 5)::text)::uuid, 100, current_date,
                (ARRAY['kept', 'broken', 'cancelled'])[1 + g % 3],
                a.ids[1 + g % 50],
                now() - make_interval(secs => (g::bigint * 7919) % (365 * 86400))
         FROM generate_series(1, $1 / 5) g, agents a",
        accounts,
    )
    .await;
    timed(
        pool,
        "payments",
        "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at)
         SELECT gen_random_uuid(), md5((g * 2)::text)::uuid, 25.50, CASE WHEN g * 2 % 4 = 0 THEN 'EUR' ELSE 'USD' END,
                'card', 'completed', now() - make_interval(secs => (g::bigint * 7919) % (365 * 86400))
         FROM generate_series(1, $1 / 2) g",
        accounts,
    )
    .await;
    let today = Utc::now().date_naive();
    // The snapshots of every day of the last 30 (the bucket and agent of that period's
    // events, and its opening) and of the day a year ago.
    let days = std::iter::once(today - chrono::Duration::days(365)).chain((0..30).map(|n| today - chrono::Duration::days(n)));
    for (n, day) in days.enumerate() {
        let started = Instant::now();
        sqlx::query(
            "INSERT INTO account_day_snapshots (day, account_id, bucket, assigned_agent_id, status, current_balance, currency,
                                                ordinal)
             SELECT $1, id, (ARRAY['current', '1-29', '30-59', '60-89', '90-119', '120+'])[1 + (hashtext(id::text) % 6 + 6 + $2) % 6],
                    assigned_agent_id, status, current_balance, currency, ordinal
             FROM accounts",
        )
        .bind(day)
        .bind(n as i32 * 3)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO account_snapshot_days (day, accounts) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(day)
            .bind(accounts)
            .execute(pool)
            .await
            .unwrap();
        println!(
            "seed snapshot of {day}: {accounts} rows in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    // What the first request for a pair of snapshot days pays (the scheduler pays it for
    // the default period in production); the requests below read the kept moves.
    for opening in [today - chrono::Duration::days(29), today - chrono::Duration::days(365)] {
        let started = Instant::now();
        arrears::store::kpis::keep_moves(pool, opening, today).await.unwrap();
        println!(
            "keep the bucket moves {opening} to {today}: {:.1} s (once per pair of days)",
            started.elapsed().as_secs_f64()
        );
    }
    // What the scheduler keeps in the background: the figures of every day that is over,
    // from none kept (it may have kept some while the rows above went in).
    let mut conn = pool.acquire().await.unwrap();
    arrears::store::kpis::forget_days(&mut conn).await.unwrap();
    drop(conn);
    let started = Instant::now();
    let days = arrears::store::kpis::days_to_keep(pool, today).await.unwrap();
    for day in &days {
        arrears::store::kpis::keep_day(pool, *day).await.unwrap();
    }
    println!(
        "keep the figures of {} days: {:.1} s ({:.0} ms a day, once per day)",
        days.len(),
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / days.len().max(1) as f64
    );
    keep_months(pool).await;
    // What the scheduler does every minute: keep today up to now, so that a request
    // computes only the events since.
    let started = Instant::now();
    arrears::store::kpis::keep_today(pool, Utc::now()).await.unwrap();
    println!(
        "keep today up to now: {:.0} ms (every minute)",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

/// What the scheduler keeps once the days of a month are: the months over whose every
/// day is kept, timed.
async fn keep_months(pool: &sqlx::PgPool) {
    let started = Instant::now();
    let months = arrears::store::kpis::months_to_keep(pool, Utc::now().date_naive()).await.unwrap();
    for month in &months {
        arrears::store::kpis::keep_month(pool, *month).await.unwrap();
    }
    println!(
        "keep the figures of {} months: {:.1} s (once per month)",
        months.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 1_000_000) as i64;
    let connections = support::env_number("BENCH_CONNECTIONS", 4) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let (settings, pool, seeded) = support::fresh_unless_seeded("kpis", 8).await;
    let pool = &pool;
    let server = support::start(settings).await;
    let email = format!("kpi-bench-{}@example.com", Uuid::new_v4().simple());
    let secret = "bench password 123";
    let hash = password::hash(secret.to_owned()).await.unwrap();
    arrears::store::users::insert(pool, &email, "Bench", Role::Manager, &hash)
        .await
        .unwrap();
    if seeded {
        println!("measuring over the data an earlier run left (BENCH_SEEDED=1)");
        keep_months(pool).await;
    } else {
        seed(pool, accounts).await;
    }
    let token = support::token(&server.base, &email, secret).await;
    let clients = support::clients(connections);
    let today = Utc::now().date_naive();
    let month = format!("from={}&to={today}", today - chrono::Duration::days(29));
    let year = format!("from={}&to={today}", today - chrono::Duration::days(365));
    for (name, query) in [
        ("30 days by agent", format!("{month}&group_by=agent")),
        ("30 days by team", format!("{month}&group_by=team")),
        ("30 days by bucket", format!("{month}&group_by=bucket")),
        ("a year by agent", format!("{year}&group_by=agent")),
    ] {
        let url = format!("{}/api/v1/kpis?{query}", server.base);
        let (token, clients) = (token.clone(), clients.clone());
        let report = support::closed_loop(connections, seconds, move |w, _| {
            support::send(clients[w].get(url.clone()).bearer_auth(&token))
        })
        .await;
        report.print(&format!("GET /api/v1/kpis {name}, {accounts} accounts, {connections} connections"));
    }
    // The dashboard's requests as a user meets them: from a separate process, with the
    // CPU each cost the server and PostgreSQL.
    for (name, query) in [("30 days by agent", month), ("a year by agent", year)] {
        let url = format!("{}/api/v1/kpis?{query}&group_by=agent", server.base);
        let label = format!("GET /api/v1/kpis {name}");
        support::wrk(&label, "GET", &url, std::slice::from_ref(&token), connections, seconds).await;
    }
}
