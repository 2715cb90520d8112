//! Work-queue figures on seeded data: `POST /queue/next` with 32 agents claiming at once,
//! first each from their own queue, then 32 agents without accounts all from the team
//! queue (every claim assigns an account, so the sync rewrites documents meanwhile), and
//! `GET /queue` pages.
//!
//! Run: `bin/bench queue` (BENCH_ACCOUNTS, default 1000000; BENCH_SECONDS, default 10).
//! The contact policy's window is widened to the whole day first, so the figures do not
//! depend on the hour the bench runs at (the window is still evaluated).

mod support;

use std::time::Duration;

use arrears::domain::document::Entity;
use arrears::domain::role::Role;
use arrears::search::embedded::EmbeddedIndex;
use arrears::sync::reindex;

const AGENTS: usize = 32;

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 1_000_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let mut settings = support::bench_settings();
    settings.data_dir = std::env::temp_dir().join("arrears-bench-queue");
    let _ = std::fs::remove_dir_all(&settings.data_dir);
    let pool = arrears::store::connect(&settings.database_url, 40).await.unwrap();
    arrears::store::migrate(&pool).await.unwrap();
    sqlx::query("TRUNCATE accounts, events, event_queue, search_outbox, refresh_tokens, auth_sessions, users CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE contact_policy SET window_start = '00:00', window_end = '23:59:59'")
        .execute(&pool)
        .await
        .unwrap();
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 50,
        seed: 42,
    };
    let seeded = arrears::seed::seed(&pool, plan, |_| {}).await.unwrap();
    println!(
        "seed: {accounts} accounts (80% over 50 agents) in {:.1} s",
        seeded.elapsed.as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE accounts").execute(&pool).await.unwrap();
    {
        let index = EmbeddedIndex::open_owner(&settings.data_dir).unwrap();
        let report = reindex::rebuild(&pool, &index, Entity::Account, |_| {}).await.unwrap();
        println!("reindex: {} documents in {:.1} s", report.documents, report.elapsed.as_secs_f64());
    }
    let server = support::start(settings.clone()).await;

    let seeded_agents: Vec<String> = sqlx::query_scalar("SELECT email FROM users WHERE role = 'agent' ORDER BY email LIMIT $1")
        .bind(AGENTS as i64)
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut owners = Vec::new();
    for email in &seeded_agents {
        owners.push(support::token(&server.base, email, arrears::seed::DEMO_PASSWORD).await);
    }
    let hash = arrears::auth::password::hash(arrears::seed::DEMO_PASSWORD.to_owned())
        .await
        .unwrap();
    let mut newcomers = Vec::new();
    for n in 0..AGENTS {
        let email = format!("queue-bench-{n}@example.com");
        arrears::store::users::insert(&pool, &email, "Newcomer", Role::Agent, &hash)
            .await
            .unwrap();
        newcomers.push(support::token(&server.base, &email, arrears::seed::DEMO_PASSWORD).await);
    }
    let clients = support::clients(AGENTS);
    let run = |tokens: Vec<String>, method: &'static str, path: &'static str, name: String, duration: Duration| {
        let (base, clients) = (server.base.clone(), clients.clone());
        async move {
            let report = support::closed_loop(AGENTS, duration, move |w, _| {
                let url = format!("{base}{path}");
                let request = match method {
                    "POST" => clients[w].post(url),
                    _ => clients[w].get(url),
                };
                support::send(request.bearer_auth(&tokens[w]))
            })
            .await;
            report.print(&name);
        }
    };
    run(
        owners.clone(),
        "POST",
        "/api/v1/queue/next",
        "warm-up".into(),
        Duration::from_secs(3),
    )
    .await;
    run(
        owners.clone(),
        "POST",
        "/api/v1/queue/next",
        format!("queue/next, {AGENTS} agents each claiming from their own queue"),
        seconds,
    )
    .await;
    server.state.sync_metrics().reset_lag();
    run(
        newcomers,
        "POST",
        "/api/v1/queue/next",
        format!("queue/next, {AGENTS} agents all claiming from the team queue (each claim assigns)"),
        seconds,
    )
    .await;
    let lag = server.state.sync_metrics().snapshot();
    println!(
        "  meanwhile the sync re-indexed the claimed accounts: commit-to-searchable p99 <= {} ms ({} changes)",
        lag.lag_p99_ms.unwrap_or(0),
        lag.lag_samples
    );
    run(
        owners,
        "GET",
        "/api/v1/queue?page_size=25",
        format!("GET /queue (25 per page), {AGENTS} agents"),
        seconds,
    )
    .await;
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_claims")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("claims held at the end: {claimed}");
}
