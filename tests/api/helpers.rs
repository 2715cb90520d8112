//! Spawns the real application on port 0 against a fresh database per test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arrears::app::{Application, Options};
use arrears::auth::password;
use arrears::cli::Cli;
use arrears::clock::Clock;
use arrears::config::Settings;
use arrears::domain::role::Role;
use arrears::jobs::schedulers::{Pass, Schedulers};
use arrears::state::AppState;
use clap::{CommandFactory, FromArgMatches};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub state: AppState,
    pub address: String,
    /// Base URL of the metrics listener.
    pub metrics_address: Option<String>,
    client: reqwest::Client,
    pub pool: PgPool,
    pub settings: Settings,
    /// The application's clock: it reads the system clock until a test sets it
    /// (`app.clock.set(instant)`), then every date- or hour-dependent decision of the
    /// application (schedulers, contact guard, promise and plan dates, queue, KPIs)
    /// sees that instant.
    pub clock: Clock,
    /// The schedulers, which run only when the test asks: [`TestApp::run_schedulers`].
    schedulers: Schedulers,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server's task: it ends when the server and its workers have stopped.
    server: Option<tokio::task::JoinHandle<()>>,
    owns_data_dir: bool,
    owns_database: bool,
}

pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

/// Settings as the binary parses them with no environment at all, pointed at a new
/// database (on the PostgreSQL server `DATABASE_URL` names, or the default one) and data
/// directory, with login and rate limits loose enough for ordinary tests. Nothing else of
/// the runner's environment reaches a test: a `REDIS_URL`, `SEARCH_BACKEND` or
/// `ALLOW_REGISTRATION` in the shell that runs `cargo test` would otherwise change what
/// the tests test.
pub fn test_settings() -> Settings {
    let command = Cli::command().mut_args(|arg| arg.env(None));
    let matches = command.try_get_matches_from(["arrears", "serve"]).expect("default settings parse");
    let mut settings = Cli::from_arg_matches(&matches).expect("default settings parse").settings;
    let name = format!("arrears_test_{}", Uuid::new_v4().simple());
    let server = std::env::var("DATABASE_URL").unwrap_or(settings.database_url);
    let base = server.split('?').next().unwrap_or_default().to_owned();
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL has a database path");
    settings.database_url = format!("{server}/{name}");
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.metrics_bind = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = std::env::temp_dir().join(format!("arrears-test-{}", Uuid::new_v4().simple()));
    settings.jwt_secret = Some("test-secret-test-secret-test-secret-0123".to_owned());
    // Documents are read by the service's own binary (this one is the test harness).
    settings.document_extractor = Some(env!("CARGO_BIN_EXE_arrears").into());
    settings.database_max_connections = 10;
    settings.login_rate_limit_per_ip = 1000;
    // One address makes every request of a test; rate limits have tests of their own.
    settings.rate_limit_per_ip = 1_000_000;
    settings.rate_limit_per_user = 1_000_000;
    settings.rate_limit_bulk_per_ip = 1_000_000;
    settings.rate_limit_bulk_per_user = 1_000_000;
    settings.logins_per_ip_per_minute = 1_000_000;
    settings.hash_queue_share_per_ip_percent = 100;
    // A write with `?wait_for=indexed` waits for the sync as a test waits for anything in
    // the background: how soon the index holds it is no property of these tests (under CI
    // load a node once took longer than the 5 s default); the bound's own test sets one.
    settings.wait_for_indexed_timeout_ms = PATIENCE.as_millis() as u64;
    if std::env::var("ARREARS_TEST_SEARCH").as_deref() == Ok("elasticsearch") {
        on_test_cluster(&mut settings);
    }
    settings
}

