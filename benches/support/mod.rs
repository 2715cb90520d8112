//! Shared by the benchmarks: an in-process server on a bench database and a closed-loop
//! HTTP load generator that reports throughput and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrears::app::Application;
use arrears::cli::Cli;
use arrears::config::Settings;
use arrears::domain::document::Entity;
use arrears::seed::SeedPlan;
use arrears::sync::reindex;
use clap::Parser;
use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::oneshot;

/// The allocator the `arrears` binary uses (src/main.rs), so the in-process server
/// measures as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub struct Server {
    pub base: String,
    pub state: arrears::state::AppState,
    _stop: oneshot::Sender<()>,
}

/// Settings for a benchmark: `BENCH_DATABASE_URL` (default database `arrears_bench`),
/// port 0, loose login and rate limits, a fixed JWT secret; otherwise `arrears serve`'s defaults
/// and environment (`DATABASE_MAX_CONNECTIONS`, ...).
pub fn bench_settings() -> Settings {
    let mut settings = Cli::try_parse_from(["arrears", "serve"]).expect("settings parse").settings;
    settings.database_url =
        std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/arrears_bench".to_owned());
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.metrics_bind = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = std::env::temp_dir().join("arrears-bench");
    settings.jwt_secret = Some("bench-secret-bench-secret-bench-secret-01".to_owned());
    // Documents are read by the service's own binary (this one is the benchmark's).
    settings.document_extractor = Some(env!("CARGO_BIN_EXE_arrears").into());
    settings.login_rate_limit_per_ip = u32::MAX;
    settings.lockout_threshold = i32::MAX;
    settings.rate_limit_per_user = u32::MAX;
    settings.rate_limit_per_ip = u32::MAX;
    settings.rate_limit_bulk_per_user = u32::MAX;
    settings.rate_limit_bulk_per_ip = u32::MAX;
    settings
}

/// Every table a benchmark fills, emptied before it runs.
const EMPTY_TABLES: &str = "TRUNCATE accounts, payments, activities, promises, events, event_queue, notifications, jobs,
    idempotency_keys, search_outbox, refresh_tokens, auth_sessions, users, account_day_snapshots, account_snapshot_days
    CASCADE";

/// [`bench_settings`] with a data directory of the benchmark's own
/// (`arrears-bench-<name>` in the temporary directory, emptied), and a pool of
/// `connections` on the bench database, migrated and emptied.
pub async fn fresh(name: &str, connections: u32) -> (Settings, PgPool) {
    let (settings, pool) = existing(name, connections).await;
    let _ = std::fs::remove_dir_all(&settings.data_dir);
    sqlx::query(EMPTY_TABLES).execute(&pool).await.unwrap();
    (settings, pool)
}

/// [`existing`] when `BENCH_SEEDED=1` (measuring again over the data an earlier run
/// left), else [`fresh`]; and which of the two.
pub async fn fresh_unless_seeded(name: &str, connections: u32) -> (Settings, PgPool, bool) {
    let seeded = std::env::var("BENCH_SEEDED").is_ok_and(|v| v == "1");
    let (settings, pool) = match seeded {
        true => existing(name, connections).await,
        false => fresh(name, connections).await,
    };
    (settings, pool, seeded)
}

/// [`fresh`] without emptying anything: the data an earlier run of the benchmark left.
pub async fn existing(name: &str, connections: u32) -> (Settings, PgPool) {
    let mut settings = bench_settings();
    settings.data_dir = std::env::temp_dir().join(format!("arrears-bench-{name}"));
    let pool = arrears::store::connect(&settings.database_url, connections).await.unwrap();
    arrears::store::migrate(&pool).await.unwrap();
    (settings, pool)
}

/// The seed of the search and queue benchmarks: `accounts` accounts over 50 agents,
/// without payments.
pub fn accounts_over_50_agents(accounts: usize) -> SeedPlan {
    SeedPlan {
        accounts,
        payments: 0,
        agents: 50,
        seed: 42,
    }
}

