//! What timing every database statement costs (`QUERY_TIMING`, the operator's view): the
//! search mix and payment creation at 32 connections from wrk (a separate process)
//! against `arrears serve` itself (this benchmark's release build of the binary, on the
//! seeded database and index), started with `QUERY_TIMING=false` and `true` in turn,
//! back to back for BENCH_ROUNDS rounds (off first in odd rounds, on first in even
//! ones), then the median of each and the change, and the families the last server
//! timed.
//!
//! Run: `bin/bench query_timing` (BENCH_ACCOUNTS default 100000, BENCH_SECONDS default
//! 10, BENCH_ROUNDS default 4).

#[allow(dead_code)]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrears::config::Settings;
use arrears::domain::document::Entity;
use sqlx::PgPool;

const CONNECTIONS: usize = 32;

/// Starts a run from the same state: the payments of the run before leave dead rows.
async fn settle(pool: &PgPool) {
    sqlx::query("VACUUM ANALYZE accounts, payments, search_outbox")
        .execute(pool)
        .await
        .unwrap();
}

/// `arrears serve` on the benchmark's database and index, as an operator starts it,
/// with the statements timed or not; answering at its base URL.
struct Served {
    process: Child,
    base: String,
}

impl Served {
    async fn start(settings: &Settings, timing: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let unlimited = u32::MAX.to_string();
        let process = Command::new(env!("CARGO_BIN_EXE_arrears"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &settings.database_url)
            .env("DATA_DIR", &settings.data_dir)
            .env("SEARCH_BACKEND", "embedded")
            .env("JWT_SECRET", settings.jwt_secret.as_deref().unwrap_or_default())
            .env("BIND", &bind)
            .env("METRICS", "false")
            .env("RUST_LOG", "error")
            .env("QUERY_TIMING", timing.to_string())
            .env("RATE_LIMIT_PER_USER", &unlimited)
            .env("RATE_LIMIT_PER_IP", &unlimited)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("arrears serve starts");
        let served = Self {
            process,
            base: format!("http://{bind}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client
                .get(format!("{}/health/ready", served.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served.stop();
        panic!("arrears serve did not become ready in 30 s");
    }

    /// Stops it as a service manager does (SIGTERM), and waits for it to exit.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.process.id().to_string()]).status();
        let _ = self.process.wait();
    }
}

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 100_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let rounds = support::env_number("BENCH_ROUNDS", 4);
    let (settings, pool) = support::fresh("query_timing", 10).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 50,
        seed: 42,
    };
    support::seed_and_index(&pool, &settings, plan, &[Entity::Account, Entity::Payment]).await;
    let first = Served::start(&settings, false).await;
    let token = support::manager_token(&pool, &first.base, "timing-bench@example.com").await;
    first.stop();
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

    // figures[load][on] = (req/s, p50, p99) per round.
    let mut figures = vec![[Vec::new(), Vec::new()]; loads.len()];
    let mut last_families = serde_json::Value::Null;
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [false, true] } else { [true, false] };
        for on in order {
            let server = Served::start(&settings, on).await;
            support::wrk_load("warm-up", &server.base, &loads[0].1, &tokens, CONNECTIONS, Duration::from_secs(2)).await;
            for (i, (name, load)) in loads.iter().enumerate() {
                settle(&pool).await;
                let label = format!("round {round}, timing {}: {name}", if on { "on" } else { "off" });
                if let Some(f) = support::wrk_load(&label, &server.base, load, &tokens, CONNECTIONS, seconds).await {
                    figures[i][usize::from(on)].push((f.requests_per_second, f.p50_ms, f.p99_ms));
                }
            }
            if on {
                let admin = support::admin_token(&pool, &server.base).await;
                let view: serde_json::Value = reqwest::Client::new()
                    .get(format!("{}/api/v1/admin/system", server.base))
                    .bearer_auth(admin)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                last_families = view["queries"]["families"].clone();
            }
            server.stop();
        }
    }
    println!("summary ({rounds} rounds of {} s, medians):", seconds.as_secs());
    for (i, (name, _)) in loads.iter().enumerate() {
        let [off, on] = &figures[i];
        let pick = |v: &Vec<(f64, f64, f64)>, f: fn(&(f64, f64, f64)) -> f64| support::median(v.iter().map(f).collect());
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
    println!("the last timed server's costliest statement families:");
    for family in last_families.as_array().into_iter().flatten().take(8) {
        println!(
            "  {}: {} statements, {:.1} s, recent p50 {:.2} ms, p99 {:.2} ms",
            family["family"].as_str().unwrap_or_default(),
            family["count"],
            family["total_seconds"].as_f64().unwrap_or(f64::NAN),
            family["p50_ms"].as_f64().unwrap_or(f64::NAN),
            family["p99_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
