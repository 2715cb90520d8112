//! The search index abstraction both backends implement, and what searches return.
//!
//! Writes are versioned (docs/ARCHITECTURE.md, sync invariant 3): a document replaces
//! what the index holds only when its `search_version` is larger, so replays and racing
//! workers cannot regress it. Physical indices come in generations; reads go to the live
//! one, writes to every registered target (the live one and, during a rebuild, the new one).

pub mod elastic;
pub mod embedded;
pub mod highlight;
pub mod open;
pub mod words;

use std::collections::HashMap;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::document::{AccountDoc, Entity, IndexOp, PaymentDoc};
use crate::domain::search::{AccountQuery, After, PaymentQuery, StatsQuery};
use crate::error::Result;

/// The live index of an entity as it stands: what the operator's view shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IndexSize {
    /// `account`, `payment`, or a reporting entity (`activity`, `promise`, `plan`).
    pub entity: String,
    /// The index behind the entity's alias (an embedded generation, an Elasticsearch index).
    pub index: String,
    /// Documents held, and deleted ones not yet merged away (replaced versions too).
    pub documents: u64,
    pub deleted_documents: u64,
    pub segments: u64,
    /// On disk (Elasticsearch: the primaries' store).
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Documents written.
    pub applied: usize,
    /// Documents skipped because the index already held the same or a newer version.
    pub stale: usize,
    /// Documents the backend refused for good (kept as dead letters).
    pub rejected: usize,
}

impl std::ops::AddAssign for ApplyReport {
    fn add_assign(&mut self, other: Self) {
        self.applied += other.applied;
        self.stale += other.stale;
        self.rejected += other.rejected;
    }
}

#[derive(Clone, Debug)]
pub struct Hit<D = AccountDoc> {
    pub doc: D,
    pub score: Option<f32>,
}

/// A facet's value: the documents that hold it and, where the facet counts money, their
/// amounts summed per currency, by currency code (currencies are never added together).
#[derive(Clone, Debug, PartialEq)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
    pub sums: Option<Vec<(String, Decimal)>>,
}

/// A value of one currency's statistics: the payments that hold it and their amounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatValue {
    pub value: String,
    pub count: u64,
    pub sum: Decimal,
}

#[derive(Clone, Debug)]
pub struct SearchPage<D = AccountDoc> {
    pub hits: Vec<Hit<D>>,
    /// The matches, counted as far as the query's [`Counted`](crate::domain::search::Counted) says.
    pub total: u64,
    /// More than `total` match.
    pub total_is_lower_bound: bool,
    /// Present when more hits follow.
    pub next: Option<After>,
    pub facets: Vec<(&'static str, Vec<FacetValue>)>,
}

impl<D> Default for SearchPage<D> {
    fn default() -> Self {
        Self {
            hits: Vec::new(),
            total: 0,
            total_is_lower_bound: false,
            next: None,
            facets: Vec::new(),
        }
    }
}

/// Ids in a query's order, without their documents or a total.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdPage {
    pub ids: Vec<Uuid>,
    /// Present when more ids follow.
    pub next: Option<After>,
}

/// A count and an exact sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub amount: Decimal,
}

/// Payment statistics of one currency (amounts of different currencies never add up).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CurrencyStats {
    pub currency: String,
    /// Completed payments received today, this ISO week and this month.
    pub today: Tally,
    pub this_week: Tally,
    pub this_month: Tally,
    /// Completed payments per day of the query's range.
    pub series: Vec<Tally>,
    /// Every payment received in the range, by status and by method.
    pub by_status: Vec<StatValue>,
    pub by_method: Vec<StatValue>,
}

/// One finding of a check of the index (`arrears doctor`, a rebuild's checks).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What an operator does about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Whether a failure stops the app from starting. Those that do not leave it
    /// working in part (an outdated mapping holds one entity's changes until the rebuild
    /// the app starts itself; a full disk lifts by itself), and the doctor still fails.
    pub blocking: bool,
    /// Passed, with something an operator should know (a cluster without security).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            blocking: true,
            warning: false,
        }
    }

    /// A pass with a warning: the app runs, and says so.
    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            fix: Some(fix.into()),
            warning: true,
            ..Self::pass(name, detail)
        }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            blocking: true,
            warning: false,
        }
    }

    /// A failure the app starts with anyway.
    pub fn not_blocking(mut self) -> Self {
        self.blocking = false;
        self
    }
}

/// Why a batch of an entity was not written: every generation it would go to was built
/// with another release's mapping, which would refuse (`dynamic: strict`) or analyse
/// otherwise what this build sends. The sync holds the entity's changes in the outbox
/// (nothing becomes a dead letter) until a rebuild swaps in a generation with this
/// build's mapping.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {} index ({}) was built with another release's mapping; its changes wait in the outbox until a rebuild (`arrears reindex {}`) swaps in one with this build's",
    entity.plural(), generations.join(", "), entity.plural()
)]
pub struct OutdatedMapping {
    pub entity: Entity,
    pub generations: Vec<String>,
}

impl OutdatedMapping {
    /// The entity a failed batch is held for, when that is why it failed.
    pub fn of(err: &crate::error::Error) -> Option<Entity> {
        match err {
            crate::error::Error::Internal(err) => err.downcast_ref::<OutdatedMapping>().map(|o| o.entity),
            crate::error::Error::Problem(_) => None,
        }
    }
}

