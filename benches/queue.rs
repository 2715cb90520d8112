//! Work-queue figures on seeded data: `POST /queue/next` with 32 agents claiming at once,
//! first each from their own queue, then 32 agents without accounts all from the team
//! queue (every claim assigns an account, so the sync rewrites documents meanwhile),
//! `GET /queue` pages, and the own-queue claims again from `wrk` in a separate process.
//!
//! Run: `bin/bench queue` (BENCH_ACCOUNTS, default 1000000; BENCH_SECONDS, default 10).
//! The contact policy's window is widened to the whole day first, so the figures do not
//! depend on the hour the bench runs at (the window is still evaluated).

#[allow(dead_code)]
mod support;

use std::time::Duration;

use arrears::domain::document::Entity;
use arrears::domain::role::Role;

const AGENTS: usize = 32;

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 1_000_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    let (settings, pool) = support::fresh("queue", 40).await;
    sqlx::query("UPDATE contact_policy SET window_start = '00:00', window_end = '23:59:59'")
        .execute(&pool)
        .await
        .unwrap();
    support::seed_and_index(&pool, &settings, support::accounts_over_50_agents(accounts), &[Entity::Account]).await;
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
        owners.clone(),
        "GET",
        "/api/v1/queue?page_size=25",
        format!("GET /queue (25 per page), {AGENTS} agents"),
        seconds,
    )
    .await;
    let url = format!("{}/api/v1/queue/next", server.base);
    support::wrk(
        &format!("queue/next, {AGENTS} agents each claiming from their own queue"),
        "POST",
        &url,
        &owners,
        AGENTS,
        seconds,
    )
    .await;
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_claims")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("claims held at the end: {claimed}");
}
