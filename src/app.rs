//! Application assembly: the listener, the background tasks, and the serve loop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::domain::document::Entity;
use crate::events::relay;
use crate::search::SearchIndex;
use crate::search::embedded::OpenError;
use crate::search::open;
use crate::state::AppState;
use crate::store::dead_letters::SqlDeadLetters;
use crate::sync::SyncRuntime;
use crate::{http, jobs, store};

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

/// A built, bound API server whose background sync (if any) already runs.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    stop_background: watch::Sender<bool>,
    background: JoinSet<()>,
}

impl Application {
    /// Connects (creating the database if needed), migrates, opens the search index,
    /// starts the sync worker when this process owns the index, and binds `settings.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = store::connect(&settings.database_url, settings.database_max_connections).await?;
        store::migrate(&pool).await?;
        let (search, fresh) = open_index(&settings, &pool).await?;
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let workers = settings.sync_workers;
        let state = AppState::new(settings, pool.clone(), search.clone()).await?;
        let (stop_background, stopped) = watch::channel(false);
        let mut background = if let Some(initial_backfill) = fresh {
            let runtime = SyncRuntime {
                pool,
                index: search,
                metrics: state.sync_metrics().clone(),
                workers,
                initial_backfill,
            };
            runtime.start(stopped.clone()).await?
        } else {
            JoinSet::new()
        };
        state.events().start(stopped.clone(), &mut background);
        background.spawn(relay::run(state.pool().clone(), state.events().clone(), stopped.clone()));
        background.spawn(jobs::promises::run(state.pool().clone(), stopped.clone()));
        background.spawn(jobs::run(state.pool().clone(), stopped));
        Ok(Self {
            listener,
            state,
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

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then stops the sync.
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(addr = %self.local_addr(), "listening");
        let routes = http::routes(self.state.clone());
        let events = self.state.events().clone();
        let shutdown = async move {
            shutdown.await;
            // Upgraded sockets are not the server's to drain: tell them to close.
            events.close_sessions();
        };
        http::server::serve(self.listener, routes, self.state.clone(), shutdown).await;
        let _ = self.stop_background.send(true);
        while self.background.join_next().await.is_some() {}
        self.state.pool().close().await;
    }
}
