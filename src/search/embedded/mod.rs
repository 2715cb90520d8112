//! The embedded backend: two families of tantivy indices under `DATA_DIR/index`
//! (`accounts`, `payments`), each with its own generations and `alias.json`.
//!
//! One process owns the writers (it holds `index/owner.lock`); other processes on the
//! same data dir open the indices read-only and follow the owner's aliases.

mod bands;
mod collection;
mod collector;
mod counts;
mod dense;
mod digits;
mod filter;
mod payments;
pub(crate) mod query;
pub mod schema;
mod turns;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use tokio::sync::Semaphore;
use uuid::Uuid;

use self::collection::{Collection, Generation, blocking, internal};
use self::collector::{BALANCE, FacetCounts, FacetSpec, PageCollector, PageFruit, Rank, SortColumn, TermTally};
use self::counts::KeptCollector;
use self::payments::{PaymentFields, Payments, StatsCollector};
use self::schema::{Accounts, Kind};
use super::{ApplyReport, CurrencyStats, FacetValue, Hit, IdPage, IndexSize, SearchIndex, SearchPage};
use crate::domain::document::{AccountDoc, Entity, IndexOp, PaymentDoc};
use crate::domain::search::{
    ALL_BUCKETS, AccountQuery, After, Counted, FACET_SIZE, Facet, PaymentFacet, PaymentQuery, PaymentSortField, Sort, SortField, SortKey,
    StatsQuery,
};
use crate::error::{Code, Error, Result};
use crate::telemetry::metrics;

pub struct EmbeddedIndex {
    root: PathBuf,
    /// Held for the life of an owning process; `None` when read-only.
    owner_lock: Option<File>,
    accounts: Collection<Accounts>,
    payments: Collection<Payments>,
    /// Slots for queries (see [`EmbeddedIndex::query`]).
    query_slots: Arc<Semaphore>,
}

/// Why the index could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another process owns the search index at {0}")]
    Busy(PathBuf),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Two query slots per core: with one, a core sat idle while a finished query's slot
