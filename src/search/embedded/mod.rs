//! The embedded backend: tantivy indices under `DATA_DIR/index/accounts`, one directory
//! per generation, and `alias.json` naming the live one (and the one being built).
//!
//! One process owns the writers (it holds `owner.lock`); other processes on the same
//! data dir open the index read-only and follow `alias.json`.

mod collector;
mod query;
pub mod schema;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tantivy::collector::Count;
use tantivy::query::{AllQuery, BooleanQuery, Occur, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TERMINATED, TantivyDocument, Term};
use tokio::sync::RwLock;
use uuid::Uuid;

use self::collector::{PageCollector, SortColumn};
use self::schema::{Fields, MONEY_SCALE};
use super::document::{AccountDoc, IndexOp};
use super::{ApplyReport, FacetValue, Hit, SearchIndex, SearchPage};
use crate::domain::search::{ALL_BUCKETS, AccountQuery, After, Facet, SortField};
use crate::error::{Code, Error, Result};

const WRITER_THREADS: usize = 2;
const WRITER_MEMORY: usize = 192 * 1024 * 1024;
/// How often a read-only process looks for a new live generation.
const ALIAS_CHECK_EVERY: Duration = Duration::from_secs(1);
const READER_RELOAD_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Default, Serialize, Deserialize)]
struct AliasFile {
    live: Option<String>,
    building: Option<String>,
}

struct Generation {
    name: String,
    dir: PathBuf,
    reader: IndexReader,
    fields: Fields,
    writer: Option<Mutex<IndexWriter>>,
    /// Read-only processes reload on demand, at most this often.
    last_reload: Mutex<Instant>,
}

struct Targets {
    live: Arc<Generation>,
    building: Option<Arc<Generation>>,
}

pub struct EmbeddedIndex {
    root: PathBuf,
    /// Held for the life of an owning process; `None` when read-only.
    _owner_lock: Option<File>,
    targets: RwLock<Targets>,
    alias_seen: Mutex<(Instant, Option<SystemTime>)>,
    created_fresh: bool,
}

/// Why the index could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another process owns the search index at {0}")]
    Busy(PathBuf),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(anyhow!("search index: {err}"))
}

