//! What operators watch of the system itself: whether the database answers, how much
//! work waits in the job queue, and the operator's view of the whole process.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::domain::job::JobKind;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::Result;
use crate::search::{IndexSize, SearchIndex};
use crate::store::{self, jobs, outbox};
use crate::sync::metrics::SyncMetrics;
use crate::telemetry::metrics::{self, ProcessCounts};
use crate::telemetry::queries::{self, FamilyFigures, Timings};

/// Whether PostgreSQL answers a query.
pub async fn database_answers(pool: &PgPool) -> std::result::Result<(), sqlx::Error> {
    store::ping(pool).await
}

/// Jobs waiting to run, for every kind of job (zero for a kind with none).
pub async fn queued_jobs(pool: &PgPool) -> Result<Vec<(JobKind, i64)>> {
    let queued = jobs::queued_by_kind(pool).await?;
    Ok(JobKind::ALL
        .into_iter()
        .map(|kind| (kind, queued.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)))
        .collect())
}

/// The operator's view of this process and what it serves (`GET /api/v1/admin/system`):
/// each figure read when asked, the same ones Prometheus keeps.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SystemView {
    pub at: DateTime<Utc>,
    /// Since this process's state was built.
    pub uptime_seconds: f64,
    pub process: ProcessFigures,
    pub pool: PoolFigures,
    pub queries: QueryFigures,
    pub sync: SyncFigures,
    /// Jobs waiting to run, by kind.
    pub jobs: Vec<QueuedJobs>,
    pub counted: ProcessCounts,
}

/// The process, from `/proc/self` (Linux).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ProcessFigures {
    /// Resident memory now, and the most it has been (`VmRSS`, `VmHWM`).
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    /// CPU time used since it started, user and system (`utime + stime`).
    pub cpu_seconds: f64,
    pub threads: u64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PoolFigures {
    /// Connections open, idle among them, in use, and the limit
    /// (`DATABASE_MAX_CONNECTIONS`).
    pub open: u32,
    pub idle: u32,
    pub in_use: u32,
    pub max: u32,
    /// The waits for a connection (`count` acquires, how long they waited): all zero
    /// when statements are not timed.
    pub waits: Timings,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct QueryFigures {
    /// Whether statements are timed (`QUERY_TIMING`; false in a process that installed
    /// no tracing, as the in-process tests).
    pub timed: bool,
    /// Each statement family, the most time taken first.
    pub families: Vec<FamilyFigures>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SyncFigures {
    /// Changes committed but not yet indexed, and the age of the oldest, in seconds.
    pub outbox_depth: i64,
    pub oldest_change_seconds: Option<f64>,
    /// What this process's sync workers did since it started (zero where none run).
    pub documents_indexed: u64,
    pub documents_stale: u64,
    pub batch_errors: u64,
    /// Commit to searchable, the median and 99th percentile of this process's indexed
    /// changes (bucket bounds), in milliseconds.
    pub lag_p50_ms: Option<u64>,
    pub lag_p99_ms: Option<u64>,
    /// The search backend's state in a word, or why it cannot answer.
    pub search: String,
    /// The live index of each entity (none while the backend cannot answer).
    pub indices: Vec<IndexSize>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedJobs {
    pub kind: JobKind,
    pub queued: i64,
}

/// Where the view's figures come from.
pub struct Sources<'a> {
    pub pool: &'a PgPool,
    pub max_connections: u32,
    pub search: &'a dyn SearchIndex,
    pub sync: &'a SyncMetrics,
    pub started: Instant,
}

/// The view, for admins.
pub async fn view(caller: &Principal, from: Sources<'_>, now: DateTime<Utc>) -> Result<SystemView> {
    caller.require(Action::ReadSystem)?;
    let (depth, oldest) = outbox::depth(from.pool).await?;
    let sync = from.sync.snapshot();
    let search = match from.search.health().await {
        Ok(state) | Err(state) => state,
    };
    let indices = from.search.sizes().await.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "reading the search indices' sizes failed");
        Vec::new()
    });
    let open = from.pool.size();
    let idle = u32::try_from(from.pool.num_idle()).unwrap_or(u32::MAX);
    Ok(SystemView {
        at: now,
        uptime_seconds: from.started.elapsed().as_secs_f64(),
        process: process_figures(),
        pool: PoolFigures {
            open,
            idle,
            in_use: open.saturating_sub(idle),
            max: from.max_connections,
            waits: queries::waits(),
        },
        queries: QueryFigures {
            timed: queries::timing(),
            families: queries::figures(),
        },
        sync: SyncFigures {
            outbox_depth: depth,
            oldest_change_seconds: oldest.map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
            documents_indexed: sync.applied,
            documents_stale: sync.stale,
            batch_errors: sync.errors,
            lag_p50_ms: sync.lag_p50_ms,
            lag_p99_ms: sync.lag_p99_ms,
            search,
            indices,
        },
        jobs: queued_jobs(from.pool)
            .await?
            .into_iter()
            .map(|(kind, queued)| QueuedJobs { kind, queued })
            .collect(),
        counted: metrics::counted(),
    })
}

/// Clock ticks per second of `/proc/self/stat`'s times: Linux's `USER_HZ`, 100 on
/// every architecture it exports to user space.
const USER_HZ: f64 = 100.0;

/// This process's memory, CPU time and threads; zeros where `/proc` cannot be read.
fn process_figures() -> ProcessFigures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th
    // and 13th of them (the 14th and 15th of the line).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ProcessFigures {
        rss_bytes: field("VmRSS:") * 1024,
        peak_rss_bytes: field("VmHWM:") * 1024,
        cpu_seconds: ticks as f64 / USER_HZ,
        threads: field("Threads:"),
    }
}