/// passed to the next waiting task; with no limit, throughput barely rose and the p99
/// doubled (docs/benchmarks.md, "Query slots").
fn query_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(2 * std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// A tally's amounts per currency, by currency code.
fn sums_of(tally: TermTally) -> Vec<(String, Decimal)> {
    tally
        .units
        .into_iter()
        .map(|(currency, (_, units))| (currency, Decimal::from_i128_with_scale(units, 4).normalize()))
        .collect()
}

fn term_values(raw: HashMap<String, TermTally>, with_sum: bool) -> Vec<FacetValue> {
    let mut values: Vec<FacetValue> = raw
        .into_iter()
        .map(|(value, tally)| FacetValue {
            value,
            count: tally.count,
            sums: with_sum.then(|| sums_of(tally)),
        })
        .collect();
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    values.truncate(FACET_SIZE);
    values
}

/// Facet results in the order asked for.
fn facet_values(names: Vec<&'static str>, specs: &[FacetSpec], counts: Vec<FacetCounts>) -> Vec<(&'static str, Vec<FacetValue>)> {
    names
        .into_iter()
        .zip(specs.iter().zip(counts))
        .map(|(name, (spec, counts))| {
            let values = match counts {
                FacetCounts::Terms(raw) => term_values(raw, matches!(spec, FacetSpec::Terms { sum: Some(_), .. })),
                FacetCounts::Bucket(raw) => ALL_BUCKETS
                    .iter()
                    .zip(raw)
                    .map(|(b, tally)| FacetValue {
                        value: b.as_str().to_owned(),
                        count: tally.count,
                        sums: Some(sums_of(tally)),
                    })
                    .collect(),
            };
            (name, values)
        })
        .collect()
}

/// How the collector counts `facet` of `query` (see [`AccountQuery::facet_owner`]).
fn account_facet(query: &AccountQuery, facet: Facet) -> FacetSpec {
    let terms = |column| FacetSpec::Terms {
        column,
        sum: None,
        owner: query.facet_owner(facet),
    };
    match facet {
        Facet::Status => FacetSpec::Terms {
            column: "status",
            sum: Some(BALANCE),
            owner: query.facet_owner(facet),
        },
        Facet::Bucket => FacetSpec::Bucket,
        Facet::AssignedAgent => terms("agent"),
        Facet::Tags => terms("tags"),
        Facet::DocumentKind => terms("document_kinds"),
        Facet::DocumentName => terms("document_names"),
        Facet::Portfolio => terms("portfolio"),
        Facet::Custom(field) => terms(schema::custom_column(field)),
    }
}

fn payment_facet(facet: PaymentFacet) -> FacetSpec {
    let column = match facet {
        PaymentFacet::Status => "status",
        PaymentFacet::Method => "method",
        PaymentFacet::FailureReason => "failure_reason",
    };
    FacetSpec::Terms {
        column,
        sum: Some("amount"),
        owner: None,
    }
}

/// How a search's page is read from what it collected.
struct Reading {
    page_size: usize,
    /// Each hit carries its score (a sort by relevance).
    scored: bool,
    counted: Counted,
}

/// What a search answers from what it `collected`: the total bounded as it counts, the
/// facets of `specs` under their `names`, and the page's documents with the cursor after
/// its last hit.
fn answer<K: Kind, D: serde::de::DeserializeOwned>(
    generation: &Generation<K>,
    searcher: &tantivy::Searcher,
    collected: PageFruit,
    names: Vec<&'static str>,
    specs: &[FacetSpec],
    reading: Reading,
    id_of: impl Fn(&D) -> Uuid,
) -> anyhow::Result<SearchPage<D>> {
    let Reading {
        page_size,
        scored,
        counted,
    } = reading;
    let (total, total_is_lower_bound) = counted.total(collected.total);
    let facets = facet_values(names, specs, collected.facets);
    let more = collected.hits.len() > page_size;
    let mut hits = Vec::with_capacity(page_size);
    let mut next = None;
    for (_, key, address) in collected.hits.into_iter().take(page_size) {
        let doc: D = generation.load(searcher, address)?;
        let score = scored.then_some(match key {
            SortKey::Score(s) => s,
            _ => 0.0,
        });
        next = Some(After { key, id: id_of(&doc) });
        hits.push(Hit { doc, score });
    }
    Ok(SearchPage {
        hits,
        total,
        total_is_lower_bound,
        next: next.filter(|_| more),
        facets,
    })
}

fn account_sort_column(field: SortField) -> SortColumn {
    match field {
        SortField::Relevance => SortColumn::Score,
        SortField::Balance => SortColumn::I64(BALANCE),
        SortField::DueDate => SortColumn::I64("due_days"),
        SortField::NextAction => SortColumn::I64("next_action"),
        SortField::Updated => SortColumn::I64("updated"),
        SortField::Name => SortColumn::Name,
        SortField::Queue => SortColumn::I64("queue_rank"),
        SortField::Custom(field) => SortColumn::I64(schema::custom_column(field)),
    }
}

fn account_collector(generation: &Generation<Accounts>, query: &AccountQuery, facets: Vec<FacetSpec>) -> PageCollector {
    PageCollector {
        descending: query.sort.descending,
        sort_column: account_sort_column(query.sort.field),
        after: query.after,
        limit: fetched(query.page_size),
        facets,
        today_days: schema::epoch_days(query.today),
        dense: generation.dense.clone(),
    }
}

/// Rows a page collects: one more than the page, to know whether another follows; none
/// for a page of none.
fn fetched(page_size: usize) -> usize {
    if page_size == 0 { 0 } else { page_size + 1 }
}

/// Runs `collector`, through the kept counts when the search asks for no rows and its
/// matches depend only on each segment and the `key` it gives (see [`counts`]); the key
/// is made only then.
fn collect<K: Kind>(
    generation: &Generation<K>,
    searcher: &tantivy::Searcher,
    query: &dyn tantivy::query::Query,
    collector: PageCollector,
    key: impl FnOnce() -> Option<String>,
) -> tantivy::Result<PageFruit> {
    match (collector.limit == 0).then(key).flatten() {
        Some(key) => searcher.search(
            query,
            &KeptCollector {
                page: collector,
                kept: &generation.counts,
                key,
            },
        ),
        None => searcher.search(query, &collector),
    }
}

/// A search's total, facets and page. When its matches depend only on each segment
/// and the query (no text, no condition on the current instant), the total and facets
/// are those kept for the query without its page or its bound (see [`counts`]): the dashboard's
/// portfolio and the Accounts screen opened with no words share them, whatever the
/// page, its sort or its cursor. Its rows are then taken band by band of the sort
/// column's values (see [`bands`]), so a page costs about its own band's matches rather
/// than every match. Any other search visits every match once, for all three.
fn search_accounts(generation: &Generation<Accounts>, query: &AccountQuery) -> anyhow::Result<SearchPage> {
    let searcher = generation.searcher()?;
    let tantivy_query = query::build(&searcher, &generation.fields, &generation.dense, &generation.kept, query, None)?;
    let specs: Vec<FacetSpec> = query.facets.iter().map(|f| account_facet(query, *f)).collect();
    let segment_local = query.text.is_none() && query.contactable.is_none() && query.tier.is_none();
    let fruit = if segment_local {
        let counted = AccountQuery {
            page_size: 0,
            after: None,
            sort: COUNTED_SORT,
            counted: Counted::Exact,
            ..query.clone()
        };
        let collector = account_collector(generation, &counted, specs.clone());
        let mut fruit = collect(generation, &searcher, &tantivy_query, collector, || Some(format!("{counted:?}")))?;
        if query.page_size > 0 {
            fruit.hits = ranked_hits(generation, &searcher, query)?;
        }
        fruit
    } else {
        searcher.search(&tantivy_query, &account_collector(generation, query, specs.clone()))?
    };
    let reading = Reading {
        page_size: query.page_size,
        scored: query.sort.field == SortField::Relevance,
        counted: query.counted,
    };
    let names = query.facets.iter().map(|f| f.name()).collect();
    answer(generation, &searcher, fruit, names, &specs, reading, |d: &AccountDoc| d.id)
}

/// The sort a search's kept total and facets are keyed under: they do not depend on it.
const COUNTED_SORT: Sort = Sort {
    field: SortField::Updated,
    descending: true,
};

/// The hits of a query's page and one more, without a total or facets: the query runs
/// band by band of its sort column's values and stops once it has them (see [`bands`]).
fn ranked_hits(
    generation: &Generation<Accounts>,
    searcher: &tantivy::Searcher,
    query: &AccountQuery,
) -> anyhow::Result<Vec<(Rank, SortKey, tantivy::DocAddress)>> {
    let bands = match account_sort_column(query.sort.field) {
        SortColumn::I64(column) => bands::bands(searcher, &generation.dense, column, query.sort.descending, query.after)?,
        SortColumn::Score | SortColumn::Name => vec![None],
    };
    let collector = account_collector(generation, query, Vec::new());
    let mut hits = Vec::with_capacity(collector.limit);
    for band in bands {
        let tantivy_query = query::build(searcher, &generation.fields, &generation.dense, &generation.kept, query, band)?;
        hits.extend(searcher.search(&tantivy_query, &collector)?.hits);
        if hits.len() >= collector.limit {
            break;
        }
    }
    Ok(hits)
}

/// A page of ids without a total (see [`ranked_hits`]).
fn ranked_account_ids(generation: &Generation<Accounts>, query: &AccountQuery) -> anyhow::Result<IdPage> {
    let searcher = generation.searcher()?;
    let mut hits = ranked_hits(generation, &searcher, query)?;
    let more = hits.len() > query.page_size;
    hits.truncate(query.page_size);
    let next = hits.last().filter(|_| more).map(|((_, _, id), key, _)| After {
        key: *key,
        id: Uuid::from_u128(*id),
    });
    let ids = hits.into_iter().map(|((_, _, id), _, _)| Uuid::from_u128(id)).collect();
    Ok(IdPage { ids, next })
}

fn search_payments(generation: &Generation<Payments>, query: &PaymentQuery) -> anyhow::Result<SearchPage<PaymentDoc>> {
    let searcher = generation.searcher()?;
    let fields: &PaymentFields = &generation.fields;
    let tantivy_query = payments::build(&searcher, fields, query)?;
    let sort_column = match query.sort.field {
        PaymentSortField::Relevance => SortColumn::Score,
        PaymentSortField::ReceivedAt => SortColumn::I64("received"),
        PaymentSortField::Amount => SortColumn::I64("amount"),
        PaymentSortField::Updated => SortColumn::I64("updated"),
    };
    let specs: Vec<FacetSpec> = query.facets.iter().map(|f| payment_facet(*f)).collect();
    let collector = PageCollector {
        descending: query.sort.descending,
        sort_column,
        after: query.after,
        limit: fetched(query.page_size),
        facets: specs.clone(),
        today_days: 0,
        dense: generation.dense.clone(),
    };
    let key = || query.text.is_none().then(|| format!("{query:?}"));
    let fruit = collect(generation, &searcher, &tantivy_query, collector, key)?;
    let reading = Reading {
        page_size: query.page_size,
        scored: query.sort.field == PaymentSortField::Relevance,
        counted: query.counted,
    };
    let names = query.facets.iter().map(|f| f.name()).collect();
    answer(generation, &searcher, fruit, names, &specs, reading, |d: &PaymentDoc| d.id)
}

fn payment_stats(generation: &Generation<Payments>, query: &StatsQuery) -> anyhow::Result<Vec<CurrencyStats>> {
    let searcher = generation.searcher()?;
    let fruit = StatsCollector::new(query, generation.dense.clone()).collect(&searcher)?;
    Ok(payments::finish(fruit, query.day_starts.len().saturating_sub(1)))
}

impl EmbeddedIndex {
    pub fn root_for(data_dir: &Path) -> PathBuf {
        data_dir.join("index")
    }

    /// Opens as the owning (writing) process.
    pub fn open_owner(data_dir: &Path) -> Result<Self, OpenError> {
        let root = Self::root_for(data_dir);
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let lock = File::create(root.join("owner.lock")).context("creating owner.lock")?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Busy(root));
        }
        Ok(Self {
            accounts: Collection::open_owner(&root)?,
            payments: Collection::open_owner(&root)?,
            root,
            owner_lock: Some(lock),
            query_slots: query_slots(),
        })
    }

    /// Opens read-only, following the owner's aliases.
    pub fn open_reader(data_dir: &Path) -> Result<Self> {
        let root = Self::root_for(data_dir);
        Ok(Self {
            accounts: Collection::open_reader(&root)?,
            payments: Collection::open_reader(&root)?,
            root,
            owner_lock: None,
            query_slots: query_slots(),
        })
    }

    /// Whether this process holds the writers.
    pub fn is_owner(&self) -> bool {
        self.owner_lock.is_some()
    }

    /// The entities whose index opening found none usable and made an empty one: a
    /// backfill is due for them.
    pub fn created_fresh(&self) -> Vec<Entity> {
        let mut fresh = Vec::new();
        if self.accounts.created_fresh() {
            fresh.push(Entity::Account);
        }
        if self.payments.created_fresh() {
            fresh.push(Entity::Payment);
        }
        fresh
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs a query on the blocking pool once a query slot is free. A query is CPU work
    /// from start to end: with a few slots per core, queries run first come, first served
    /// instead of all at once, so under load each waits its turn rather than sharing the
    /// cores with every query in flight, and the slowest answers stay close to the
    /// typical ones (about half the p99 at the same throughput: docs/benchmarks.md). The
    /// slot is held until the work ends, even if the caller gives up.
    async fn query<T: Send + 'static>(&self, f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T> {
        let waiting = std::time::Instant::now();
        let slot = self.query_slots.clone().acquire_owned().await.map_err(internal)?;
        metrics::query_slot_wait(waiting.elapsed());
        blocking(move || {
            let result = f();
            drop(slot);
            result
        })
        .await
    }

    fn require_owner(&self) -> Result<()> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(Error::new(
                Code::ServiceUnavailable,
                "this process does not own the embedded index; writes go through its owner",
            ))
        }
    }
}

