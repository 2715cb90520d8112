//! Prometheus metrics: every metric this service exports is named, described and
//! recorded through this module, so its names, units and label sets live in one place
//! (and in the table of docs/operations.md). Recording before [`install`] costs a no-op call, which
//! is what `METRICS=false` leaves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

const HTTP_REQUESTS: &str = "arrears_http_requests_total";
const HTTP_DURATION: &str = "arrears_http_request_duration_seconds";
const RATE_LIMITED: &str = "arrears_http_rate_limited_total";
const SYNC_LAG: &str = "arrears_sync_lag_seconds";
const OUTBOX_DEPTH: &str = "arrears_sync_outbox_depth";
const OUTBOX_OLDEST: &str = "arrears_sync_outbox_oldest_age_seconds";
const DOCUMENTS: &str = "arrears_sync_documents_total";
const SYNC_FAILURES: &str = "arrears_sync_batch_failures_total";
const SYNC_HELD: &str = "arrears_sync_held";
const CONNECTIONS_OPEN: &str = "arrears_http_connections_open";
const CONNECTIONS_REFUSED: &str = "arrears_http_connections_refused_total";
const BULK_ERRORS: &str = "arrears_search_bulk_item_errors_total";
const QUERY_SLOT_WAIT: &str = "arrears_search_query_slot_wait_seconds";
const JOBS_QUEUED: &str = "arrears_jobs_queued";
const JOB_DURATION: &str = "arrears_job_duration_seconds";
const IMPORT_ROWS: &str = "arrears_import_rows_total";
const MESSAGE_TRIES: &str = "arrears_message_tries_total";
const DOCUMENTS_PROCESSED: &str = "arrears_documents_processed_seconds";
const WS_CONNECTIONS: &str = "arrears_ws_connections";
const WS_SLOW: &str = "arrears_ws_slow_consumers_dropped_total";
const POOL_CONNECTIONS: &str = "arrears_db_pool_connections";
const POOL_MAX: &str = "arrears_db_pool_max_connections";
const DB_QUERY: &str = "arrears_db_query_duration_seconds";
const DB_POOL_WAIT: &str = "arrears_db_pool_wait_seconds";

/// Request latencies: from a cached page (~1 ms) to an export's first byte.
const REQUEST_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Commit to searchable: the sync's target is under a second.
const LAG_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 60.0];
/// Waits for a query slot or a pooled connection: normally zero.
const WAIT_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];
/// Database statements: an index lookup (~0.1 ms) to a report over every account.
const QUERY_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0];
/// Jobs run from under a second to many minutes.
const JOB_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Reading one document: a child process's start (milliseconds) to its wall-time limit.
const DOCUMENT_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and
/// describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &REQUEST_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(SYNC_LAG.to_owned()), &LAG_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(QUERY_SLOT_WAIT.to_owned()), &WAIT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(JOB_DURATION.to_owned()), &JOB_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DOCUMENTS_PROCESSED.to_owned()), &DOCUMENT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DB_QUERY.to_owned()), &QUERY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DB_POOL_WAIT.to_owned()), &WAIT_BUCKETS)?;
    let handle = HANDLE.get_or_init(|| {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        handle
    });
    Ok(handle.clone())
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "time from request to response head, by method, route template and status"
    );
    describe_counter!(RATE_LIMITED, "requests refused with 429 by the rate limits, by class");
    describe_histogram!(
        SYNC_LAG,
        Unit::Seconds,
        "time from a change's commit to its document being searchable"
    );
    describe_gauge!(OUTBOX_DEPTH, "changes committed but not yet indexed");
    describe_gauge!(CONNECTIONS_OPEN, "open HTTP connections");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "connections closed on arrival: the server or the client's address held its MAX_CONNECTIONS share"
    );
    describe_gauge!(
        SYNC_HELD,
        "1 while an entity's changes wait in the outbox because its index has another release's mapping, by entity"
    );
    describe_gauge!(OUTBOX_OLDEST, Unit::Seconds, "age of the oldest change not yet indexed");
    describe_counter!(
        DOCUMENTS,
        "documents the sync sent to the index, by outcome (indexed, stale, dead_letter)"
    );
    describe_counter!(
        SYNC_FAILURES,
        "sync batches that failed: transient (tried again soon) or refused by the index until an operator acts (tried again every 30 s)"
    );
    describe_counter!(
        BULK_ERRORS,
        "Elasticsearch bulk items that failed, by error type (transient ones are retried)"
    );
    describe_histogram!(
        QUERY_SLOT_WAIT,
        Unit::Seconds,
        "time an embedded-index query waited for a query slot"
    );
    describe_gauge!(JOBS_QUEUED, "jobs waiting to run, by kind");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "time a job ran in this process, by kind and outcome");
    describe_counter!(
        IMPORT_ROWS,
        "spreadsheet rows imports settled, dry runs included (rate() is rows per second)"
    );
    describe_counter!(
        MESSAGE_TRIES,
        "tries to send a message to a debtor, by channel, provider and outcome (sent, retry, failed)"
    );
    describe_histogram!(
        DOCUMENTS_PROCESSED,
        Unit::Seconds,
        "time reading one document took (its child process included), by kind and outcome (processed, unreadable, failed)"
    );
    describe_gauge!(WS_CONNECTIONS, "open WebSocket connections");
    describe_counter!(WS_SLOW, "WebSocket clients closed with 1008 for not keeping up");
    describe_gauge!(POOL_CONNECTIONS, "database pool connections, by state (in_use, idle)");
    describe_gauge!(POOL_MAX, "database pool size limit");
    describe_histogram!(
        DB_QUERY,
        Unit::Seconds,
        "database statements, by family (verb and first table), until their rows were read (QUERY_TIMING)"
    );
    describe_histogram!(
        DB_POOL_WAIT,
        Unit::Seconds,
        "time a database connection was waited for from the pool (QUERY_TIMING)"
    );
}

