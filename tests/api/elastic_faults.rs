//! The faults of issue 74, on a real Elasticsearch 8.19 node: the node killed mid-sync
//! and started again, frozen for 30 s, blocked at the flood stage (and blocked by an
//! operator), an index of the previous release meeting this build, and a promote in the
//! middle of an export. Through HTTP, against the real PostgreSQL and the real node.
//!
//! A fault that kills, freezes or blocks a whole node starts a node of its own
//! ([`Node`]: `bin/elasticsearch` on a port of its own, with a data directory that a
//! restart keeps); the others work on the node at ELASTICSEARCH_URL under a prefix of
//! their own. Where a test must act at one moment of a request (the node frozen while a
//! bulk request is on its way, a promote between two pages of an export's scan), a
//! [`Proxy`] between the application and the node holds that request until the test
//! lets it go, and counts what the application sends. `bin/test-elastic` runs them one
//! at a time (`--test-threads 1`).

use std::collections::{BTreeMap, HashSet};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrears::config::{SearchBackend, Settings};
use arrears::domain::document::Entity;
use arrears::domain::role::Role;
use arrears::search::SearchIndex;
use arrears::search::elastic::{ElasticConfig, ElasticIndex, templates};
use arrears::store::dead_letters::SqlDeadLetters;
use arrears::store::rebuild_locks;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use warp::Filter;

use crate::elastic_upgrades::{dead_letters, queued};
use crate::helpers::{
    Arrears, TestApp, TestUser, assert_problem, cluster_request, drop_cluster_prefix, names, on_test_cluster, spawn_app_with, status_json,
    test_settings,
};
use crate::scripted_es::Received;

/// The ports of the nodes these tests start (HTTP; each node's transport port is 100
/// above): none of them is a port `bin/test` or a developer's node uses.
const KILLED_NODE: u16 = 9371;
const FROZEN_NODE: u16 = 9372;
const FLOODED_NODE: u16 = 9373;
/// A cluster of two: the first node forms it, the second joins as a data node.
const REPLICATED_NODES: [u16; 2] = [9374, 9375];

/// Where `bin/elasticsearch` keeps each node's pid file (its `ES_STATE` default).
const NODE_STATE: &str = "/tmp/arrears-elasticsearch";

fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bin/elasticsearch")
}

/// A node of the test's own, started by `bin/elasticsearch` (no security, a 512 MB
/// heap) over a data directory of its own, which a restart keeps; stopped, and its data
/// removed, when dropped.
struct Node {
    port: u16,
    url: String,
    data: PathBuf,
    /// Lines added to its `elasticsearch.yml`.
    settings: &'static str,
    /// `bin/elasticsearch`'s ES_CLUSTER: empty for a single node.
    cluster: String,
}

impl Node {
    async fn start(port: u16) -> Node {
        Self::start_with(port, "").await
    }

    async fn start_with(port: u16, settings: &'static str) -> Node {
        Self::start_as(port, settings, String::new()).await
    }

    /// A node of a cluster of several: `first` forms it, a node's HTTP port joins it.
    async fn start_in_cluster(port: u16, cluster: &str) -> Node {
        Self::start_as(port, "", cluster.to_owned()).await
    }

    async fn start_as(port: u16, settings: &'static str, cluster: String) -> Node {
        let data = std::env::temp_dir().join(format!("arrears-fault-node-{port}-{}", Uuid::new_v4().simple()));
        let node = Node {
            port,
            url: format!("http://127.0.0.1:{port}"),
            data,
            settings,
            cluster,
        };
        // One this test left when its process was killed before it could stop it.
        node.stop();
        for taken in [port, port + 100] {
            assert!(
                TcpStream::connect(("127.0.0.1", taken)).is_err(),
                "port {taken} is taken by a process these tests did not start"
            );
        }
        node.run().await;
        node
    }

