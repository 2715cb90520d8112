//! Account filters evaluated on the decoded columns ([`DenseColumns`]) instead of term
//! postings and fast-field range scans.
//!
//! A condition is evaluated 64 documents at a time into a bit mask (branch-free loops
//! over the arrays), and the masks of all conditions are and-ed; over a segment of at
//! least [`CACHED_FROM_DOCS`] documents the condition's bits are kept (segments never
//! change), as Elasticsearch keeps filter bit sets per segment, so a status, bucket or
//! balance filter an agent uses again costs one word read per 64 documents. Inside an
//! intersection with a text query a candidate is checked in constant time
//! (`seek_danger`). The bucket condition computes a document's bucket exactly as the
//! bucket facet does, so a filter and its facet always agree.

use std::fmt;
use std::sync::Arc;

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SeekDangerResult, SegmentReader, TERMINATED, TantivyError};

use super::collector::{BucketColumns, bucket_index, overdue_days};
use super::dense::{Dense, DenseColumns, MISSING, MISSING_32, NO_ORD_8, Strs};

/// Segments this large keep each condition's bits; smaller ones (the latest commits)
/// are evaluated on every search.
const CACHED_FROM_DOCS: u32 = 16_384;
/// Days past due from which the bucket no longer changes (120+).
const LAST_BUCKET_DAY: i64 = 120;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// An integer column's value lies in `lo..=hi`; a document without one fails.
    Range { column: &'static str, lo: i64, hi: i64 },
    /// A single-valued string column holds one of `terms`.
    Terms { column: &'static str, terms: Vec<String> },
    /// The document's delinquency bucket on day `today` (index into `ALL_BUCKETS`) is
    /// accepted.
    Bucket { today: i64, accept: [bool; 6] },
}

/// Documents that meet every condition.
#[derive(Clone)]
pub struct DenseFilter {
    pub conditions: Vec<Condition>,
    pub dense: Arc<DenseColumns>,
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
    fn bind(condition: &Condition, segment: &SegmentReader, dense: &DenseColumns) -> tantivy::Result<Check> {
        Ok(match condition {
            Condition::Range { column, lo, hi } => {
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
            Condition::Terms { column, terms } => {
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
            Condition::Bucket { today, accept } => Check::Bucket {
                columns: BucketColumns::bind(segment, dense)?,
                today: *today,
                by_days: bucket_table(accept),
            },
        })
    }

    fn passes(&self, doc: DocId) -> bool {
        match self {
            Check::Range { values, lo, hi } => values.i64(doc).is_some_and(|v| *lo <= v && v <= *hi),
            Check::Ords { ords, accept } => ords.ord(doc).is_some_and(|ord| accept.get(ord as usize).copied().unwrap_or(false)),
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

/// A condition over one segment: its kept bits, or evaluated as needed.
enum Bits {
    Kept(Arc<[u64]>),
    Live(Check),
}

impl Bits {
    fn word(&self, index: usize, max_doc: usize) -> u64 {
        match self {
            Bits::Kept(words) => words[index],
            Bits::Live(check) => check.mask(index * 64, (index * 64 + 64).min(max_doc)),
        }
    }

    fn passes(&self, doc: DocId) -> bool {
        match self {
            Bits::Kept(words) => (words[doc as usize / 64] >> (doc % 64)) & 1 == 1,
            Bits::Live(check) => check.passes(doc),
        }
    }
}

fn all_words(check: &Check, max_doc: usize) -> Vec<u64> {
    (0..max_doc.div_ceil(64))
        .map(|i| check.mask(i * 64, (i * 64 + 64).min(max_doc)))
        .collect()
}

struct FilterScorer {
    bits: Vec<Bits>,
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
    fn word_mask(&self, index: usize) -> u64 {
        let mut mask = u64::MAX;
        for bits in &self.bits {
            if mask == 0 {
                break;
            }
            mask &= bits.word(index, self.max_doc);
        }
        mask
    }

    /// Positions on the first passing document at or after `from`.
    fn go_from(&mut self, from: usize) -> DocId {
        self.mask_valid = true;
        if from >= self.max_doc {
            self.doc = TERMINATED;
            return TERMINATED;
        }
        self.word = from / 64;
        self.mask = self.word_mask(self.word) & (u64::MAX << (from % 64));
        while self.mask == 0 {
            self.word += 1;
            if self.word * 64 >= self.max_doc {
                self.doc = TERMINATED;
                return TERMINATED;
            }
            self.mask = self.word_mask(self.word);
        }
        self.doc = (self.word * 64) as DocId + self.mask.trailing_zeros();
        self.doc
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

    /// A constant-time answer for the intersection driving this filter: is `target` in?
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
            SeekDangerResult::SeekLowerBound(target + 1)
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
    fn bind(&self, segment: &SegmentReader, boost: Score) -> tantivy::Result<FilterScorer> {
        let max_doc = segment.max_doc() as usize;
        let bits = self
            .conditions
            .iter()
            .map(|condition| {
                if segment.max_doc() < CACHED_FROM_DOCS {
                    return Ok(Bits::Live(Check::bind(condition, segment, &self.dense)?));
                }
                // Columns and term ordinals are looked up only to build missing bits.
                let words = self.dense.filter_bits(segment, condition, || {
                    Ok(all_words(&Check::bind(condition, segment, &self.dense)?, max_doc))
                })?;
                Ok(Bits::Kept(words))
            })
            .collect::<tantivy::Result<_>>()?;
        let mut scorer = FilterScorer {
            bits,
            max_doc,
            doc: 0,
            word: 0,
            mask: 0,
            mask_valid: false,
            score: boost,
        };
        scorer.go_from(0);
        Ok(scorer)
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
            Condition::Bucket {
                today: 20_000,
                accept: [false, false, true, false, false, false],
            },
            Condition::Terms {
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
}
