//! The relay: the one process (leader by advisory lock) that publishes committed events
//! in id order and marks them published. Others stand by and take over when it stops.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgPool};
use tokio::sync::watch;

use super::Events;
use crate::error::Result;
use crate::shutdown::running;
use crate::store::events;

/// Advisory lock key held by the leading relay ("arrears1").
const RELAY_LOCK: i64 = 0x6172_7265_6172_7331;
const BATCH: i64 = 500;
/// The leader looks for new events this often (writers do not NOTIFY: see migration
/// 0009); an empty look is one index probe.
const POLL_EVERY: Duration = Duration::from_millis(20);
const STANDBY_RETRY: Duration = Duration::from_secs(2);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const VACUUM_EVERY: Duration = Duration::from_secs(5);
/// How long events stay available for catch-up after a reconnect.
pub const RETENTION_DAYS: i64 = 7;

pub async fn run(pool: PgPool, events: Events, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        if let Err(err) = lead(&pool, &events, &mut shutdown).await {
            tracing::warn!(error = %err, "event relay failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(STANDBY_RETRY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Publishes while this process holds the relay lock. The lock is a session lock on a
/// connection of its own, closed on return, so a crashed leader frees it at once.
async fn lead(pool: &PgPool, events: &Events, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
    let mut conn = pool.acquire().await?.detach();
    let leader = events::try_lead(&mut conn, RELAY_LOCK).await?;
    if !leader {
        return Ok(());
    }
    tracing::info!("event relay leading");
    let (mut pruned, mut vacuumed) = (Instant::now(), Instant::now());
    while running(shutdown) {
        let (ids, batch) = events::unpublished(&mut conn, BATCH).await?;
        if !ids.is_empty() {
            for event in batch {
                events.publish(event).await;
            }
            events::mark_published(&mut conn, &ids).await?;
            if ids.len() as i64 == BATCH {
                continue;
            }
        }
        if vacuumed.elapsed() >= VACUUM_EVERY {
            if let Err(err) = events::vacuum_queue(&mut conn).await {
                tracing::warn!(error = %err, "event queue vacuum failed");
            }
            vacuumed = Instant::now();
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            let before = chrono::Utc::now() - chrono::Duration::days(RETENTION_DAYS);
            let removed = events::prune(&mut conn, before).await?;
            tracing::info!(removed, "old events pruned");
            pruned = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
    let _ = conn.close().await;
    Ok(())
}
