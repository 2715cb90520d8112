//! Keeping the search index in step with PostgreSQL: the outbox worker, rebuilds,
//! audits, and the bookkeeping of which process feeds which index.

pub mod metrics;
pub mod reindex;
pub mod verify;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::metrics::SyncMetrics;
use self::reindex::Progress;
use self::worker::SyncWorker;
use crate::domain::document::Entity;
use crate::error::{Code, Error};
use crate::search::SearchIndex;
use crate::shutdown::running;
use crate::store::sync_workers::{HEARTBEAT_EVERY, Lease};
use crate::store::{documents, search_tasks};

/// Everything a process that feeds the index runs in the background.
pub struct SyncRuntime {
    pub pool: PgPool,
    pub index: Arc<dyn SearchIndex>,
    pub metrics: Arc<SyncMetrics>,
    pub workers: usize,
    /// Entities to backfill once at start (their index was created empty).
    pub initial_backfill: Vec<Entity>,
    /// Rebuild at start every entity whose index has another release's mapping (a
    /// server or `arrears sync` after an upgrade; not `arrears reindex`, which rebuilds
    /// what it was asked to).
    pub rebuild_outdated: bool,
}

impl SyncRuntime {
    /// Registers the lease (refusing to split the outbox between indexes) and starts
    /// the workers, the heartbeat and the rebuild-task runner. Stops on `shutdown`.
    pub async fn start(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<JoinSet<()>> {
        let lease = Lease::acquire(&self.pool, &self.index.identity()).await?;
        search_tasks::fail_interrupted(&self.pool).await?;
        let mut tasks = JoinSet::new();
        for _ in 0..self.workers.max(1) {
            let worker = SyncWorker::new(self.pool.clone(), self.index.clone(), self.metrics.clone());
            tasks.spawn(worker.run(shutdown.clone()));
        }
        tasks.spawn(heartbeat(lease, shutdown.clone()));
        tasks.spawn(run_tasks(self.pool.clone(), self.index.clone(), shutdown.clone()));
        for entity in self.initial_backfill {
            // Decided before anything else can write: rows that exist now are
            // backfilled, later ones arrive through the outbox.
            let rows = documents::count(&self.pool, entity).await?;
            if rows == 0 {
                continue;
            }
            let (pool, index) = (self.pool.clone(), self.index.clone());
            tasks.spawn(async move {
                tracing::info!(rows, entity = entity.as_str(), "new search index: building it from SQL");
                if let Err(err) = reindex::rebuild(&pool, index.as_ref(), entity, |_| {}).await {
                    tracing::error!(error = %err, "initial index build failed; run `arrears reindex {}`", entity.plural());
                }
            });
        }
        let outdated = if self.rebuild_outdated {
            self.index.outdated().await?
        } else {
            Vec::new()
        };
        for entity in outdated {
            tracing::warn!(
                entity = entity.as_str(),
                "the index has another release's mapping: rebuilding it with this build's (its changes wait meanwhile)"
            );
            let (pool, index) = (self.pool.clone(), self.index.clone());
            tasks.spawn(async move {
                match reindex::rebuild_outdated(&pool, index.as_ref(), entity).await {
                    Ok(Some(_)) => {}
                    Ok(None) => tracing::info!(entity = entity.as_str(), "another process rebuilt the index meanwhile"),
                    // Another process (a second instance, `arrears reindex`) holds the
                    // rebuild: it does the work.
                    Err(Error::Problem(problem)) if problem.code == Code::Conflict => {
                        tracing::info!(entity = entity.as_str(), reason = %problem.detail, "rebuild left to another process");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "rebuild after an upgrade failed; run `arrears reindex {}`", entity.plural());
                    }
                }
            });
        }
        Ok(tasks)
    }
}

async fn heartbeat(lease: Lease, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {
                if let Err(err) = lease.heartbeat().await {
                    tracing::warn!(error = %err, "sync worker heartbeat failed");
                }
            }
            _ = shutdown.changed() => {}
        }
    }
    lease.release().await;
}

/// Runs rebuilds that the CLI asked this process for (it owns the embedded index).
async fn run_tasks(pool: PgPool, index: Arc<dyn SearchIndex>, mut shutdown: watch::Receiver<bool>) {
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => l.listen(search_tasks::CHANNEL).await.ok().map(|()| l),
        Err(_) => None,
    };
    while running(&shutdown) {
        match search_tasks::claim(&pool).await {
            Ok(Some(task)) => {
                tracing::info!(task_id = %task.id, entity = %task.entity, "running requested rebuild");
                let Some(entity) = Entity::parse(&task.entity) else {
                    let message = format!("unknown entity {}", task.entity);
                    let _ = search_tasks::finish(&pool, task.id, Some(&message)).await;
                    continue;
                };
                let id = task.id;
                // One task records the updates, in the order they came: the copy's
                // counts, then the swap, all before the outcome below.
                let (updates, mut received) = tokio::sync::mpsc::unbounded_channel();
                let recorder = {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        while let Some(update) = received.recv().await {
                            let recorded = match update {
                                Progress::Copying { done, total } => search_tasks::progress(&pool, id, done as i64, total as i64).await,
                                Progress::Swapping => search_tasks::swapping(&pool, id).await,
                            };
                            if let Err(err) = recorded {
                                tracing::warn!(error = %err, "could not record the rebuild's progress");
                            }
                        }
                    })
                };
                let mut last = std::time::Instant::now();
                let result = reindex::rebuild(&pool, index.as_ref(), entity, |progress| {
                    let throttled = matches!(progress, Progress::Copying { done, total } if done < total)
                        && last.elapsed() < Duration::from_millis(250);
                    if !throttled {
                        last = std::time::Instant::now();
                        let _ = updates.send(progress);
                    }
                })
                .await;
                drop(updates);
                let _ = recorder.await;
                let error = result.as_ref().err().map(ToString::to_string);
                if let Ok(report) = &result {
                    let _ = search_tasks::progress(&pool, id, report.documents as i64, report.documents as i64).await;
                }
                if let Err(err) = search_tasks::finish(&pool, id, error.as_deref()).await {
                    tracing::warn!(error = %err, "could not record the rebuild outcome");
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "checking for rebuild tasks failed"),
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = notified => {
                if result.is_err() {
                    listener = None;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