    /// Runs `bin/elasticsearch` for this node, which answers once the node is yellow.
    async fn run(&self) {
        let output = tokio::process::Command::new(node_script())
            .env("ES_PORT", self.port.to_string())
            .env("ES_DATA", &self.data)
            .env("ES_HEAP", "512m")
            .env("ES_SETTINGS", self.settings)
            .env("ES_CLUSTER", &self.cluster)
            .env_remove("ES_SECURITY")
            .env_remove("ES_STATE")
            .output()
            .await
            .expect("bin/elasticsearch runs");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "bin/elasticsearch on port {}: {printed}{}",
            self.port,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            printed.trim().lines().last(),
            Some(self.url.as_str()),
            "the script prints the node's URL"
        );
    }

    /// The Java process of the node (the pid file the script keeps).
    fn pid(&self) -> String {
        let file = format!("{NODE_STATE}/{}.pid", self.port);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_owned()
    }

    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} reached the node on port {}", self.port);
    }

    /// Kills the node at once (SIGKILL), as a crash or the kernel's OOM killer does, and
    /// waits until its process is gone.
    async fn kill(&self) {
        let pid = self.pid();
        self.signal("KILL");
        until("the killed node's process is gone", Duration::from_secs(10), || async {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
    }

    /// Starts it again over the same data.
    async fn restart(&self) {
        self.run().await;
    }

    fn stop(&self) {
        let _ = std::process::Command::new(node_script())
            .arg("stop")
            .env("ES_PORT", self.port.to_string())
            .env_remove("ES_STATE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().json().await.unwrap_or(Value::Null)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The script resumes a frozen node before it stops it.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

type Rule = Box<dyn Fn(&Received) -> bool + Send + Sync>;

/// What the proxy holds: the requests `rule` matches, after the first `pass` of them.
struct Hold {
    rule: Rule,
    pass: usize,
}

/// A pass-through HTTP proxy between the application and a node. It records the API of
/// every request (as Elastic's specification names it), and holds the requests a test
/// asks it to hold until the test lets them go. Answers are the node's, status, type
/// and body.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<(Instant, &'static str)>>>,
    hold: Arc<Mutex<Option<Hold>>>,
    held: Arc<AtomicUsize>,
    released: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Headers of one connection, not of the request.
const HOP_BY_HOP: [&str; 5] = ["host", "content-length", "connection", "transfer-encoding", "accept-encoding"];

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let seen: Arc<Mutex<Vec<(Instant, &'static str)>>> = Arc::default();
        let hold: Arc<Mutex<Option<Hold>>> = Arc::default();
        let held = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(tokio::sync::watch::channel(true).0);
        let (log, rules, holding, gate) = (seen.clone(), hold.clone(), held.clone(), released.clone());
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: Method, path: warp::path::FullPath, query: String, headers: warp::http::HeaderMap, body: bytes::Bytes| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    let (log, rules, holding, gate) = (log.clone(), rules.clone(), holding.clone(), gate.clone());
                    async move {
                        let target = if query.is_empty() {
                            path.as_str().to_owned()
                        } else {
                            format!("{}?{query}", path.as_str())
                        };
                        let received = Received {
                            method: method.to_string(),
                            path: target.clone(),
                            body: String::new(),
                            authorization: None,
                            content_type: None,
                            accept: None,
                            at: Instant::now(),
                            refused: None,
                        };
                        log.lock().unwrap().push((received.at, received.api()));
                        let held = match rules.lock().unwrap().as_mut() {
                            Some(hold) if (hold.rule)(&received) => {
                                if hold.pass > 0 {
                                    hold.pass -= 1;
                                    false
                                } else {
                                    true
                                }
                            }
                            _ => false,
                        };
                        if held {
                            let mut open = gate.subscribe();
                            holding.fetch_add(1, Ordering::SeqCst);
                            let _ = open.wait_for(|open| *open).await;
                        }
                        let mut request = client.request(method, format!("{upstream}{target}")).body(body);
                        for (name, value) in &headers {
                            if !HOP_BY_HOP.contains(&name.as_str()) {
                                request = request.header(name, value);
                            }
                        }
                        let mut answer = http::Response::new(Vec::new());
                        match request.send().await {
                            Ok(response) => {
                                *answer.status_mut() = response.status();
                                if let Some(kind) = response.headers().get("content-type") {
                                    answer.headers_mut().insert("content-type", kind.clone());
                                }
                                *answer.body_mut() = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                            }
                            Err(err) => {
                                *answer.status_mut() = StatusCode::BAD_GATEWAY;
                                *answer.body_mut() = err.to_string().into_bytes();
                            }
                        }
                        answer
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Proxy {
            url,
            seen,
            hold,
            held,
            released,
        }
    }

    /// Holds the requests `rule` matches, after the first `pass` of them, until
    /// [`Proxy::release`].
    fn hold(&self, pass: usize, rule: impl Fn(&Received) -> bool + Send + Sync + 'static) {
        self.released.send_replace(false);
        self.held.store(0, Ordering::SeqCst);
        *self.hold.lock().unwrap() = Some(Hold {
            rule: Box::new(rule),
            pass,
        });
    }

    /// How many requests wait.
    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets every held request go on, and holds no more.
    fn release(&self) {
        *self.hold.lock().unwrap() = None;
        self.released.send_replace(true);
    }

    /// The requests received since `since`, by API.
    fn since(&self, since: Instant) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for (at, api) in self.seen.lock().unwrap().iter() {
            if *at >= since {
                *counts.entry(*api).or_default() += 1;
            }
        }
        counts
    }
}

/// Deletes a test's indices and templates on the node at ELASTICSEARCH_URL when dropped
/// (for an application that reaches that node through a [`Proxy`], which [`TestApp`]
/// does not know for the test cluster).
struct DropPrefix(String);

impl Drop for DropPrefix {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(drop_cluster_prefix(&prefix));
            Some(())
        });
        let _ = dropping.join();
    }
}