/// Points `settings` at the Elasticsearch cluster at ELASTICSEARCH_URL, under an index
/// prefix of the test's own, with the application's credentials as `bin/test-elastic`
/// documents them (ELASTICSEARCH_USERNAME/PASSWORD or API_KEY, never the tests'
/// administrative ELASTICSEARCH_ADMIN_*). `bin/test-elastic` sets
/// ARREARS_TEST_SEARCH=elasticsearch to run the API tests that read through the search
/// index on the cluster, as they run on the embedded index otherwise.
pub fn on_test_cluster(settings: &mut Settings) {
    let url =
        std::env::var("ELASTICSEARCH_URL").expect("this test needs a cluster: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic");
    settings.search_backend = arrears::config::SearchBackend::Elasticsearch;
    settings.elasticsearch_url = Some(url);
    settings.elasticsearch_username = std::env::var("ELASTICSEARCH_USERNAME").ok();
    settings.elasticsearch_password = std::env::var("ELASTICSEARCH_PASSWORD").ok();
    settings.elasticsearch_api_key = std::env::var("ELASTICSEARCH_API_KEY").ok();
    settings.elasticsearch_ca_file = std::env::var_os("ELASTICSEARCH_CA_FILE").map(Into::into);
    settings.elasticsearch_index_prefix = format!("arrears-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    // The test cluster serves four tests at once beside builds and browsers on two shared
    // cores; how long one request may wait there is no property of these tests (the
    // faults' own nodes set their own).
    settings.elasticsearch_timeout_ms = PATIENCE.as_millis() as u64;
}

/// Whether `settings` name the test cluster (not a scripted one a test started).
fn on_the_test_cluster(settings: &Settings) -> bool {
    settings.search_backend == arrears::config::SearchBackend::Elasticsearch
        && settings.elasticsearch_url.is_some()
        && settings.elasticsearch_url == std::env::var("ELASTICSEARCH_URL").ok()
        && settings.elasticsearch_index_prefix.starts_with("arrears-test-")
}

/// A request of the tests' own administration (node statistics, another deployment's
/// index, a refresh, deleting a test's indices and templates) to the cluster at
/// ELASTICSEARCH_URL: as ELASTICSEARCH_ADMIN_USERNAME/PASSWORD when set, which may hold
/// more than the application's role, else with the application's credentials. The
/// application itself runs with ELASTICSEARCH_USERNAME/PASSWORD or API_KEY only
/// ([`on_test_cluster`]), so that on `bin/test`'s node it holds the shipped role and
/// nothing more.
pub fn cluster_request(client: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
    let base = std::env::var("ELASTICSEARCH_URL").unwrap();
    let mut request = client.request(method, format!("{}{path}", base.trim_end_matches('/')));
    if let Ok(admin) = std::env::var("ELASTICSEARCH_ADMIN_USERNAME") {
        return request.basic_auth(admin, std::env::var("ELASTICSEARCH_ADMIN_PASSWORD").ok());
    }
    if let Ok(user) = std::env::var("ELASTICSEARCH_USERNAME") {
        request = request.basic_auth(user, std::env::var("ELASTICSEARCH_PASSWORD").ok());
    }
    if let Ok(key) = std::env::var("ELASTICSEARCH_API_KEY") {
        request = request.header("authorization", format!("ApiKey {key}"));
    }
    request
}

/// Creates, on the cluster at ELASTICSEARCH_URL, the accounts generation a previous
/// release made under `prefix`: this build's mapping without `derived.queue_rank`, with
/// `digest` for its own, behind every alias. Returns its name.
pub async fn previous_release_accounts(prefix: &str, digest: &str) -> String {
    use arrears::domain::document::Entity;
    use arrears::search::elastic::templates;
    let names = templates::Names::new(prefix.to_owned());
    let mut older = templates::mappings(Entity::Account);
    older["properties"]["derived"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("queue_rank")
        .expect("this build maps the field the previous release lacked");
    older["_meta"]["digest"] = json!(digest);
    let analysis: Value = serde_json::from_str(templates::ANALYSIS).unwrap();
    let g1 = names.generation(Entity::Account, 1);
    let created = cluster_request(&reqwest::Client::new(), Method::PUT, &format!("/{g1}"))
        .json(&json!({
            "settings": analysis["template"]["settings"],
            "mappings": older,
            "aliases": {
                names.read_alias(Entity::Account): {},
                names.targets_alias(Entity::Account): {},
                format!("{g1}-write"): {}
            }
        }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    g1
}

/// A client for an application served with `settings`. It drops a pooled connection
/// after half the time the server keeps an idle one (`http_header_timeout_s`), so no
/// request is written to a connection the server is closing: that request fails with
/// `IncompleteMessage` (CI met it on the first search after a 10 s reindex).
pub fn client_of(settings: &Settings) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(settings.http_header_timeout_s.max(1)) / 2)
        .build()
        .unwrap()
}

/// Deletes what a test made on the cluster at ELASTICSEARCH_URL under `prefix`: its
/// indices (by name, as a cluster with `action.destructive_requires_name` wants) and
/// templates.
pub async fn drop_cluster_prefix(prefix: &str) {
    let client = reqwest::Client::new();
    let found: Value = match cluster_request(&client, Method::GET, &format!("/{prefix}-*/_alias")).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => return,
    };
    let indices: Vec<&str> = found.as_object().into_iter().flat_map(|o| o.keys()).map(String::as_str).collect();
    if !indices.is_empty() {
        let _ = cluster_request(&client, Method::DELETE, &format!("/{}", indices.join(",")))
            .send()
            .await;
    }
    let _ = cluster_request(&client, Method::DELETE, &format!("/_index_template/{prefix}-*"))
        .send()
        .await;
    let _ = cluster_request(&client, Method::DELETE, &format!("/_component_template/{prefix}-*"))
        .send()
        .await;
}

/// Test settings whose database already exists, migrated: a copy of the current
/// migrations' template database (see [`crate::databases`]).
pub async fn migrated_settings() -> Settings {
    let settings = test_settings();
    assert!(
        crate::databases::create_migrated(&settings.database_url).await,
        "a new database name"
    );
    settings
}

/// A fresh, migrated database of its own, without an application.
pub async fn fresh_pool() -> PgPool {
    let settings = migrated_settings().await;
    arrears::store::connect(&settings.database_url, 10).await.unwrap()
}

/// How long a test waits for what happens in the background (the sync indexing a change,
/// a job ending, a document processed) before it fails. A wait, not a bound: a passing
/// test waits no longer for it, and a test about how fast something happens measures
/// that itself. CI runs four tests at a time beside a node, the browser tests and a
/// build on two shared cores, where a field's re-indexing once took longer than 10 s.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `check` every 20 ms until it holds, failing after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let app = spawn_guarded_app_with(configure).await;
    // Tests not about the contact guard log calls at any hour and as often as they need:
    // their database's policy has no time window and no call limits.
    sqlx::query("UPDATE contact_policy SET window_channels = '{}', call_attempt_limit = 1000000, conversation_days = 0")
        .execute(&app.pool)
        .await
        .expect("the contact policy loosens");
    app
}