impl Generation {
    fn create(root: &Path, writable: bool) -> anyhow::Result<Self> {
        let name = format!("g{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"));
        Self::open(root, &name, writable, true)
    }

    fn open(root: &Path, name: &str, writable: bool, create: bool) -> anyhow::Result<Self> {
        let dir = root.join(name);
        let (schema, fields) = schema::build();
        let index = if create {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Index::create_in_dir(&dir, schema)?
        } else {
            let index = Index::open_in_dir(&dir).with_context(|| format!("opening index {}", dir.display()))?;
            if index.schema() != schema {
                anyhow::bail!("index {} was written with another schema version", dir.display());
            }
            index
        };
        schema::register_tokenizers(&index)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = if writable {
            Some(Mutex::new(index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)?))
        } else {
            None
        };
        Ok(Self {
            name: name.to_owned(),
            dir,
            reader,
            fields,
            writer,
            last_reload: Mutex::new(Instant::now()),
        })
    }

    /// The owner reloads after each commit; a read-only process picks up the owner's
    /// commits here, so what it reads is at most [`READER_RELOAD_EVERY`] behind.
    fn searcher(&self) -> tantivy::Result<Searcher> {
        if self.writer.is_none() {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= READER_RELOAD_EVERY {
                self.reader.reload()?;
                *last = Instant::now();
            }
        }
        Ok(self.reader.searcher())
    }

    fn version_in(&self, searcher: &Searcher, id: Uuid) -> tantivy::Result<Option<i64>> {
        let term = schema::id_term(&self.fields, id);
        let mut best = None;
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.id)?;
            let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? else {
                continue;
            };
            let versions = segment.fast_fields().i64("version")?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc)) {
                    best = best.max(versions.first(doc));
                }
                doc = postings.advance();
            }
        }
        Ok(best)
    }

    fn apply(&self, ops: &[IndexOp]) -> anyhow::Result<ApplyReport> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| anyhow!("generation {} is read-only", self.name))?;
        let mut latest: HashMap<Uuid, &IndexOp> = HashMap::with_capacity(ops.len());
        for op in ops {
            let keep = latest.get(&op.id).is_none_or(|held| held.version < op.version);
            if keep {
                latest.insert(op.id, op);
            }
        }
        let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
        let searcher = self.reader.searcher();
        let mut report = ApplyReport {
            stale: ops.len() - latest.len(),
            ..ApplyReport::default()
        };
        for op in latest.values() {
            if self.version_in(&searcher, op.id)?.is_some_and(|held| held >= op.version) {
                report.stale += 1;
                continue;
            }
            let document = match &op.doc {
                Some(doc) => schema::account(&self.fields, doc)?,
                None => schema::tombstone(&self.fields, op.id, op.version),
            };
            writer.delete_term(schema::id_term(&self.fields, op.id));
            writer.add_document(document)?;
            report.applied += 1;
        }
        if report.applied > 0 {
            writer.commit()?;
            self.reader.reload()?;
        }
        Ok(report)
    }

    fn live_query(&self) -> BooleanQuery {
        let tombstone = TermQuery::new(Term::from_field_bool(self.fields.tombstone, true), IndexRecordOption::Basic);
        BooleanQuery::new(vec![(Occur::Must, Box::new(AllQuery)), (Occur::MustNot, Box::new(tombstone))])
    }

    fn count(&self) -> anyhow::Result<u64> {
        Ok(self.searcher()?.search(&self.live_query(), &Count)? as u64)
    }

    fn versions(&self) -> anyhow::Result<HashMap<Uuid, i64>> {
        let searcher = self.searcher()?;
        let mut out = HashMap::new();
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let (hi, lo, version, tombstone) = (
                fast.u64("id_hi")?,
                fast.u64("id_lo")?,
                fast.i64("version")?,
                fast.bool("tombstone")?,
            );
            for doc in segment.doc_ids_alive() {
                if tombstone.first(doc).unwrap_or(false) {
                    continue;
                }
                let id = Uuid::from_u64_pair(hi.first(doc).unwrap_or(0), lo.first(doc).unwrap_or(0));
                out.insert(id, version.first(doc).unwrap_or(0));
            }
        }
        Ok(out)
    }

    fn search(&self, query: &AccountQuery) -> anyhow::Result<SearchPage> {
        let searcher = self.searcher()?;
        let tantivy_query = query::build(&self.fields, query);
        let sort_column = match query.sort.field {
            SortField::Relevance => SortColumn::Score,
            SortField::Balance => SortColumn::I64("balance"),
            SortField::DueDate => SortColumn::I64("due_days"),
            SortField::NextAction => SortColumn::I64("next_action"),
            SortField::Updated => SortColumn::I64("updated"),
            SortField::Name => SortColumn::Name,
        };
        let collector = PageCollector {
            sort: query.sort,
            sort_column,
            after: query.after,
            limit: query.page_size + 1,
            facets: query.facets.clone(),
            today_days: schema::epoch_days(query.today),
        };
        let fruit = searcher.search(&tantivy_query, &collector)?;
        let more = fruit.hits.len() > query.page_size;
        let mut hits = Vec::with_capacity(query.page_size);
        let mut next = None;
        for (_, key, address) in fruit.hits.into_iter().take(query.page_size) {
            let stored: TantivyDocument = searcher.doc(address)?;
            let source = stored
                .get_first(self.fields.source)
                .and_then(|v| v.as_str())
                .ok_or_else(|| anyhow!("document without source"))?;
            let doc: AccountDoc = serde_json::from_str(source)?;
            let score = matches!(query.sort.field, SortField::Relevance).then_some(match key {
                crate::domain::search::SortKey::Score(s) => s,
                _ => 0.0,
            });
            next = Some(After { key, id: doc.id });
            hits.push(Hit { doc, score });
        }
        Ok(SearchPage {
            hits,
            total: fruit.total,
            next: if more { next } else { None },
            facets: facets(query, fruit.facets),
        })
    }
}

fn counts(raw: &HashMap<String, u64>) -> Vec<FacetValue> {
    sorted(
        raw.iter()
            .map(|(value, count)| FacetValue {
                value: value.clone(),
                count: *count,
                sum: None,
            })
            .collect(),
    )
}

fn sorted(mut values: Vec<FacetValue>) -> Vec<FacetValue> {
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    values
}

fn facets(query: &AccountQuery, raw: collector::Facets) -> Vec<(&'static str, Vec<FacetValue>)> {
    let units = Decimal::from(MONEY_SCALE);
    query
        .facets
        .iter()
        .map(|facet| {
            let values = match facet {
                Facet::Status => sorted(
                    raw.status
                        .iter()
                        .map(|(k, (count, sum))| FacetValue {
                            value: k.clone(),
                            count: *count,
                            sum: Some((Decimal::from_i128_with_scale(*sum, 0) / units).normalize()),
                        })
                        .collect(),
                ),
                Facet::Bucket => ALL_BUCKETS
                    .iter()
                    .zip(raw.bucket)
                    .map(|(b, count)| FacetValue {
                        value: b.as_str().to_owned(),
                        count,
                        sum: None,
                    })
                    .collect(),
                Facet::AssignedAgent => counts(&raw.agent),
                Facet::Tags => counts(&raw.tags),
            };
            (facet.name(), values)
        })
        .collect()
}

