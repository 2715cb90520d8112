//! One family of physical indices (accounts or payments): generations under
//! `DATA_DIR/index/<family>`, one directory each, and `alias.json` naming the live one
//! (and the one being built). Generic over the kind of document it holds.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tantivy::collector::Count;
use tantivy::query::{AllQuery, BooleanQuery, Occur, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TERMINATED, TantivyDocument, Term,
};
use tokio::sync::RwLock;
use uuid::Uuid;

use super::counts::KeptCounts;
use super::dense::DenseColumns;
use super::filter::KeptFilters;
use super::schema::{self, Common, Kind};
use crate::domain::document::IndexOp;
use crate::error::{Code, Error, Result};
use crate::search::{ApplyReport, IndexSize};

const WRITER_THREADS: usize = 2;
const WRITER_MEMORY: usize = 384 * 1024 * 1024;
/// Documents below which segments count as one merge level (see [`merge_policy`]).
const MIN_MERGE_LAYER: u32 = 500;
/// Stored documents are compressed in blocks of this many bytes, and showing one hit
/// decompresses its whole block: a page of 25 hits scattered over a million documents
/// decompressed 25 blocks of tantivy's default 16 KiB (a tenth of a phone search). A few
/// documents a block keeps most of the compression.
const DOCSTORE_BLOCK: usize = 4096;
/// How often [`Generation::compact`] merges again after losing a race to another merge.
/// A merge the policy started still holds its segments, and tantivy refuses another
/// merge of them until it ends: retrying at once lost every attempt on a slow machine
/// (CI, 2026-11-25), so each retry first waits, twice as long as the one before.
const COMPACT_ATTEMPTS: u32 = 8;
/// The wait before the first retry of [`Generation::compact`] (the 8th waits 2.56 s).
const COMPACT_RETRY_WAIT: Duration = Duration::from_millis(20);
/// How often a read-only process looks for a new live generation.
const ALIAS_CHECK_EVERY: Duration = Duration::from_secs(1);
const READER_RELOAD_EVERY: Duration = Duration::from_millis(50);

/// Tantivy's log merge policy treats every segment under its minimum layer size (10,000
/// documents by default) as one level and merges the level whole: with a commit every
/// sync cadence adding segments of tens of documents, the growing small segment was
/// rewritten dozens of times before it left the level, and merging took a quarter of
/// both cores under a steady write load. Small layers keep it to a few rewrites.
fn merge_policy() -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_layer_size(MIN_MERGE_LAYER);
    policy
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AliasFile {
    live: Option<String>,
    building: Option<String>,
}

pub struct Generation<K: Kind> {
    pub name: String,
    dir: PathBuf,
    reader: IndexReader,
    pub fields: K::Fields,
    common: Common,
    writer: Option<Mutex<IndexWriter>>,
    /// Read-only processes reload on demand, at most this often.
    last_reload: Mutex<Instant>,
    /// Columns searches read per match, decoded per segment.
    pub dense: Arc<DenseColumns>,
    /// Filter conditions' bits, per segment.
    pub kept: Arc<KeptFilters>,
    /// Totals and facets of searches that ask for no rows, per segment.
    pub counts: KeptCounts,
}

struct Targets<K: Kind> {
    live: Arc<Generation<K>>,
    building: Option<Arc<Generation<K>>>,
}

pub struct Collection<K: Kind> {
    root: PathBuf,
    writable: bool,
    targets: RwLock<Targets<K>>,
    alias_seen: Mutex<(Instant, Option<SystemTime>)>,
    created_fresh: bool,
}

pub fn id_term(field: Field, id: Uuid) -> Term {
    Term::from_field_text(field, &id.hyphenated().to_string())
}

pub fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(anyhow!("search index: {err}"))
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(|e| internal(format!("{e:#}")))
}

