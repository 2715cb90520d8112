//! What timing every database statement costs (`QUERY_TIMING`, the operator's view):
//! the search mix and payment creation at 32 connections from wrk (a separate process),
//! with the timing off and on, back to back for BENCH_ROUNDS rounds (off first in odd
//! rounds, on first in even ones), then the median of each and the change. The server
//! runs in this process with the timing layer installed as `arrears serve` installs it
//! (no log output, as the other benchmarks), switched between rounds.
//!
//! Run: `bin/bench query_timing` (BENCH_ACCOUNTS default 100000, BENCH_SECONDS default
//! 10, BENCH_ROUNDS default 4).

#[allow(dead_code)]
mod support;

use std::time::Duration;

use arrears::domain::document::Entity;
use arrears::telemetry::queries;
use sqlx::PgPool;
use tracing_subscriber::prelude::*;

const CONNECTIONS: usize = 32;

/// Starts a run from the same state: the payments of the run before leave dead rows.
async fn settle(pool: &PgPool) {
    sqlx::query("VACUUM ANALYZE accounts, payments, search_outbox")
        .execute(pool)
        .await
        .unwrap();
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::registry().with(arrears::telemetry::statement_timing()).init();
    let accounts = support::env_number("BENCH_ACCOUNTS", 100_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let rounds = support::env_number("BENCH_ROUNDS", 4);
    let (settings, pool) = support::fresh("query_timing", 40).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 50,
        seed: 42,
    };
    support::seed_and_index(&pool, &settings, plan, &[Entity::Account, Entity::Payment]).await;
    let server = support::start(settings).await;
    let password = "bench password 123";
    let hash = arrears::auth::password::hash(password.to_owned()).await.unwrap();
    arrears::store::users::insert(
        &pool,
        "timing-bench@example.com",
        "Bench",
        arrears::domain::role::Role::Manager,
        &hash,
    )
    .await
    .unwrap();
    let token = support::token(&server.base, "timing-bench@example.com", password).await;
    let searches: Vec<String> = (0..300).map(|n| format!("/api/v1/accounts?{}", support::search_query(n))).collect();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM accounts WHERE current_balance >= 100 ORDER BY id LIMIT 10000")
        .fetch_all(&pool)
        .await
        .unwrap();
    let payments: Vec<String> = ids.iter().map(|id| format!("/api/v1/accounts/{id}/payments")).collect();
    let loads = [
        (
            "search mix",
            support::WrkLoad {
                method: "GET",
                paths: &searches,
                body: None,
            },
        ),
        (
            "POST /accounts/{id}/payments",
            support::WrkLoad {
                method: "POST",
                paths: &payments,
                body: Some(r#"{"amount": "0.01", "currency": "USD", "method": "card"}"#),
            },
        ),
    ];
    let tokens = [token];
    support::wrk_load("warm-up", &server.base, &loads[0].1, &tokens, CONNECTIONS, Duration::from_secs(3)).await;

    // figures[load][on] = (req/s, p50, p99) per round.
    let mut figures = vec![[Vec::new(), Vec::new()]; loads.len()];
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [false, true] } else { [true, false] };
        for on in order {
            queries::set_timing(on);
            for (i, (name, load)) in loads.iter().enumerate() {
                settle(&pool).await;
                let label = format!("round {round}, timing {}: {name}", if on { "on" } else { "off" });
                if let Some(f) = support::wrk_load(&label, &server.base, load, &tokens, CONNECTIONS, seconds).await {
                    assert_eq!(f.failed, 0, "{label}: every request succeeds");
                    figures[i][usize::from(on)].push((f.requests_per_second, f.p50_ms, f.p99_ms));
                }
            }
        }
    }
    let families = queries::figures();
    println!(
        "summary ({rounds} rounds of {} s, medians; {} statement families timed):",
        seconds.as_secs(),
        families.len()
    );
    for (i, (name, _)) in loads.iter().enumerate() {
        let [off, on] = &figures[i];
        let pick = |v: &Vec<(f64, f64, f64)>, f: fn(&(f64, f64, f64)) -> f64| median(v.iter().map(f).collect());
        let (rate_off, rate_on) = (pick(off, |f| f.0), pick(on, |f| f.0));
        println!(
            "  {name}: timing off {rate_off:.0} req/s p50 {:.1} ms p99 {:.1} ms; on {rate_on:.0} req/s p50 {:.1} ms p99 {:.1} ms; throughput {:+.1}%",
            pick(off, |f| f.1),
            pick(off, |f| f.2),
            pick(on, |f| f.1),
            pick(on, |f| f.2),
            (rate_on / rate_off - 1.0) * 100.0
        );
    }
    for family in families.iter().take(8) {
        println!(
            "  {}: {} statements, p50 {:.2} ms, p99 {:.2} ms",
            family.family,
            family.count,
            family.p50_ms.unwrap_or(f64::NAN),
            family.p99_ms.unwrap_or(f64::NAN)
        );
    }
}