fn read_alias(root: &Path) -> anyhow::Result<AliasFile> {
    match std::fs::read(root.join("alias.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("parsing alias.json"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AliasFile::default()),
        Err(e) => Err(e).context("reading alias.json"),
    }
}

/// Replaces alias.json atomically (write, fsync, rename).
fn write_alias(root: &Path, alias: &AliasFile) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = root.join("alias.json.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(alias)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, root.join("alias.json"))?;
    Ok(())
}

fn alias_mtime(root: &Path) -> Option<SystemTime> {
    std::fs::metadata(root.join("alias.json")).and_then(|m| m.modified()).ok()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(|e| internal(format!("{e:#}")))
}

impl EmbeddedIndex {
    pub fn root_for(data_dir: &Path) -> PathBuf {
        data_dir.join("index").join("accounts")
    }

    /// Opens as the owning (writing) process. A missing or unreadable live generation is
    /// replaced by an empty one ([`Self::created_fresh`] then says a backfill is due); a
    /// rebuild left half-done by a crash is discarded.
    pub fn open_owner(data_dir: &Path) -> Result<Self, OpenError> {
        let root = Self::root_for(data_dir);
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let lock = File::create(root.join("owner.lock")).context("creating owner.lock")?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Busy(root));
        }
        let mut alias = read_alias(&root)?;
        if let Some(stale) = alias.building.take() {
            tracing::warn!(generation = %stale, "discarding a rebuild left unfinished");
            let _ = std::fs::remove_dir_all(root.join(&stale));
        }
        let opened = alias.live.as_deref().map(|name| Generation::open(&root, name, true, false));
        let (live, created_fresh) = match opened {
            Some(Ok(generation)) => (generation, false),
            Some(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "live index unreadable; starting a new one");
                (Generation::create(&root, true)?, true)
            }
            None => (Generation::create(&root, true)?, true),
        };
        alias.live = Some(live.name.clone());
        write_alias(&root, &alias)?;
        Ok(Self {
            alias_seen: Mutex::new((Instant::now(), alias_mtime(&root))),
            root,
            _owner_lock: Some(lock),
            targets: RwLock::new(Targets {
                live: Arc::new(live),
                building: None,
            }),
            created_fresh,
        })
    }

    /// Opens read-only, following the owner's alias.json.
    pub fn open_reader(data_dir: &Path) -> Result<Self> {
        let root = Self::root_for(data_dir);
        let alias = read_alias(&root).map_err(internal)?;
        let name = alias.live.ok_or_else(|| {
            Error::new(
                Code::ServiceUnavailable,
                format!(
                    "no search index at {} yet; start `arrears serve` or `arrears sync` once",
                    root.display()
                ),
            )
        })?;
        let live = Generation::open(&root, &name, false, false).map_err(internal)?;
        Ok(Self {
            alias_seen: Mutex::new((Instant::now(), alias_mtime(&root))),
            root,
            _owner_lock: None,
            targets: RwLock::new(Targets {
                live: Arc::new(live),
                building: None,
            }),
            created_fresh: false,
        })
    }

    /// Whether this process holds the writers.
    pub fn is_owner(&self) -> bool {
        self._owner_lock.is_some()
    }

    /// True when opening found no usable index and made an empty one.
    pub fn created_fresh(&self) -> bool {
        self.created_fresh
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// In a read-only process, switches to a new live generation after the owner swapped.
    async fn follow_alias(&self) -> Result<()> {
        if self.is_owner() {
            return Ok(());
        }
        {
            let mut seen = self.alias_seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.0.elapsed() < ALIAS_CHECK_EVERY {
                return Ok(());
            }
            let mtime = alias_mtime(&self.root);
            seen.0 = Instant::now();
            if mtime == seen.1 {
                return Ok(());
            }
            seen.1 = mtime;
        }
        let alias = read_alias(&self.root).map_err(internal)?;
        let Some(name) = alias.live else { return Ok(()) };
        if self.targets.read().await.live.name == name {
            return Ok(());
        }
        let root = self.root.clone();
        let generation = blocking(move || Generation::open(&root, &name, false, false)).await?;
        tracing::info!(generation = %generation.name, "following the new live index");
        self.targets.write().await.live = Arc::new(generation);
        Ok(())
    }

    async fn live(&self) -> Result<Arc<Generation>> {
        self.follow_alias().await?;
        Ok(self.targets.read().await.live.clone())
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

    async fn generation(&self, name: &str) -> Result<Arc<Generation>> {
        let targets = self.targets.read().await;
        [Some(&targets.live), targets.building.as_ref()]
            .into_iter()
            .flatten()
            .find(|g| g.name == name)
            .cloned()
            .ok_or_else(|| Error::new(Code::NotFound, format!("no index generation {name}")))
    }

    fn save_alias(&self, targets: &Targets) -> Result<()> {
        let alias = AliasFile {
            live: Some(targets.live.name.clone()),
            building: targets.building.as_ref().map(|g| g.name.clone()),
        };
        write_alias(&self.root, &alias).map_err(internal)
    }

    async fn retire(generation: Arc<Generation>) {
        let dir = generation.dir.clone();
        let result = blocking(move || {
            if let Ok(generation) = Arc::try_unwrap(generation)
                && let Some(writer) = generation.writer
            {
                writer.into_inner().unwrap_or_else(|p| p.into_inner()).wait_merging_threads()?;
            }
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
        })
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not remove a retired index generation");
        }
    }
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
            // Held across the write so a rebuild cannot register or promote mid-batch.
            let targets = self.targets.read().await;
            let generations: Vec<Arc<Generation>> = [Some(&targets.live), targets.building.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            let ops = Arc::new(ops);
            let mut report = ApplyReport::default();
            for (i, generation) in generations.into_iter().enumerate() {
                let ops = ops.clone();
                let r = blocking(move || generation.apply(&ops)).await?;
                if i == 0 {
                    report = r;
                }
            }
            drop(targets);
            Ok(report)
        }
        .boxed()
    }

    fn search(&self, query: AccountQuery) -> BoxFuture<'_, Result<SearchPage>> {
        async move {
            let live = self.live().await?;
            blocking(move || live.search(&query)).await
        }
        .boxed()
    }

    fn version_of(&self, id: Uuid) -> BoxFuture<'_, Result<Option<i64>>> {
        async move {
            let live = self.live().await?;
            blocking(move || Ok(live.version_in(&live.searcher()?, id)?)).await
        }
        .boxed()
    }

    fn versions(&self) -> BoxFuture<'_, Result<HashMap<Uuid, i64>>> {
        async move {
            let live = self.live().await?;
            blocking(move || live.versions()).await
        }
        .boxed()
    }

    fn begin_rebuild(&self) -> BoxFuture<'_, Result<String>> {
        async move {
            self.require_owner()?;
            let mut targets = self.targets.write().await;
            if let Some(building) = &targets.building {
                return Err(Error::new(
                    Code::Conflict,
                    format!("a rebuild is already running (generation {})", building.name),
                ));
            }
            let root = self.root.clone();
            let generation = blocking(move || Generation::create(&root, true)).await?;
            let name = generation.name.clone();
            targets.building = Some(Arc::new(generation));
            self.save_alias(&targets)?;
            Ok(name)
        }
        .boxed()
    }

    fn apply_to(&self, generation: String, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>> {
        async move {
            self.require_owner()?;
            let generation = self.generation(&generation).await?;
            blocking(move || generation.apply(&ops)).await
        }
        .boxed()
    }

    fn count(&self, generation: String) -> BoxFuture<'_, Result<u64>> {
        async move {
            let generation = self.generation(&generation).await?;
            blocking(move || generation.count()).await
        }
        .boxed()
    }

    fn promote(&self, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            self.require_owner()?;
            let mut targets = self.targets.write().await;
            let building = targets.building.take_if(|g| g.name == generation);
            let Some(building) = building else {
                return Err(Error::new(Code::Conflict, format!("{generation} is not being built")));
            };
            let old = std::mem::replace(&mut targets.live, building);
            self.save_alias(&targets)?;
            drop(targets);
            tracing::info!(live = %generation, retired = %old.name, "index generation promoted");
            Self::retire(old).await;
            Ok(())
        }
        .boxed()
    }

    fn abandon(&self, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            self.require_owner()?;
            let mut targets = self.targets.write().await;
            let Some(building) = targets.building.take_if(|g| g.name == generation) else {
                return Ok(());
            };
            self.save_alias(&targets)?;
            drop(targets);
            Self::retire(building).await;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("arrears-alias-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_alias(&dir).unwrap().live.is_none());
        write_alias(
            &dir,
            &AliasFile {
                live: Some("g1".into()),
                building: Some("g2".into()),
            },
        )
        .unwrap();
        let alias = read_alias(&dir).unwrap();
        assert_eq!((alias.live.as_deref(), alias.building.as_deref()), (Some("g1"), Some("g2")));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
