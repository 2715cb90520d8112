//! Documents of every entity as the index should hold them, for backfills and audits.

use sqlx::PgPool;
use uuid::Uuid;

use super::{accounts, payments, reports};
use crate::domain::document::{Entity, IndexOp};
use crate::error::Result;

pub async fn count(pool: &PgPool, entity: Entity) -> Result<i64> {
    match entity {
        Entity::Account => accounts::count_all(pool).await,
        Entity::Payment => payments::count_all(pool).await,
        reporting => reports::count_all(pool, reporting).await,
    }
}

pub async fn max_id(pool: &PgPool, entity: Entity) -> Result<Option<Uuid>> {
    match entity {
        Entity::Account => accounts::max_id(pool).await,
        Entity::Payment => payments::max_id(pool).await,
        reporting => reports::max_id(pool, reporting).await,
    }
}

/// The next `limit` documents after `after` and up to `last` in id order.
pub async fn page(pool: &PgPool, entity: Entity, after: Option<Uuid>, last: Uuid, limit: i64) -> Result<Vec<IndexOp>> {
    match entity {
        Entity::Account => {
            let rows = accounts::page_by_id(pool, after, last, limit).await?;
            let mut conn = pool.acquire().await?;
            let docs = accounts::documents(&mut conn, rows).await?;
            Ok(docs.into_iter().map(IndexOp::upsert).collect())
        }
        Entity::Payment => {
            let docs = payments::page_by_id(pool, after, last, limit).await?;
            Ok(docs.into_iter().map(IndexOp::upsert).collect())
        }
        reporting => {
            let docs = reports::page_by_id(pool, reporting, after, last, limit).await?;
            Ok(docs.into_iter().map(IndexOp::upsert).collect())
        }
    }
}

/// The documents of the rows of `ids` that exist (a row deleted meanwhile has none).
pub async fn of_ids(pool: &PgPool, entity: Entity, ids: &[Uuid]) -> Result<Vec<IndexOp>> {
    let mut conn = pool.acquire().await?;
    Ok(match entity {
        Entity::Account => {
            let rows = accounts::by_ids(&mut conn, ids).await?;
            accounts::documents(&mut conn, rows)
                .await?
                .into_iter()
                .map(IndexOp::upsert)
                .collect()
        }
        Entity::Payment => payments::documents(&mut conn, ids)
            .await?
            .into_iter()
            .map(IndexOp::upsert)
            .collect(),
        reporting => reports::documents(&mut conn, reporting, ids)
            .await?
            .into_iter()
            .map(IndexOp::upsert)
            .collect(),
    })
}

/// The last version drawn so far (every row's version comes from one sequence): rows
/// changed after this reading carry a higher one.
pub async fn last_version(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT last_value FROM search_version_seq")
        .fetch_one(pool)
        .await?)
}

/// Every row's id and version, soft-deleted accounts included.
pub async fn versions(pool: &PgPool, entity: Entity) -> Result<Vec<(Uuid, i64)>> {
    match entity {
        Entity::Account => accounts::versions(pool).await,
        Entity::Payment => payments::versions(pool).await,
        reporting => reports::versions(pool, reporting).await,
    }
}

pub async fn versions_of(pool: &PgPool, entity: Entity, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
    match entity {
        Entity::Account => accounts::versions_of(pool, ids).await,
        Entity::Payment => payments::versions_of(pool, ids).await,
        reporting => reports::versions_of(pool, reporting, ids).await,
    }
}