/// An app with the contact guard's default policy (Regulation F).
pub async fn spawn_guarded_app() -> TestApp {
    spawn_guarded_app_with(|_| {}).await
}

pub async fn spawn_guarded_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    // A test may point the app at another one's database; only a database made here is
    // this app's to drop.
    let owns_database = crate::databases::create_migrated(&settings.database_url).await;
    let mut app = spawn_instance(settings, true, false).await;
    app.owns_database = owns_database;
    app
}

/// Another API instance on `app`'s database and data dir (no sync worker: `app` owns
/// the index), configured further by `configure`.
pub async fn spawn_peer(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = app.settings.clone();
    settings.sync_worker = false;
    configure(&mut settings);
    spawn_instance(settings, false, false).await
}

/// Another API instance on `app`'s database, as [`spawn_peer`], whose schedulers run in
/// the background on the system clock, as in production.
pub async fn spawn_scheduling_peer(app: &TestApp) -> TestApp {
    let mut settings = app.settings.clone();
    settings.sync_worker = false;
    spawn_instance(settings, false, true).await
}

async fn spawn_instance(settings: Settings, owns_data_dir: bool, run_schedulers: bool) -> TestApp {
    let clock = Clock::settable();
    let options = Options {
        clock: clock.clone(),
        run_schedulers,
    };
    let app = Application::build_with(settings.clone(), options)
        .await
        .expect("application builds");
    let schedulers = app.schedulers().clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|port| format!("http://127.0.0.1:{port}"));
    let pool = app.state().pool().clone();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        state,
        address,
        metrics_address,
        client: client_of(&settings),
        pool,
        settings,
        clock,
        schedulers,
        shutdown: Some(tx),
        server: Some(server),
        owns_data_dir,
        owns_database: false,
    }
}

