//! Audits the index against SQL: ids and versions must match exactly.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::document::Entity;
use crate::error::Result;
use crate::search::SearchIndex;
use crate::store::{self, documents};

/// How long a difference may last before it counts: the worker may simply be behind.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    #[serde(serialize_with = "entity_name")]
    pub entity: Entity,
    pub sql_documents: usize,
    pub index_documents: usize,
    /// In SQL, not in the index.
    pub missing: Vec<Uuid>,
    /// In both, with different versions: `(id, sql, index)`.
    pub stale: Vec<(Uuid, i64, i64)>,
    /// In the index, not in SQL.
    pub extra: Vec<Uuid>,
}

fn entity_name<S: serde::Serializer>(entity: &Entity, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(entity.plural())
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.stale.is_empty() && self.extra.is_empty()
    }

    pub fn differing_ids(&self) -> Vec<Uuid> {
        self.missing
            .iter()
            .chain(self.extra.iter())
            .copied()
            .chain(self.stale.iter().map(|s| s.0))
            .collect()
    }
}

fn compare(entity: Entity, sql: &HashMap<Uuid, i64>, index: &HashMap<Uuid, i64>) -> VerifyReport {
    let mut report = VerifyReport {
        entity,
        sql_documents: sql.len(),
        index_documents: index.len(),
        missing: Vec::new(),
        stale: Vec::new(),
        extra: Vec::new(),
    };
    for (id, version) in sql {
        match index.get(id) {
            None => report.missing.push(*id),
            Some(held) if held != version => report.stale.push((*id, *version, *held)),
            Some(_) => {}
        }
    }
    report.extra = index.keys().filter(|id| !sql.contains_key(id)).copied().collect();
    report.missing.sort();
    report.stale.sort();
    report.extra.sort();
    report
}

/// Compares everything, then re-checks the differences after a short wait so that
/// writes still in flight through the outbox are not reported.
pub async fn verify(pool: &PgPool, index: &dyn SearchIndex, entity: Entity) -> Result<VerifyReport> {
    let sql: HashMap<Uuid, i64> = documents::versions(pool, entity).await?.into_iter().collect();
    let indexed = index.versions(entity).await?;
    let first = compare(entity, &sql, &indexed);
    if first.is_clean() {
        return Ok(first);
    }
    tokio::time::sleep(SETTLE).await;
    let ids = first.differing_ids();
    let sql_now: HashMap<Uuid, i64> = documents::versions_of(pool, entity, &ids).await?.into_iter().collect();
    let index_all = index.versions(entity).await?;
    let index_now: HashMap<Uuid, i64> = ids.iter().filter_map(|id| index_all.get(id).map(|v| (*id, *v))).collect();
    Ok(VerifyReport {
        sql_documents: sql.len(),
        index_documents: index_all.len(),
        ..compare(entity, &sql_now, &index_now)
    })
}

/// Queues every differing id for re-indexing. Returns how many were queued.
pub async fn repair(pool: &PgPool, report: &VerifyReport) -> Result<u64> {
    let ids = report.differing_ids();
    if ids.is_empty() {
        return Ok(0);
    }
    store::outbox::enqueue(pool, report.entity.as_str(), &ids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_missing_stale_and_extra() {
        let (a, b, c, d) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
        let sql = HashMap::from([(a, 1), (b, 5), (c, 7)]);
        let index = HashMap::from([(a, 1), (b, 4), (d, 9)]);
        let report = compare(Entity::Account, &sql, &index);
        assert_eq!(report.missing, [c]);
        assert_eq!(report.stale, [(b, 5, 4)]);
        assert_eq!(report.extra, [d]);
        assert!(!report.is_clean());
    }
}
