//! Document upkeep, in every API process, hourly: the bytes of documents whose
//! retention ended are removed ([`attachments::purge_expired`]), the zips of bulk
//! uploads that ended are dropped (a job cancelled before it ran leaves its zip to this
//! pass), and files over a day old that nothing names are removed
//! ([`attachments::remove_orphans`]). Safe in several processes at once: a pass skips
//! the rows another holds, and removing a file already gone is not an error.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::Result;
use crate::service::{attachments, document_uploads};
use crate::shutdown::running;
use crate::storage::ContentStore;

const EVERY: Duration = Duration::from_secs(3600);

/// What document upkeep needs.
#[derive(Clone)]
pub struct Retention {
    pub pool: PgPool,
    pub content: Arc<dyn ContentStore>,
    pub clock: Clock,
    /// `DOCUMENT_RETENTION_DAYS`; 0 keeps every document's bytes.
    pub days: u32,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    pub purged: u64,
    pub zips_removed: u64,
    pub orphans_removed: u64,
}

impl Retention {
    /// One pass at the clock's now.
    pub async fn pass(&self) -> Result<Upkeep> {
        let content = self.content.as_ref();
        Ok(Upkeep {
            purged: attachments::purge_expired(&self.pool, content, self.clock.now(), self.days).await?,
            zips_removed: document_uploads::discard_ended_zips(&self.pool, content).await?,
            orphans_removed: attachments::remove_orphans(&self.pool, content).await?,
        })
    }

    /// A pass every hour until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while running(&shutdown) {
            match self.pass().await {
                Ok(upkeep) if upkeep != Upkeep::default() => {
                    tracing::info!(
                        purged = upkeep.purged,
                        zips_removed = upkeep.zips_removed,
                        orphans_removed = upkeep.orphans_removed,
                        "document upkeep"
                    )
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "document upkeep failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
