//! Account filters evaluated on the decoded columns ([`DenseColumns`]) instead of term
//! postings and fast-field range scans.
//!
//! A condition is evaluated 64 documents at a time into a bit mask (branch-free loops
//! over the arrays), and the masks of all conditions are and-ed; over a segment of at
//! least [`CACHED_FROM_DOCS`] documents the condition's bits are kept (segments never
//! change), as Elasticsearch keeps filter bit sets per segment, so a status, bucket or
//! balance filter an agent uses again costs one word read per 64 documents. A condition
//! on an instant or a minute of the day (the queue's "due now", the contact window) is
//! asked with a new bound by every request, so its bits are never kept: it is evaluated
//! for the documents the search visits. Inside an intersection with a text or agent
//! query a candidate is checked without a pass over the segment (`seek_danger`: a
//! failing one skips ahead by the kept bits), so a filter that
//! combines several conditions (any of, none of) costs the candidates it is asked
//! about, not the segment. The bucket condition computes a document's bucket exactly
//! as the bucket facet does, so a filter and its facet always agree.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, Searcher, SeekDangerResult, SegmentReader, TERMINATED, TantivyError, Term};

use super::dense::{BucketColumns, Dense, DenseColumns, MISSING, MISSING_32, NO_ORD_8, Strs, bucket_index, overdue_days};

