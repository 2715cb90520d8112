//! The search index abstraction both backends implement, and what searches return.
//!
//! Writes are versioned (DESIGN.md invariant 3): a document replaces what the index
//! holds only when its `search_version` is larger, so replays and racing workers cannot
//! regress it. Physical indices come in generations; reads go to the live one, writes
//! to every registered target (the live one and, during a rebuild, the new one).

pub mod document;
pub mod embedded;
pub mod highlight;

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::search::{AccountQuery, After};
use crate::error::Result;
use document::{AccountDoc, IndexOp};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Documents written.
    pub applied: usize,
    /// Documents skipped because the index already held the same or a newer version.
    pub stale: usize,
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub doc: AccountDoc,
    pub score: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<Decimal>,
}

#[derive(Clone, Debug, Default)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    pub total: u64,
    /// Present when more hits follow.
    pub next: Option<After>,
    pub facets: Vec<(&'static str, Vec<FacetValue>)>,
}

pub trait SearchIndex: Send + Sync + 'static {
    /// A name for the physical index this process feeds, so two workers can tell
    /// whether they feed the same one.
    fn identity(&self) -> String;

    /// Applies a batch to every write target, skipping versions not newer than held.
    fn apply(&self, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>>;

    fn search(&self, query: AccountQuery) -> BoxFuture<'_, Result<SearchPage>>;

    /// The version the live index holds for `id` (tombstones included).
    fn version_of(&self, id: Uuid) -> BoxFuture<'_, Result<Option<i64>>>;

    /// Every live document's version (tombstones excluded), for auditing against SQL.
    fn versions(&self) -> BoxFuture<'_, Result<HashMap<Uuid, i64>>>;

    /// Creates a new generation and registers it as a write target; returns its name.
    fn begin_rebuild(&self) -> BoxFuture<'_, Result<String>>;

    /// Writes a backfill batch into one generation only (versioned like `apply`).
    fn apply_to(&self, generation: String, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>>;

    /// Number of live documents (tombstones excluded) in a generation.
    fn count(&self, generation: String) -> BoxFuture<'_, Result<u64>>;

    /// Makes `generation` the one reads go to, atomically, and drops the old one.
    fn promote(&self, generation: String) -> BoxFuture<'_, Result<()>>;

    /// Unregisters and drops a generation whose rebuild failed.
    fn abandon(&self, generation: String) -> BoxFuture<'_, Result<()>>;
}