/// Figures the operator's view (`GET /api/v1/admin/system`) reads from this process, kept
/// by the same calls that feed Prometheus.
struct Tally {
    http_requests: AtomicU64,
    http_server_errors: AtomicU64,
    ws_connections: AtomicI64,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
}

static TALLY: Tally = Tally {
    http_requests: AtomicU64::new(0),
    http_server_errors: AtomicU64::new(0),
    ws_connections: AtomicI64::new(0),
    rate_limited: Mutex::new(BTreeMap::new()),
};

/// What this process has counted since it started.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ProcessCounts {
    /// HTTP requests answered.
    pub http_requests: u64,
    /// Of them, answered with a 5xx.
    pub http_server_errors: u64,
    /// WebSocket connections open now.
    pub ws_connections: i64,
    /// Requests refused with 429, by rate-limit class.
    pub rate_limited: BTreeMap<String, u64>,
}

pub fn counted() -> ProcessCounts {
    ProcessCounts {
        http_requests: TALLY.http_requests.load(Ordering::Relaxed),
        http_server_errors: TALLY.http_server_errors.load(Ordering::Relaxed),
        ws_connections: TALLY.ws_connections.load(Ordering::Relaxed),
        rate_limited: TALLY
            .rate_limited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(class, n)| ((*class).to_owned(), *n))
            .collect(),
    }
}

/// Keeps histograms' buffered samples bounded between scrapes.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// `route` is a template (`/api/v1/accounts/{id}`), never a raw path, so the label set
/// stays bounded.
pub fn http_request(method: &'static str, route: &'static str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    TALLY.http_requests.fetch_add(1, Ordering::Relaxed);
    if status >= 500 {
        TALLY.http_server_errors.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn rate_limited(class: &'static str) {
    counter!(RATE_LIMITED, "class" => class).increment(1);
    *TALLY
        .rate_limited
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(class)
        .or_default() += 1;
}

/// `family` is a statement's verb and first table (`telemetry::queries::family`), so
/// the label set stays bounded.
pub fn db_query(family: &str, elapsed: Duration) {
    histogram!(DB_QUERY, "family" => family.to_owned()).record(elapsed.as_secs_f64());
}

pub fn db_pool_wait(waited: Duration) {
    histogram!(DB_POOL_WAIT).record(waited.as_secs_f64());
}

pub fn sync_lag(lag: Duration) {
    histogram!(SYNC_LAG).record(lag.as_secs_f64());
}

pub fn outbox(depth: i64, oldest_age: Duration) {
    gauge!(OUTBOX_DEPTH).set(depth as f64);
    gauge!(OUTBOX_OLDEST).set(oldest_age.as_secs_f64());
}

/// Documents of one sync batch: written, skipped as stale, refused for good.
pub fn documents(indexed: usize, stale: usize, dead_letters: usize) {
    for (outcome, n) in [("indexed", indexed), ("stale", stale), ("dead_letter", dead_letters)] {
        if n > 0 {
            counter!(DOCUMENTS, "outcome" => outcome).increment(n as u64);
        }
    }
}

pub fn connections_open(open: usize) {
    gauge!(CONNECTIONS_OPEN).set(open as f64);
}

pub fn connection_refused() {
    counter!(CONNECTIONS_REFUSED).increment(1);
}

/// `entity` is one of the two entities, so the label set stays bounded.
pub fn sync_held(entity: &'static str, held: bool) {
    gauge!(SYNC_HELD, "entity" => entity).set(if held { 1.0 } else { 0.0 });
}

pub fn sync_failure(refused: bool) {
    counter!(SYNC_FAILURES, "kind" => if refused { "refused" } else { "transient" }).increment(1);
}

/// `kind` is Elasticsearch's error type (`mapper_parsing_exception`, ...) or `transient`.
pub fn bulk_item_error(kind: &str) {
    counter!(BULK_ERRORS, "kind" => kind.to_owned()).increment(1);
}

pub fn query_slot_wait(waited: Duration) {
    histogram!(QUERY_SLOT_WAIT).record(waited.as_secs_f64());
}

pub fn jobs_queued(kind: &str, count: i64) {
    gauge!(JOBS_QUEUED, "kind" => kind.to_owned()).set(count as f64);
}

pub fn job_ran(kind: &str, outcome: &'static str, elapsed: Duration) {
    histogram!(JOB_DURATION, "kind" => kind.to_owned(), "outcome" => outcome).record(elapsed.as_secs_f64());
}

pub fn message_tried(channel: &'static str, provider: &'static str, outcome: &'static str) {
    counter!(MESSAGE_TRIES, "channel" => channel, "provider" => provider, "outcome" => outcome).increment(1);
}

pub fn document_processed(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    histogram!(DOCUMENTS_PROCESSED, "kind" => kind, "outcome" => outcome).record(elapsed.as_secs_f64());
}

pub fn import_rows(rows: u64) {
    counter!(IMPORT_ROWS).increment(rows);
}

pub fn ws_opened() {
    gauge!(WS_CONNECTIONS).increment(1.0);
    TALLY.ws_connections.fetch_add(1, Ordering::Relaxed);
}

pub fn ws_closed(slow_consumer: bool) {
    gauge!(WS_CONNECTIONS).decrement(1.0);
    TALLY.ws_connections.fetch_sub(1, Ordering::Relaxed);
    if slow_consumer {
        counter!(WS_SLOW).increment(1);
    }
}

pub fn pool(in_use: u32, idle: u32, max: u32) {
    gauge!(POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    gauge!(POOL_MAX).set(f64::from(max));
}
