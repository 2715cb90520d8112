//! One rebuild of an entity at a time, across every process and host: a rebuild holds a
//! PostgreSQL session advisory lock for its entity. The lock dies with the session, so a
//! rebuild whose process died holds nothing, and whoever takes the lock next knows that
//! any generation still written but not read was left behind by a dead rebuild.

use sqlx::{Connection, PgConnection, PgPool};

use crate::domain::document::Entity;
use crate::error::Result;

/// A held rebuild lock; dropping it (or the process dying) ends the session and so the
/// lock.
pub struct RebuildLock {
    session: PgConnection,
}

fn key(entity: Entity) -> String {
    format!("arrears:rebuild:{}", entity.plural())
}

/// The lock of `entity`'s rebuilds, or `None` while another session holds it.
pub async fn try_lock(pool: &PgPool, entity: Entity) -> Result<Option<RebuildLock>> {
    // A session of its own: a pooled connection would go back to the pool still
    // holding the lock.
    let mut session = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(key(entity))
        .fetch_one(&mut session)
        .await?;
    if locked {
        Ok(Some(RebuildLock { session }))
    } else {
        session.close().await?;
        Ok(None)
    }
}

impl RebuildLock {
    pub async fn release(self) {
        // Ending the session releases the lock; a failure to say goodbye drops the
        // connection, which ends it too.
        let _ = self.session.close().await;
    }
}
