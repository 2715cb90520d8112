//! One pass over the matching documents: the page after the cursor, the total, and the
//! facets (term counts with optional sums per currency, delinquency bucket).

use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};
use uuid::Uuid;

use super::dense::{Dense, DenseColumns, NO_STATUS_CODE, STATUS, Strs, holds_status, prefetch};

use crate::domain::search::{ALL_BUCKETS, After, SortKey};

/// Ascending order of results: smaller comes first. `(missing, directed value, id)`.
pub type Rank = (u8, i128, u128);
/// A rank inside one segment: the id replaced by its rank among the segment's ids.
type SegmentRank = (u8, i128, u32);

pub fn rank_of(key: SortKey, id: u128, descending: bool) -> Rank {
    match key {
        SortKey::Missing => (1, 0, id),
        SortKey::Score(score) => (0, -i128::from(score.max(0.0).to_bits()), id),
        SortKey::Int(v) if descending => (0, v.saturating_neg(), id),
        SortKey::Int(v) => (0, v, id),
    }
}

/// A facet the collector counts: terms of a string column (with an optional sum of
/// an i64 column per term and currency, and counted only in the accounts of `owner`
/// when there is one: [`crate::domain::search::AccountQuery::facet_owner`]), or the
/// delinquency bucket computed from the due date (with the balance summed per bucket
/// and currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FacetSpec {
    Terms {
        column: &'static str,
        sum: Option<&'static str>,
        owner: Option<Uuid>,
    },
    Bucket,
}

/// The column of the agent an account is assigned to.
const AGENT: &str = "agent";

/// The column the bucket facet sums, and the status facet when counted with it.
pub const BALANCE: &str = "balance";

/// The column holding each document's currency, where a facet sums money.
const CURRENCY: &str = "currency";

/// The documents that hold a term, and by currency their number and amounts (in
/// ten-thousandths).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TermTally {
    pub count: u64,
    pub units: BTreeMap<String, (u64, i128)>,
}

impl TermTally {
    fn add(&mut self, other: TermTally) {
        self.count += other.count;
        for (currency, (count, units)) in other.units {
            let sum = self.units.entry(currency).or_default();
            sum.0 += count;
            sum.1 += units;
        }
    }