pub trait SearchIndex: Send + Sync + 'static {
    /// A name for the physical index this process feeds, so two workers can tell
    /// whether they feed the same one.
    fn identity(&self) -> String;

    /// The entities it keeps an index of: the searched ones, and with Elasticsearch the
    /// reporting ones Kibana reads (the embedded backend has no reader for those).
    fn entities(&self) -> &'static [Entity] {
        &Entity::SEARCHED
    }

    /// Applies a batch (of the entities it keeps) to every write target, skipping
    /// versions not newer than held. The report counts every document of the batch once.
    fn apply(&self, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>>;

    fn search(&self, query: AccountQuery) -> BoxFuture<'_, Result<SearchPage>>;

    /// The ids of the query's first page after its cursor, in its order, and the cursor
    /// after them; no documents, total or facets, so a backend may stop looking once it
    /// has the page (the work queue's claim candidates).
    fn ranked_ids(&self, query: AccountQuery) -> BoxFuture<'_, Result<IdPage>>;

    /// The first of `queries` that has any ids, by its position, with its page (as
    /// [`Self::ranked_ids`] answers it); `None` when none has. A backend may answer all
    /// of them in one go.
    fn first_ranked_ids(&self, queries: Vec<AccountQuery>) -> BoxFuture<'_, Result<Option<(usize, IdPage)>>> {
        async move {
            for (position, query) in queries.into_iter().enumerate() {
                let page = self.ranked_ids(query).await?;
                if !page.ids.is_empty() {
                    return Ok(Some((position, page)));
                }
            }
            Ok(None)
        }
        .boxed()
    }

    /// Ids of every account the query matches (sort, page and facets ignored), in id
    /// order, at most `limit` of them.
    fn account_ids(&self, query: AccountQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>>;

    /// Ids of every payment the query matches, in id order, at most `limit`.
    fn payment_ids(&self, query: PaymentQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>>;

    fn search_payments(&self, query: PaymentQuery) -> BoxFuture<'_, Result<SearchPage<PaymentDoc>>>;

    /// Aggregations over payments, per currency, sorted by currency code.
    fn payment_stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Vec<CurrencyStats>>>;

    /// The version the live index holds for `id` (tombstones included), as at least one
    /// copy of it searches.
    fn version_of(&self, entity: Entity, id: Uuid) -> BoxFuture<'_, Result<Option<i64>>>;

    /// Makes what `entity`'s index holds searchable on every copy of it, for a caller
    /// about to promise that a write it saw with [`Self::version_of`] is searchable
    /// (wait for indexed). Only a backend whose copies refresh each at its own moment
    /// (Elasticsearch with replicas: a search may be answered by any copy) has anything
    /// to do.
    fn searchable_everywhere(&self, _entity: Entity) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Every live document's version (tombstones excluded), for auditing against SQL.
    fn versions(&self, entity: Entity) -> BoxFuture<'_, Result<HashMap<Uuid, i64>>>;

    /// Creates a new generation and registers it as a write target; returns its name.
    fn begin_rebuild(&self, entity: Entity) -> BoxFuture<'_, Result<String>>;

    /// Rows a rebuild's backfill reads from SQL and writes with [`Self::apply_to`] at
    /// once. A rebuild holds up to four such batches (one written, two queued, one
    /// read), so they bound its memory.
    fn backfill_rows(&self) -> usize;

    /// Writes a backfill batch into one generation only (versioned like `apply`).
    fn apply_to(&self, entity: Entity, generation: String, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>>;

    /// Number of live documents (tombstones excluded) in a generation.
    fn count(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<u64>>;

    /// Makes `generation` the one reads go to, atomically, and drops the old one.
    fn promote(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>>;

    /// Unregisters and drops a generation whose rebuild failed (never the one searches
    /// read).
    fn abandon(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>>;

    /// Generations written but not read: a rebuild in progress, or one left behind by a
    /// rebuild that died. A backend whose rebuilds live and die with the process that
    /// runs them (embedded) has none to report.
    fn rebuilds(&self, _entity: Entity) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Generations neither read nor written, which nothing keeps on purpose: left by a
    /// process that died between a promote's alias swap and its delete. A backend
    /// whose promote drops the old generation in the same step (embedded) has none.
    fn leftovers(&self, _entity: Entity) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Entities whose read generation was built with another release's mapping (see
    /// [`OutdatedMapping`]); a rebuild with this build's mapping is due. The embedded
    /// backend checks its schema when it opens and rebuilds there.
    fn outdated(&self) -> BoxFuture<'_, Result<Vec<Entity>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Whether the backend can answer, for readiness: its state in a word, or why not.
    fn health(&self) -> BoxFuture<'_, std::result::Result<String, String>>;

    /// The live index of each entity: its documents, segments and bytes.
    fn sizes(&self) -> BoxFuture<'_, Result<Vec<IndexSize>>>;

    /// Whether `err`, a failure of one of its calls, is permanent: the index refuses
    /// this process (credentials refused for good, privileges missing, a block only an
    /// operator clears), so nothing works until someone acts and a sync worker stops
    /// instead of retrying. Other failures are worth retrying.
    fn is_permanent(&self, _err: &crate::error::Error) -> bool {
        false
    }
}
