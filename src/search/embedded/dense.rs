//! Columns the page collector and the payment statistics read for every matching
//! document, decoded once per segment into plain arrays. A tantivy fast-field read goes through the optional
//! index, bit unpacking and a value mapping (tens of nanoseconds); an array read does
//! not, and a search touches each column once per match. Segments never change, so an
//! entry stays valid until its segment is merged away; [`DenseColumns::retain`], called
//! at each reader reload, drops it. The columns that decide an account's delinquency
//! bucket ([`BucketColumns`]) are here too: the bucket facet and the bucket filter both
//! read them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocId, Searcher, SegmentReader};

use super::turns::Turns;
use crate::domain::account::{AccountStatus, Bucket};

/// Stands for "no value" in an integer array (no indexed value is ever this small).
pub(super) const MISSING: i64 = i64::MIN;
pub(super) const MISSING_32: i32 = i32::MIN;
/// Stands for "no term" in an ordinal array.
const NO_ORD: u32 = u32::MAX;
pub(super) const NO_ORD_8: u8 = u8::MAX;

/// One column of one segment, by document id, in the narrowest type its values fit:
/// the reads are scattered, so a smaller array means fewer cache misses.
pub enum Dense {
    I32(Vec<i32>),
    I64(Vec<i64>),
    /// The first term ordinal of a single-valued string column.
    Ord8(Vec<u8>),
    Ord(Vec<u32>),
    /// Document ids as their rank among the segment's ids (4 bytes a document instead
    /// of 16: ranks compare like the ids within a segment), and the ids by rank.
    Ids {
        ranks: Vec<u32>,
        sorted: Vec<u128>,
    },
}

impl Dense {
    pub fn i64(&self, doc: DocId) -> Option<i64> {
        match self {
            Dense::I32(values) => values.get(doc as usize).copied().filter(|v| *v != MISSING_32).map(i64::from),
            Dense::I64(values) => values.get(doc as usize).copied().filter(|v| *v != MISSING),
            _ => None,
        }
    }