/// Settings of an application on the Elasticsearch at `url` (a node of the test's own,
/// without security, or a proxy in front of one), under an index prefix of its own.
fn on_node(settings: &mut Settings, url: &str) {
    settings.search_backend = SearchBackend::Elasticsearch;
    settings.elasticsearch_url = Some(url.to_owned());
    settings.elasticsearch_username = None;
    settings.elasticsearch_password = None;
    settings.elasticsearch_api_key = None;
    settings.elasticsearch_ca_file = None;
    settings.elasticsearch_index_prefix = format!("arrears-fault-{}", &Uuid::new_v4().simple().to_string()[..12]);
    // A request to a test's own node waits as long as in service, not as on the shared
    // cluster: how the waits add up is what these tests are about.
    settings.elasticsearch_timeout_ms = arrears::config::DEFAULT_ELASTICSEARCH_TIMEOUT_MS;
}

/// Runs `arrears <args>` as an operator does, on `settings`' database and cluster (its
/// URL, prefix and credentials), to its end; off the test's runtime, which serves the
/// application (and any proxy) meanwhile.
async fn arrears(args: &[&str], settings: &Settings) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut env = vec![
            ("SEARCH_BACKEND", "elasticsearch".to_owned()),
            ("ELASTICSEARCH_URL", settings.elasticsearch_url.clone().unwrap_or_default()),
            ("ELASTICSEARCH_INDEX_PREFIX", settings.elasticsearch_index_prefix.clone()),
        ];
        if let Some(user) = &settings.elasticsearch_username {
            env.push(("ELASTICSEARCH_USERNAME", user.clone()));
            env.push((
                "ELASTICSEARCH_PASSWORD",
                settings.elasticsearch_password.clone().unwrap_or_default(),
            ));
        }
        if let Some(key) = &settings.elasticsearch_api_key {
            env.push(("ELASTICSEARCH_API_KEY", key.clone()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Arrears::output(&args, &settings, &env)
    })
    .await
    .unwrap()
}

/// `arrears verify` finds the index and SQL the same, every entity.
async fn assert_verified(settings: &Settings) {
    let verified = arrears(&["verify"], settings).await;
    let printed = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "arrears verify: {printed}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(printed.contains("accounts: index matches SQL"), "{printed}");
}

/// Polls `check` every 100 ms until it holds, failing after `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    status_json(app.request(Method::GET, "/health/ready", None).send().await.unwrap()).await
}