/// Seeds `plan`, analyses, and builds the index of each of `entities` as `arrears
/// reindex` does, printing how long each took: the embedded index in the settings' data
/// directory, or Elasticsearch when the environment configures it
/// (`SEARCH_BACKEND=elasticsearch ELASTICSEARCH_URL=…`, under ELASTICSEARCH_INDEX_PREFIX).
pub async fn seed_and_index(pool: &PgPool, settings: &Settings, plan: SeedPlan, entities: &[Entity]) {
    let seeded = arrears::seed::seed(pool, plan, |_| {}).await.unwrap();
    let secs = seeded.elapsed.as_secs_f64();
    println!(
        "seed: {} accounts and {} payments over {} agents in {secs:.1} s ({:.0} rows/s)",
        seeded.accounts,
        seeded.payments,
        seeded.agents,
        (seeded.accounts + seeded.payments) as f64 / secs
    );
    // Everything the seed loaded, so autovacuum's first pass over millions of fresh rows
    // does not share the machine with the measurements that follow.
    sqlx::query("VACUUM ANALYZE accounts, payments, activities, promises, report_versions")
        .execute(pool)
        .await
        .unwrap();
    let dead_letters = arrears::store::dead_letters::SqlDeadLetters::shared(pool.clone());
    let writer = arrears::search::open::writer(settings, dead_letters).await.unwrap();
    for entity in entities {
        let report = reindex::rebuild(pool, writer.index.as_ref(), *entity, |_| {}).await.unwrap();
        let secs = report.elapsed.as_secs_f64();
        println!(
            "reindex {}: {} documents in {secs:.1} s ({:.0} docs/s)",
            entity.plural(),
            report.documents,
            report.documents as f64 / secs
        );
    }
}

/// Load from a separate process: `wrk` (Debian's package) with `connections` over two
/// threads for `duration`, each request `method url` with the next of `tokens` as its
/// bearer (the two threads take alternate tokens, so concurrent requests are different
/// users'). Prints wrk's latency distribution, or says it was skipped without wrk.
pub async fn wrk(name: &str, method: &str, url: &str, tokens: &[String], connections: usize, duration: Duration) {
    let load = WrkLoad {
        method,
        paths: &[],
        body: None,
    };
    wrk_load(name, url, &load, tokens, connections, duration).await;
}

/// What each request of a [`wrk_load`] is.
pub struct WrkLoad<'a> {
    pub method: &'a str,
    /// Paths taken in turn (the URL's own path when empty).
    pub paths: &'a [String],
    /// A JSON body, as a Lua format string whose `%d` is the request's number.
    pub body: Option<&'a str>,
}

