//! Application assembly: the listener, the background tasks, and the serve loop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::document::Entity;
use crate::events::relay;
use crate::jobs::schedulers::Schedulers;
use crate::search::SearchIndex;
use crate::search::embedded::OpenError;
use crate::search::open;
use crate::state::AppState;
use crate::store::dead_letters::SqlDeadLetters;
use crate::sync::SyncRuntime;
use crate::{http, jobs, service, store, telemetry};

/// Opens the search index: to write when this process runs the sync worker (and, for
/// the embedded index, nobody else owns it), read-only otherwise.
async fn open_index(settings: &Settings, pool: &PgPool) -> anyhow::Result<(Arc<dyn SearchIndex>, Option<Vec<Entity>>)> {
    if settings.sync_worker {
        match open::writer(settings, SqlDeadLetters::shared(pool.clone())).await {
            Ok(writer) => return Ok((writer.index, Some(writer.fresh))),
            Err(OpenError::Busy(path)) => {
                tracing::warn!(path = %path.display(), "another process owns the search index; serving reads from it without a sync worker");
            }
            Err(OpenError::Other(err)) => return Err(err),
        }
    }
    Ok((open::reader(settings, SqlDeadLetters::shared(pool.clone()))?, None))
}

/// Resolves once `serving` turns true.
/// The program that reads documents for processing: `DOCUMENT_EXTRACTOR`, this binary
/// when unset, none when set empty.
fn document_extractor(configured: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    match configured {
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(path.to_owned()),
        None => match std::env::current_exe() {
            Ok(path) => Some(path),
            Err(err) => {
                tracing::warn!(error = %err, "this binary's path is unknown: documents are not processed");
                None
            }
        },
    }
}

async fn signalled(mut serving: watch::Receiver<bool>) {
    let _ = serving.wait_for(|stop| *stop).await;
}

/// Drains the metrics' buffered histogram samples every few seconds, so memory stays
/// bounded however long nobody scrapes.
async fn metrics_upkeep(mut stopped: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    while crate::shutdown::running(&stopped) {
        tokio::select! {
            _ = every.tick() => telemetry::metrics::upkeep(),
            _ = stopped.changed() => {}
        }
    }
}

/// What a test may choose of the application: its clock, and whether its schedulers
/// run in the background. The default is production's: the system clock, schedulers on.
#[derive(Clone, Debug)]
pub struct Options {
    pub clock: Clock,
    /// Off: nothing breaks promises, misses instalments, takes snapshots or checks zone
    /// offsets unless [`Schedulers::pass`] is called.
    pub run_schedulers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Clock::system(),
            run_schedulers: true,
        }
    }
}

/// A built, bound API server whose background sync (if any) already runs.
pub struct Application {
    listener: TcpListener,
    /// Where `/metrics` is served, unless METRICS=false.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    schedulers: Schedulers,
    stop_background: watch::Sender<bool>,
    background: JoinSet<()>,
}

impl Application {
    /// Connects (creating the database if needed), migrates, opens the search index,
    /// starts the sync worker when this process owns the index, and binds `settings.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Options::default()).await
    }

    /// [`Application::build`] with a chosen clock, and the schedulers on or off.
    pub async fn build_with(settings: Settings, options: Options) -> anyhow::Result<Self> {
        let pool = store::connect(&settings.database_url, settings.database_max_connections).await?;
        store::migrate(&pool).await?;
        let (search, fresh) = open_index(&settings, &pool).await?;
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let metrics_listener = if settings.metrics {
            telemetry::metrics::install()?;
            let listener = TcpListener::bind(settings.metrics_bind)
                .await
                .with_context(|| format!("binding the metrics listener {}", settings.metrics_bind))?;
            Some(listener)
        } else {
            None
        };
        let workers = settings.sync_workers;
        let state = AppState::new(settings, pool.clone(), search.clone(), options.clock).await?;
        let (stop_background, stopped) = watch::channel(false);
        let mut background = if let Some(initial_backfill) = fresh {
            let runtime = SyncRuntime {
                pool,
                index: search,
                metrics: state.sync_metrics().clone(),
                workers,
                initial_backfill,
                rebuild_outdated: true,
            };
            runtime.start(stopped.clone()).await?
        } else {
            JoinSet::new()
        };
        state.events().start(stopped.clone(), &mut background);
        background.spawn(relay::run(state.pool().clone(), state.events().clone(), stopped.clone()));
        let schedulers = Schedulers {
            pool: state.pool().clone(),
            clock: state.clock().clone(),
            misses: jobs::plans::MissRules {
                grace_days: state.settings().plan_grace_days,
                max_misses: state.settings().plan_max_misses,
            },
            audit_retention_days: state.settings().audit_retention_days,
            overdue_after_days: state.settings().overdue_after_days,
        };
        if options.run_schedulers {
            schedulers.start(&stopped, &mut background);
            let retention = jobs::document_retention::Retention {
                pool: state.pool().clone(),
                content: state.content().clone(),
                clock: state.clock().clone(),
                days: state.settings().document_retention_days,
            };
            background.spawn(retention.run(stopped.clone()));
        }
        let documents = jobs::document_upload::Documents {
            content: state.content().clone(),
            max_file_bytes: state.settings().document_max_bytes,
        };
        background.spawn(jobs::run(state.pool().clone(), documents, stopped.clone()));
        let processor = service::document_processing::Processor {
            pool: state.pool().clone(),
            content: state.content().clone(),
            extractor: document_extractor(state.settings().document_extractor.as_deref()),
            max_bytes: state.settings().document_max_bytes,
        };
        background.spawn(jobs::document_processing::run(processor, stopped.clone()));
        background.spawn(jobs::messages::run(
            state.pool().clone(),
            state.messengers().clone(),
            state.content().clone(),
            state.clock().clone(),
            stopped.clone(),
        ));
        if metrics_listener.is_some() {
            background.spawn(metrics_upkeep(stopped));
        }
        Ok(Self {
            listener,
            metrics_listener,
            state,
            schedulers,
            stop_background,
            background,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The metrics listener's port, unless METRICS=false.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The schedulers, to run a pass of them on demand.
    pub fn schedulers(&self) -> &Schedulers {
        &self.schedulers
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then stops the sync.
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(addr = %self.local_addr(), "listening");
        let routes = http::routes(self.state.clone());
        let events = self.state.events().clone();
        let (stop_serving, serving) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            // Upgraded sockets are not the server's to drain: tell them to close.
            events.close_sessions();
            let _ = stop_serving.send(true);
        });
        let metrics = self.metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(addr = %addr, "serving metrics");
            }
            let routes = http::metrics::routes(self.state.clone());
            tokio::spawn(http::server::serve(
                listener,
                routes,
                self.state.clone(),
                signalled(serving.clone()),
            ))
        });
        http::server::serve(self.listener, routes, self.state.clone(), signalled(serving)).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = self.stop_background.send(true);
        while self.background.join_next().await.is_some() {}
        self.state.pool().close().await;
    }
}