    /// Takes away `other`'s documents (a part of these); a currency none are left in
    /// goes, as it would from a tally of the rest.
    fn subtract(&mut self, other: TermTally) {
        self.count -= other.count;
        for (currency, (count, units)) in other.units {
            if let Some(sum) = self.units.get_mut(&currency) {
                sum.0 -= count;
                sum.1 -= units;
                if sum.0 == 0 {
                    self.units.remove(&currency);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FacetCounts {
    Terms(HashMap<String, TermTally>),
    /// By bucket, in [`Bucket`] order.
    Bucket(Vec<TermTally>),
}

/// The documents of one segment assigned to one agent, by the agent column.
struct Owned {
    agents: Arc<Strs>,
    /// The agent's ordinal in this segment; `None`: no document here is theirs.
    ord: Option<u32>,
}

impl Owned {
    fn of(segment: &SegmentReader, dense: &DenseColumns, owner: Uuid) -> tantivy::Result<Self> {
        let agents = dense.strs(segment, AGENT)?;
        let ord = agents.term_ord(&owner.hyphenated().to_string());
        Ok(Owned { agents, ord })
    }

    fn holds(&self, doc: DocId) -> bool {
        self.ord.is_some() && self.agents.ord(doc) == self.ord
    }
}

/// What a money facet reads of each document in one segment.
struct Money {
    amount: Arc<Dense>,
    currency: Arc<Strs>,
}

impl Money {
    fn of(segment: &SegmentReader, dense: &DenseColumns, sum: Option<&'static str>) -> tantivy::Result<Option<Self>> {
        sum.map(|amount| {
            Ok(Money {
                amount: dense.i64(segment, amount)?,
                currency: dense.strs(segment, CURRENCY)?,
            })
        })
        .transpose()
    }
}

/// One segment's counts per slot (a term ordinal, or a status-and-bucket byte) and,
/// where the facet sums money, per currency: a cell for each slot and currency ordinal,
/// and one more per slot for documents without a currency (counted, never summed).
struct Cells {
    money: Option<Money>,
    /// Cells per slot.
    width: usize,
    /// (documents, units)
    cells: Vec<(u64, i128)>,
}

impl Cells {
    fn new(slots: usize, money: Option<Money>) -> Self {
        let width = money.as_ref().map_or(1, |m| m.currency.terms.len() + 1);
        Self {
            money,
            width,
            cells: vec![(0, 0); slots * width],
        }
    }

    fn add(&mut self, slot: usize, doc: DocId) {
        let (column, units) = match &self.money {
            Some(m) => (
                m.currency.ord(doc).map_or(self.width - 1, |ord| ord as usize),
                i128::from(m.amount.i64(doc).unwrap_or(0)),
            ),
            None => (0, 0),
        };
        if let Some(cell) = self.cells.get_mut(slot * self.width + column) {
            cell.0 += 1;
            cell.1 += units;
        }
    }

    fn prefetch(&self, doc: DocId) {
        if let Some(m) = &self.money {
            m.amount.prefetch(doc);
            m.currency.prefetch(doc);
        }
    }

    fn slots(&self) -> usize {
        self.cells.len() / self.width
    }

    /// Adds `slot`'s counts and sums into `into`.
    fn tally_into(&self, slot: usize, into: &mut TermTally) {
        let row = &self.cells[slot * self.width..(slot + 1) * self.width];
        for (column, (count, units)) in row.iter().enumerate() {
            into.count += count;
            let currency = self.money.as_ref().and_then(|m| m.currency.term(column as u32));
            if let Some(currency) = currency.filter(|_| *count > 0) {
                let sum = into.units.entry(currency.to_owned()).or_default();
                sum.0 += count;
                sum.1 += units;
            }
        }
    }

    fn count(&self, slot: usize) -> u64 {
        self.cells[slot * self.width..(slot + 1) * self.width].iter().map(|c| c.0).sum()
    }
}

#[derive(Clone)]
pub struct PageFruit {
    pub hits: Vec<(Rank, SortKey, DocAddress)>,
    pub total: u64,
    pub facets: Vec<FacetCounts>,
}

/// Where a sort key comes from.
#[derive(Clone, Copy, Debug)]
pub enum SortColumn {
    Score,
    I64(&'static str),
    /// Two columns holding the first 15 bytes of the folded name.
    Name,
}

enum SegmentSort {
    Score,
    I64(Arc<Dense>),
    Name(Arc<Dense>, Arc<Dense>),
}

pub struct PageCollector {
    pub descending: bool,
    pub sort_column: SortColumn,
    pub after: Option<After>,
    pub limit: usize,
    pub facets: Vec<FacetSpec>,
    pub today_days: i64,
    /// The generation's decoded columns.
    pub dense: Arc<DenseColumns>,
}

enum SegmentFacet {
    Terms {
        strs: Arc<Strs>,
        cells: Cells,
        /// Counted only in these documents.
        owned: Option<Owned>,
    },
    /// The status facet, counted in [`PageSegment::coded`].
    CodedStatus,
    /// The bucket facet, counted in [`PageSegment::coded`].
    CodedBucket,
}

pub struct PageSegment {
    segment: SegmentOrdinal,
    descending: bool,
    sort_column: SegmentSort,
    ids: Arc<Dense>,
    /// The cursor in this segment's terms: its key, and the rank of the first id
    /// above the cursor's.
    after: Option<SegmentRank>,
    limit: usize,
    heap: BinaryHeap<(SegmentRank, HeapKey, DocId)>,
    total: u64,
    facets: Vec<SegmentFacet>,
    /// Present when the bucket facet is asked for.
    coded: Option<Coded>,
    /// Matches whose columns are being prefetched, oldest first (see [`PREFETCH_DISTANCE`]).
    pending: VecDeque<(DocId, Score)>,
}

/// Matches a segment collector holds back while their columns load. Each match reads
/// a few arrays at its document id, scattered over megabytes: one at a time, every
/// read waited for memory in turn, the largest part of a name search. Prefetching
/// the reads of the next matches while handling an earlier one overlaps the waits.
const PREFETCH_DISTANCE: usize = 8;

/// The sort key kept beside the rank so the cursor can be rebuilt; ordered by nothing.
#[derive(Clone, Copy, Debug)]
struct HeapKey(SortKey);

impl PartialEq for HeapKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeapKey {}
impl PartialOrd for HeapKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The values a status-and-bucket byte takes.
const CODES: usize = 256;

/// The bucket facet, and the status facet with it, counted together from one byte per
/// document (see `BucketColumns::codes`): a match reads that byte instead of its
/// status ordinal (twice) and due date, and bumps one counter instead of working out its
/// bucket. Facets took a third of a name search's time before.
struct Coded {
    codes: Arc<[u8]>,
    /// The status column, when its ordinals fit the byte.
    status: Option<Arc<Strs>>,
    /// By byte, with the balances per currency (the bucket facet always sums them; the
    /// status facet shows them when it asks for a sum).
    cells: Cells,
}

impl Coded {
    fn status_counts(&self) -> HashMap<String, TermTally> {
        let Some(status) = &self.status else {
            return HashMap::new();
        };
        let mut by_ord = vec![TermTally::default(); status.terms.len()];
        for code in 0..self.cells.slots() {
            if let Some(tally) = by_ord.get_mut(code & usize::from(NO_STATUS_CODE)) {
                self.cells.tally_into(code, tally);
            }
        }
        by_ord
            .into_iter()
            .enumerate()
            .filter(|(_, tally)| tally.count > 0)
            .filter_map(|(ord, tally)| Some((status.term(ord as u32)?.to_owned(), tally)))
            .collect()
    }

    fn bucket_counts(&self) -> Vec<TermTally> {
        let mut buckets = vec![TermTally::default(); ALL_BUCKETS.len()];
        for code in 0..self.cells.slots() {
            if let Some(tally) = buckets.get_mut(code >> 5) {
                self.cells.tally_into(code, tally);
            }
        }
        buckets
    }
}

fn segment_facet(
    spec: FacetSpec,
    segment: &SegmentReader,
    dense: &DenseColumns,
    coded: &mut Option<Coded>,
) -> tantivy::Result<SegmentFacet> {
    Ok(match (spec, coded) {
        (
            FacetSpec::Terms {
                column: STATUS,
                sum: None | Some(BALANCE),
                owner: None,
            },
            Some(coded),
        ) if coded.status.is_some() => SegmentFacet::CodedStatus,
        (FacetSpec::Bucket, _) => SegmentFacet::CodedBucket,
        (FacetSpec::Terms { column, sum, owner }, _) => {
            let strs = dense.strs(segment, column)?;
            SegmentFacet::Terms {
                cells: Cells::new(strs.terms.len(), Money::of(segment, dense, sum)?),
                strs,
                owned: owner.map(|owner| Owned::of(segment, dense, owner)).transpose()?,
            }
        }
    })
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(&self, segment_ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<PageSegment> {
        let dense = &self.dense;
        let ids = dense.ids(segment)?;
        let sort_column = match self.sort_column {
            SortColumn::Score => SegmentSort::Score,
            SortColumn::I64(name) => SegmentSort::I64(dense.i64(segment, name)?),
            SortColumn::Name => SegmentSort::Name(dense.i64(segment, "name_sort_hi")?, dense.i64(segment, "name_sort_lo")?),
        };
        let mut coded = match self.facets.contains(&FacetSpec::Bucket) {
            true => Some(Coded {
                codes: dense.status_buckets(segment, self.today_days)?,
                status: Some(dense.strs(segment, STATUS)?).filter(|status| holds_status(status)),
                cells: Cells::new(CODES, Money::of(segment, dense, Some(BALANCE))?),
            }),
            false => None,
        };
        let facets = self
            .facets
            .iter()
            .map(|spec| segment_facet(*spec, segment, dense, &mut coded))
            .collect::<tantivy::Result<_>>()?;
        Ok(PageSegment {
            segment: segment_ord,
            descending: self.descending,
            sort_column,
            after: self.after.map(|a| {
                let (missing, value, id) = rank_of(a.key, a.id.as_u128(), self.descending);
                (missing, value, ids.ranks_up_to(id))
            }),
            ids,
            limit: self.limit,
            heap: BinaryHeap::with_capacity(self.limit + 1),
            total: 0,
            facets,
            coded,
            pending: VecDeque::with_capacity(PREFETCH_DISTANCE + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        matches!(self.sort_column, SortColumn::Score)
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit {
            hits: Vec::new(),
            total: 0,
            facets: self
                .facets
                .iter()
                .map(|spec| match spec {
                    FacetSpec::Terms { .. } => FacetCounts::Terms(HashMap::new()),
                    FacetSpec::Bucket => FacetCounts::Bucket(vec![TermTally::default(); ALL_BUCKETS.len()]),
                })
                .collect(),
        };
        for fruit in fruits {
            merged.total += fruit.total;
            merged.hits.extend(fruit.hits);
            for (into, from) in merged.facets.iter_mut().zip(fruit.facets) {
                match (into, from) {
                    (FacetCounts::Terms(into), FacetCounts::Terms(from)) => {
                        for (term, tally) in from {
                            into.entry(term).or_default().add(tally);
                        }
                    }
                    (FacetCounts::Bucket(into), FacetCounts::Bucket(from)) => {
                        for (slot, tally) in into.iter_mut().zip(from) {
                            slot.add(tally);
                        }
                    }
                    _ => {}
                }
            }
        }
        merged.hits.sort_by_key(|(rank, _, _)| *rank);
        merged.hits.truncate(self.limit);
        Ok(merged)
    }
}

impl PageFruit {
    /// Takes away `gone`'s total and facets, counted over a part of these documents.
    pub fn subtract(&mut self, gone: PageFruit) {
        self.total -= gone.total;
        for (from, gone) in self.facets.iter_mut().zip(gone.facets) {
            match (from, gone) {
                (FacetCounts::Terms(from), FacetCounts::Terms(gone)) => {
                    for (term, tally) in gone {
                        if let Some(left) = from.get_mut(&term) {
                            left.subtract(tally);
                            if left.count == 0 {
                                from.remove(&term);
                            }
                        }
                    }
                }
                (FacetCounts::Bucket(from), FacetCounts::Bucket(gone)) => {
                    for (slot, tally) in from.iter_mut().zip(gone) {
                        slot.subtract(tally);
                    }
                }
                _ => {}
            }
        }
    }
}

impl PageSegment {
    fn count_facets(&mut self, doc: DocId) {
        if let Some(coded) = &mut self.coded {
            let code = coded.codes.get(doc as usize).copied().unwrap_or(NO_STATUS_CODE);
            coded.cells.add(usize::from(code), doc);
        }
        for facet in &mut self.facets {
            match facet {
                SegmentFacet::Terms { strs, cells, owned } => {
                    if owned.as_ref().is_none_or(|owned| owned.holds(doc)) {
                        strs.for_each_ord(doc, |ord| cells.add(ord as usize, doc));
                    }
                }
                SegmentFacet::CodedStatus | SegmentFacet::CodedBucket => {}
            }
        }
    }
}

fn counts_by_term(strs: &Strs, cells: &Cells) -> HashMap<String, TermTally> {
    (0..cells.slots())
        .filter(|slot| cells.count(*slot) > 0)
        .filter_map(|slot| {
            let mut tally = TermTally::default();
            cells.tally_into(slot, &mut tally);
            Some((strs.term(slot as u32)?.to_owned(), tally))
        })
        .collect()
}

impl SegmentCollector for PageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.prefetch(doc);
        self.pending.push_back((doc, score));
        if self.pending.len() > PREFETCH_DISTANCE
            && let Some((doc, score)) = self.pending.pop_front()
        {
            self.take(doc, score);
        }
    }

    fn harvest(mut self) -> PageFruit {
        while let Some((doc, score)) = self.pending.pop_front() {
            self.take(doc, score);
        }
        self.finish()
    }
}

impl PageSegment {
    /// Asks for the cache lines `take` will read for `doc` (the id rank too: equal
    /// scores are common, and each tie reads it).
    fn prefetch(&self, doc: DocId) {
        self.ids.prefetch(doc);
        if let Some(coded) = &self.coded {
            prefetch(&coded.codes, doc as usize);
            coded.cells.prefetch(doc);
        }
        for facet in &self.facets {
            match facet {
                SegmentFacet::Terms { strs, cells, owned } => {
                    strs.prefetch(doc);
                    cells.prefetch(doc);
                    if let Some(owned) = owned {
                        owned.agents.prefetch(doc);
                    }
                }
                SegmentFacet::CodedStatus | SegmentFacet::CodedBucket => {}
            }
        }
        match &self.sort_column {
            SegmentSort::Score => {}
            SegmentSort::I64(column) => column.prefetch(doc),
            SegmentSort::Name(hi, lo) => {
                hi.prefetch(doc);
                lo.prefetch(doc);
            }
        }
    }

    fn take(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        self.count_facets(doc);
        if self.limit == 0 {
            return;
        }
        let key = match &self.sort_column {
            SegmentSort::Score => SortKey::Score(score),
            SegmentSort::I64(column) => column.i64(doc).map_or(SortKey::Missing, |v| SortKey::Int(i128::from(v))),
            SegmentSort::Name(hi, lo) => match (hi.i64(doc), lo.i64(doc)) {
                (Some(hi), Some(lo)) => SortKey::Int((i128::from(hi) << 64) + i128::from(lo)),
                _ => SortKey::Missing,
            },
        };
        // Most documents lose on the sort key alone; the id (two column reads) only
        // breaks ties, so it is read only when the key does not already decide.
        let (missing, value, _) = rank_of(key, 0, self.descending);
        if self
            .after
            .is_some_and(|(a_missing, a_value, _)| (missing, value) < (a_missing, a_value))
        {
            return;
        }
        let full = self.heap.len() >= self.limit;
        if full
            && self
                .heap
                .peek()
                .is_some_and(|((w_missing, w_value, _), _, _)| (missing, value) > (*w_missing, *w_value))
        {
            return;
        }
        let rank = (missing, value, self.ids.id_rank(doc));
        if self.after.is_some_and(|after| rank < after) {
            return;
        }
        if !full {
            self.heap.push((rank, HeapKey(key), doc));
        } else if self.heap.peek().is_some_and(|(worst, _, _)| rank < *worst) {
            self.heap.pop();
            self.heap.push((rank, HeapKey(key), doc));
        }
    }

    fn finish(self) -> PageFruit {
        let facets = self
            .facets
            .iter()
            .map(|facet| match facet {
                SegmentFacet::Terms { strs, cells, .. } => FacetCounts::Terms(counts_by_term(strs, cells)),
                SegmentFacet::CodedStatus => FacetCounts::Terms(self.coded.as_ref().map_or_else(HashMap::new, Coded::status_counts)),
                SegmentFacet::CodedBucket => FacetCounts::Bucket(
                    self.coded
                        .as_ref()
                        .map_or_else(|| vec![TermTally::default(); ALL_BUCKETS.len()], Coded::bucket_counts),
                ),
            })
            .collect();
        let segment = self.segment;
        let ids = &self.ids;
        let hits = self
            .heap
            .into_iter()
            .map(|((missing, value, id_rank), key, doc)| ((missing, value, ids.id_at(id_rank)), key.0, DocAddress::new(segment, doc)))
            .collect();
        PageFruit {
            hits,
            total: self.total,
            facets,
        }
    }
}

/// Every matching document's id (for bulk operations over a filter).
pub struct IdsCollector;

pub struct IdsSegment {
    id_hi: Column<u64>,
    id_lo: Column<u64>,
    ids: Vec<u128>,
}

impl Collector for IdsCollector {
    type Fruit = Vec<u128>;
    type Child = IdsSegment;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<IdsSegment> {
        let fast = segment.fast_fields();
        Ok(IdsSegment {
            id_hi: fast.u64("id_hi")?,
            id_lo: fast.u64("id_lo")?,
            ids: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u128>>) -> tantivy::Result<Vec<u128>> {
        let mut ids: Vec<u128> = fruits.into_iter().flatten().collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

impl SegmentCollector for IdsSegment {
    type Fruit = Vec<u128>;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.ids
            .push((u128::from(self.id_hi.first(doc).unwrap_or(0)) << 64) | u128::from(self.id_lo.first(doc).unwrap_or(0)));
    }

    fn harvest(self) -> Vec<u128> {
        self.ids
    }
}