/// What wrk measured.
#[derive(Clone, Copy, Debug)]
pub struct WrkFigures {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// [`wrk`] with a load of its own: several paths, a body. The figures, when wrk ran;
/// panics when an answer was not 2xx or 3xx.
pub async fn wrk_load(
    name: &str,
    url: &str,
    load: &WrkLoad<'_>,
    tokens: &[String],
    connections: usize,
    duration: Duration,
) -> Option<WrkFigures> {
    let list = |items: &mut dyn Iterator<Item = String>| items.map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
    let script = format!(
        "local tokens = {{ {} }}\n\
         local paths = {{ {} }}\n\
         local body = {}\n\
         local threads = 0\n\
         function setup(thread) thread:set('offset', threads); threads = threads + 1 end\n\
         local n = 0\n\
         function request()\n\
           n = n + 1\n\
           local k = n * 2 + offset\n\
           local token = tokens[(k % #tokens) + 1]\n\
           local headers = {{ ['Authorization'] = 'Bearer ' .. token }}\n\
           local path = nil\n\
           if #paths > 0 then path = paths[(k % #paths) + 1] end\n\
           local text = nil\n\
           if body then text = string.format(body, k); headers['Content-Type'] = 'application/json' end\n\
           return wrk.format({:?}, path, headers, text)\n\
         end\n",
        list(&mut tokens.iter().cloned()),
        list(&mut load.paths.iter().cloned()),
        load.body.map_or_else(|| "nil".to_owned(), |b| format!("{b:?}")),
        load.method,
    );
    let path = std::env::temp_dir().join(format!("arrears-bench-wrk-{}.lua", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let mut command = std::process::Command::new("wrk");
    command
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(&path)
        .arg(url);
    let before = CpuTicks::now();
    // The server runs on this process's runtime: wait for wrk off its worker threads.
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap();
    let used = CpuTicks::now().since(before);
    let _ = std::fs::remove_file(&path);
    match output {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("{name} (wrk, a separate process):\n{text}");
            if let Some(requests) = wrk_requests(&text) {
                used.print_per_request(requests);
            }
            assert_eq!(
                wrk_failures(&text),
                0,
                "{name}: answers that were not 2xx or 3xx; figures of refusals measure nothing (an expired token?)"
            );
            wrk_figures(&text)
        }
        Err(err) => {
            println!("{name}: skipped, wrk did not run ({err}); apt-get install wrk");
            None
        }
    }
}

/// Open-loop load from a separate process: `oha` (`cargo install oha`) sending `rate`
/// GET requests a second for `duration`, whatever the answers take (wrk's closed loop
/// measures saturation instead), latencies corrected for coordinated omission; the
/// paths are `base` joined with each of `paths` in turn, all with `token` as bearer.
/// Prints the percentiles, the answers that were not 2xx and the CPU per request, or
/// says it was skipped without oha.
pub async fn oha_rate(name: &str, base: &str, paths: &[String], token: &str, rate: u32, duration: Duration) {
    let list = std::env::temp_dir().join(format!("arrears-bench-oha-{}.txt", std::process::id()));
    let urls: String = paths.iter().map(|p| format!("{base}{p}\n")).collect();
    std::fs::write(&list, urls).unwrap();
    let mut command = std::process::Command::new("oha");
    command
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
            "-w",
            "--urls-from-file",
        ])
        .args(["-q", &rate.to_string(), "-z", &format!("{}s", duration.as_secs()), "-c", "64"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(&list);
    let before = CpuTicks::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap();
    let used = CpuTicks::now().since(before);
    let _ = std::fs::remove_file(&list);
    let report: serde_json::Value = match output {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        Ok(out) => {
            println!("{name}: oha failed: {}", String::from_utf8_lossy(&out.stderr));
            return;
        }
        Err(err) => {
            println!("{name}: skipped, oha did not run ({err}); cargo install oha");
            return;
        }
    };
    let ms = |key: &str| report["latencyPercentiles"][key].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let codes = report["statusCodeDistribution"].as_object().cloned().unwrap_or_default();
    let count = |ok: bool| -> u64 {
        codes
            .iter()
            .filter(|(code, _)| code.starts_with('2') == ok)
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    };
    let errors: u64 = report["errorDistribution"]
        .as_object()
        .map_or(0, |e| e.values().filter_map(|n| n.as_u64()).sum());
    println!(
        "{name} (oha, a separate process, open loop at {rate}/s for {} s): {:.0} req/s answered, p50 {:.1} ms, p99 {:.1} ms, \
         p99.9 {:.1} ms, slowest {:.1} ms; {} answered 2xx, {} other answers, {errors} errors",
        duration.as_secs(),
        report["summary"]["requestsPerSec"].as_f64().unwrap_or(f64::NAN),
        ms("p50"),
        ms("p99"),
        ms("p99.9"),
        report["summary"]["slowest"].as_f64().unwrap_or(f64::NAN) * 1000.0,
        count(true),
        count(false),
    );
    used.print_per_request(count(true) + count(false));
    assert_eq!(
        count(false),
        0,
        "{name}: answers that were not 2xx; figures of refusals measure nothing (an expired token?)"
    );
}

/// The rest of the first line of wrk's `report` that begins with `prefix`, trimmed.
fn wrk_value(report: &str, prefix: &str) -> Option<String> {
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
}

/// Requests/s, the median and the 99th percentile of wrk's `--latency` report.
fn wrk_figures(report: &str) -> Option<WrkFigures> {
    let value = |prefix: &str| wrk_value(report, prefix);
    let duration_ms = |text: &str| {
        let (number, scale) = if let Some(n) = text.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = text.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (text, 1.0)
        };
        number.parse::<f64>().ok().map(|n| n * scale)
    };
    Some(WrkFigures {
        requests_per_second: value("Requests/sec:")?.parse().ok()?,
        p50_ms: duration_ms(&value("50%")?)?,
        p99_ms: duration_ms(&value("99%")?)?,
    })
}

/// The answers of wrk's report that were not 2xx or 3xx.
fn wrk_failures(report: &str) -> u64 {
    wrk_value(report, "Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The request count of wrk's summary line ("12345 requests in 10.00s, ...").
fn wrk_requests(summary: &str) -> Option<u64> {
    summary
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ").and_then(|(n, _)| n.parse().ok()))
}

/// CPU time used so far, in clock ticks (USER_HZ, 100 a second on Linux): by this
/// process (the server), by PostgreSQL's processes, by Java processes (an Elasticsearch
/// node on this machine), and by the whole machine.
#[derive(Clone, Copy, Debug, Default)]
struct CpuTicks {
    server: u64,
    postgres: u64,
    java: u64,
    machine: u64,
}

const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a `/proc/<pid>/stat` line, and the command name.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let (head, tail) = stat.rsplit_once(") ")?;
    let command = head.split_once(" (")?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((command, ticks))
}

impl CpuTicks {
    fn now() -> Self {
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
        let server = process_ticks(&read("/proc/self/stat".as_ref())).map_or(0, |(_, t)| t);
        let of_command = |command: &str| -> u64 {
            std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let stat = read(&entry.path().join("stat"));
                    process_ticks(&stat).filter(|(c, _)| *c == command).map(|(_, t)| t)
                })
                .sum()
        };
        let (postgres, java) = (of_command("postgres"), of_command("java"));
        // "cpu  user nice system idle iowait irq softirq steal ...": all but idle and iowait.
        let machine = read("/proc/stat".as_ref())
            .lines()
            .next()
            .map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .filter_map(|(_, v)| v.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Self {
            server,
            postgres,
            java,
            machine,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            server: self.server.saturating_sub(before.server),
            postgres: self.postgres.saturating_sub(before.postgres),
            java: self.java.saturating_sub(before.java),
            machine: self.machine.saturating_sub(before.machine),
        }
    }

    /// Prints the CPU time a request cost the server, PostgreSQL and everything else
    /// (wrk, other work on the machine), from `/proc` (Linux only; PostgreSQL's
    /// processes that exited meanwhile are not counted).
    fn print_per_request(self, requests: u64) {
        if requests == 0 {
            return;
        }
        let ms = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1000.0 / requests as f64;
        let rest = self.machine.saturating_sub(self.server + self.postgres + self.java);
        let node = if self.java > 0 {
            format!(", Elasticsearch {:.2} ms", ms(self.java))
        } else {
            String::new()
        };
        println!(
            "  CPU per request: server {:.2} ms, PostgreSQL {:.2} ms{node}, the rest of the machine {:.2} ms\n",
            ms(self.server),
            ms(self.postgres),
            ms(rest)
        );
    }
}

/// The number in environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub async fn start(settings: Settings) -> Server {
    let app = Application::build(settings).await.expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Server { base, state, _stop: tx }
}

