//! Logging setup, the request being served (its id, which every log line and response
//! carries, and its client's address, which the audit trail records), and the Prometheus
//! metrics.

pub mod metrics;

use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber. `RUST_LOG` overrides the default level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second init (tests spawning several apps) keeps the first subscriber.
    drop(result);
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

/// Accepts a caller's id only when it is short and printable, so it is safe to log and echo.
pub fn request_id_from_header(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) => v.to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}