impl<K: Kind> Generation<K> {
    fn create(root: &Path, writable: bool) -> anyhow::Result<Self> {
        let name = format!("g{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"));
        Self::open(root, &name, writable, true)
    }

    fn open(root: &Path, name: &str, writable: bool, create: bool) -> anyhow::Result<Self> {
        let dir = root.join(name);
        let (schema, fields) = K::schema();
        let index = if create {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let settings = IndexSettings {
                docstore_blocksize: DOCSTORE_BLOCK,
                ..IndexSettings::default()
            };
            Index::builder().schema(schema).settings(settings).create_in_dir(&dir)?
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
            let writer: IndexWriter = index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)?;
            writer.set_merge_policy(Box::new(merge_policy()));
            Some(Mutex::new(writer))
        } else {
            None
        };
        Ok(Self {
            name: name.to_owned(),
            dir,
            reader,
            common: K::common(&fields),
            fields,
            writer,
            last_reload: Mutex::new(Instant::now()),
            dense: Arc::default(),
            kept: Arc::default(),
            counts: KeptCounts::default(),
        })
    }

    /// Reloads the reader and drops the decoded columns, kept filter bits and kept
    /// counts of the segments it no longer holds (merged away).
    fn reload(&self) -> tantivy::Result<()> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        self.dense.retain(&searcher);
        self.kept.retain(&searcher);
        self.counts.retain(&searcher);
        Ok(())
    }

    /// The owner reloads after each commit; a read-only process picks up the owner's
    /// commits here, so what it reads is at most [`READER_RELOAD_EVERY`] behind.
    pub fn searcher(&self) -> tantivy::Result<Searcher> {
        if self.writer.is_none() {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= READER_RELOAD_EVERY {
                self.reload()?;
                *last = Instant::now();
            }
        }
        Ok(self.reader.searcher())
    }

    pub fn version_in(&self, searcher: &Searcher, id: Uuid) -> tantivy::Result<Option<i64>> {
        let term = id_term(self.common.id, id);
        let mut best = None;
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.common.id)?;
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

    /// The newest version held for each of `ids` (tombstones included). A segment is
    /// searched only for the ids inside its range of ids, so a backfill, which goes in
    /// id order, skips the segments of its earlier chunks instead of probing them all.
    fn versions_in(&self, searcher: &Searcher, ids: &[Uuid]) -> tantivy::Result<HashMap<Uuid, i64>> {
        let mut terms: Vec<(String, Uuid)> = ids.iter().map(|id| (id.hyphenated().to_string(), *id)).collect();
        terms.sort_unstable();
        let mut held: HashMap<Uuid, i64> = HashMap::new();
        let (mut first, mut last) = (Vec::new(), Vec::new());
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.common.id)?;
            let dictionary = inverted.terms();
            let Some(last_ord) = (dictionary.num_terms() as u64).checked_sub(1) else {
                continue;
            };
            dictionary.ord_to_term(0, &mut first)?;
            dictionary.ord_to_term(last_ord, &mut last)?;
            let start = terms.partition_point(|(t, _)| t.as_bytes() < first.as_slice());
            let end = terms.partition_point(|(t, _)| t.as_bytes() <= last.as_slice());
            if start >= end {
                continue;
            }
            let versions = segment.fast_fields().i64("version")?;
            for (text, id) in &terms[start..end] {
                let term = Term::from_field_text(self.common.id, text);
                let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc))
                        && let Some(version) = versions.first(doc)
                    {
                        let best = held.entry(*id).or_insert(version);
                        *best = (*best).max(version);
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(held)
    }

    fn apply(&self, ops: &[&IndexOp]) -> anyhow::Result<ApplyReport> {
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
        let ids: Vec<Uuid> = latest.keys().copied().collect();
        let held = self.versions_in(&searcher, &ids)?;
        for op in latest.values() {
            let existing = held.get(&op.id).copied();
            if existing.is_some_and(|held| held >= op.version) {
                report.stale += 1;
                continue;
            }
            let document = match &op.doc {
                Some(doc) => K::document(&self.fields, doc)?,
                None => self.common.document(op.id, op.version, true),
            };
            // Every commit is followed by a reload under the writer lock, so an id the
            // searcher does not hold is in no segment: no delete to apply at commit.
            if existing.is_some() {
                writer.delete_term(id_term(self.common.id, op.id));
            }
            writer.add_document(document)?;
            report.applied += 1;
        }
        if report.applied > 0 {
            writer.commit()?;
            self.reload()?;
        }
        Ok(report)
    }

    /// Merges every segment into one, as a rebuilt generation is about to serve
    /// searches. A search pays for each segment it visits (dictionary lookups, scorers,
    /// the union buffers of each scorer, a page heap), and a backfill leaves a dozen;
    /// the merge runs once, beside the dual writes, which keep committing new segments.
    /// A merge the merge policy started on some of the same segments may finish first
    /// and make this one fail: then the segments are read again and merged again.
    fn compact(&self) -> anyhow::Result<()> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| anyhow!("generation {} is read-only", self.name))?;
        let mut attempt = 0;
        loop {
            let merging = {
                let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
                let segments = writer.index().searchable_segment_ids()?;
                if segments.len() <= 1 {
                    break;
                }
                writer.merge(&segments)
            };
            match merging.wait() {
                Ok(_) => break,
                Err(err) if attempt < COMPACT_ATTEMPTS => {
                    tracing::debug!(generation = %self.name, error = %err, "segment merge raced another; merging again");
                    std::thread::sleep(COMPACT_RETRY_WAIT * 2u32.pow(attempt));
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
        // Also after a merge the policy finished first: the reader still holds the
        // segments it replaced until it reloads.
        self.reload()?;
        Ok(())
    }

    fn live_query(&self) -> BooleanQuery {
        let tombstone = TermQuery::new(Term::from_field_bool(self.common.tombstone, true), IndexRecordOption::Basic);
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

    /// The stored source of a hit.
    pub fn load<D: DeserializeOwned>(&self, searcher: &Searcher, address: DocAddress) -> anyhow::Result<D> {
        let stored: TantivyDocument = searcher.doc(address)?;
        let source = stored
            .get_first(self.common.source)
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("document without source"))?;
        Ok(serde_json::from_str(source)?)
    }
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

/// The bytes of the files in `dir` (a generation's files lie flat in it).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn alias_mtime(root: &Path) -> Option<SystemTime> {
    std::fs::metadata(root.join("alias.json")).and_then(|m| m.modified()).ok()
}

impl<K: Kind> Collection<K> {
    /// Opens for writing (the caller holds the owner lock). A missing or unreadable live
    /// generation is replaced by an empty one ([`Self::created_fresh`] then says a
    /// backfill is due); a rebuild left half-done by a crash is discarded.
    pub fn open_owner(index_root: &Path) -> anyhow::Result<Self> {
        let root = index_root.join(K::DIR);
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut alias = read_alias(&root)?;
        if let Some(stale) = alias.building.take() {
            tracing::warn!(generation = %stale, family = K::DIR, "discarding a rebuild left unfinished");
            let _ = std::fs::remove_dir_all(root.join(&stale));
        }
        let opened = alias.live.as_deref().map(|name| Generation::open(&root, name, true, false));
        let (live, created_fresh) = match opened {
            Some(Ok(generation)) => (generation, false),
            Some(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), family = K::DIR, "live index unreadable; starting a new one");
                (Generation::create(&root, true)?, true)
            }
            None => (Generation::create(&root, true)?, true),
        };
        let replaced = alias.live.replace(live.name.clone()).filter(|name| *name != live.name);
        write_alias(&root, &alias)?;
        // Nothing reads a generation the alias no longer names: an unreadable one would
        // otherwise stay on disk for good, one for each upgrade that changes the schema.
        if let Some(unreadable) = replaced {
            tracing::info!(generation = %unreadable, family = K::DIR, "removing the unreadable generation");
            if let Err(err) = std::fs::remove_dir_all(root.join(&unreadable)) {
                tracing::warn!(generation = %unreadable, family = K::DIR, error = %err, "could not remove the unreadable generation");
            }
        }
        Ok(Self {
            alias_seen: Mutex::new((Instant::now(), alias_mtime(&root))),
            root,
            writable: true,
            targets: RwLock::new(Targets {
                live: Arc::new(live),
                building: None,
            }),
            created_fresh,
        })
    }

    /// Opens read-only, following the owner's alias.json.
    pub fn open_reader(index_root: &Path) -> Result<Self> {
        let root = index_root.join(K::DIR);
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
            writable: false,
            targets: RwLock::new(Targets {
                live: Arc::new(live),
                building: None,
            }),
            created_fresh: false,
        })
    }

    /// True when opening found no usable index and made an empty one.
    pub fn created_fresh(&self) -> bool {
        self.created_fresh
    }

    /// In a read-only process, switches to a new live generation after the owner swapped.
    async fn follow_alias(&self) -> Result<()> {
        if self.writable {
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
        tracing::info!(generation = %generation.name, family = K::DIR, "following the new live index");
        self.targets.write().await.live = Arc::new(generation);
        Ok(())
    }

    pub async fn live(&self) -> Result<Arc<Generation<K>>> {
        self.follow_alias().await?;
        Ok(self.targets.read().await.live.clone())
    }

    pub(super) async fn generation(&self, name: &str) -> Result<Arc<Generation<K>>> {
        let targets = self.targets.read().await;
        [Some(&targets.live), targets.building.as_ref()]
            .into_iter()
            .flatten()
            .find(|g| g.name == name)
            .cloned()
            .ok_or_else(|| Error::new(Code::NotFound, format!("no index generation {name} of {}", K::DIR)))
    }

    fn save_alias(&self, targets: &Targets<K>) -> Result<()> {
        let alias = AliasFile {
            live: Some(targets.live.name.clone()),
            building: targets.building.as_ref().map(|g| g.name.clone()),
        };
        write_alias(&self.root, &alias).map_err(internal)
    }

    async fn retire(generation: Arc<Generation<K>>) {
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

    /// Applies this kind's ops to every write target. The read lock is held across the
    /// write so a rebuild cannot register or promote mid-batch.
    pub async fn apply(&self, ops: Arc<Vec<IndexOp>>) -> Result<ApplyReport> {
        let targets = self.targets.read().await;
        let generations: Vec<Arc<Generation<K>>> = [Some(&targets.live), targets.building.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut report = ApplyReport::default();
        for (i, generation) in generations.into_iter().enumerate() {
            let ops = ops.clone();
            let r = blocking(move || {
                let mine: Vec<&IndexOp> = ops.iter().filter(|op| op.entity == K::ENTITY).collect();
                generation.apply(&mine)
            })
            .await?;
            if i == 0 {
                report = r;
            }
        }
        drop(targets);
        Ok(report)
    }

    pub async fn version_of(&self, id: Uuid) -> Result<Option<i64>> {
        let live = self.live().await?;
        blocking(move || Ok(live.version_in(&live.searcher()?, id)?)).await
    }

    pub async fn versions(&self) -> Result<HashMap<Uuid, i64>> {
        let live = self.live().await?;
        blocking(move || live.versions()).await
    }

    pub async fn begin_rebuild(&self) -> Result<String> {
        let mut targets = self.targets.write().await;
        if let Some(building) = &targets.building {
            return Err(Error::new(
                Code::Conflict,
                format!("a rebuild of {} is already running (generation {})", K::DIR, building.name),
            ));
        }
        let root = self.root.clone();
        let generation = blocking(move || Generation::create(&root, true)).await?;
        let name = generation.name.clone();
        targets.building = Some(Arc::new(generation));
        self.save_alias(&targets)?;
        Ok(name)
    }

    pub async fn apply_to(&self, generation: &str, ops: Vec<IndexOp>) -> Result<ApplyReport> {
        let generation = self.generation(generation).await?;
        blocking(move || {
            let refs: Vec<&IndexOp> = ops.iter().collect();
            generation.apply(&refs)
        })
        .await
    }

    /// The live generation's size.
    pub async fn size(&self) -> Result<IndexSize> {
        let live = self.live().await?;
        blocking(move || {
            let searcher = live.searcher()?;
            let segments = searcher.segment_readers();
            Ok(IndexSize {
                entity: K::ENTITY.as_str().to_owned(),
                index: live.name.clone(),
                documents: segments.iter().map(|s| u64::from(s.num_docs())).sum(),
                deleted_documents: segments.iter().map(|s| u64::from(s.num_deleted_docs())).sum(),
                segments: segments.len() as u64,
                bytes: dir_bytes(&live.dir),
            })
        })
        .await
    }

    pub async fn count(&self, generation: &str) -> Result<u64> {
        let generation = self.generation(generation).await?;
        blocking(move || generation.count()).await
    }

    pub async fn promote(&self, generation: &str) -> Result<()> {
        let building = self.targets.read().await.building.clone().filter(|g| g.name == generation);
        if let Some(building) = building {
            // The merge only speeds searches up: the generation is complete without it,
            // so a failed merge is reported and the swap goes ahead.
            let started = Instant::now();
            match blocking(move || building.compact()).await {
                Ok(()) => tracing::info!(
                    generation,
                    family = K::DIR,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "segments merged"
                ),
                Err(err) => tracing::warn!(generation, family = K::DIR, error = %err, "could not merge the segments; promoting unmerged"),
            }
        }
        let mut targets = self.targets.write().await;
        let building = targets.building.take_if(|g| g.name == generation);
        let Some(building) = building else {
            return Err(Error::new(Code::Conflict, format!("{generation} is not being built")));
        };
        let old = std::mem::replace(&mut targets.live, building);
        self.save_alias(&targets)?;
        drop(targets);
        tracing::info!(live = %generation, retired = %old.name, family = K::DIR, "index generation promoted");
        Self::retire(old).await;
        Ok(())
    }

    pub async fn abandon(&self, generation: &str) -> Result<()> {
        let mut targets = self.targets.write().await;
        let Some(building) = targets.building.take_if(|g| g.name == generation) else {
            return Ok(());
        };
        self.save_alias(&targets)?;
        drop(targets);
        Self::retire(building).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::document::Entity;
    use crate::search::embedded::schema::Accounts;

    fn tombstones(n: usize, version: i64) -> Vec<IndexOp> {
        (0..n)
            .map(|_| IndexOp::tombstone(Entity::Account, Uuid::new_v4(), version))
            .collect()
    }

    fn apply(generation: &Generation<Accounts>, ops: &[IndexOp]) {
        generation.apply(&ops.iter().collect::<Vec<_>>()).unwrap();
    }

    #[test]
    fn compaction_merges_the_segments_into_one_and_loses_no_write_made_meanwhile() {
        let dir = std::env::temp_dir().join(format!("arrears-compact-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let generation = Arc::new(Generation::<Accounts>::create(&dir, true).unwrap());
        let mut written: Vec<IndexOp> = Vec::new();
        for _ in 0..12 {
            let batch = tombstones(50, 1);
            apply(&generation, &batch);
            written.extend(batch);
        }
        let before = generation.searcher().unwrap().segment_readers().len();
        assert!(before > 1, "each commit adds a segment ({before})");
        let (meanwhile, updates) = std::thread::scope(|scope| {
            let writing = scope.spawn(|| {
                let mut meanwhile = Vec::new();
                for _ in 0..20 {
                    let batch = tombstones(5, 1);
                    apply(&generation, &batch);
                    meanwhile.extend(batch);
                }
                // Newer versions of documents the merge is rewriting.
                let updates: Vec<IndexOp> = written[..40]
                    .iter()
                    .map(|op| IndexOp::tombstone(Entity::Account, op.id, 2))
                    .collect();
                apply(&generation, &updates);
                (meanwhile, updates)
            });
            generation.compact().unwrap();
            writing.join().unwrap()
        });
        let searcher = generation.searcher().unwrap();
        let ids: Vec<Uuid> = written.iter().chain(&meanwhile).map(|op| op.id).collect();
        let held = generation.versions_in(&searcher, &ids).unwrap();
        assert_eq!(held.len(), ids.len(), "every document is still there once");
        assert_eq!(searcher.num_docs() as usize, ids.len(), "and no old copy survives");
        for op in &updates {
            assert_eq!(held[&op.id], 2, "the newer version wins");
        }
        generation.compact().unwrap();
        assert_eq!(generation.searcher().unwrap().segment_readers().len(), 1);
        drop(searcher);
        drop(generation);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_generation_of_another_schema_is_replaced_and_removed() {
        let index_root = std::env::temp_dir().join(format!("arrears-unreadable-{}", Uuid::new_v4()));
        let root = index_root.join(Accounts::DIR);
        let old = root.join("g-old-release");
        std::fs::create_dir_all(&old).unwrap();
        let mut schema = tantivy::schema::Schema::builder();
        schema.add_text_field("source", tantivy::schema::STORED);
        Index::create_in_dir(&old, schema.build()).unwrap();
        write_alias(
            &root,
            &AliasFile {
                live: Some("g-old-release".into()),
                building: None,
            },
        )
        .unwrap();
        let collection = Collection::<Accounts>::open_owner(&index_root).unwrap();
        assert!(collection.created_fresh, "a backfill is due");
        let live = read_alias(&root).unwrap().live.unwrap();
        assert_ne!(live, "g-old-release");
        assert!(root.join(&live).is_dir());
        assert!(!old.exists(), "the generation nothing names any more is gone");
        drop(collection);
        std::fs::remove_dir_all(index_root).unwrap();
    }

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
