//! Attacks an anonymous client can make on a running server, replayed against the real
//! binary (a child process with its own database), with the server's own figures: its
//! resident memory and open file descriptors from /proc, the size of its metrics scrape,
//! and the latency of an ordinary request while the attack goes on. Each test prints
//! its figures (`cargo test --test attacks -- --nocapture`).

// Shared with the bombs test, which uses the rest of it.
#[allow(dead_code)]
#[path = "support/bombs.rs"]
mod bombs;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The server under attack; killed when dropped.
struct Server {
    child: Child,
    database: String,
    address: SocketAddr,
    metrics: SocketAddr,
    data_dir: std::path::PathBuf,
}

/// The binary under attack: `ARREARS_BIN` (CI attacks the release build that ships),
/// else the one Cargo built for this test.
fn arrears_bin() -> std::path::PathBuf {
    std::env::var_os("ARREARS_BIN").map_or_else(|| env!("CARGO_BIN_EXE_arrears").into(), Into::into)
}

/// The PostgreSQL server `DATABASE_URL` names (else the local one), with `database`.
fn database_url(database: &str) -> String {
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/arrears".into());
    let base = server.split('?').next().unwrap_or_default();
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL has a database path");
    format!("{server}/{database}")
}

/// The address after `"addr":"` on the first log line with `message`.
fn logged_addr(line: &str, message: &str) -> Option<SocketAddr> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    (entry["message"] == message).then(|| entry["addr"].as_str()?.parse().ok())?
}

impl Server {
    /// Starts the binary bound to port 0 (its API and its metrics) and reads the
    /// addresses it got from its log: no port is found free first and bound later.
    async fn start(env: &[(&str, &str)]) -> Server {
        let name = format!("arrears_test_{}", uuid::Uuid::new_v4().simple());
        let database = database_url(&name);
        let data_dir = std::env::temp_dir().join(&name);
        let mut command = Command::new(arrears_bin());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &database)
            .env("BIND", "127.0.0.1:0")
            .env("METRICS_BIND", "127.0.0.1:0")
            .env("DATA_DIR", &data_dir)
            .env("JWT_SECRET", "attack-test-secret-attack-test-secret-0123")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "error,arrears::app=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the arrears binary starts");
        let log = child.stderr.take().unwrap();
        let (sender, addresses) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            // Read to the end, so the server never blocks on a full pipe.
            let (mut api, mut metrics, mut sender) = (None, None, Some(sender));
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                api = api.or_else(|| logged_addr(&line, "listening"));
                metrics = metrics.or_else(|| logged_addr(&line, "serving metrics"));
                if let (Some(api), Some(metrics)) = (api, metrics)
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send((api, metrics));
                }
            }
        });
        let (address, metrics) = addresses
            .recv_timeout(Duration::from_secs(120))
            .expect("the server logs its addresses within 120 s");
        let server = Server {
            child,
            database,
            address,
            metrics,
            data_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = reqwest::Client::new();
        while client.get(server.url("/health/live")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not answer within 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// Creates a user with the CLI, as an operator does, and signs them in.
    async fn token(&self, role: &str) -> String {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "attack-test-password-1";
        let database = self.database.clone();
        let mut create = Command::new(arrears_bin())
            .args(["users", "create", "--email", &email, "--name", "Attack Test", "--role", role])
            .env("DATABASE_URL", &database)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(create.stdin.take().unwrap(), "{password}").unwrap();
        assert!(create.wait().unwrap().success(), "arrears users create");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().expect("signed in").to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }

    async fn scrape(&self) -> String {
        // From an address of its own: the attacker's has used its rate limit up.
        let answer = reqwest::Client::builder()
            .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "the metrics listener answers");
        answer.text().await.unwrap()
    }

    /// How long an ordinary request takes, from another loopback address than the
    /// attacker's (Linux answers all of 127.0.0.0/8).
    async fn ordinary_request(&self) -> Duration {
        let client = reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let started = Instant::now();
        let answer = client
            .get(self.url("/health/live"))
            .send()
            .await
            .expect("an ordinary request is answered");
        assert_eq!(answer.status(), 200);
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_do_not_grow_the_metrics() {
    // A small per-address budget, so most of the attack is answered 429.
    let server = Server::start(&[("RATE_LIMIT_PER_IP", "2000")]).await;
    let client = reqwest::Client::new();
    for _ in 0..50 {
        client.get(server.url("/health/live")).send().await.unwrap();
    }
    let rss_before = server.status_kib("VmRSS:");
    let started = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(0..20_000u32)
        .map(|n| {
            // Not a UUID: ids would have been folded into `{id}` even before.
            let random = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..20]);
            let path = match n % 4 {
                0 => format!("/docs/{random}"),
                1 => format!("/console/{random}/{random}"),
                2 => format!("/api/v1/{random}/{random}"),
                _ => format!("/{random}"),
            };
            let request = client.get(server.url(&path));
            async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let took = started.elapsed();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let scrape = server.scrape().await;
    let rss_after = server.status_kib("VmRSS:");
    let routes: std::collections::BTreeSet<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("arrears_http_requests_total"))
        .filter_map(|l| l.split("route=\"").nth(1).and_then(|r| r.split('"').next()))
        .collect();
    println!(
        "20000 random paths in {:.1} s ({throttled} answered 429): server RSS {} -> {} MiB, metrics scrape {} KiB, {} route labels",
        took.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024,
        scrape.len() / 1024,
        routes.len()
    );
    assert!(throttled > 10_000, "the attack ran into the rate limit ({throttled} 429s)");
    println!("route labels: {routes:?}");
    assert!(routes.len() <= 12, "route labels come from a bounded set: {routes:?}");
    assert!(scrape.len() < 256 * 1024, "the scrape stays small: {} bytes", scrape.len());
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "the server grew by {} MiB",
        rss_after.saturating_sub(rss_before) / 1024
    );
}