/// Runs the same collection method on the collection of `entity`; a reporting entity
/// has none here (the sync consumes its changes without asking: [`SearchIndex::entities`]).
macro_rules! on_collection {
    ($self:expr, $entity:expr, $c:ident => $body:expr) => {
        match $entity {
            Entity::Account => {
                let $c = &$self.accounts;
                $body
            }
            Entity::Payment => {
                let $c = &$self.payments;
                $body
            }
            reporting => Err(Error::Internal(anyhow::anyhow!(
                "the embedded index keeps no {}: the reporting indices are Elasticsearch's",
                reporting.plural()
            ))),
        }
    };
}

impl SearchIndex for EmbeddedIndex {
    fn identity(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let path = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        format!("embedded:{host}:{}", path.display())
    }

    fn apply(&self, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>> {
        async move {
            self.require_owner()?;
            let has = |entity: Entity| ops.iter().any(|op| op.entity == entity);
            let (accounts, payments) = (has(Entity::Account), has(Entity::Payment));
            let ops = Arc::new(ops);
            let mut report = ApplyReport::default();
            if accounts {
                report += self.accounts.apply(ops.clone()).await?;
            }
            if payments {
                report += self.payments.apply(ops).await?;
            }
            Ok(report)
        }
        .boxed()
    }

    fn search(&self, query: AccountQuery) -> BoxFuture<'_, Result<SearchPage>> {
        async move {
            let live = self.accounts.live().await?;
            self.query(move || search_accounts(&live, &query)).await
        }
        .boxed()
    }