/// Segments this large keep each condition's bits; smaller ones (the latest commits)
/// are evaluated on every search.
const CACHED_FROM_DOCS: u32 = 16_384;
/// Days past due from which the bucket no longer changes (120+).
const LAST_BUCKET_DAY: i64 = 120;
/// Columns whose filters are bounded by an instant or a minute of the day: a request's
/// bound is almost never asked again, so their bits are not kept.
const MOMENT_COLUMNS: [&str; 4] = ["next_action", "calls_open", "window_start", "window_end"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// A test of a column's value.
    Value(ValueTest),
    /// The indexed string field holds `term` (read from its postings).
    Posted { field: Field, term: String },
    /// The condition fails.
    Not(Box<Condition>),
    /// Every condition of at least one group holds.
    AnyOf(Vec<Vec<Condition>>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueTest {
    /// An integer column's value lies in `lo..=hi`; a document without one fails.
    Range { column: &'static str, lo: i64, hi: i64 },
    /// A string column holds one of `terms` (any of its values, where it has several).
    Terms { column: &'static str, terms: Vec<String> },
    /// A string column holds any value.
    Present { column: &'static str },
    /// The document's delinquency bucket on day `today` (index into `ALL_BUCKETS`) is
    /// accepted.
    Bucket { today: i64, accept: [bool; 6] },
}

impl Condition {
    pub fn range(column: &'static str, lo: i64, hi: i64) -> Condition {
        Condition::Value(ValueTest::Range { column, lo, hi })
    }

    pub fn not(condition: Condition) -> Condition {
        Condition::Not(Box::new(condition))
    }

    /// Whether its bits are worth keeping (see [`MOMENT_COLUMNS`]).
    fn keepable(&self) -> bool {
        match self {
            Condition::Value(ValueTest::Range { column, .. }) => !MOMENT_COLUMNS.contains(column),
            Condition::Value(_) | Condition::Posted { .. } => true,
            Condition::Not(inner) => inner.keepable(),
            Condition::AnyOf(groups) => groups.iter().flatten().all(Condition::keepable),
        }
    }
}

/// Documents that meet every condition.
#[derive(Clone)]
pub struct DenseFilter {
    pub conditions: Vec<Condition>,
    pub dense: Arc<DenseColumns>,
    pub kept: Arc<KeptFilters>,
}

impl fmt::Debug for DenseFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenseFilter").field("conditions", &self.conditions).finish()
    }
}

/// A condition bound to one segment's arrays.
enum Check {
    Range {
        values: Arc<Dense>,
        lo: i64,
        hi: i64,
    },
    Ords {
        ords: Arc<Strs>,
        /// By term ordinal; at least 256 entries, the missing ordinal rejected.
        accept: Vec<bool>,
    },
    Bucket {
        columns: BucketColumns,
        today: i64,
        /// Accepted by days past due, up to [`LAST_BUCKET_DAY`].
        by_days: Vec<bool>,
    },
    /// The segment has no such column: nothing passes.
    Never,
}

/// `table` padded with rejections to the 256 entries an 8-bit ordinal can index. A
/// column is decoded to 8-bit ordinals only when it has fewer than 255 terms, so the
/// missing ordinal (255) always lands in the padding.
fn by_ord(mut table: Vec<bool>) -> Vec<bool> {
    if table.len() <= usize::from(NO_ORD_8) {
        table.resize(256, false);
    }
    table
}

/// Whether each number of days past due, up to [`LAST_BUCKET_DAY`], falls in an
/// accepted bucket (by `ALL_BUCKETS` index).
fn bucket_table(accept: &[bool; 6]) -> Vec<bool> {
    (0..=LAST_BUCKET_DAY).map(|days| accept[bucket_index(days)]).collect()
}

fn in_table(by_days: &[bool], days: i64) -> bool {
    by_days[days.clamp(0, LAST_BUCKET_DAY) as usize]
}

fn range_mask<T: Copy + PartialOrd>(values: &[T], lo: T, hi: T) -> u64 {
    values
        .iter()
        .enumerate()
        .fold(0, |mask, (bit, v)| mask | (u64::from((lo <= *v) & (*v <= hi)) << bit))
}

impl Check {
    fn bind(test: &ValueTest, segment: &SegmentReader, dense: &DenseColumns) -> tantivy::Result<Check> {
        Ok(match test {
            ValueTest::Range { column, lo, hi } => {
                let values = dense.i64(segment, column)?;
                // Missing values sit below every bound.
                let lo = (*lo).max(match *values {
                    Dense::I32(_) => i64::from(MISSING_32) + 1,
                    _ => MISSING + 1,
                });
                let hi = match *values {
                    Dense::I32(_) => (*hi).min(i64::from(i32::MAX)),
                    _ => *hi,
                };
                if lo > hi { Check::Never } else { Check::Range { values, lo, hi } }
            }
            ValueTest::Terms { column, terms } => {
                let strs = dense.strs(segment, column)?;
                if strs.terms.is_empty() {
                    Check::Never
                } else {
                    let mut accept = vec![false; strs.terms.len()];
                    for ord in terms.iter().filter_map(|term| strs.term_ord(term)) {
                        accept[ord as usize] = true;
                    }
                    Check::Ords {
                        ords: strs,
                        accept: by_ord(accept),
                    }
                }
            }
            ValueTest::Present { column } => {
                let strs = dense.strs(segment, column)?;
                if strs.terms.is_empty() {
                    Check::Never
                } else {
                    Check::Ords {
                        accept: by_ord(vec![true; strs.terms.len()]),
                        ords: strs,
                    }
                }
            }
            ValueTest::Bucket { today, accept } => Check::Bucket {
                columns: BucketColumns::bind(segment, dense)?,
                today: *today,
                by_days: bucket_table(accept),
            },
        })
    }

    fn passes(&self, doc: DocId) -> bool {
        match self {
            Check::Range { values, lo, hi } => values.i64(doc).is_some_and(|v| *lo <= v && v <= *hi),
            Check::Ords { ords, accept } => ords.any_ord(doc, |ord| accept.get(ord as usize).copied().unwrap_or(false)),
            Check::Bucket { columns, today, by_days } => in_table(by_days, columns.days_past_due(doc, *today)),
            Check::Never => false,
        }
    }

    /// Bit `i` set when document `start + i` passes, for the documents `start..end`
    /// (at most 64).
    fn mask(&self, start: usize, end: usize) -> u64 {
        match self {
            Check::Range { values, lo, hi } => match &**values {
                Dense::I32(v) => range_mask(&v[start..end], *lo as i32, *hi as i32),
                Dense::I64(v) => range_mask(&v[start..end], *lo, *hi),
                _ => 0,
            },
            Check::Ords { ords, accept } => match ords.single() {
                Some(Dense::Ord8(v)) => v[start..end]
                    .iter()
                    .enumerate()
                    .fold(0, |mask, (bit, ord)| mask | (u64::from(accept[usize::from(*ord)]) << bit)),
                _ => self.mask_by_doc(start, end),
            },
            Check::Bucket { columns, today, by_days } => match (columns.status.single(), &*columns.due) {
                (Some(Dense::Ord8(ords)), Dense::I32(dues)) => {
                    ords[start..end]
                        .iter()
                        .zip(&dues[start..end])
                        .enumerate()
                        .fold(0, |mask, (bit, (ord, due))| {
                            let due = (*due != MISSING_32).then_some(i64::from(*due));
                            let days = overdue_days(columns.resolved(Some(u32::from(*ord))), due, *today);
                            mask | (u64::from(in_table(by_days, days)) << bit)
                        })
                }
                _ => self.mask_by_doc(start, end),
            },
            Check::Never => 0,
        }
    }

    fn mask_by_doc(&self, start: usize, end: usize) -> u64 {
        (start..end).fold(0, |mask, doc| mask | (u64::from(self.passes(doc as DocId)) << (doc - start)))
    }
}

/// The bits of a condition over a segment, and a summary with one bit per word, set
/// when the word has any: a scan for the next passing document skips 4,096 documents
/// at a time where a kept condition (a queue tier's day, say) passes none.
pub struct KeptBits {
    words: Vec<u64>,
    summary: Vec<u64>,
}

impl KeptBits {
    pub fn new(words: Vec<u64>) -> KeptBits {
        let summary = words
            .chunks(64)
            .map(|chunk| chunk.iter().enumerate().fold(0, |s, (bit, w)| s | (u64::from(*w != 0) << bit)))
            .collect();
        KeptBits { words, summary }
    }
}

/// How many filter bit sets (one per segment and condition) are kept; a bit set of a
/// million-document segment takes 122 KiB.
const FILTER_BITS_KEPT: usize = 256;

/// The documents of a segment that meet a filter condition, one bit each, by segment
/// and condition. Segments never change, so a set stays valid until its segment is
/// merged away; [`KeptFilters::retain`], called at each reader reload, drops it.
#[derive(Default)]
pub struct KeptFilters {
    sets: Mutex<HashMap<(SegmentId, Condition), Arc<KeptBits>>>,
}

impl KeptFilters {
    /// The bit set of `condition` over `segment`, built by `build` the first time. When
    /// full, the cache drops an arbitrary entry (random eviction).
    fn get_or_build(
        &self,
        segment: &SegmentReader,
        condition: &Condition,
        build: impl FnOnce() -> tantivy::Result<Vec<u64>>,
    ) -> tantivy::Result<Arc<KeptBits>> {
        let key = (segment.segment_id(), condition.clone());
        if let Some(found) = self.sets.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let built = Arc::new(KeptBits::new(build()?));
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if sets.len() >= FILTER_BITS_KEPT
            && let Some(evicted) = sets.keys().next().cloned()
        {
            sets.remove(&evicted);
        }
        sets.insert(key, built.clone());
        Ok(built)
    }

    /// Drops the bit sets of segments `searcher` no longer has.
    pub fn retain(&self, searcher: &Searcher) {
        let live: HashSet<SegmentId> = searcher.segment_readers().iter().map(|s| s.segment_id()).collect();
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
    }
}

/// A condition over one segment: its kept bits, evaluated as needed, or a combination.
enum Bits {
    Kept(Arc<KeptBits>),
    Live(Check),
    Not(Box<Bits>),
    All(Vec<Bits>),
    Any(Vec<Bits>),
}

/// The bits of word `index` that stand for documents of the segment.
fn in_segment(index: usize, max_doc: usize) -> u64 {
    match max_doc.saturating_sub(index * 64) {
        left if left >= 64 => u64::MAX,
        left => (1 << left) - 1,
    }
}

impl Bits {
    fn bind(condition: &Condition, segment: &SegmentReader, dense: &DenseColumns, kept: &KeptFilters) -> tantivy::Result<Bits> {
        if condition.keepable() && segment.max_doc() >= CACHED_FROM_DOCS {
            // Columns, postings and term ordinals are read only to build missing bits.
            let words = kept.get_or_build(segment, condition, || {
                Ok(all_words(
                    &Bits::evaluated(condition, segment, dense, kept)?,
                    segment.max_doc() as usize,
                ))
            })?;
            return Ok(Bits::Kept(words));
        }
        Bits::evaluated(condition, segment, dense, kept)
    }

    /// The condition's bits without its kept ones (those of its parts may be kept).
    fn evaluated(condition: &Condition, segment: &SegmentReader, dense: &DenseColumns, kept: &KeptFilters) -> tantivy::Result<Bits> {
        Ok(match condition {
            Condition::Value(test) => Bits::Live(Check::bind(test, segment, dense)?),
            Condition::Posted { field, term } => Bits::Kept(Arc::new(KeptBits::new(posted(segment, *field, term)?))),
            Condition::Not(inner) => Bits::Not(Box::new(Bits::bind(inner, segment, dense, kept)?)),
            Condition::AnyOf(groups) => Bits::Any(
                groups
                    .iter()
                    .map(|group| {
                        let parts = group.iter().map(|c| Bits::bind(c, segment, dense, kept));
                        Ok(Bits::All(parts.collect::<tantivy::Result<_>>()?))
                    })
                    .collect::<tantivy::Result<_>>()?,
            ),
        })
    }

    fn word(&self, index: usize, max_doc: usize) -> u64 {
        match self {
            Bits::Kept(kept) => kept.words[index],
            Bits::Live(check) => check.mask(index * 64, (index * 64 + 64).min(max_doc)),
            Bits::Not(inner) => !inner.word(index, max_doc) & in_segment(index, max_doc),
            Bits::All(parts) => all_of(parts, index, max_doc),
            Bits::Any(parts) => parts.iter().fold(0, |mask, part| mask | part.word(index, max_doc)),
        }
    }

    fn passes(&self, doc: DocId) -> bool {
        match self {
            Bits::Kept(kept) => (kept.words[doc as usize / 64] >> (doc % 64)) & 1 == 1,
            Bits::Live(check) => check.passes(doc),
            Bits::Not(inner) => !inner.passes(doc),
            Bits::All(parts) => parts.iter().all(|p| p.passes(doc)),
            Bits::Any(parts) => parts.iter().any(|p| p.passes(doc)),
        }
    }
}

/// The documents of word `index` that pass every one of `parts`.
fn all_of(parts: &[Bits], index: usize, max_doc: usize) -> u64 {
    let mut mask = in_segment(index, max_doc);
    for part in parts {
        if mask == 0 {
            break;
        }
        mask &= part.word(index, max_doc);
    }
    mask
}

fn all_words(bits: &Bits, max_doc: usize) -> Vec<u64> {
    (0..max_doc.div_ceil(64)).map(|i| bits.word(i, max_doc)).collect()
}

/// The documents whose `field` holds `term`, from its postings.
fn posted(segment: &SegmentReader, field: Field, term: &str) -> tantivy::Result<Vec<u64>> {
    let mut words = vec![0; (segment.max_doc() as usize).div_ceil(64)];
    let postings = segment
        .inverted_index(field)?
        .read_postings(&Term::from_field_text(field, term), IndexRecordOption::Basic)?;
    if let Some(mut postings) = postings {
        let mut doc = postings.doc();
        while doc != TERMINATED {
            words[doc as usize / 64] |= 1 << (doc % 64);
            doc = postings.advance();
        }
    }
    Ok(words)
}

struct FilterScorer {
    bits: Vec<Bits>,
    /// How many of `bits`, first, are kept: a document failing one of them is skipped
    /// a word at a time.
    kept: usize,
    max_doc: usize,
    doc: DocId,
    /// The word holding `doc`, and its passing documents from `doc` on; stale after a
    /// `seek_danger` (which positions without it) until the next `advance` or `seek`.
    word: usize,
    mask: u64,
    mask_valid: bool,
    score: Score,
}

impl FilterScorer {
    fn new(mut bits: Vec<Bits>, max_doc: usize, score: Score) -> FilterScorer {
        // A kept condition costs a word read: asked first, it spares the others.
        bits.sort_by_key(|b| !matches!(b, Bits::Kept(_)));
        let kept = bits.iter().take_while(|b| matches!(b, Bits::Kept(_))).count();
        FilterScorer {
            bits,
            kept,
            max_doc,
            doc: 0,
            word: 0,
            mask: 0,
            mask_valid: false,
            score,
        }
    }

    fn word_mask(&self, index: usize) -> u64 {
        all_of(&self.bits, index, self.max_doc)
    }

    /// The first document at or after `from` that passes every kept condition: no
    /// document before it passes (the conditions evaluated as needed are not asked).
    /// Words are looked at only where every kept condition's summary has a bit.
    fn kept_from(&self, from: usize) -> DocId {
        if from >= self.max_doc {
            return TERMINATED;
        }
        if self.kept == 0 {
            return from as DocId;
        }
        let kept = &self.bits[..self.kept];
        let word_of = |index: usize| all_of(kept, index, self.max_doc);
        let summary_of = |block: usize| {
            kept.iter().fold(u64::MAX, |s, b| match b {
                Bits::Kept(k) => s & k.summary[block],
                _ => s,
            })
        };
        let mut index = from / 64;
        let mask = word_of(index) & (u64::MAX << (from % 64));
        if mask != 0 {
            return (index * 64) as DocId + mask.trailing_zeros();
        }
        index += 1;
        while index * 64 < self.max_doc {
            let block = index / 64;
            let words = summary_of(block) & (u64::MAX << (index % 64));
            if words == 0 {
                index = (block + 1) * 64;
                continue;
            }
            index = block * 64 + words.trailing_zeros() as usize;
            let mask = word_of(index);
            if mask != 0 {
                return (index * 64) as DocId + mask.trailing_zeros();
            }
            index += 1;
        }
        TERMINATED
    }

    /// Positions on the first passing document at or after `from`.
    fn go_from(&mut self, mut from: usize) -> DocId {
        self.mask_valid = true;
        loop {
            from = self.kept_from(from) as usize;
            if from >= self.max_doc {
                self.doc = TERMINATED;
                return TERMINATED;
            }
            self.word = from / 64;
            self.mask = self.word_mask(self.word) & (u64::MAX << (from % 64));
            if self.mask != 0 {
                self.doc = (self.word * 64) as DocId + self.mask.trailing_zeros();
                return self.doc;
            }
            from = (self.word + 1) * 64;
        }
    }
}

impl DocSet for FilterScorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        if !self.mask_valid {
            return self.go_from(self.doc as usize + 1);
        }
        self.mask &= self.mask - 1;
        if self.mask != 0 {
            self.doc = (self.word * 64) as DocId + self.mask.trailing_zeros();
            return self.doc;
        }
        self.go_from((self.word + 1) * 64)
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc < target {
            return self.go_from(target as usize);
        }
        self.doc
    }

    /// The answer for the intersection driving this filter: is `target` in? When not,
    /// the next document that passes the kept conditions bounds where to look next,
    /// so a selective kept condition (a queue tier's day) skips the candidates before
    /// it instead of refusing them one at a time.
    fn seek_danger(&mut self, target: DocId) -> SeekDangerResult {
        if target as usize >= self.max_doc {
            self.doc = TERMINATED;
            return SeekDangerResult::SeekLowerBound(TERMINATED);
        }
        if self.bits.iter().all(|b| b.passes(target)) {
            self.doc = target;
            self.mask_valid = false;
            SeekDangerResult::Found
        } else {
            SeekDangerResult::SeekLowerBound(self.kept_from(target as usize + 1))
        }
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.max_doc as u32
    }
}

impl Scorer for FilterScorer {
    fn score(&mut self) -> Score {
        self.score
    }
}

impl DenseFilter {
    /// The scorer on its first passing document.
    fn bind(&self, segment: &SegmentReader, boost: Score) -> tantivy::Result<FilterScorer> {
        let mut scorer = self.unpositioned(segment, boost)?;
        scorer.go_from(0);
        Ok(scorer)
    }

    /// The scorer before it looks for a document: finding the first one passes over
    /// every document before it, the whole segment when few or none pass.
    fn unpositioned(&self, segment: &SegmentReader, boost: Score) -> tantivy::Result<FilterScorer> {
        let bits = self
            .conditions
            .iter()
            .map(|condition| Bits::bind(condition, segment, &self.dense, &self.kept))
            .collect::<tantivy::Result<_>>()?;
        Ok(FilterScorer::new(bits, segment.max_doc() as usize, boost))
    }
}

impl Query for DenseFilter {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for DenseFilter {
    fn scorer(&self, segment: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(self.bind(segment, boost)?))
    }

    /// In an intersection the filter answers for the candidate the other clauses
    /// propose, without first finding its own first document.
    fn scorer_danger(&self, segment: &SegmentReader, target: DocId, boost: Score) -> tantivy::Result<(SeekDangerResult, Box<dyn Scorer>)> {
        let mut scorer = self.unpositioned(segment, boost)?;
        let found = scorer.seek_danger(target);
        Ok((found, Box::new(scorer)))
    }

    fn explain(&self, segment: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let scorer = self.bind(segment, 1.0)?;
        if scorer.bits.iter().all(|b| b.passes(doc)) {
            Ok(Explanation::new("DenseFilter", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!("document {doc} does not pass the filter")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_table_agrees_with_the_bucket_of_every_day() {
        for bucket in 0..6 {
            let mut accept = [false; 6];
            accept[bucket] = true;
            let table = bucket_table(&accept);
            for days in 0..400 {
                assert_eq!(in_table(&table, days), accept[bucket_index(days)], "bucket {bucket}, {days} days");
            }
        }
    }

    #[test]
    fn tombstones_without_status_or_due_date_are_in_no_overdue_bucket_and_no_status() {
        let (schema, fields) = super::super::schema::build();
        let index = tantivy::Index::create_in_ram(schema);
        super::super::schema::register_tokenizers(&index).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for _ in 0..3 {
            writer.add_document(fields.common.document(uuid::Uuid::new_v4(), 1, true)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let segment = searcher.segment_reader(0);
        let dense = DenseColumns::default();
        for condition in [
            ValueTest::Bucket {
                today: 20_000,
                accept: [false, false, true, false, false, false],
            },
            ValueTest::Terms {
                column: "status",
                terms: vec!["active".into()],
            },
        ] {
            let check = Check::bind(&condition, segment, &dense).unwrap();
            assert_eq!(check.mask(0, 3), 0, "{condition:?}");
            assert!(!check.passes(1), "{condition:?}");
        }
    }

    #[test]
    fn range_masks_set_one_bit_per_passing_value_in_order() {
        let values: Vec<i32> = (0..64).collect();
        assert_eq!(range_mask(&values, 3, 5), 0b111000);
        assert_eq!(range_mask(&values[60..], 62, 100), 0b1100);
        assert_eq!(range_mask(&values, 70, 80), 0);
        assert_eq!(range_mask(&values, 0, 63), u64::MAX);
    }

    /// One segment of documents `0..count`, each given its fields by `fill`.
    fn segment_of(
        count: u32,
        fill: impl Fn(u32, &mut tantivy::TantivyDocument, &super::super::schema::Fields),
    ) -> (tantivy::Searcher, super::super::schema::Fields) {
        let (schema, fields) = super::super::schema::build();
        let index = tantivy::Index::create_in_ram(schema);
        super::super::schema::register_tokenizers(&index).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
        for doc in 0..count {
            let mut document = fields.common.document(uuid::Uuid::new_v4(), 1, false);
            fill(doc, &mut document, &fields);
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        (index.reader().unwrap().searcher(), fields)
    }

    /// Documents `0..count` of one segment: every third has a call window of an hour
    /// starting at minute `doc % 1440`, every fifth is blocked on sms.
    fn windows_segment(count: u32) -> (tantivy::Searcher, super::super::schema::Fields) {
        segment_of(count, |doc, document, fields| {
            if doc % 3 == 0 {
                document.add_text(fields.contact_windowed, "call");
                document.add_i64(fields.window_start, i64::from(doc % 1440));
                document.add_i64(fields.window_end, i64::from(doc % 1440) + 60);
            }
            if doc % 5 == 0 {
                document.add_text(fields.contact_blocked, "sms");
            }
        })
    }

    /// A segment of `count` documents: those of `blocked` blocked for sms, those of
    /// `windowed` windowed for calls.
    fn sparse_segment(count: u32, blocked: &[u32], windowed: &[u32]) -> (tantivy::Searcher, super::super::schema::Fields) {
        segment_of(count, |doc, document, fields| {
            if blocked.contains(&doc) {
                document.add_text(fields.contact_blocked, "sms");
            }
            if windowed.contains(&doc) {
                document.add_text(fields.contact_windowed, "call");
            }
        })
    }

    #[test]
    fn sparse_kept_conditions_skip_empty_stretches_to_the_documents_that_pass_them_all() {
        let count = 40_000;
        let blocked = [5, 4_095, 4_096, 9_000, 20_000, 20_001, 39_999];
        let (searcher, fields) = sparse_segment(count, &blocked, &[9_000, 20_000]);
        let segment = searcher.segment_reader(0);
        let filter = DenseFilter {
            conditions: vec![
                Condition::Posted {
                    field: fields.contact_blocked,
                    term: "sms".into(),
                },
                Condition::not(Condition::Posted {
                    field: fields.contact_windowed,
                    term: "call".into(),
                }),
            ],
            dense: Arc::new(DenseColumns::default()),
            kept: Arc::new(KeptFilters::default()),
        };
        let expected = [5, 4_095, 4_096, 20_001, 39_999];
        for round in ["built", "kept"] {
            let mut driving = filter.bind(segment, 1.0).unwrap();
            assert_eq!(driving.kept, 2, "both conditions are kept");
            let mut found = Vec::new();
            while driving.doc() != TERMINATED {
                found.push(driving.doc());
                driving.advance();
            }
            assert_eq!(found, expected, "bits {round}, advancing");
            for (target, answer) in [
                (5, SeekDangerResult::Found),
                (6, SeekDangerResult::SeekLowerBound(4_095)),
                (4_097, SeekDangerResult::SeekLowerBound(20_001)),
                (9_000, SeekDangerResult::SeekLowerBound(20_001)),
                (20_002, SeekDangerResult::SeekLowerBound(39_999)),
                (39_998, SeekDangerResult::SeekLowerBound(39_999)),
            ] {
                let mut checking = filter.unpositioned(segment, 1.0).unwrap();
                assert_eq!(checking.seek_danger(target), answer, "bits {round}, candidate {target}");
            }
            let mut seeking = filter.bind(segment, 1.0).unwrap();
            assert_eq!(seeking.seek(4_097), 20_001, "bits {round}, seeking");
            assert_eq!(seeking.seek(39_999), 39_999, "bits {round}, seeking the last");
            assert_eq!(seeking.advance(), TERMINATED);
        }
    }

    #[test]
    fn combined_conditions_pass_the_same_documents_kept_or_evaluated_driving_or_checking() {
        for count in [300, CACHED_FROM_DOCS + 3_000] {
            let (searcher, fields) = windows_segment(count);
            let segment = searcher.segment_reader(0);
            assert_eq!(segment.max_doc(), count, "one segment");
            let minute = 100;
            let filter = DenseFilter {
                conditions: vec![
                    Condition::not(Condition::Posted {
                        field: fields.contact_blocked,
                        term: "sms".into(),
                    }),
                    Condition::AnyOf(vec![
                        vec![Condition::not(Condition::Posted {
                            field: fields.contact_windowed,
                            term: "call".into(),
                        })],
                        vec![
                            Condition::range("window_start", i64::MIN, minute),
                            Condition::range("window_end", minute + 1, i64::MAX),
                        ],
                    ]),
                ],
                dense: Arc::new(DenseColumns::default()),
                kept: Arc::new(KeptFilters::default()),
            };
            let expected: Vec<DocId> = (0..count)
                .filter(|doc| doc % 5 != 0)
                .filter(|doc| doc % 3 != 0 || ((doc % 1440) as i64 <= minute && minute < (doc % 1440) as i64 + 60))
                .collect();
            assert!(expected.iter().any(|doc| doc % 3 == 0), "some windowed documents pass");
            for round in ["built", "kept"] {
                let mut driving = filter.bind(segment, 1.0).unwrap();
                let mut found = Vec::new();
                while driving.doc() != TERMINATED {
                    found.push(driving.doc());
                    driving.advance();
                }
                assert_eq!(found, expected, "{count} documents, bits {round}, advancing");
                let mut checking = filter.bind(segment, 1.0).unwrap();
                let checked: Vec<DocId> = (0..count)
                    .filter(|doc| checking.seek_danger(*doc) == SeekDangerResult::Found)
                    .collect();
                assert_eq!(checked, expected, "{count} documents, bits {round}, checking candidates");
                for target in [0, 1, 3, 42, 99, 101, count - 1] {
                    let (found, _) = filter.scorer_danger(segment, target, 1.0).unwrap();
                    let passes = expected.contains(&target);
                    assert_eq!(found == SeekDangerResult::Found, passes, "{count} documents, joining at {target}");
                }
            }
        }
    }

    #[test]
    fn only_conditions_without_a_moment_keep_their_bits() {
        let status = Condition::Value(ValueTest::Terms {
            column: "status",
            terms: vec!["active".into()],
        });
        let due_now = Condition::range("next_action", i64::MIN, 1_700_000_000_000_000);
        assert!(status.keepable());
        assert!(Condition::not(status.clone()).keepable());
        assert!(!due_now.keepable());
        assert!(!Condition::not(due_now.clone()).keepable());
        assert!(!Condition::AnyOf(vec![vec![status], vec![due_now]]).keepable());
    }

    #[test]
    fn negation_never_passes_documents_past_the_segment() {
        assert_eq!(in_segment(0, 3), 0b111);
        assert_eq!(in_segment(1, 64), 0);
        assert_eq!(in_segment(1, 200), u64::MAX);
        assert_eq!(in_segment(3, 200), 0xff);
    }
}