pub struct Report {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Report {
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn print(&self, name: &str) {
        println!(
            "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests, {} errors, {:.1} s)",
            self.rate(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0),
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64()
        );
    }
}

/// `connections` workers, each starting its next operation when the previous finished,
/// for `duration`. `op(worker, n)` runs operation `n` of a worker and says whether it
/// succeeded.
pub async fn closed_loop<F>(connections: usize, duration: Duration, op: F) -> Report
where
    F: Fn(usize, usize) -> BoxFuture<'static, bool> + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0;
                let mut n = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if !op(worker, n).await {
                        errors += 1;
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Report {
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

/// One HTTP client per worker, so each worker keeps its own connection.
pub fn clients(n: usize) -> Arc<Vec<reqwest::Client>> {
    Arc::new(
        (0..n)
            .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap())
            .collect(),
    )
}

/// Sends a request and reports whether it answered 2xx (the body is read).
pub fn send(request: reqwest::RequestBuilder) -> BoxFuture<'static, bool> {
    Box::pin(async move {
        match request.send().await {
            Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
            _ => false,
        }
    })
}

/// Logs in and returns an access token.
pub async fn token(base: &str, email: &str, password: &str) -> String {
    let body = serde_json::json!({"email": email, "password": password});
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    response.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts `form` to `base` + `route` as `token`, asserts 202, and polls `base` + `poll` and
/// the job's id until the job ends: the time the 202 came (from `started`), and the job.
pub async fn submit_job(
    client: &reqwest::Client,
    (base, token): (&str, &str),
    route: &str,
    form: reqwest::multipart::Form,
    poll: &str,
    started: Instant,
) -> (Duration, serde_json::Value) {
    let response = client
        .post(format!("{base}{route}"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let job: serde_json::Value = response.json().await.unwrap();
    let accepted = started.elapsed();
    let path = format!("{base}{poll}/{}", job["id"].as_str().unwrap());
    loop {
        let state: serde_json::Value = client.get(&path).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        if state["finished_at"].is_string() {
            return (accepted, state);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the manager `email` and signs them in at `base`: their access token.
pub async fn manager_token(pool: &PgPool, base: &str, email: &str) -> String {
    user_token(pool, base, email, arrears::domain::role::Role::Manager).await
}

/// Creates a new admin and signs them in at `base`: their access token.
pub async fn admin_token(pool: &PgPool, base: &str) -> String {
    let email = format!("bench-admin-{}@example.com", uuid::Uuid::new_v4().simple());
    user_token(pool, base, &email, arrears::domain::role::Role::Admin).await
}

/// The password of the users the benches create.
pub const PASSWORD: &str = "bench password 123";

async fn user_token(pool: &PgPool, base: &str, email: &str, role: arrears::domain::role::Role) -> String {
    let hash = arrears::auth::password::hash(PASSWORD.to_owned()).await.unwrap();
    arrears::store::users::insert(pool, email, "Bench", role, &hash).await.unwrap();
    token(base, email, PASSWORD).await
}

/// The median of `values` (NaN when there are none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A figure of `/proc/self/status`, in bytes (`RssAnon:`, `VmRSS:`).
fn status_bytes(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Anonymous resident memory (heap and stacks; the index's mapped files excluded).
pub fn rss_bytes() -> u64 {
    status_bytes("RssAnon:")
}

/// Samples resident memory every 50 ms: `peak_mib()` is the largest anonymous figure
/// seen, `peaks_mib()` that and the largest in all (`VmRSS`: the index's pages mapped
/// from its files too).
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let total = Arc::new(AtomicU64::new(status_bytes("VmRSS:")));
        let (anon, all) = (peak.clone(), total.clone());
        let task = tokio::spawn(async move {
            loop {
                anon.fetch_max(rss_bytes(), Ordering::Relaxed);
                all.fetch_max(status_bytes("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, total, task }
    }

    pub fn peak_mib(self) -> f64 {
        self.peaks_mib().0
    }

    /// The anonymous and the whole resident peaks, in MiB.
    pub fn peaks_mib(self) -> (f64, f64) {
        self.task.abort();
        let mib = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64 / 1048576.0;
        (mib(&self.peak), mib(&self.total))
    }
}

/// Surnames as the seed writes them, and the same with a typo each.
pub const SURNAMES: &[&str] = &[
    "smith",
    "johnson",
    "garcia",
    "alvarez",
    "muller",
    "nguyen",
    "okafor",
    "johansson",
    "rossi",
    "patel",
];
pub const TYPOS: &[&str] = &[
    "smiht", "jonson", "garcai", "alvares", "muler", "nguyn", "okafro", "johanson", "rosi", "patle",
];

/// The first four letters of first names the seed writes.
pub const FIRST_NAME_PREFIXES: &[&str] = &["jame", "mary", "patr", "robe", "jenn", "mich", "lind", "will", "eliz", "davi"];

/// The kinds of search in the mix, as issue 52 defines what agents type: only the
/// filtered list asks for facets.
pub const KINDS: [&str; 4] = [
    "surname with its last letter cut",
    "four-letter first-name prefix",
    "last 4 phone digits",
    "filtered, sorted, faceted list",
];

/// The query string of operation `n` of the mix's kind `kind`.
pub fn kind_query(kind: usize, n: usize) -> String {
    match kind {
        0 => {
            let surname = SURNAMES[n % SURNAMES.len()];
            format!("q={}", &surname[..surname.len() - 1])
        }
        1 => format!("q={}", FIRST_NAME_PREFIXES[n % FIRST_NAME_PREFIXES.len()]),
        2 => format!("q={:04}", (n * 7919) % 10_000),
        _ => "status=delinquent&bucket=30-59&min_balance=1000&sort=-balance&facets=status,bucket".to_owned(),
    }
}

/// A named kind of search: its name, and the query string of its operation `n`.
pub type Kind = (&'static str, fn(usize) -> String);

/// Searches outside the mix, each measured alone: a whole surname with the facets the
/// search screen asks for, and a surname with a typo.
pub const OTHER_KINDS: [Kind; 2] = [
    ("whole surname with facets", |n| {
        format!("q={}&facets=status,bucket", SURNAMES[n % SURNAMES.len()])
    }),
    ("surname with a typo", |n| format!("q={}", TYPOS[n % TYPOS.len()])),
];

/// The query of operation `n`: the mix's kinds in turn.
pub fn search_query(n: usize) -> String {
    kind_query(n % KINDS.len(), n / KINDS.len())
}
