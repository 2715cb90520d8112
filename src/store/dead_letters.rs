//! Documents the search backend refused for good (`search_dead_letters`).

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::PgPool;

use crate::domain::document::{DeadLetter, DeadLetters};
use crate::error::Result;

/// Dead letters kept in SQL, where `doctor` and the audit find them.
pub struct SqlDeadLetters(PgPool);

impl SqlDeadLetters {
    pub fn shared(pool: PgPool) -> Arc<dyn DeadLetters> {
        Arc::new(Self(pool))
    }
}

impl DeadLetters for SqlDeadLetters {
    fn record<'a>(&'a self, letters: &'a [DeadLetter]) -> BoxFuture<'a, anyhow::Result<()>> {
        insert(&self.0, letters).map(|done| done.map_err(anyhow::Error::from)).boxed()
    }
}

#[tracing::instrument(skip_all, fields(count = letters.len()))]
pub async fn insert(pool: &PgPool, letters: &[DeadLetter]) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut builder =
        sqlx::QueryBuilder::new("INSERT INTO search_dead_letters (entity, entity_id, version, target, error_type, reason, document) ");
    builder.push_values(letters, |mut row, l| {
        row.push_bind(&l.entity)
            .push_bind(l.entity_id)
            .push_bind(l.version)
            .push_bind(&l.target)
            .push_bind(&l.error_type)
            .push_bind(&l.reason)
            .push_bind(&l.document);
    });
    builder.build().execute(pool).await?;
    Ok(())
}

/// The most recent dead letters, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as(
        "SELECT entity, entity_id, version, target, error_type, reason, document
         FROM search_dead_letters ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