static USER_SEQ: AtomicU32 = AtomicU32::new(0);

impl TestApp {
    /// One pass of every scheduler at the clock's now (promises, plans, KPI snapshot and
    /// days, contact windows), as the background loops would make it.
    pub async fn run_schedulers(&self) -> Pass {
        self.schedulers.pass().await.expect("a scheduler pass")
    }

    /// The date of the clock's now in `tz`.
    pub fn today_in(&self, tz: chrono_tz::Tz) -> chrono::NaiveDate {
        self.clock.now().with_timezone(&tz).date_naive()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> ApiRequest {
        let builder = self.client.request(method, self.url(path));
        ApiRequest(match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        })
    }

    /// The application's address and client, to `clone` into tasks that send their own
    /// requests (checked like every other).
    pub fn api(&self) -> Api {
        Api {
            client: self.client.clone(),
            address: self.address.clone(),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token).json(body).send().await.unwrap()
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(token)).json(body).send().await.unwrap()
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PUT, path, Some(token)).json(body).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token)).send().await.unwrap()
    }

    /// Inserts a user straight into SQL and logs in over HTTP.
    pub async fn user(&self, role: Role) -> TestUser {
        let n = USER_SEQ.fetch_add(1, Ordering::Relaxed);
        let email = format!("{}-{n}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
        let hash = password::hash(PASSWORD.to_owned()).await.unwrap();
        let row = arrears::store::users::insert(&self.pool, &email, &format!("{} {n}", role.as_str()), role, &hash)
            .await
            .unwrap();
        let tokens = self.login(&email, PASSWORD).await;
        assert_eq!(tokens.0, StatusCode::OK, "login of a new user: {}", tokens.1);
        TestUser {
            id: row.id,
            email,
            token: tokens.1["access_token"].as_str().unwrap().to_owned(),
            refresh_token: tokens.1["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        let response = self
            .post("/api/v1/auth/login", None, &json!({"email": email, "password": password}))
            .await;
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    /// Creates an account as `token` (a manager or admin) and returns its JSON.
    /// `GET /accounts/{id}`, which must answer 200.
    pub async fn get_account(&self, token: &str, account_id: &str) -> Value {
        let (status, body) = status_json(self.get(&format!("/api/v1/accounts/{account_id}"), token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// GETs `path` and asserts 400 `invalid_parameter` naming exactly `field`.
    pub async fn assert_refused_parameter(&self, token: &str, path: &str, field: &str) {
        let problem = assert_problem(self.get(path, token).await, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        assert_eq!(error_fields(&problem), [field], "{path}");
    }

    /// POSTs `body` to `path` and asserts 201: the created object.
    pub async fn create(&self, token: &str, path: &str, body: &Value) -> Value {
        let (status, created) = status_json(self.post(path, Some(token), body).await).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path} {body}: {created}");
        created
    }

    /// Records a payment on `account_id` (201 asserted).
    pub async fn create_payment(&self, token: &str, account_id: &str, body: &Value) -> Value {
        self.create(token, &format!("/api/v1/accounts/{account_id}/payments"), body).await
    }

    /// Logs an activity on `account_id` (201 asserted).
    pub async fn log_activity(&self, token: &str, account_id: &str, body: &Value) -> Value {
        self.create(token, &format!("/api/v1/accounts/{account_id}/activities"), body).await
    }

    /// Records a promise to pay on `account_id` (201 asserted).
    pub async fn create_promise(&self, token: &str, account_id: &str, body: &Value) -> Value {
        self.create(token, &format!("/api/v1/accounts/{account_id}/promises"), body).await
    }

    /// The one value `sql` selects for the row whose id (`$1`) is `id`, read from the
    /// database: the truth the API's answers are checked against.
    pub async fn sql_value<T>(&self, sql: &'static str, id: &str) -> T
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        sqlx::query_scalar(sql)
            .bind(Uuid::parse_str(id).unwrap())
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql} for {id}: {e}"))
    }

    /// The notifications of `kind` in `user`'s inbox (its first page), as the API lists them.
    pub async fn notifications_of(&self, user: &TestUser, kind: &str) -> Vec<Value> {
        let (_, inbox) = status_json(self.get("/api/v1/notifications", &user.token).await).await;
        inbox["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind)
            .cloned()
            .collect()
    }

    pub async fn account(&self, token: &str, overrides: Value) -> Value {
        let mut body = json!({
            "debtor_name": "Jane Doe",
            "email": "jane@example.com",
            "phone": "+1 201 555 0134",
            "original_balance": "1250.00",
            "currency": "USD",
            "due_date": "2026-01-15",
        });
        for (k, v) in overrides.as_object().expect("overrides are an object") {
            body[k] = v.clone();
        }
        let response = self.post("/api/v1/accounts", Some(token), &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create account");
        response.json().await.unwrap()
    }
}

impl TestApp {
    /// Stops the server and its sync worker and waits until they have, keeping the
    /// database and data dir.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(std::time::Duration::from_secs(30), server)
                .await
                .expect("the server stops within 30 s")
                .expect("the server's task ends without panicking");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.settings.data_dir);
        }
        if self.owns_database {
            crate::databases::drop_now(&self.settings.database_url);
        }
        if on_the_test_cluster(&self.settings) {
            let prefix = self.settings.elasticsearch_index_prefix.clone();
            let dropping = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(drop_cluster_prefix(&prefix));
                Some(())
            });
            let _ = dropping.join();
        }
    }
}

/// The application's address with a client, for tasks that send requests on their own.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    address: String,
}

impl Api {
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> ApiRequest {
        let builder = self.client.request(method, format!("{}{path}", self.address));
        ApiRequest(match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        })
    }
}