/// Reads until the server closes the connection; how long that took (or `None` when it
/// is still open at `limit`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn connect_from(address: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{address}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    let server = Server::start(&[
        ("HTTP_HEADER_TIMEOUT_S", "2"),
        ("HTTP_BODY_GRACE_S", "2"),
        ("HTTP_BODY_MIN_BYTES_PER_S", "1024"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "64"),
        ("MAX_CONNECTIONS", "200"),
    ])
    .await;
    let files_idle = server.open_files();

    // A header line a second: cut off when the header timeout ends.
    let mut slow_headers = connect_from("127.0.0.1", server.address).await;
    slow_headers.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for n in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if slow_headers.write_all(format!("X-Slow-{n}: 1\r\n").as_bytes()).await.is_err() {
                break;
            }
        }
        slow_headers
    });
    let ordinary_during = server.ordinary_request().await;
    let mut slow_headers = trickle.await.unwrap();
    let headers_closed = closed_within(&mut slow_headers, Duration::from_secs(1))
        .await
        .map(|_| started.elapsed());

    // An idle keep-alive connection after a request: closed by the same timeout.
    let mut idle = connect_from("127.0.0.1", server.address).await;
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 1024];
    assert!(idle.read(&mut answer).await.unwrap() > 0);
    let idle_closed = closed_within(&mut idle, Duration::from_secs(10)).await;

    // A body a byte a second: the request ends once the body falls behind its pace.
    let mut slow_body = connect_from("127.0.0.1", server.address).await;
    slow_body
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut body_cut = None;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let written = slow_body.write_all(b" ").await;
        let mut peek = [0u8; 1024];
        let answered = tokio::time::timeout(Duration::from_millis(10), slow_body.read(&mut peek)).await;
        if written.is_err() || matches!(answered, Ok(Ok(_)) | Ok(Err(_))) {
            body_cut = Some(started.elapsed());
            break;
        }
    }

    // Many connections from one address: those past its share are closed on arrival,
    // while other addresses are still served.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect_from("127.0.0.1", server.address).await);
    }
    let mut over = connect_from("127.0.0.1", server.address).await;
    let over_closed = closed_within(&mut over, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let files_held = server.open_files();
    let ordinary_capped = server.ordinary_request().await;
    drop(held);

    println!(
        "slow headers cut off after {headers_closed:?} (ordinary request meanwhile {ordinary_during:?}); idle keep-alive closed after {idle_closed:?}; \
         a body byte a second cut after {body_cut:?}; the 65th connection from one address closed after {over_closed:?}; \
         server file descriptors {files_idle} idle, {files_held} with 64 held; ordinary request then {ordinary_capped:?}"
    );
    assert!(
        headers_closed.is_some_and(|d| d < Duration::from_secs(8)),
        "a header line a second is cut off: {headers_closed:?}"
    );
    assert!(idle_closed.is_some_and(|d| d < Duration::from_secs(5)), "{idle_closed:?}");
    assert!(body_cut.is_some_and(|d| d < Duration::from_secs(12)), "{body_cut:?}");
    assert!(over_closed.is_some_and(|d| d < Duration::from_secs(1)), "{over_closed:?}");
    assert!(files_held < files_idle + 64 + 16, "{files_held} descriptors");
    assert!(ordinary_during < Duration::from_secs(2) && ordinary_capped < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_spreadsheet_bombs_at_once_stay_within_the_import_slots() {
    let server = Server::start(&[]).await;
    let token = server.token("manager").await;
    let bomb = bombs::shared_string_flood(999_000, 200);
    let idle = server.status_kib("VmRSS:");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let uploads = (0..16).map(|n| {
        let form = reqwest::multipart::Form::new().text("mode", "dry_run").part(
            "file",
            reqwest::multipart::Part::bytes(bomb.clone()).file_name(format!("bomb-{n}.xlsx")),
        );
        client
            .post(server.url("/api/v1/imports"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    });
    let (answers, ordinary) = tokio::join!(futures_util::future::join_all(uploads), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.ordinary_request().await
    });
    let statuses: Vec<u16> = answers.into_iter().map(|a| a.map_or(0, |a| a.status().as_u16())).collect();
    let peak = server.status_kib("VmHWM:");
    let busy = statuses.iter().filter(|s| **s == 503).count();
    println!(
        "16 shared-string bombs ({} KiB each) at once: answered {statuses:?} in {:.1} s ({busy} told to come back); server RSS {} MiB idle, peak {} MiB (+{} MiB); an ordinary request meanwhile {ordinary:?}",
        bomb.len() / 1024,
        started.elapsed().as_secs_f64(),
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024
    );
    assert!(statuses.iter().all(|s| [422, 503, 202].contains(s)), "{statuses:?}");
    // Two slots of at most 300 MiB each, and the buffered uploads (a few hundred KiB).
    assert!(
        peak.saturating_sub(idle) < 700 * 1024,
        "the server's peak grew by {} MiB",
        peak.saturating_sub(idle) / 1024
    );
}

/// Median of a few ordinary reads: a viewer's first page of accounts, from another
/// address than the attacker's.
async fn ordinary_reads(server: &Server, token: &str) -> Duration {
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        let answer = client
            .get(server.url("/api/v1/accounts?page_size=25"))
            .bearer_auth(token)
            .send()
            .await
            .expect("an ordinary read is answered");
        assert_eq!(answer.status(), 200);
        answer.bytes().await.unwrap();
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    took.sort();
    took[took.len() / 2]
}

/// One attacking socket: signs in, subscribes, and asks for `replay since 0` again as
/// soon as each answer ends, reconnecting when it is closed, until `until`. Returns
/// (replays answered, replays refused, sockets closed on it); `answers` counts the
/// answers of every attacking socket as they come.
async fn replay_flood(server: SocketAddr, token: String, until: Instant, answers: Arc<AtomicU32>) -> (u32, u32, u32) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let message = |event: &str, data: serde_json::Value| Message::text(serde_json::json!({"event": event, "data": data}).to_string());
    let (mut answered, mut refused, mut closed) = (0, 0, 0);
    while Instant::now() < until {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(format!("ws://{server}/api/v1/ws")).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = socket.send(message("auth", serde_json::json!({"token": token}))).await;
        let _ = socket
            .send(message("subscribe", serde_json::json!({"topics": ["payments", "accounts"]})))
            .await;
        let _ = socket.send(message("replay", serde_json::json!({"since": 0}))).await;
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let done = text.contains("\"replay.done\"");
                    let error = text.contains("\"error\"");
                    answered += u32::from(done);
                    refused += u32::from(error);
                    answers.fetch_add(u32::from(done || error), Ordering::Relaxed);
                    if (done || error) && socket.send(message("replay", serde_json::json!({"since": 0}))).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        closed += 1;
    }
    (answered, refused, closed)
}

/// Issue 44, item 4: a user who may read nothing, replaying `since 0` on eight sockets
/// as fast as the server answers, made a viewer's ordinary reads 20x slower. Replays
/// now cost what the user may see, are budgeted per user, and a socket's messages are
/// paced; ordinary reads stay within a few times their quiet latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_on_eight_sockets_do_not_slow_ordinary_reads() {
    let server = Server::start(&[]).await;
    let pool = sqlx::PgPool::connect(&server.database).await.unwrap();
    sqlx::query("INSERT INTO events (kind, topics, data) SELECT 'payment.created', '{payments}', '{\"note\": \"x\"}' FROM generate_series(1, 200000)")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_queue")
        .fetch_one(&pool)
        .await
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "the relay publishes the seeded events within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let viewer = server.token("viewer").await;
    let attacker = server.token("pending").await;
    let quiet = ordinary_reads(&server, &viewer).await;
    let until = Instant::now() + Duration::from_secs(12);
    let answers = Arc::new(AtomicU32::new(0));
    let sockets: Vec<_> = (0..8)
        .map(|_| tokio::spawn(replay_flood(server.address, attacker.clone(), until, answers.clone())))
        .collect();
    // The attack is under way once its sockets have been answered, on average, twice.
    while answers.load(Ordering::Relaxed) < 16 {
        assert!(Instant::now() < until, "the attacking sockets were answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attacked = ordinary_reads(&server, &viewer).await;
    let mut totals = (0, 0, 0);
    for socket in sockets {
        let (answered, refused, closed) = socket.await.unwrap();
        totals = (totals.0 + answered, totals.1 + refused, totals.2 + closed);
    }
    println!(
        "ordinary read median {:.1} ms quiet, {:.1} ms while 8 sockets replay since 0 over 200,000 events \
         ({} replays answered, {} refused, {} sockets closed)",
        quiet.as_secs_f64() * 1000.0,
        attacked.as_secs_f64() * 1000.0,
        totals.0,
        totals.1,
        totals.2
    );
    assert!(totals.0 + totals.1 > 30, "the attack ran: {totals:?}");
    assert!(totals.0 <= 30, "at most a minute's budget of replays is answered: {totals:?}");
    assert!(
        attacked <= quiet * 4 + Duration::from_millis(20),
        "ordinary reads slowed from {quiet:?} to {attacked:?}"
    );
}
