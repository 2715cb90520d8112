//! Keeps the contact windows in the index right across DST changes: a document holds
//! its window as UTC minutes for the offsets of when it was built, so when a zone's
//! offset changes, the accounts it shapes are re-indexed. Every API process runs it;
//! the zone's row lock makes one of them do each change.

use std::time::Duration;

use chrono_tz::Tz;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::compliance::{UNKNOWN_ZONES, offset_minutes};
use crate::error::Result;
use crate::shutdown::running;
use crate::store::compliance;

/// How often the zones' offsets are compared with what the documents were built with.
const CHECK_EVERY: Duration = Duration::from_secs(600);

/// Re-indexes the accounts of every zone whose offset at `clock`'s now differs from the
/// one recorded; how many were.
pub async fn refresh(pool: &PgPool, clock: &Clock) -> Result<u64> {
    let now = clock.now();
    let mut touched = 0;
    for name in compliance::zones_in_use(pool).await? {
        let Ok(zone) = name.parse::<Tz>() else { continue };
        if let Some(n) = compliance::record_zone_offset(pool, &name, offset_minutes(zone, now), &UNKNOWN_ZONES).await? {
            tracing::info!(zone = %name, accounts = n, "zone offset changed; contact windows re-indexed");
            touched += n;
        }
    }
    Ok(touched)
}

pub async fn run(pool: PgPool, clock: Clock, mut shutdown: watch::Receiver<bool>) {
    while running(&shutdown) {
        if let Err(err) = refresh(&pool, &clock).await {
            tracing::warn!(error = %err, "checking zone offsets failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