/// A request to the application. `send` checks the answer against the API description
/// (see [`check_against_description`]), so every test checks the description for free.
pub struct ApiRequest(RequestBuilder);

impl ApiRequest {
    pub fn header(self, name: &'static str, value: impl AsRef<str>) -> Self {
        Self(self.0.header(name, value.as_ref()))
    }

    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Self {
        Self(self.0.json(body))
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self(self.0.body(body))
    }

    pub fn multipart(self, form: reqwest::multipart::Form) -> Self {
        Self(self.0.multipart(form))
    }

    pub async fn send(self) -> reqwest::Result<Response> {
        let (client, request) = self.0.build_split();
        let request = request?;
        let (method, path) = (request.method().clone(), request.url().path().to_owned());
        let response = client.execute(request).await?;
        let status = response.status();
        let content_type = media_type(&response);
        let whole = content_type.as_deref().is_some_and(body_is_checked);
        let mut checked = if whole {
            // An answer whose body is checked (JSON, a CSV or XLSX file) is read here to be
            // checked, and handed on whole.
            let (version, headers) = (response.version(), response.headers().clone());
            let body = response.bytes().await?;
            check_against_description(&method, &path, status, content_type.as_deref(), Some(&body));
            let mut rebuilt = http::Response::new(body);
            *rebuilt.status_mut() = status;
            *rebuilt.version_mut() = version;
            *rebuilt.headers_mut() = headers;
            reqwest::Response::from(rebuilt)
        } else {
            check_against_description(&method, &path, status, content_type.as_deref(), None);
            response
        };
        checked.extensions_mut().insert(Checked);
        Ok(checked)
    }
}

/// Marks an answer [`ApiRequest::send`] checked.
#[derive(Clone, Copy)]
struct Checked;