    fn ranked_ids(&self, query: AccountQuery) -> BoxFuture<'_, Result<IdPage>> {
        async move {
            let live = self.accounts.live().await?;
            self.query(move || ranked_account_ids(&live, &query)).await
        }
        .boxed()
    }

    /// All of them in one task on the blocking pool: handing each query to a pool
    /// thread and back cost a claim more than its searches.
    fn first_ranked_ids(&self, queries: Vec<AccountQuery>) -> BoxFuture<'_, Result<Option<(usize, IdPage)>>> {
        async move {
            let live = self.accounts.live().await?;
            self.query(move || {
                for (position, query) in queries.iter().enumerate() {
                    let page = ranked_account_ids(&live, query)?;
                    if !page.ids.is_empty() {
                        return Ok(Some((position, page)));
                    }
                }
                Ok(None)
            })
            .await
        }
        .boxed()
    }

    fn account_ids(&self, query: AccountQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>> {
        async move {
            let live = self.accounts.live().await?;
            self.query(move || {
                let searcher = live.searcher()?;
                let ids = searcher.search(
                    &query::build(&searcher, &live.fields, &live.dense, &live.kept, &query, None)?,
                    &collector::IdsCollector,
                )?;
                Ok(ids.into_iter().take(limit).map(Uuid::from_u128).collect())
            })
            .await
        }
        .boxed()
    }

    fn payment_ids(&self, query: PaymentQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>> {
        async move {
            let live = self.payments.live().await?;
            self.query(move || {
                let searcher = live.searcher()?;
                let ids = searcher.search(&payments::build(&searcher, &live.fields, &query)?, &collector::IdsCollector)?;
                Ok(ids.into_iter().take(limit).map(Uuid::from_u128).collect())
            })
            .await
        }
        .boxed()
    }

    fn search_payments(&self, query: PaymentQuery) -> BoxFuture<'_, Result<SearchPage<PaymentDoc>>> {
        async move {
            let live = self.payments.live().await?;
            self.query(move || search_payments(&live, &query)).await
        }
        .boxed()
    }

    fn payment_stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Vec<CurrencyStats>>> {
        async move {
            let live = self.payments.live().await?;
            self.query(move || payment_stats(&live, &query)).await
        }
        .boxed()
    }

    fn version_of(&self, entity: Entity, id: Uuid) -> BoxFuture<'_, Result<Option<i64>>> {
        async move { on_collection!(self, entity, c => c.version_of(id).await) }.boxed()
    }

    fn versions(&self, entity: Entity) -> BoxFuture<'_, Result<HashMap<Uuid, i64>>> {
        async move { on_collection!(self, entity, c => c.versions().await) }.boxed()
    }

    fn begin_rebuild(&self, entity: Entity) -> BoxFuture<'_, Result<String>> {
        async move {
            self.require_owner()?;
            on_collection!(self, entity, c => c.begin_rebuild().await)
        }
        .boxed()
    }

    /// Larger than Elasticsearch's: each batch is a commit and a segment, and with
    /// smaller ones a rebuild of 1,000,000 accounts took 80–104 s instead of 73–82 s,
    /// with no less memory (the writer's own budget holds most of it).
    fn backfill_rows(&self) -> usize {
        100_000
    }

    fn apply_to(&self, entity: Entity, generation: String, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>> {
        async move {
            self.require_owner()?;
            if let Some(op) = ops.iter().find(|op| op.entity != entity) {
                return Err(Error::Internal(anyhow::anyhow!(
                    "a {} document in a {} backfill",
                    op.entity.as_str(),
                    entity.as_str()
                )));
            }
            on_collection!(self, entity, c => c.apply_to(&generation, ops).await)
        }
        .boxed()
    }

    fn count(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<u64>> {
        async move { on_collection!(self, entity, c => c.count(&generation).await) }.boxed()
    }

    fn promote(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            self.require_owner()?;
            on_collection!(self, entity, c => c.promote(&generation).await)
        }
        .boxed()
    }

    fn abandon(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            self.require_owner()?;
            on_collection!(self, entity, c => c.abandon(&generation).await)
        }
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, std::result::Result<String, String>> {
        // In-process and already open: it answers whenever the process does.
        Box::pin(std::future::ready(Ok("ok".to_owned())))
    }

    fn sizes(&self) -> BoxFuture<'_, Result<Vec<IndexSize>>> {
        async move { Ok(vec![self.accounts.size().await?, self.payments.size().await?]) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_terms_facet_answers_the_most_frequent_values_up_to_its_size() {
        // As many distinct values as users may type (failure reasons, tags): one more than
        // the size, the last one the rarest.
        let raw: HashMap<String, TermTally> = (0..=FACET_SIZE)
            .map(|n| {
                let tally = TermTally {
                    count: (FACET_SIZE + 1 - n) as u64,
                    units: Default::default(),
                };
                (format!("reason {n:04}"), tally)
            })
            .collect();
        let values = term_values(raw, false);
        assert_eq!(values.len(), FACET_SIZE);
        assert_eq!(values[0].value, "reason 0000");
        assert_eq!(values[FACET_SIZE - 1].value, format!("reason {:04}", FACET_SIZE - 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_promoted_rebuild_serves_from_one_segment() {
        let dir = std::env::temp_dir().join(format!("arrears-promote-{}", Uuid::new_v4()));
        let index = EmbeddedIndex::open_owner(&dir).unwrap();
        let generation = index.begin_rebuild(Entity::Account).await.unwrap();
        for _ in 0..4 {
            let ops = (0..25).map(|_| IndexOp::tombstone(Entity::Account, Uuid::new_v4(), 1)).collect();
            index.apply_to(Entity::Account, generation.clone(), ops).await.unwrap();
        }
        let building = index.accounts.generation(&generation).await.unwrap();
        assert!(building.searcher().unwrap().segment_readers().len() > 1, "one segment per batch");
        index.promote(Entity::Account, generation).await.unwrap();
        let searcher = index.accounts.live().await.unwrap().searcher().unwrap();
        assert_eq!(searcher.segment_readers().len(), 1);
        assert_eq!(searcher.num_docs(), 100);
        drop(searcher);
        drop(index);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_beyond_the_slots_wait_their_turn() {
        let dir = std::env::temp_dir().join(format!("arrears-slots-{}", Uuid::new_v4()));
        let index = Arc::new(EmbeddedIndex::open_owner(&dir).unwrap());
        let slots = index.query_slots.available_permits();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..slots * 3)
            .map(|_| {
                let (index, running, most) = (index.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    index
                        .query(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            // Stay until every slot is taken (or a generous while), so the
                            // count does not depend on how fast blocking threads start.
                            let started = Instant::now();
                            while running.load(Ordering::SeqCst) < slots && started.elapsed() < Duration::from_secs(2) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            std::thread::sleep(Duration::from_millis(5));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            slots,
            "at most one query per slot, and every slot used"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
