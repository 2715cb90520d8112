//! WebSocket figures: memory per idle connection (BENCH_SOCKETS, default 10,000) and
//! event latency from commit to client receipt while BENCH_EVENT_RATE payments per
//! second (default 200) reach BENCH_LISTENERS clients (default 1,000).
//!
//! The clients run in a child process (this binary, re-executed), so the server's
//! resident memory is measured on its own. Run: `bin/bench ws`.

// Shared by every benchmark; this one needs only the server and login helpers.
#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Child: opens `n` authenticated sockets subscribed to payments, says `ready`, then
/// (when `measure` is set) reports receipt latency of payment events as `at` vs now.
async fn clients(url: String, token: String, n: usize, measure: bool) {
    let mut tasks = Vec::with_capacity(n);
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u64>>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..n {
        let (url, token, lat_tx, ready_tx, mut stop_rx) = (url.clone(), token.clone(), lat_tx.clone(), ready_tx.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                .await
                .unwrap();
            let subscribe = json!({"event": "subscribe", "data": {"topics": ["payments"]}}).to_string();
            ws.send(Message::text(subscribe)).await.unwrap();
            let mut latencies = Vec::new();
            let mut subscribed = false;
            loop {
                tokio::select! {
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let text = text.as_str();
                            if !subscribed && text.contains("\"subscribed\"") {
                                subscribed = true;
                                let _ = ready_tx.send(());
                            } else if measure && text.contains("\"payment.created\"") {
                                // Keys are serialised in order, so the event's own `at` comes first.
                                if let Some(at) = text.strip_prefix("{\"at\":\"").and_then(|r| r.split('"').next())
                                    && let Ok(at) = chrono::DateTime::parse_from_rfc3339(at)
                                {
                                    let micros = (chrono::Utc::now() - at.to_utc()).num_microseconds().unwrap_or(0).max(0);
                                    latencies.push(micros as u64);
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = stop_rx.changed() => break,
                }
            }
            let _ = lat_tx.send(latencies);
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        ready_rx.recv().await.expect("every client subscribed");
    }
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let _ = stop_tx.send(true);
    drop(lat_tx);
    let mut all = Vec::new();
    while let Some(latencies) = lat_rx.recv().await {
        all.extend(latencies);
    }
    all.sort_unstable();
    let at = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p).round() as usize)
            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
    };
    println!("latency {} {:.2} {:.2} {:.2}", all.len(), at(0.5), at(0.99), at(1.0));
}

/// Parent side: starts `n` clients in a child process and waits until they are ready.
fn spawn_clients(url: &str, token: &str, n: usize, measure: bool) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("WS_BENCH_ROLE", "clients")
        .env("WS_BENCH_URL", url)
        .env("WS_BENCH_TOKEN", token)
        .env("WS_BENCH_N", n.to_string())
        .env("WS_BENCH_MEASURE", if measure { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "clients failed to start");
    (child, out)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if std::env::var("WS_BENCH_ROLE").as_deref() == Ok("clients") {
        let n = support::env_number("WS_BENCH_N", 1) as usize;
        let measure = std::env::var("WS_BENCH_MEASURE").as_deref() == Ok("1");
        runtime.block_on(clients(
            std::env::var("WS_BENCH_URL").unwrap(),
            std::env::var("WS_BENCH_TOKEN").unwrap(),
            n,
            measure,
        ));
        return;
    }
    runtime.block_on(server());
}

async fn server() {
    let sockets = support::env_number("BENCH_SOCKETS", 10_000) as usize;
    let listeners = support::env_number("BENCH_LISTENERS", 1_000) as usize;
    let rate = support::env_number("BENCH_EVENT_RATE", 200);
    let seconds = support::env_number("BENCH_SECONDS", 10);
    let (mut settings, pool) = support::fresh("ws", 8).await;
    settings.access_token_ttl_secs = 3600;
    let server = support::start(settings).await;
    let password = "bench password 123";
    let hash = arrears::auth::password::hash(password.to_owned()).await.unwrap();
    arrears::store::users::insert(&pool, "ws-bench@example.com", "Bench", arrears::domain::role::Role::Manager, &hash)
        .await
        .unwrap();
    let token = support::token(&server.base, "ws-bench@example.com", password).await;
    let url = format!("{}/api/v1/ws", server.base.replacen("http", "ws", 1));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_bytes();
    let started = Instant::now();
    let (mut idle, _idle_out) = tokio::task::block_in_place(|| spawn_clients(&url, &token, sockets, false));
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes();
    println!(
        "{sockets} idle sockets (authenticated, subscribed): opened in {:.1} s; server RSS {:.0} MiB -> {:.0} MiB, {:.1} KiB per connection",
        opened.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / sockets as f64 / 1024.0
    );
    drop(idle.stdin.take());
    let _ = idle.wait();

    let account: uuid::Uuid = {
        let body = json!({"debtor_name": "Latency Bench", "original_balance": "100000000.00", "currency": "USD"});
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/accounts", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (mut child, mut out) = tokio::task::block_in_place(|| spawn_clients(&url, &token, listeners, true));
    let client = reqwest::Client::new();
    let body = json!({"amount": "0.01", "currency": "USD", "method": "card"});
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut writes = Vec::new();
    let load_started = Instant::now();
    for _ in 0..(rate * seconds) {
        interval.tick().await;
        let request = client
            .post(format!("{}/api/v1/accounts/{account}/payments", server.base))
            .bearer_auth(&token)
            .json(&body);
        writes.push(tokio::spawn(support::send(request)));
    }
    let mut failed = 0;
    for w in writes {
        failed += usize::from(!w.await.unwrap());
    }
    let load_secs = load_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stdin = child.stdin.take();
    drop(stdin);
    let report = tokio::task::block_in_place(|| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    });
    let _ = child.wait();
    let fields: Vec<&str> = report.split_whitespace().collect();
    println!(
        "event latency, commit to receipt, {:.0} payments/s to {listeners} clients: {} deliveries, p50 {} ms, p99 {} ms, max {} ms ({failed} failed writes)",
        (rate * seconds) as f64 / load_secs,
        fields.get(1).unwrap_or(&"?"),
        fields.get(2).unwrap_or(&"?"),
        fields.get(3).unwrap_or(&"?"),
        fields.get(4).unwrap_or(&"?"),
    );
    let _ = std::io::stdout().flush();
}