fn media_type(response: &Response) -> Option<String> {
    let value = response.headers().get("content-type")?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Whether an answer's body is checked, not only its content type: JSON against its
/// schema, CSV and XLSX files by parsing them as such ([`check_file`]).
fn body_is_checked(media_type: &str) -> bool {
    is_json(media_type) || media_type == "text/csv" || media_type == XLSX
}

/// Operations whose files are the bytes someone uploaded, as they were (a document's
/// content, whole or a range): their content type is checked, not what they hold.
const STORED_FILES: &[&str] = &["download_document"];

/// Parses a file the API wrote as what its content type says, as a spreadsheet program
/// would open it: CSV is UTF-8 with every record as many fields as the header, and an
/// XLSX is a zip holding a workbook's parts, each sheet readable.
fn check_file(key: &str, media_type: &str, body: &[u8]) {
    use calamine::Reader as _;
    if media_type == "text/csv" {
        // `csv` refuses a record of another length than the first, and text not UTF-8.
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
        let mut records = 0;
        for record in reader.records() {
            records += 1;
            if let Err(e) = record {
                panic!("{key}: the answer is not CSV (record {records}): {e}");
            }
        }
        assert!(records > 0, "{key}: a CSV answer without its header row");
    } else if media_type == XLSX {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(body)).unwrap_or_else(|e| panic!("{key}: the answer is not an XLSX zip: {e}"));
        for part in [
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
        ] {
            assert!(archive.by_name(part).is_ok(), "{key}: the XLSX has no {part}");
        }
        let mut types = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("[Content_Types].xml").unwrap(), &mut types).unwrap();
        assert!(
            types.contains("spreadsheetml.sheet.main+xml"),
            "{key}: the XLSX declares no workbook part: {types}"
        );
        let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(body))
            .unwrap_or_else(|e| panic!("{key}: the XLSX does not open as a workbook: {e}"));
        let sheets = book.sheet_names();
        assert!(!sheets.is_empty(), "{key}: the XLSX has no sheet");
        for sheet in sheets {
            if let Err(e) = book.worksheet_range(&sheet) {
                panic!("{key}: sheet {sheet} of the XLSX does not read: {e}");
            }
        }
    }
}

/// The API description, loaded once per process, with a validator per described
/// answer compiled on first use.
struct Description {
    document: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn description() -> &'static Description {
    static DESCRIPTION: OnceLock<Description> = OnceLock::new();
    DESCRIPTION.get_or_init(|| Description {
        document: arrears::http::openapi::document().clone(),
        validators: Mutex::default(),
    })
}

/// The described path `path` is an instance of: the one with the most literal segments
/// (`/accounts/export` before `/accounts/{id}`).
fn described_path<'a>(document: &'a Value, path: &str) -> Option<(&'a String, &'a Value)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    document["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment);
            matches.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), (template, item)))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, found)| found)
}

/// Pages for a person's browser, not API operations: the console (`/`, its files under
/// `/console/`) and the Swagger UI (whose files are served under it).
pub const PAGES: &[&str] = &["/docs", ""];

