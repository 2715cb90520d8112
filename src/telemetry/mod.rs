//! Logging setup, the request being served (its id, which every log line and response
//! carries, and its client's address, which the audit trail records), the Prometheus
//! metrics, and the database statements' timing.

pub mod metrics;
pub mod queries;

use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

tokio::task_local! {
    static REQUEST: Request;
}

/// The request a task serves.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
    /// The client's address (what a trusted proxy forwarded, or the peer).
    pub client: String,
}

/// Installs the global subscriber: the logs (`RUST_LOG` overrides the default level)
/// and, when `query_timing`, the statements' timing ([`statement_timing`]), each with its
/// own filter, so that timing does not depend on the log level.
pub fn init(format: LogFormat, query_timing: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let logged = filter.max_level_hint();
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed(),
    };
    let timing = query_timing.then(statement_timing);
    let result = tracing_subscriber::registry().with(logs).with(timing).try_init();
    if result.is_ok() {
        // The timing listens at TRACE (sqlx's level for statements), so the subscriber's
        // level, which `try_init` also gives the `log` crate's records, is TRACE: every
        // dependency's `log::trace!` would then be built and handed over, only to be
        // dropped. The `log` crate keeps the logs' own level; sqlx asks tracing, not
        // `log`, whether its statements are wanted.
        log::set_max_level(log_level(logged));
    }
    // A second init (tests spawning several apps) keeps the first subscriber.
    drop(result);
}

/// The `log` crate's level for tracing's `level` (`None`: everything).
fn log_level(level: Option<LevelFilter>) -> log::LevelFilter {
    match level {
        None | Some(LevelFilter::TRACE) => log::LevelFilter::Trace,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(_) => log::LevelFilter::Off,
    }
}

/// The statements' timing ([`queries::QueryTiming`]) with its filter: sqlx's statement
/// and pool-acquire events, which it emits at TRACE; no other call site is ever asked
/// about.
pub fn statement_timing<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    queries::QueryTiming::installed().with_filter(
        Targets::new()
            .with_target(queries::TARGET, Level::TRACE)
            .with_target(queries::ACQUIRE_TARGET, Level::TRACE),
    )
}

/// Runs `fut` as serving `request`.
pub async fn with_request<F: Future>(request: Request, fut: F) -> F::Output {
    REQUEST.scope(request, fut).await
}

/// The id of the request being served, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST.try_with(|r| r.id.clone()).unwrap_or_else(|_| "-".to_owned())
}

/// The request being served, if any.
pub fn current_request() -> Option<Request> {
    REQUEST.try_with(Clone::clone).ok()
}

/// A new request's own id: the server's, unique, what problems, the audit trail and
/// `x-request-id` name. A client's id never becomes it (another request's id could be
/// reused to blur the trail); it is kept apart ([`client_request_id`]).
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What the client called its request (its `x-request-id`), when it is short and
/// printable, so it is safe to log and echo as `x-client-request-id`.
pub fn client_request_id(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .map(str::to_owned)
}
