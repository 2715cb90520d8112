//! What the audit trail costs writes: payment creation and account patches at 32
//! connections from wrk (a separate process), with the audit triggers switched off
//! ("before") and on, back to back for BENCH_ROUNDS rounds (off first in odd rounds, on
//! first in even ones), then the median of each and the change. The sealer runs as in
//! production (every 2 s).
//!
//! Run: `bin/bench audit` (BENCH_ACCOUNTS default 50000, BENCH_SECONDS default 10,
//! BENCH_ROUNDS default 4).

#[allow(dead_code)]
mod support;

use std::time::Duration;

use arrears::domain::document::Entity;
use sqlx::PgPool;

const CONNECTIONS: usize = 32;

/// The audit triggers of the tables these writes touch.
const TRIGGERS: &[(&str, &str)] = &[
    ("accounts", "accounts_audit_update"),
    ("payments", "payments_audit_insert"),
    ("payments", "payments_audit_update"),
    ("promises", "promises_audit_update"),
    ("plans", "plans_audit_update"),
];

/// Starts a run from the same state: the writes of the run before leave dead rows (every
/// account updated, the outbox filled and emptied) that otherwise slow each run after it.
async fn settle(pool: &PgPool) {
    sqlx::query("VACUUM ANALYZE accounts, payments, search_outbox, audit_log")
        .execute(pool)
        .await
        .unwrap();
}

async fn audit(pool: &PgPool, on: bool) {
    for (table, trigger) in TRIGGERS {
        let verb = if on { "ENABLE" } else { "DISABLE" };
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {table} {verb} TRIGGER {trigger}")))
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 50_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let rounds = support::env_number("BENCH_ROUNDS", 4);
    let (settings, pool) = support::fresh("audit", 10).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 20,
        seed: 11,
    };
    support::seed_and_index(&pool, &settings, plan, &Entity::SEARCHED).await;
    let server = support::start(settings).await;
    let token = support::manager_token(&pool, &server.base, "audit-bench@example.com").await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM accounts WHERE current_balance >= 100 ORDER BY id LIMIT 10000")
        .fetch_all(&pool)
        .await
        .unwrap();
    let payments: Vec<String> = ids.iter().map(|id| format!("/api/v1/accounts/{id}/payments")).collect();
    let patches: Vec<String> = ids.iter().map(|id| format!("/api/v1/accounts/{id}")).collect();
    let loads = [
        (
            "POST /accounts/{id}/payments",
            support::WrkLoad {
                method: "POST",
                paths: &payments,
                body: Some(r#"{"amount": "0.01", "currency": "USD", "method": "card"}"#),
            },
        ),
        (
            "PATCH /accounts/{id}",
            // The body is each run's own (below).
            support::WrkLoad {
                method: "PATCH",
                paths: &patches,
                body: None,
            },
        ),
    ];
    // Each run's patches set tags no earlier run set: a patch that changes nothing is
    // not what the audit costs.
    let patch_body = |round: u64, on: bool| format!(r#"{{"tags": ["bench-{round}-{on}-%d"]}}"#);
    let tokens = [token];
    support::wrk_load("warm-up", &server.base, &loads[0].1, &tokens, CONNECTIONS, Duration::from_secs(3)).await;

    // figures[load][on] = (req/s, p99) per round.
    let mut figures = vec![[Vec::new(), Vec::new()]; loads.len()];
    // Off then on in odd rounds, on then off in even ones: the tables grow as the rounds
    // go, and neither side always runs on the larger ones.
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [false, true] } else { [true, false] };
        for on in order {
            audit(&pool, on).await;
            for (i, (name, load)) in loads.iter().enumerate() {
                settle(&pool).await;
                let label = format!("round {round}, audit {}: {name}", if on { "on" } else { "off" });
                let body = patch_body(round, on);
                let load = support::WrkLoad {
                    body: load.body.or(Some(body.as_str())),
                    ..*load
                };
                if let Some(f) = support::wrk_load(&label, &server.base, &load, &tokens, CONNECTIONS, seconds).await {
                    figures[i][usize::from(on)].push((f.requests_per_second, f.p99_ms));
                }
            }
        }
    }
    audit(&pool, true).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&pool).await.unwrap();
    println!(
        "summary ({rounds} rounds of {} s, medians; {rows} audit rows written):",
        seconds.as_secs()
    );
    for (i, (name, _)) in loads.iter().enumerate() {
        let [off, on] = &figures[i];
        let rate = |v: &Vec<(f64, f64)>| support::median(v.iter().map(|f| f.0).collect());
        let p99 = |v: &Vec<(f64, f64)>| support::median(v.iter().map(|f| f.1).collect());
        println!(
            "  {name}: audit off {:.0} req/s p99 {:.1} ms; on {:.0} req/s p99 {:.1} ms; throughput {:+.1}%",
            rate(off),
            p99(off),
            rate(on),
            p99(on),
            (rate(on) / rate(off) - 1.0) * 100.0
        );
    }
}