/// Checks an answer against the description: its path and method are described, its
/// status is among the operation's, its content type is the status's, a JSON body is
/// valid against that status's schema, and a CSV or XLSX file parses as one
/// ([`check_file`]). Only a 404 `route_not_found` or a 405 answer
/// a request for what is not described. CORS preflights (`OPTIONS`) are the CORS
/// layer's, not operations; [`PAGES`] are not described.
pub fn check_against_description(method: &Method, path: &str, status: StatusCode, media_type: Option<&str>, body: Option<&[u8]>) {
    if method == Method::OPTIONS
        || PAGES.contains(&path.trim_end_matches('/'))
        || path.starts_with("/docs/")
        || path.starts_with("/console/")
    {
        return;
    }
    let description = description();
    let parsed: Option<Value> = body
        .filter(|_| media_type.is_some_and(is_json))
        .map(|b| serde_json::from_slice(b).unwrap_or_else(|e| panic!("{method} {path}: {status} answered invalid JSON: {e}")));
    let undescribed_is_refused = || {
        let code = parsed.as_ref().map(|p| p["code"].clone()).unwrap_or_default();
        status == StatusCode::METHOD_NOT_ALLOWED || (status == StatusCode::NOT_FOUND && code == "route_not_found")
    };
    let Some((template, item)) = described_path(&description.document, path) else {
        assert!(undescribed_is_refused(), "{method} {path} is not described, yet answered {status}");
        return;
    };
    let operation = &item[method.as_str().to_ascii_lowercase()];
    if operation.is_null() {
        assert!(
            undescribed_is_refused(),
            "{method} {template} is not described, yet answered {status}"
        );
        return;
    }
    let operation_id = operation["operationId"].as_str().unwrap_or(template);
    let response = &operation["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{operation_id} ({method} {path}) answered {status}, which the description does not list: {}",
        parsed.map(|p| p.to_string()).unwrap_or_default()
    );
    let content = response["content"].as_object();
    let Some(media_type) = media_type else {
        assert!(
            content.is_none_or(|c| c.is_empty()),
            "{operation_id} answered {status} without a content type"
        );
        return;
    };
    let Some(schema) = content.and_then(|c| c.get(media_type)) else {
        panic!("{operation_id} answered {status} as {media_type}, which the description does not list for it");
    };
    let key = format!("{operation_id} {status} {media_type}");
    let Some(instance) = parsed else {
        if let Some(file) = body.filter(|_| !STORED_FILES.contains(&operation_id)) {
            check_file(&key, media_type, file);
        }
        return;
    };
    let compiled = description
        .validators
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .cloned();
    let validator = compiled.unwrap_or_else(|| {
        let mut schema = schema["schema"].clone();
        schema["components"] = description.document["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema of {key} does not compile: {e}"));
        let validator = Arc::new(validator);
        let mut validators = description.validators.lock().unwrap_or_else(PoisonError::into_inner);
        validators.insert(key.clone(), validator.clone());
        validator
    });
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: the answer does not match the description:\n{}\n{instance}",
        errors.join("\n")
    );
}

