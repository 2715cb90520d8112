//! Payment figures: seed and reindex of BENCH_PAYMENTS payments (default 1,000,000),
//! payment statistics latency over them, payment creation throughput and latency at 32
//! connections, and commit-to-searchable lag while payments are created at 500/s.
//!
//! Run: `bin/bench payments` (BENCH_PAYMENTS, BENCH_ACCOUNTS default 100000,
//! BENCH_SECONDS default 15).

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrears::domain::document::Entity;
use serde_json::json;

const CONNECTIONS: usize = 32;

#[tokio::main]
async fn main() {
    let payments = support::env_number("BENCH_PAYMENTS", 1_000_000) as usize;
    let accounts = support::env_number("BENCH_ACCOUNTS", 100_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 15));
    let (settings, pool) = support::fresh("payments", 40).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments,
        agents: 20,
        seed: 7,
    };
    support::seed_and_index(&pool, &settings, plan, &Entity::SEARCHED).await;

    let server = support::start(settings.clone()).await;
    let password = "bench password 123";
    let hash = arrears::auth::password::hash(password.to_owned()).await.unwrap();
    arrears::store::users::insert(
        &pool,
        "payments-bench@example.com",
        "Bench",
        arrears::domain::role::Role::Manager,
        &hash,
    )
    .await
    .unwrap();
    let token = support::token(&server.base, "payments-bench@example.com", password).await;
    let clients = support::clients(CONNECTIONS);

    let today = chrono::Utc::now().date_naive();
    let year_ago = today - chrono::Duration::days(365);
    for (name, connections, query) in [
        ("stats, last 30 days, 1 connection", 1, "tz=America/New_York".to_owned()),
        (
            "stats, a whole year, 1 connection",
            1,
            format!("tz=America/New_York&from={year_ago}&to={today}"),
        ),
        ("stats, last 30 days, 8 connections", 8, "tz=America/New_York".to_owned()),
    ] {
        let (base, token, clients) = (server.base.clone(), token.clone(), clients.clone());
        let report = support::closed_loop(connections, Duration::from_secs(5), move |w, _| {
            support::send(clients[w].get(format!("{base}/api/v1/payments/stats?{query}")).bearer_auth(&token))
        })
        .await;
        report.print(name);
    }

    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM accounts WHERE current_balance >= 10 ORDER BY id LIMIT 100000")
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    let body = json!({"amount": "0.01", "currency": "USD", "method": "card"});
    for (name, duration) in [
        ("warm-up payment creation", Duration::from_secs(3)),
        ("POST /accounts/{id}/payments, 32 connections", seconds),
    ] {
        let (base, token, clients, ids, body) = (server.base.clone(), token.clone(), clients.clone(), ids.clone(), body.clone());
        let report = support::closed_loop(CONNECTIONS, duration, move |w, n| {
            let id = ids[((w * 100_003 + n) * 7919) % ids.len()];
            support::send(
                clients[w]
                    .post(format!("{base}/api/v1/accounts/{id}/payments"))
                    .bearer_auth(&token)
                    .json(&body),
            )
        })
        .await;
        report.print(name);
    }

    // Commit-to-searchable lag while payments arrive at a steady 500/s (each payment
    // queues its own document and its account's).
    let metrics = server.state.sync_metrics().clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    metrics.reset_lag();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(2));
    let mut writes = Vec::new();
    for n in 0..(500 * 10) {
        interval.tick().await;
        let request = client
            .post(format!(
                "{}/api/v1/accounts/{}/payments",
                server.base,
                ids[(n * 104_729) % ids.len()]
            ))
            .bearer_auth(&token)
            .json(&body);
        writes.push(tokio::spawn(support::send(request)));
    }
    let mut failed = 0;
    for w in writes {
        failed += usize::from(!w.await.unwrap());
    }
    let write_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = metrics.snapshot();
    println!(
        "payment commit-to-searchable lag at {:.0} payments/s: p50 <= {} ms, p99 <= {} ms ({} documents, {failed} failed writes; histogram bucket bounds)",
        5000.0 / write_secs,
        snap.lag_p50_ms.unwrap_or(0),
        snap.lag_p99_ms.unwrap_or(0),
        snap.lag_samples
    );
}