/// The first readiness answer that `holds` accepts, polling every 100 ms; fails after
/// `within`, with the last answer.
async fn readiness_when(app: &TestApp, what: &str, within: Duration, holds: impl Fn(StatusCode, &Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, ready) = readiness(app).await;
        if holds(status, &ready) {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for readiness: {what}; it answers {status} {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn queued_accounts(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM search_outbox WHERE entity = 'account'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Inserts `rows` accounts numbered `<tag>-1`, `<tag>-2`... in one statement, as an
/// import does (each one queued for the index by the outbox trigger).
async fn insert_accounts(pool: &PgPool, tag: &str, rows: i64) {
    sqlx::query(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency)
         SELECT gen_random_uuid(), $1 || '-' || g, $1 || ' Person ' || g, 100, 100, 'USD' FROM generate_series(1, $2) g",
    )
    .bind(tag)
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
}

/// Creates the account of debtor `name` through the API, answered once it is searchable.
async fn indexed_account(app: &TestApp, user: &TestUser, name: &str) {
    let body = json!({ "debtor_name": name, "original_balance": "10.00", "currency": "USD" });
    let (status, created) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&user.token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

/// Whether a search for `name` through the API finds it.
async fn found(app: &TestApp, user: &TestUser, name: &str) -> bool {
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("q", name).finish();
    let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}"), &user.token).await).await;
    status == StatusCode::OK && names(&page).iter().any(|n| n == name)
}

/// What a user relies on once a fault has passed: the changes that waited in the outbox
/// drain (within `drain`), the account `written` meanwhile is found, readiness is ok
/// again, and `arrears verify` finds the index and the database agree.
async fn recovers(app: &TestApp, user: &TestUser, written: &str, drain: Duration) {
    until("the outbox drains", drain, || async { queued(&app.pool).await == 0 }).await;
    until("the account written during the fault is found", Duration::from_secs(10), || {
        found(app, user, written)
    })
    .await;
    // A hold the worker learns has passed only when it tries the entity again (every
    // 10 s): another process's worker may have indexed the held changes first.
    readiness_when(app, "ok again", Duration::from_secs(15), |_, ready| ready["status"] == "ok").await;
    assert_verified(&app.settings).await;
}

/// The indices an alias of the node at ELASTICSEARCH_URL points at.
async fn behind(alias: &str) -> Vec<String> {
    let answer: Value = cluster_request(&reqwest::Client::new(), Method::GET, &format!("/_alias/{alias}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    let mut indices: Vec<String> = answer.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    indices.sort();
    indices
}

/// A user relies on a crash of the search cluster costing no change: the node killed
/// (SIGKILL) while the sync writes a batch to it, and started again over its data. While
/// it is down readiness says so (a load balancer stops sending searches), writes still go
/// to PostgreSQL and wait in the outbox; once it is back, readiness is ok again, every
/// change reaches the index and `arrears verify` finds it the same as SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_node_killed_mid_sync_and_started_again_loses_nothing() {
    let node = Node::start(KILLED_NODE).await;
    let app = spawn_app_with(|s| on_node(s, &node.url)).await;
    let prefix = app.settings.elasticsearch_index_prefix.clone();
    let manager = app.user(Role::Manager).await;
    // One outbox batch (10,000 rows) goes out as five bulk requests of 2,000.
    const ROWS: i64 = 15_000;
    insert_accounts(&app.pool, "KILLED", ROWS).await;
    let indexing = format!("/{prefix}-accounts/_stats/indexing");
    until(
        "the node has taken a bulk request of the batch",
        Duration::from_secs(60),
        || async {
            let stats = node.json(Method::GET, &indexing, None).await;
            stats
                .pointer("/_all/primaries/indexing/index_total")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                >= 2_000
        },
    )
    .await;
    node.kill().await;
    let waiting = queued(&app.pool).await;
    assert!(waiting > 0, "killed before the batch was committed: {waiting} changes wait");

    let (status, down) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "readiness while the node is down: {down}");
    let started = Instant::now();
    let refused = app.get("/api/v1/accounts?q=Killed", &manager.token).await;
    assert_problem(refused, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(started.elapsed() < Duration::from_secs(2), "a refused connection answers at once");
    app.account(&manager.token, json!({ "debtor_name": "Written While Down" })).await;

    node.restart().await;
    until("readiness is ok again", Duration::from_secs(60), || async {
        let (status, ready) = readiness(&app).await;
        status == StatusCode::OK && ready["status"] == "ok"
    })
    .await;
    until("the outbox drains", Duration::from_secs(60), || async {
        queued(&app.pool).await == 0
    })
    .await;
    until(
        "the account written while the node was down is found",
        Duration::from_secs(10),
        || found(&app, &manager, "Written While Down"),
    )
    .await;
    assert_verified(&app.settings).await;
    assert_eq!(dead_letters(&app.pool).await, 0);
    let count = node.json(Method::GET, &format!("/{prefix}-accounts/_count"), None).await;
    assert_eq!(count["count"], ROWS + 1, "every account once: {count}");
}

/// The oldest open transaction on the application's database (other than the asker's):
/// its age, its state and its last statement.
async fn oldest_transaction(pool: &PgPool) -> Option<(f64, String)> {
    sqlx::query_as::<_, (f64, String)>(
        "SELECT extract(epoch FROM clock_timestamp() - xact_start)::float8,
                coalesce(state, '') || ': ' || left(query, 160)
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
         ORDER BY xact_start LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// A user relies on a node that stops answering (a long garbage collection, a frozen
/// VM: here SIGSTOP for the 30 s, then SIGCONT) costing bounded waits: a search
/// answers 503 problem+json within the configured request timeout instead of hanging,
/// readiness within its 2 s, writes at once; the application does not storm the node
/// with requests meanwhile (at most one at a time from the sync, each waiting its
/// timeout); the sync drains once the node answers again. And no transaction of the
/// sync stays open longer than the bulk request timeout and a margin: a batch waiting on
/// the cluster must not hold its outbox rows' locks and the database's xmin horizon
/// (which stops vacuum everywhere) for as long as the cluster is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_frozen_node_costs_bounded_waits_and_holds_no_transaction_open() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    const FREEZE: Duration = Duration::from_secs(30);
    const MARGIN: Duration = Duration::from_secs(2);
    let node = Node::start(FROZEN_NODE).await;
    let proxy = Proxy::start(&node.url).await;
    let app = spawn_app_with(|s| {
        on_node(s, &proxy.url);
        s.elasticsearch_timeout_ms = TIMEOUT.as_millis() as u64;
    })
    .await;
    let manager = app.user(Role::Manager).await;
    indexed_account(&app, &manager, "Before The Freeze").await;

    // The node freezes while a bulk request of the sync is on its way to it.
    proxy.hold(0, |r| r.api() == "bulk");
    insert_accounts(&app.pool, "FROZEN", 2_000).await;
    until("a bulk request is on its way", Duration::from_secs(30), || async {
        proxy.held() > 0
    })
    .await;
    node.signal("STOP");
    let frozen = Instant::now();
    proxy.release();
    let watching = tokio::spawn({
        let pool = app.pool.clone();
        async move {
            let mut oldest = (0.0, String::new());
            while frozen.elapsed() < FREEZE {
                if let Some(open) = oldest_transaction(&pool).await
                    && open.0 > oldest.0
                {
                    oldest = open;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            oldest
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let search = app.get("/api/v1/accounts?q=Before", &manager.token).await;
    let searched = started.elapsed();
    assert_problem(search, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let started = Instant::now();
    let (status, ready) = readiness(&app).await;
    let probed = started.elapsed();
    let started = Instant::now();
    app.account(&manager.token, json!({ "debtor_name": "Written While Frozen" })).await;
    let written = started.elapsed();
    tokio::time::sleep_until((frozen + FREEZE).into()).await;
    let sent = proxy.since(frozen);
    node.signal("CONT");
    let (oldest, what) = watching.await.unwrap();

    assert!(
        searched <= TIMEOUT + Duration::from_secs(1),
        "the search answered after {searched:?}"
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "readiness while frozen: {ready}");
    assert!(probed <= Duration::from_millis(2_500), "readiness answered after {probed:?}");
    assert!(written < TIMEOUT, "a write waits for no index: {written:?}");
    // Each request to a frozen node waits its whole timeout: one at a time, the sync
    // sends at most one per timeout (the test's own search and readiness probe aside).
    let of_sync: usize = sent
        .iter()
        .filter(|(api, _)| !matches!(**api, "search" | "cluster.health"))
        .map(|(_, n)| n)
        .sum();
    let bound = (FREEZE.as_secs() / TIMEOUT.as_secs()) as usize + 2;
    assert!(of_sync <= bound, "{of_sync} requests in {FREEZE:?} (at most {bound}): {sent:?}");

    until("the outbox drains after the freeze", Duration::from_secs(60), || async {
        queued(&app.pool).await == 0
    })
    .await;
    until("the account written while frozen is found", Duration::from_secs(10), || {
        found(&app, &manager, "Written While Frozen")
    })
    .await;
    let mut direct = app.settings.clone();
    direct.elasticsearch_url = Some(node.url.clone());
    assert_verified(&direct).await;
    assert_eq!(dead_letters(&app.pool).await, 0);
    assert!(
        oldest <= (TIMEOUT + MARGIN).as_secs_f64(),
        "a transaction stayed open {oldest:.1} s while the node was frozen (the bulk request timeout is {TIMEOUT:?}): {what}"
    );
}

/// Sets (`true`) or lifts (`null`) `block` on every index of `prefix` at `node`.
async fn set_block(node: &Node, prefix: &str, block: &str, value: Value) {
    let answer = node
        .json(Method::PUT, &format!("/{prefix}-*/_settings"), Some(json!({ block: value })))
        .await;
    assert_eq!(answer["acknowledged"], true, "{block}: {answer}");
}

/// A user relies on a cluster that ran out of disk losing no change: Elasticsearch puts
/// the flood-stage block (`index.blocks.read_only_allow_delete`, refused writes answer
/// 429) on the indices, the sync waits with every change in the outbox (none
/// dead-lettered), readiness stays ready but degraded and says why in its sync check,
/// searches go on, and once the block is lifted every change reaches the index.
///
/// On a node of its own: a node lifts such a block within 30 s by itself when its disk
/// is not full (on the shared node, mid-test), and this one is told not to look before
/// an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_flood_stage_block_makes_the_sync_wait_and_readiness_say_why() {
    let node = Node::start_with(FLOODED_NODE, "cluster.info.update.interval: 1h").await;
    let app = spawn_app_with(|s| on_node(s, &node.url)).await;
    let prefix = app.settings.elasticsearch_index_prefix.clone();
    let manager = app.user(Role::Manager).await;
    indexed_account(&app, &manager, "Before The Block").await;

    set_block(&node, &prefix, "index.blocks.read_only_allow_delete", json!(true)).await;
    app.account(&manager.token, json!({ "debtor_name": "Written Under The Block" }))
        .await;
    let said = readiness_when(
        &app,
        "the sync check says why the sync waits",
        Duration::from_secs(30),
        |status, ready| status == StatusCode::OK && ready["status"] == "degraded" && ready["checks"]["sync"] != "ok",
    )
    .await;
    let why = said["checks"]["sync"].as_str().unwrap_or_default().to_owned();
    assert!(queued(&app.pool).await >= 1, "the change waits in the outbox");
    assert_eq!(dead_letters(&app.pool).await, 0, "nothing is dead-lettered");
    assert!(found(&app, &manager, "Before The Block").await, "searches go on");
    assert!(!found(&app, &manager, "Written Under The Block").await);

    set_block(&node, &prefix, "index.blocks.read_only_allow_delete", Value::Null).await;
    recovers(&app, &manager, "Written Under The Block", Duration::from_secs(30)).await;
    assert!(
        ["flood-stage", "read-only-allow-delete"].iter().any(|w| why.contains(w)),
        "the sync check names the block: {said}"
    );
}

/// Sets (`true`) or lifts (`null`) the write block on every index of `prefix` on the
/// node at ELASTICSEARCH_URL.
async fn block_on_cluster(prefix: &str, value: Value) {
    let answer = cluster_request(&reqwest::Client::new(), Method::PUT, &format!("/{prefix}-*/_settings"))
        .json(&json!({ "index.blocks.write": value }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.text().await.unwrap());
}

/// A user relies on a write block an operator set (`index.blocks.write`, refused writes
/// answer 403) costing no change and no restart: the sync keeps trying, slowly,
/// with every change in the outbox; readiness fails (503) saying why, since only an
/// operator can help; once the block is lifted the changes reach the index without
/// restarting anything. On the node at ELASTICSEARCH_URL, on the test's own indices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_write_block_is_waited_out_without_a_restart() {
    let app = spawn_app_with(on_test_cluster).await;
    let prefix = app.settings.elasticsearch_index_prefix.clone();
    let manager = app.user(Role::Manager).await;
    indexed_account(&app, &manager, "Before The Write Block").await;
    block_on_cluster(&prefix, json!(true)).await;
    app.account(&manager.token, json!({ "debtor_name": "Written Under A Write Block" }))
        .await;
    let said = readiness_when(&app, "it fails saying why", Duration::from_secs(30), |status, _| {
        status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(said["code"], "service_unavailable", "{said}");
    let detail = said["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("403") && detail.contains("index write"), "{said}");
    assert!(queued(&app.pool).await >= 1, "the change waits in the outbox");
    assert_eq!(dead_letters(&app.pool).await, 0, "nothing is dead-lettered");

    block_on_cluster(&prefix, Value::Null).await;
    recovers(&app, &manager, "Written Under A Write Block", Duration::from_secs(60)).await;
}

/// A user relies on an upgrade costing no change: this build meets an accounts index
/// built by the previous release (this build's mapping less one field, another digest
/// in its `_meta`) while another process holds the rebuild. The sync holds the accounts'
/// changes in the outbox (readiness degraded, saying so; nothing written to the old
/// index, which would refuse or misread this build's documents; nothing dead-lettered)
/// and searches answer from the old index; `arrears reindex accounts` (the doctor's fix)
/// builds this build's index and swaps it in, and the held changes follow: `arrears
/// verify` finds the index the same as SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn an_index_of_the_previous_release_is_held_then_rebuilt_losing_nothing() {
    let (upgrade, rebuilding) = Upgrade::held().await;
    let Upgrade { app, manager, names, .. } = &upgrade;
    let (status, page) = status_json(app.get("/api/v1/accounts", &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "searches answer from the old index: {page}");

    let rebuilt = upgrade.rebuild(rebuilding).await;
    recovers(app, manager, "Written During The Upgrade", Duration::from_secs(30)).await;
    assert_eq!(dead_letters(&app.pool).await, 0, "nothing is dead-lettered");
    let read = behind(&names.read_alias(Entity::Account)).await;
    assert_eq!(read, [names.generation(Entity::Account, 2)], "this build's index is read");
    let old = cluster_request(&reqwest::Client::new(), Method::GET, &format!("/{rebuilt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND, "the previous release's index is gone");
}

/// CI once failed the test above this way: readiness said "holding accounts" for
/// good once the rebuild was done. The worker `arrears reindex` runs beside its copy
/// (it writes what changes meanwhile to both generations) had indexed the held changes
/// before the server's worker tried them again, and that worker ended a hold only on
/// indexing one of the entity's changes itself. Here another process's worker takes
/// the held changes (claimed before the rebuild, indexed after it, as a worker does in
/// one transaction); the server says ok once its hold has run out and none waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_hold_ends_when_another_process_indexed_the_held_changes() {
    let (upgrade, rebuilding) = Upgrade::held().await;
    let Upgrade { app, manager, .. } = &upgrade;
    let mut other = app.pool.begin().await.unwrap();
    let claimed = arrears::store::outbox::claim(&mut other, 100, &[]).await.unwrap();
    let accounts = claimed.iter().filter(|row| row.entity == "account").count();
    assert_eq!(accounts, 4, "the other worker claims the held changes: {claimed:?}");

    upgrade.rebuild(rebuilding).await;
    let index = ElasticIndex::new(
        &ElasticConfig::from_settings(&app.settings).unwrap(),
        SqlDeadLetters::shared(app.pool.clone()),
    )
    .unwrap();
    let ops = arrears::sync::worker::rebuild_ops(&mut other, &claimed, index.entities())
        .await
        .unwrap();
    index.apply(ops).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|row| row.id).collect();
    arrears::store::outbox::delete(&mut other, &ids).await.unwrap();
    other.commit().await.unwrap();

    // The server's worker leaves the held entity out of its claims for 10 s at a time.
    readiness_when(app, "ok once no held change waits", Duration::from_secs(20), |_, ready| {
        ready["status"] == "ok"
    })
    .await;
    assert!(found(app, manager, "Written During The Upgrade").await);
    assert_verified(&app.settings).await;
}

/// The application started on an accounts index of the previous release (it lacks
/// `derived.queue_rank`) while another process holds the rebuild lock, three accounts
/// inserted before and one written through the API: readiness says the accounts are
/// held, their four changes wait in the outbox.
struct Upgrade {
    app: TestApp,
    manager: TestUser,
    names: templates::Names,
    _database: DropDatabase,
    _indices: DropPrefix,
}

impl Upgrade {
    /// The upgrade, and the other process's rebuild lock.
    async fn held() -> (Self, rebuild_locks::RebuildLock) {
        let mut settings = test_settings();
        on_test_cluster(&mut settings);
        let prefix = settings.elasticsearch_index_prefix.clone();
        let indices = DropPrefix(prefix.clone());
        let names = templates::Names::new(prefix.clone());
        crate::helpers::previous_release_accounts(&prefix, "the-previous-release").await;
        assert!(crate::databases::create_migrated(&settings.database_url).await);
        let database = DropDatabase(settings.database_url.clone());
        let pool = arrears::store::connect(&settings.database_url, 2).await.unwrap();
        insert_accounts(&pool, "UPGRADED", 3).await;
        // Another process (a second instance of this build) rebuilds the accounts index.
        let rebuilding = rebuild_locks::try_lock(&pool, Entity::Account)
            .await
            .unwrap()
            .expect("the rebuild lock");
        let app = spawn_app_with(|s| *s = settings.clone()).await;
        let manager = app.user(Role::Manager).await;
        app.account(&manager.token, json!({ "debtor_name": "Written During The Upgrade" }))
            .await;
        let said = readiness_when(&app, "it says the accounts are held", Duration::from_secs(30), |status, ready| {
            status == StatusCode::OK && ready["checks"]["sync"].as_str().unwrap_or_default().contains("holding accounts")
        })
        .await;
        assert_eq!(said["status"], "degraded", "{said}");
        assert!(
            said["checks"]["sync"].as_str().unwrap().contains("another release's mapping"),
            "{said}"
        );
        assert_eq!(queued_accounts(&app.pool).await, 4, "the accounts' changes wait in the outbox");
        let upgrade = Self {
            app,
            manager,
            names,
            _database: database,
            _indices: indices,
        };
        (upgrade, rebuilding)
    }

    /// Releases the rebuild lock and runs `arrears reindex accounts` (the doctor's fix),
    /// which builds this build's index and swaps it in; returns the previous release's.
    async fn rebuild(&self, rebuilding: rebuild_locks::RebuildLock) -> String {
        rebuilding.release().await;
        let reindexed = arrears(&["reindex", "accounts"], &self.app.settings).await;
        assert!(
            reindexed.status.success(),
            "arrears reindex accounts: {}",
            String::from_utf8_lossy(&reindexed.stderr)
        );
        self.names.generation(Entity::Account, 1)
    }
}

/// Drops a database the test made itself when dropped (after the application on it).
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        crate::databases::drop_now(&self.0);
    }
}

/// A user relies on an export holding every account exactly once even when a rebuild
/// swaps the index in the middle of it: the export's scan reads its ids page by page
/// from a point in time on the old index; `arrears reindex accounts` promotes a new one
/// and deletes the old between two pages; the scan goes on in the new index after the
/// last id it read. The proxy holds the scan's second page until the promote is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn a_promote_in_the_middle_of_an_export_leaves_every_account_once() {
    let cluster = std::env::var("ELASTICSEARCH_URL").expect("ELASTICSEARCH_URL names the node");
    let proxy = Proxy::start(&cluster).await;
    let app = spawn_app_with(|s| {
        on_test_cluster(s);
        // The scan's page waits for the promote: the test cluster's timeout covers it.
        s.elasticsearch_url = Some(proxy.url.clone());
    })
    .await;
    let prefix = app.settings.elasticsearch_index_prefix.clone();
    let _indices = DropPrefix(prefix.clone());
    let manager = app.user(Role::Manager).await;
    // More accounts than one page of a scan.
    let rows = arrears::search::elastic::dsl::SCAN_PAGE as i64 + 500;
    insert_accounts(&app.pool, "EXPORTED", rows).await;
    let alias = format!("{prefix}-accounts");
    until("every account is indexed", Duration::from_secs(60), || async {
        if queued(&app.pool).await > 0 {
            return false;
        }
        let count: Value = cluster_request(&reqwest::Client::new(), Method::GET, &format!("/{alias}/_count"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        count["count"].as_i64() == Some(rows)
    })
    .await;
    let before = behind(&alias).await;

    let started = Instant::now();
    proxy.hold(1, |r| r.route() == "/_search");
    let exporting = tokio::spawn({
        let (api, token) = (app.api(), manager.token.clone());
        async move {
            let response = api
                .request(Method::GET, "/api/v1/accounts/export?format=csv", Some(&token))
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    until("the export's scan waits for its second page", Duration::from_secs(30), || async {
        proxy.held() == 1
    })
    .await;
    let reindexed = arrears(&["reindex", "accounts"], &app.settings).await;
    assert!(
        reindexed.status.success(),
        "arrears reindex accounts: {}",
        String::from_utf8_lossy(&reindexed.stderr)
    );
    let after = behind(&alias).await;
    assert_ne!(before, after, "the reindex promoted a new index");
    proxy.release();
    let (status, file) = exporting.await.unwrap();
    let sent = proxy.since(started);

    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(
        sent.get("open_point_in_time"),
        Some(&2),
        "the scan went on in a point in time on the new index: {sent:?}"
    );
    let mut reader = csv::Reader::from_reader(file.as_bytes());
    let numbers: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    let mut once = HashSet::new();
    let twice: Vec<&String> = numbers.iter().filter(|n| !once.insert(*n)).collect();
    let in_sql: Vec<String> = sqlx::query_scalar("SELECT account_number FROM accounts")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let missing: Vec<&String> = in_sql.iter().filter(|n| !once.contains(n)).collect();
    let last_of_first_page: String = sqlx::query_scalar("SELECT account_number FROM accounts ORDER BY id OFFSET $1 - 1 LIMIT 1")
        .bind(arrears::search::elastic::dsl::SCAN_PAGE as i64)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        twice.is_empty(),
        "accounts exported twice: {twice:?} (the last of the scan's first page is {last_of_first_page})"
    );
    assert!(missing.is_empty(), "accounts missing from the export: {missing:?}");
    assert_eq!(numbers.len(), in_sql.len(), "as many rows as accounts");
}

/// "Wait for indexed" promises the next search sees the write. With replicas a search
/// may be answered by any copy of a shard, and each copy refreshes on its own: the
/// change must be searchable on every copy before the request answers, not only on the
/// one that answered the version check.
#[tokio::test]
#[ignore = "needs a node of its own: bin/test-elastic runs it"]
async fn wait_for_indexed_holds_on_every_copy_with_replicas() {
    let first = Node::start_in_cluster(REPLICATED_NODES[0], "first").await;
    let second = Node::start_in_cluster(REPLICATED_NODES[1], &REPLICATED_NODES[0].to_string()).await;
    let prefix = format!("arrears-replicas-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(first.url.clone());
        s.elasticsearch_index_prefix = prefix.clone();
        s.elasticsearch_replicas = 1;
    })
    .await;
    let green = first
        .json(
            Method::GET,
            &format!("/_cluster/health/{prefix}-accounts?wait_for_status=green&timeout=60s"),
            None,
        )
        .await;
    assert_eq!(green["status"], "green", "every accounts shard has its replica: {green}");
    let nodes = first.json(Method::GET, "/_nodes/_all/http", None).await;
    let node_ids: Vec<String> = nodes["nodes"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(node_ids.len(), 2, "{nodes}");
    let manager = app.user(Role::Manager).await;
    let mut missed = Vec::new();
    for n in 0..20 {
        let created = app
            .post(
                "/api/v1/accounts?wait_for=indexed",
                Some(&manager.token),
                &json!({ "debtor_name": format!("Replica Check {n}"), "original_balance": "10.00", "currency": "USD" }),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        for node in &node_ids {
            let found = first
                .json(
                    Method::POST,
                    &format!("/{prefix}-accounts/_search?preference=_only_nodes:{node}"),
                    Some(json!({ "query": { "ids": { "values": [id] } } })),
                )
                .await;
            if found.pointer("/hits/total/value").and_then(Value::as_u64) != Some(1) {
                missed.push(format!("account {n} on node {node}"));
            }
        }
    }
    drop(second);
    assert!(missed.is_empty(), "searches right after wait_for=indexed missed: {missed:?}");
}
