//! Documents the search backend refused for good (`search_dead_letters`).

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub entity: String,
    pub entity_id: Uuid,
    pub version: i64,
    pub target: String,
    pub error_type: String,
    pub reason: String,
    pub document: Value,
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
