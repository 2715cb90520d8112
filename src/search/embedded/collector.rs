//! One pass over the matching documents: the page after the cursor, the total, and the
//! facets (status with balance sums, delinquency bucket, agent, tag).

use std::collections::{BinaryHeap, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::domain::account::{AccountStatus, Bucket};
use crate::domain::search::{After, Facet, Sort, SortField, SortKey};

/// Ascending order of results: smaller comes first. `(missing, directed value, id)`.
pub type Rank = (u8, i128, u128);

pub fn rank_of(key: SortKey, id: u128, descending: bool) -> Rank {
    match key {
        SortKey::Missing => (1, 0, id),
        SortKey::Score(score) => (0, -i128::from(score.max(0.0).to_bits()), id),
        SortKey::Int(v) if descending => (0, v.saturating_neg(), id),
        SortKey::Int(v) => (0, v, id),
    }
}

#[derive(Clone, Debug, Default)]
pub struct Facets {
    /// status -> (count, balance sum in money units)
    pub status: HashMap<String, (u64, i128)>,
    pub bucket: [u64; 6],
    pub agent: HashMap<String, u64>,
    pub tags: HashMap<String, u64>,
}

pub struct PageFruit {
    pub hits: Vec<(Rank, SortKey, DocAddress)>,
    pub total: u64,
    pub facets: Facets,
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
    I64(Column<i64>),
    Name(Column<i64>, Column<i64>),
}

pub struct PageCollector {
    pub sort: Sort,
    pub sort_column: SortColumn,
    pub after: Option<After>,
    pub limit: usize,
    pub facets: Vec<Facet>,
    pub today_days: i64,
}

struct FacetColumns {
    status: Option<StrColumn>,
    resolved_by_ord: Vec<bool>,
    balance: Column<i64>,
    due: Column<i64>,
    agent: Option<StrColumn>,
    tags: Option<StrColumn>,
}

pub struct PageSegment {
    segment: SegmentOrdinal,
    sort: Sort,
    sort_column: SegmentSort,
    id_hi: Column<u64>,
    id_lo: Column<u64>,
    after: Option<Rank>,
    limit: usize,
    heap: BinaryHeap<(Rank, HeapKey, DocId)>,
    total: u64,
    want: Vec<Facet>,
    columns: Option<FacetColumns>,
    today_days: i64,
    status_counts: Vec<(u64, i128)>,
    bucket_counts: [u64; 6],
    agent_counts: Vec<u64>,
    tag_counts: Vec<u64>,
}

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

fn str_column(segment: &SegmentReader, name: &str) -> tantivy::Result<Option<StrColumn>> {
    segment.fast_fields().str(name)
}

fn bucket_index(days_past_due: i64) -> usize {
    let bucket = Bucket::from_days_past_due(days_past_due);
    crate::domain::search::ALL_BUCKETS.iter().position(|b| *b == bucket).unwrap_or(0)
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(&self, segment_ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<PageSegment> {
        let fast = segment.fast_fields();
        let sort_column = match self.sort_column {
            SortColumn::Score => SegmentSort::Score,
            SortColumn::I64(name) => SegmentSort::I64(fast.i64(name)?),
            SortColumn::Name => SegmentSort::Name(fast.i64("name_sort_hi")?, fast.i64("name_sort_lo")?),
        };
        let columns = if self.facets.is_empty() {
            None
        } else {
            let wants = |f: Facet| self.facets.contains(&f);
            // Status is read for the bucket facet too: resolved accounts are never overdue.
            let status = if wants(Facet::Status) || wants(Facet::Bucket) {
                str_column(segment, "status")?
            } else {
                None
            };
            let mut resolved_by_ord = Vec::new();
            if let Some(column) = &status {
                let mut text = String::new();
                for ord in 0..column.num_terms() as u64 {
                    text.clear();
                    column.ord_to_str(ord, &mut text)?;
                    resolved_by_ord.push(AccountStatus::parse(&text).is_some_and(AccountStatus::is_resolved));
                }
            }
            Some(FacetColumns {
                resolved_by_ord,
                status,
                balance: fast.i64("balance")?,
                due: fast.i64("due_days")?,
                agent: if wants(Facet::AssignedAgent) {
                    str_column(segment, "agent")?
                } else {
                    None
                },
                tags: if wants(Facet::Tags) { str_column(segment, "tags")? } else { None },
            })
        };
        let sizes = |c: &Option<StrColumn>| c.as_ref().map_or(0, |c| c.num_terms());
        let (status_terms, agent_terms, tag_terms) = match &columns {
            Some(c) => (sizes(&c.status), sizes(&c.agent), sizes(&c.tags)),
            None => (0, 0, 0),
        };
        Ok(PageSegment {
            segment: segment_ord,
            sort: self.sort,
            sort_column,
            id_hi: fast.u64("id_hi")?,
            id_lo: fast.u64("id_lo")?,
            after: self.after.map(|a| rank_of(a.key, a.id.as_u128(), self.sort.descending)),
            limit: self.limit,
            heap: BinaryHeap::with_capacity(self.limit + 1),
            total: 0,
            want: self.facets.clone(),
            columns,
            today_days: self.today_days,
            status_counts: vec![(0, 0); status_terms],
            bucket_counts: [0; 6],
            agent_counts: vec![0; agent_terms],
            tag_counts: vec![0; tag_terms],
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort.field == SortField::Relevance
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit {
            hits: Vec::new(),
            total: 0,
            facets: Facets::default(),
        };
        for fruit in fruits {
            merged.total += fruit.total;
            merged.hits.extend(fruit.hits);
            for (k, (c, s)) in fruit.facets.status {
                let entry = merged.facets.status.entry(k).or_default();
                entry.0 += c;
                entry.1 += s;
            }
            for (i, c) in fruit.facets.bucket.iter().enumerate() {
                merged.facets.bucket[i] += c;
            }
            for (k, c) in fruit.facets.agent {
                *merged.facets.agent.entry(k).or_default() += c;
            }
            for (k, c) in fruit.facets.tags {
                *merged.facets.tags.entry(k).or_default() += c;
            }
        }
        merged.hits.sort_by_key(|(rank, _, _)| *rank);
        merged.hits.truncate(self.limit);
        Ok(merged)
    }
}

impl PageSegment {
    fn count_facets(&mut self, doc: DocId) {
        let Some(c) = &self.columns else { return };
        let balance = i128::from(c.balance.first(doc).unwrap_or(0));
        let mut resolved = false;
        if let Some(status) = &c.status {
            for ord in status.term_ords(doc) {
                let slot = &mut self.status_counts[ord as usize];
                slot.0 += 1;
                slot.1 += balance;
                resolved |= c.resolved_by_ord.get(ord as usize).copied().unwrap_or(false);
            }
        }
        if self.want.contains(&Facet::Bucket) {
            let days = match c.due.first(doc) {
                Some(due) if !resolved => (self.today_days - due).max(0),
                _ => 0,
            };
            self.bucket_counts[bucket_index(days)] += 1;
        }
        if let Some(agent) = &c.agent {
            for ord in agent.term_ords(doc) {
                self.agent_counts[ord as usize] += 1;
            }
        }
        if let Some(tags) = &c.tags {
            for ord in tags.term_ords(doc) {
                self.tag_counts[ord as usize] += 1;
            }
        }
    }
}

fn counts_by_term<T: Copy>(column: &Option<StrColumn>, counts: &[T], is_zero: impl Fn(T) -> bool) -> HashMap<String, T> {
    let mut out = HashMap::new();
    let Some(column) = column else { return out };
    for (ord, count) in counts.iter().enumerate() {
        if is_zero(*count) {
            continue;
        }
        let mut text = String::new();
        if column.ord_to_str(ord as u64, &mut text).unwrap_or(false) {
            out.insert(text, *count);
        }
    }
    out
}

impl SegmentCollector for PageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        self.count_facets(doc);
        let key = match &self.sort_column {
            SegmentSort::Score => SortKey::Score(score),
            SegmentSort::I64(column) => column.first(doc).map_or(SortKey::Missing, |v| SortKey::Int(i128::from(v))),
            SegmentSort::Name(hi, lo) => match (hi.first(doc), lo.first(doc)) {
                (Some(hi), Some(lo)) => SortKey::Int((i128::from(hi) << 64) + i128::from(lo)),
                _ => SortKey::Missing,
            },
        };
        let id = (u128::from(self.id_hi.first(doc).unwrap_or(0)) << 64) | u128::from(self.id_lo.first(doc).unwrap_or(0));
        let rank = rank_of(key, id, self.sort.descending);
        if self.after.is_some_and(|after| rank <= after) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push((rank, HeapKey(key), doc));
        } else if self.heap.peek().is_some_and(|(worst, _, _)| rank < *worst) {
            self.heap.pop();
            self.heap.push((rank, HeapKey(key), doc));
        }
    }

    fn harvest(self) -> PageFruit {
        let mut facets = Facets {
            bucket: self.bucket_counts,
            ..Facets::default()
        };
        if let Some(c) = &self.columns {
            facets.status = counts_by_term(&c.status, &self.status_counts, |(n, _)| n == 0);
            facets.agent = counts_by_term(&c.agent, &self.agent_counts, |n| n == 0);
            facets.tags = counts_by_term(&c.tags, &self.tag_counts, |n| n == 0);
        }
        let segment = self.segment;
        let hits = self
            .heap
            .into_iter()
            .map(|(rank, key, doc)| (rank, key.0, DocAddress::new(segment, doc)))
            .collect();
        PageFruit {
            hits,
            total: self.total,
            facets,
        }
    }
}