    /// Calls `f(doc, value)` for every document whose value lies in `from..to`, in
    /// document order: a sequential pass over the array.
    pub fn for_each_in(&self, (from, to): (i64, i64), mut f: impl FnMut(DocId, i64)) {
        match self {
            Dense::I32(values) => {
                for (doc, value) in values.iter().enumerate() {
                    let value = i64::from(*value);
                    if value != i64::from(MISSING_32) && from <= value && value < to {
                        f(doc as DocId, value);
                    }
                }
            }
            Dense::I64(values) => {
                for (doc, value) in values.iter().enumerate() {
                    if *value != MISSING && from <= *value && *value < to {
                        f(doc as DocId, *value);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn ord(&self, doc: DocId) -> Option<u32> {
        match self {
            Dense::Ord8(ords) => ords.get(doc as usize).copied().filter(|o| *o != NO_ORD_8).map(u32::from),
            Dense::Ord(ords) => ords.get(doc as usize).copied().filter(|o| *o != NO_ORD),
            _ => None,
        }
    }

    /// Starts loading the cache line of `doc`'s value (a hint; no effect on results).
    pub fn prefetch(&self, doc: DocId) {
        let at = doc as usize;
        match self {
            Dense::I32(values) => prefetch(values, at),
            Dense::I64(values) => prefetch(values, at),
            Dense::Ord8(ords) => prefetch(ords, at),
            Dense::Ord(ords) => prefetch(ords, at),
            Dense::Ids { ranks, .. } => prefetch(ranks, at),
        }
    }

    /// The rank of a document's id within its segment.
    pub fn id_rank(&self, doc: DocId) -> u32 {
        match self {
            Dense::Ids { ranks, .. } => ranks.get(doc as usize).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// The id of a rank.
    pub fn id_at(&self, rank: u32) -> u128 {
        match self {
            Dense::Ids { sorted, .. } => sorted.get(rank as usize).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// How many of the segment's ids are at most `id`: a document's id is above `id`
    /// exactly when its rank is at least this.
    pub fn ranks_up_to(&self, id: u128) -> u32 {
        match self {
            Dense::Ids { sorted, .. } => sorted.partition_point(|x| *x <= id) as u32,
            _ => 0,
        }
    }
}

/// A string column of one segment, decoded: its terms by ordinal (sorted, as in the
/// column's dictionary) and each document's ordinals. Opening a column and reading its
/// terms cost more than counting a small search's facets, so both happen once.
pub struct Strs {
    pub terms: Vec<String>,
    ords: StrOrds,
}

enum StrOrds {
    /// Each document's one ordinal (`Dense::Ord8` or `Dense::Ord`).
    Single(Dense),
    /// Several per document (tags): read from the column.
    Many(StrColumn),
}

impl Strs {
    /// The document's first ordinal.
    pub fn ord(&self, doc: DocId) -> Option<u32> {
        match &self.ords {
            StrOrds::Single(ords) => ords.ord(doc),
            StrOrds::Many(column) => column.term_ords(doc).next().map(|o| o as u32),
        }
    }

    /// Calls `f` with each of the document's ordinals.
    pub fn for_each_ord(&self, doc: DocId, mut f: impl FnMut(u32)) {
        match &self.ords {
            StrOrds::Single(ords) => {
                if let Some(ord) = ords.ord(doc) {
                    f(ord);
                }
            }
            StrOrds::Many(column) => column.term_ords(doc).for_each(|o| f(o as u32)),
        }
    }

    /// Whether any of the document's ordinals is accepted by `accept`.
    pub fn any_ord(&self, doc: DocId, accept: impl Fn(u32) -> bool) -> bool {
        match &self.ords {
            StrOrds::Single(ords) => ords.ord(doc).is_some_and(accept),
            StrOrds::Many(column) => column.term_ords(doc).any(|o| accept(o as u32)),
        }
    }

    /// The one-ordinal-per-document array, for single-valued columns.
    pub fn single(&self) -> Option<&Dense> {
        match &self.ords {
            StrOrds::Single(ords) => Some(ords),
            StrOrds::Many(_) => None,
        }
    }

    pub fn prefetch(&self, doc: DocId) {
        if let StrOrds::Single(ords) = &self.ords {
            ords.prefetch(doc);
        }
    }

    pub fn term(&self, ord: u32) -> Option<&str> {
        self.terms.get(ord as usize).map(String::as_str)
    }

    pub fn term_ord(&self, text: &str) -> Option<u32> {
        self.terms.binary_search_by(|t| t.as_str().cmp(text)).ok().map(|i| i as u32)
    }
}

/// Starts loading the cache line of `values[at]` (a hint; no effect on results).
#[cfg(target_arch = "x86_64")]
pub(super) fn prefetch<T>(values: &[T], at: usize) {
    if let Some(value) = values.get(at) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetching is a hint that never faults, and the address is in bounds.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>()) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn prefetch<T>(_: &[T], _: usize) {}

/// Status-and-bucket bytes by segment and day (see `BucketColumns::codes`).
type DayCodes = HashMap<(SegmentId, i64), Arc<[u8]>>;

/// Entries by segment and column name, each built once (see [`Turns`]).
struct BySegment<T> {
    entries: Mutex<HashMap<(SegmentId, &'static str), Arc<T>>>,
    turns: Turns<(SegmentId, &'static str)>,
}

impl<T> Default for BySegment<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            turns: Turns::default(),
        }
    }
}

impl<T> BySegment<T> {
    /// The entry of `key`, built by `build` the first time.
    fn get_or_build(&self, key: (SegmentId, &'static str), build: impl FnOnce() -> tantivy::Result<T>) -> tantivy::Result<Arc<T>> {
        let entries = || self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.turns.find_or_build(
            &key,
            || entries().get(&key).cloned(),
            || {
                let built = Arc::new(build()?);
                entries().insert(key, built.clone());
                Ok(built)
            },
        )
    }

    fn retain(&self, live: &HashSet<SegmentId>) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
    }
}

/// Quantiles a column's values are read at: 0, 1/128, ..., 1.
pub(super) const QUANTILES: usize = 128;
/// Values a column's quantiles are estimated from, at most (an even sample).
const QUANTILE_SAMPLE: u32 = 65_536;

/// A column's values over one segment at [`QUANTILES`] + 1 evenly spaced quantiles.
#[derive(Debug)]
pub(super) struct Quantiles {
    /// Ascending; empty when no document has a value.
    pub values: Vec<i64>,
    /// About how many documents have a value (the sample's size times its step).
    pub documents: u64,
}

#[derive(Default)]
pub struct DenseColumns {
    columns: BySegment<Dense>,
    strs: BySegment<Strs>,
    /// A column's values at [`QUANTILES`] + 1 evenly spaced quantiles, ascending.
    quantiles: BySegment<Quantiles>,
    codes: Mutex<DayCodes>,
    codes_turns: Turns<(SegmentId, i64)>,
}

impl DenseColumns {
    fn get_or_build(
        &self,
        segment: &SegmentReader,
        name: &'static str,
        build: impl FnOnce() -> tantivy::Result<Dense>,
    ) -> tantivy::Result<Arc<Dense>> {
        self.columns.get_or_build((segment.segment_id(), name), build)
    }

    /// An integer column (no value for any document when the segment has no such column:
    /// a custom field none of its documents holds).
    pub fn i64(&self, segment: &SegmentReader, name: &'static str) -> tantivy::Result<Arc<Dense>> {
        self.get_or_build(segment, name, || {
            let column: Option<Column<i64>> = segment.fast_fields().column_opt(name)?;
            let values: Vec<i64> = match column {
                Some(column) => (0..segment.max_doc()).map(|doc| column.first(doc).unwrap_or(MISSING)).collect(),
                None => vec![MISSING; segment.max_doc() as usize],
            };
            let narrow = |v: &i64| *v == MISSING || (i64::from(MISSING_32) < *v && *v <= i64::from(i32::MAX));
            Ok(if values.iter().all(narrow) {
                Dense::I32(values.into_iter().map(|v| i32::try_from(v).unwrap_or(MISSING_32)).collect())
            } else {
                Dense::I64(values)
            })
        })
    }

    /// A string column (no terms, and no term for any document, when the segment has no
    /// such column).
    pub fn strs(&self, segment: &SegmentReader, name: &'static str) -> tantivy::Result<Arc<Strs>> {
        self.strs.get_or_build((segment.segment_id(), name), || {
            Ok(match segment.fast_fields().str(name)? {
                None => Strs {
                    terms: Vec::new(),
                    ords: StrOrds::Single(Dense::Ord8(vec![NO_ORD_8; segment.max_doc() as usize])),
                },
                Some(column) => {
                    let mut terms = Vec::with_capacity(column.num_terms());
                    for ord in 0..column.num_terms() as u64 {
                        let mut text = String::new();
                        column.ord_to_str(ord, &mut text)?;
                        terms.push(text);
                    }
                    let ords = if column.ords().get_cardinality() == Cardinality::Multivalued {
                        StrOrds::Many(column)
                    } else {
                        let ords = (0..segment.max_doc()).map(|doc| column.term_ords(doc).next());
                        StrOrds::Single(if column.num_terms() < usize::from(NO_ORD_8) {
                            Dense::Ord8(ords.map(|o| o.map_or(NO_ORD_8, |o| o as u8)).collect())
                        } else {
                            Dense::Ord(ords.map(|o| o.map_or(NO_ORD, |o| o as u32)).collect())
                        })
                    };
                    Strs { terms, ords }
                }
            })
        })
    }

    pub fn ids(&self, segment: &SegmentReader) -> tantivy::Result<Arc<Dense>> {
        self.get_or_build(segment, "id", || {
            let fast = segment.fast_fields();
            let (hi, lo) = (fast.u64("id_hi")?, fast.u64("id_lo")?);
            let by_doc: Vec<u128> = (0..segment.max_doc())
                .map(|doc| (u128::from(hi.first(doc).unwrap_or(0)) << 64) | u128::from(lo.first(doc).unwrap_or(0)))
                .collect();
            let mut order: Vec<u32> = (0..segment.max_doc()).collect();
            order.sort_unstable_by_key(|doc| by_doc[*doc as usize]);
            let mut ranks = vec![0; by_doc.len()];
            for (rank, doc) in order.iter().enumerate() {
                ranks[*doc as usize] = rank as u32;
            }
            let sorted = order.into_iter().map(|doc| by_doc[doc as usize]).collect();
            Ok(Dense::Ids { ranks, sorted })
        })
    }

    /// The values of integer column `name` at the quantiles 0, 1/[`QUANTILES`], ..., 1 of
    /// the segment's documents that have one, estimated from an even sample.
    pub(super) fn quantiles(&self, segment: &SegmentReader, name: &'static str) -> tantivy::Result<Arc<Quantiles>> {
        self.quantiles.get_or_build((segment.segment_id(), name), || {
            let values = self.i64(segment, name)?;
            let step = (segment.max_doc() / QUANTILE_SAMPLE).max(1);
            let mut sample: Vec<i64> = (0..segment.max_doc())
                .step_by(step as usize)
                .filter_map(|doc| values.i64(doc))
                .collect();
            sample.sort_unstable();
            Ok(Quantiles {
                values: match sample.len() {
                    0 => Vec::new(),
                    n => (0..=QUANTILES).map(|q| sample[q * (n - 1) / QUANTILES]).collect(),
                },
                documents: sample.len() as u64 * u64::from(step),
            })
        })
    }

    /// Each document's status ordinal and delinquency bucket on day `today`, one byte
    /// each (see `BucketColumns::codes`). A day's bytes are dropped once a search asks
    /// for a day two days later (callers in other time zones may be a day apart).
    pub fn status_buckets(&self, segment: &SegmentReader, today: i64) -> tantivy::Result<Arc<[u8]>> {
        let key = (segment.segment_id(), today);
        let codes = || self.codes.lock().unwrap_or_else(|p| p.into_inner());
        self.codes_turns.find_or_build(
            &key,
            || codes().get(&key).cloned(),
            || {
                let built: Arc<[u8]> = BucketColumns::bind(segment, self)?.codes(segment.max_doc(), today).into();
                let mut codes = codes();
                codes.retain(|(_, day), _| *day >= today - 1);
                codes.insert(key, built.clone());
                Ok(built)
            },
        )
    }

    /// Drops the columns of segments `searcher` no longer has.
    pub fn retain(&self, searcher: &Searcher) {
        let live: HashSet<SegmentId> = searcher.segment_readers().iter().map(|s| s.segment_id()).collect();
        self.columns.retain(&live);
        self.strs.retain(&live);
        self.quantiles.retain(&live);
        self.codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
    }
}

/// The position in `ALL_BUCKETS` of a number of days past due.
pub(super) fn bucket_index(days_past_due: i64) -> usize {
    let bucket = Bucket::from_days_past_due(days_past_due);
    crate::domain::search::ALL_BUCKETS.iter().position(|b| *b == bucket).unwrap_or(0)
}

/// Days past due: zero without a due date, before it, or once resolved (as
/// `domain::account::days_past_due`, on epoch days).
pub(super) fn overdue_days(resolved: bool, due: Option<i64>, today: i64) -> i64 {
    match due {
        Some(due) if !resolved => (today - due).max(0),
        _ => 0,
    }
}

/// The status column, which the bucket depends on.
pub(super) const STATUS: &str = "status";

/// The columns of a segment that decide an account's delinquency bucket. The bucket
/// facet and the bucket filter both read them, so a filter and its facet agree.
pub(super) struct BucketColumns {
    pub status: Arc<Strs>,
    /// By status ordinal: whether the account no longer owes (never overdue).
    pub resolved: Vec<bool>,
    pub due: Arc<Dense>,
}

impl BucketColumns {
    pub(super) fn bind(segment: &SegmentReader, dense: &DenseColumns) -> tantivy::Result<Self> {
        let status = dense.strs(segment, STATUS)?;
        let resolved = status
            .terms
            .iter()
            .map(|text| AccountStatus::parse(text).is_some_and(AccountStatus::is_resolved))
            .collect();
        Ok(Self {
            status,
            resolved,
            due: dense.i64(segment, "due_days")?,
        })
    }

    /// Whether the status of this ordinal is resolved.
    pub(super) fn resolved(&self, ord: Option<u32>) -> bool {
        ord.is_some_and(|ord| self.resolved.get(ord as usize).copied().unwrap_or(false))
    }

    pub(super) fn days_past_due(&self, doc: DocId, today: i64) -> i64 {
        let resolved = self.resolved(self.status.ord(doc));
        overdue_days(resolved, self.due.i64(doc), today)
    }

    /// Every document's status ordinal and delinquency bucket on day `today`, packed in
    /// one byte: `status | bucket << 5` (the page collector counts the status and bucket
    /// facets from it). The status bits hold [`NO_STATUS_CODE`] when the document has no
    /// status, or when the column has too many terms for five bits ([`holds_status`]).
    pub(super) fn codes(&self, max_doc: u32, today: i64) -> Vec<u8> {
        let with_status = holds_status(&self.status);
        let code = |doc: DocId| {
            let ord = self.status.ord(doc);
            let bucket = bucket_index(overdue_days(self.resolved(ord), self.due.i64(doc), today)) as u8;
            let status = ord.filter(|_| with_status).map_or(NO_STATUS_CODE, |ord| ord as u8);
            status | bucket << 5
        };
        (0..max_doc).map(code).collect()
    }
}

/// The low five bits of a status-and-bucket byte when it holds no status.
pub(super) const NO_STATUS_CODE: u8 = 31;

/// Whether a status-and-bucket byte can hold every ordinal of this status column.
pub(super) fn holds_status(status: &Strs) -> bool {
    status.terms.len() <= usize::from(NO_STATUS_CODE)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn searches_wanting_a_column_being_decoded_wait_for_it() {
        let columns = Arc::new(BySegment::<Vec<i64>>::default());
        let segment = SegmentId::generate_random();
        let decoded = Arc::new(AtomicUsize::new(0));
        let searches: Vec<_> = (0..8)
            .map(|_| {
                let (columns, decoded) = (columns.clone(), decoded.clone());
                std::thread::spawn(move || {
                    columns
                        .get_or_build((segment, "balance"), || {
                            decoded.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            Ok(vec![1, 2, 3])
                        })
                        .unwrap()
                })
            })
            .collect();
        let found: Vec<Arc<Vec<i64>>> = searches.into_iter().map(|s| s.join().unwrap()).collect();
        assert_eq!(
            decoded.load(Ordering::SeqCst),
            1,
            "one search decoded the column, the others waited"
        );
        assert!(
            found.iter().all(|column| Arc::ptr_eq(column, &found[0])),
            "every search holds the one copy"
        );
    }
}