/// A time as the API takes it in a body or a query: RFC 3339, whole seconds, UTC.
pub fn ts(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An RFC 3339 timestamp of an answer.
pub fn instant(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}")))
        .unwrap_or_else(|e| panic!("not RFC 3339: {value}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// The `id` of an answer's object.
pub fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("no id: {value}")).to_owned()
}

/// Status and JSON body, for assertions that want both.
pub async fn status_json(response: Response) -> (StatusCode, Value) {
    assert_checked(&response);
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts a problem+json answer with `status` and machine `code`; returns the body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_checked(&response);
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "status; body: {body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], code, "code; body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["request_id"], request_id.as_str(), "body and header carry the same request id");
    assert!(body["type"].as_str().unwrap().ends_with(code));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

fn assert_checked(response: &Response) {
    assert!(
        response.extensions().get::<Checked>().is_some(),
        "send requests through TestApp::request (or get, post...) so that the answer is checked against the API description"
    );
}

/// Field names listed in a validation problem.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// The UTC instant of a wall-clock time in `tz`.
pub fn local(tz: chrono_tz::Tz, date: chrono::NaiveDate, h: u32, m: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    tz.from_local_datetime(&date.and_hms_opt(h, m, s).unwrap())
        .single()
        .unwrap_or_else(|| panic!("{date} {h}:{m}:{s} is ambiguous in {tz:?}"))
        .with_timezone(&chrono::Utc)
}

/// A child process running the `arrears` binary, as an operator runs it (settings from
/// the environment only), killed when dropped.
pub struct Arrears {
    child: std::process::Child,
}

impl Arrears {
    /// Runs `arrears <args>` on `settings`' database and data dir, with `env` on top.
    pub fn start(args: &[&str], settings: &Settings, env: &[(&str, &str)]) -> Self {
        let mut command = Self::command(args, settings, env);
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        Self {
            child: command.spawn().expect("the arrears binary starts"),
        }
    }

    /// Runs `arrears serve` bound to port 0 and waits for the address it logs as
    /// `listening`: no port is chosen first and bound later, when another process may
    /// have taken it. Its log is read (and drained) by a thread of its own.
    pub fn serve(settings: &Settings, env: &[(&str, &str)]) -> (Self, std::net::SocketAddr) {
        let mut command = Self::command(&["serve"], settings, env);
        command
            .env("BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "error,arrears::app=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the arrears binary starts");
        let log = child.stderr.take().expect("its log is piped");
        let (sender, bound) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["message"] == "listening" {
                    let addr = entry["addr"].as_str().and_then(|a| a.parse().ok());
                    let _ = sender.send(addr);
                }
            }
        });
        let addr = bound
            .recv_timeout(std::time::Duration::from_secs(60))
            .ok()
            .flatten()
            .expect("arrears serve logs the address it listens on within 60 s");
        (Self { child }, addr)
    }

    /// Runs `arrears <args>` as [`Arrears::start`] does, to its end: what it printed on
    /// standard output, after checking that it succeeded.
    pub fn run(args: &[&str], settings: &Settings, env: &[(&str, &str)]) -> String {
        let output = Self::command(args, settings, env).output().expect("the arrears binary runs");
        assert!(
            output.status.success(),
            "arrears {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("the output is UTF-8")
    }

    /// Runs `arrears <args>` to its end, whether it succeeds or not.
    pub fn output(args: &[&str], settings: &Settings, env: &[(&str, &str)]) -> std::process::Output {
        Self::command(args, settings, env).output().expect("the arrears binary runs")
    }

    fn command(args: &[&str], settings: &Settings, env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_arrears"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &settings.database_url)
            .env("DATA_DIR", &settings.data_dir)
            .env("SEARCH_BACKEND", "embedded")
            .env("JWT_SECRET", settings.jwt_secret.as_deref().unwrap_or_default())
            .env("METRICS", "false")
            .env("RUST_LOG", "error");
        if on_the_test_cluster(settings) {
            command
                .env("SEARCH_BACKEND", "elasticsearch")
                .env("ELASTICSEARCH_INDEX_PREFIX", &settings.elasticsearch_index_prefix);
            for key in [
                "ELASTICSEARCH_URL",
                "ELASTICSEARCH_USERNAME",
                "ELASTICSEARCH_PASSWORD",
                "ELASTICSEARCH_API_KEY",
                "ELASTICSEARCH_CA_FILE",
            ] {
                if let Ok(value) = std::env::var(key) {
                    command.env(key, value);
                }
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("the child can be waited for").is_none()
    }

    /// Sends SIGTERM, as a service manager stopping it does.
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
    }

    /// Kills it at once (SIGKILL), as a crash does.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status, waiting up to 10 s for it to exit.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the process did not exit within 10 s");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// `arrears serve` as operators run it, on a fresh migrated database of its own.
pub struct Served {
    pub process: Arrears,
    pub settings: Settings,
    /// A pool on its database.
    pub pool: PgPool,
    /// `127.0.0.1:<port>`, and the same as `http://...`.
    pub bind: String,
    pub base: String,
}

impl Served {
    /// Starts it with `env` on top of the test settings, and waits until it answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let settings = migrated_settings().await;
        let pool = arrears::store::connect(&settings.database_url, 4).await.unwrap();
        let (process, addr) = Arrears::serve(&settings, env);
        let bind = addr.to_string();
        let base = format!("http://{bind}");
        let client = reqwest::Client::new();
        eventually("the server answers", || async {
            client.get(format!("{base}/health/live")).send().await.is_ok()
        })
        .await;
        Self {
            process,
            settings,
            pool,
            bind,
            base,
        }
    }

    /// A new user of `role`, written to the database and signed in: their access token.
    pub async fn signed_in(&self, role: Role) -> String {
        let email = format!("served-{}@example.com", Uuid::new_v4().simple());
        let hash = password::hash(PASSWORD.to_owned()).await.unwrap();
        arrears::store::users::insert(&self.pool, &email, "Served Test", role, &hash)
            .await
            .unwrap();
        let login: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().expect("signed in").to_owned()
    }
}

impl Drop for Arrears {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The debtor names of a page of accounts, in order.
pub fn names(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["debtor_name"].as_str().unwrap().to_owned())
        .collect()
}

/// Makes the job's heartbeat a minute old, as if the process running it had died.
pub async fn expire_heartbeat(pool: &PgPool, job: Uuid) {
    sqlx::query("UPDATE jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = $1")
        .bind(job)
        .execute(pool)
        .await
        .unwrap();
}
