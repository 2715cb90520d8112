//! Announces which index a sync worker feeds. Two workers on one database must feed the
//! same index, or the outbox would be split between them and each index would miss
//! what the other consumed.

use std::time::Duration;

use anyhow::bail;
use sqlx::PgPool;
use uuid::Uuid;

/// A worker that has not beaten for this long is presumed dead.
const STALE_AFTER_SECS: f64 = 15.0;
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub struct Lease {
    pub id: Uuid,
    pool: PgPool,
}

impl Lease {
    /// Registers this worker, refusing when a live worker feeds another index.
    pub async fn acquire(pool: &PgPool, identity: &str) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('arrears.sync_workers'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sync_workers WHERE heartbeat_at < now() - make_interval(secs => $1)")
            .bind(STALE_AFTER_SECS * 2.0)
            .execute(&mut *tx)
            .await?;
        let other: Option<(String, String, i32)> = sqlx::query_as(
            "SELECT index_identity, hostname, pid FROM sync_workers
             WHERE index_identity <> $1 AND heartbeat_at > now() - make_interval(secs => $2) LIMIT 1",
        )
        .bind(identity)
        .bind(STALE_AFTER_SECS)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((other_identity, host, pid)) = other {
            bail!(
                "another sync worker (pid {pid} on {host}) already feeds a different search index ({other_identity}) from this database; \
                 the embedded index belongs to one process and one data dir. To run several sync workers or API hosts, \
                 use the Elasticsearch backend (SEARCH_BACKEND=elasticsearch), which every worker can feed"
            );
        }
        let id = Uuid::now_v7();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        sqlx::query("INSERT INTO sync_workers (id, index_identity, hostname, pid) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(identity)
            .bind(hostname)
            .bind(std::process::id() as i32)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Self { id, pool: pool.clone() })
    }

    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        sqlx::query("UPDATE sync_workers SET heartbeat_at = now() WHERE id = $1")
            .bind(self.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn release(self) {
        if let Err(err) = sqlx::query("DELETE FROM sync_workers WHERE id = $1")
            .bind(self.id)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %err, "could not release the sync worker lease");
        }
    }
}
