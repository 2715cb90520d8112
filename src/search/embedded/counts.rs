//! The total and facets of a search that asks for no rows (`page_size=0`: the
//! dashboard's portfolio, the Payments screen's counts), kept per segment.
//!
//! Elasticsearch keeps such answers per shard until the shard's next refresh. Here a
//! segment's documents never change, so its answer over every document it holds, the
//! deleted ones too, stays valid until it is merged away; what its deleted documents
//! contribute (each re-checked against the query) is taken out of it, and the result is
//! kept too, for as many deletions as the segment has: a commit that deletes more costs
//! only its own (`alive_answer`). Small segments are counted afresh. Under a steady
//! write load the large segment keeps its answer while each commit only adds deletions
//! to it.
//!
//! Only searches whose matches depend on nothing but the segment and the query are
//! kept: no text (a word's typo and prefix expansions are drawn from every segment's
//! terms), and no condition on the current instant (its key would change each time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::index::SegmentId;
use tantivy::query::Weight;
use tantivy::{DocId, DocSet, Opstamp, Searcher, SegmentOrdinal, SegmentReader, TERMINATED};

use super::collector::{FacetCounts, PageCollector, PageFruit, PageSegment};
use super::turns::Turns;

/// Smaller segments are counted at each search: a few microseconds, and they come and
/// go with every commit.
const KEPT_FROM_DOCS: u32 = 16_384;

/// Facet values the kept answers hold at most, over all of them (a value takes about
/// 100 bytes): a facet over a field of many values keeps fewer answers.
const VALUES_KEPT: usize = 65_536;

/// Answers kept at most.
const ANSWERS_KEPT: usize = 512;

/// The longest query kept (as it prints): the kept answers' keys take at most 8 MiB
/// however long the filters a client sends. The dashboard's query prints in under a
/// kilobyte, a hundred portfolios in scope add 4 KiB.
const KEY_BYTES_KEPT: usize = 16 * 1024;

/// An answer's segment and query.
type AnswerKey = (SegmentId, String);

/// Kept answers by segment and query, and each large segment's deleted documents.
#[derive(Default)]
pub struct KeptCounts {
    answers: Mutex<Answers>,
    /// A turn per answer being counted: the requests for it wait for the one counting.
    counting: Turns<AnswerKey>,
    deleted: Mutex<HashMap<SegmentId, Deleted>>,
    /// Each kept answer without the documents of its segment deleted so far.
    alive: Mutex<HashMap<AnswerKey, Alive>>,
    /// A turn per answer whose deleted documents are being taken out.
    subtracting: Turns<AnswerKey>,
}

/// A kept answer without the first `deleted` documents its segment deleted (the list
/// of that many, see [`Since`]).
struct Alive {
    deleted: usize,
    fruit: Arc<PageFruit>,
}

/// A segment's deleted documents, in order, as of its delete opstamp, and those deleted
/// since the list before it.
struct Deleted {
    opstamp: Option<Opstamp>,
    docs: Arc<[DocId]>,
    since: Option<Since>,
}

/// The documents a segment deleted after its list held `before` of them. A count names
/// one list: a segment's deletions only grow.
#[derive(Clone)]
struct Since {
    before: usize,
    docs: Arc<[DocId]>,
}

#[derive(Default)]
struct Answers {
    by_key: HashMap<AnswerKey, Arc<PageFruit>>,
    values: usize,
}

fn values_in(fruit: &PageFruit) -> usize {
    1 + fruit
        .facets
        .iter()
        .map(|facet| match facet {
            FacetCounts::Terms(terms) => terms.len(),
            FacetCounts::Bucket(buckets) => buckets.len(),
        })
        .sum::<usize>()
}

impl KeptCounts {
    fn answer(&self, segment: SegmentId, key: &str) -> Option<Arc<PageFruit>> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.by_key.get(&(segment, key.to_owned())).cloned()
    }

    /// The answer kept for `key` on `segment`, or else counted by `count` and kept.
    /// Requests for an answer being counted wait for it instead of counting the segment
    /// too (see [`Turns`]). A query longer than [`KEY_BYTES_KEPT`] is
    /// counted and not kept.
    fn answer_or_count(
        &self,
        segment: SegmentId,
        key: &str,
        count: impl FnOnce() -> tantivy::Result<PageFruit>,
    ) -> tantivy::Result<Arc<PageFruit>> {
        if key.len() > KEY_BYTES_KEPT {
            return count().map(Arc::new);
        }
        let answer_key = (segment, key.to_owned());
        self.counting.find_or_build(
            &answer_key,
            || self.answer(segment, key),
            || {
                let counted = Arc::new(count()?);
                self.keep(segment, key, counted.clone());
                Ok(counted)
            },
        )
    }

    /// Keeps `fruit`, dropping arbitrary answers (random eviction) until it fits.
    fn keep(&self, segment: SegmentId, key: &str, fruit: Arc<PageFruit>) {
        let values = values_in(&fruit);
        if values > VALUES_KEPT {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        while answers.values + values > VALUES_KEPT || answers.by_key.len() >= ANSWERS_KEPT {
            let Some(evicted) = answers.by_key.keys().next().cloned() else {
                break;
            };
            if let Some(dropped) = answers.by_key.remove(&evicted) {
                answers.values -= values_in(&dropped);
            }
            self.alive.lock().unwrap_or_else(|p| p.into_inner()).remove(&evicted);
        }
        if let Some(replaced) = answers.by_key.insert((segment, key.to_owned()), fruit) {
            answers.values -= values_in(&replaced);
        }
        answers.values += values;
    }

    /// The segment's deleted documents, in order, listed once per delete opstamp, and
    /// those deleted since the list before.
    fn deleted(&self, segment: &SegmentReader) -> (Arc<[DocId]>, Option<Since>) {
        let Some(alive) = segment.alive_bitset() else {
            return (Arc::from([]), None);
        };
        let id = segment.segment_id();
        let opstamp = segment.delete_opstamp();
        let earlier = match self.deleted.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            Some(seen) if seen.opstamp == opstamp => return (seen.docs.clone(), seen.since.clone()),
            seen => seen.map(|seen| seen.docs.clone()),
        };
        let docs: Arc<[DocId]> = (0..segment.max_doc()).filter(|doc| alive.is_deleted(*doc)).collect();
        // A shorter list is an earlier one of the same segment (a search on an older
        // reader lists fewer: nothing is deleted since then).
        let since = earlier.filter(|before| before.len() < docs.len()).map(|before| Since {
            before: before.len(),
            docs: deleted_since(&before, &docs).into(),
        });
        let listed = Deleted {
            opstamp,
            docs: docs.clone(),
            since: since.clone(),
        };
        self.deleted.lock().unwrap_or_else(|p| p.into_inner()).insert(id, listed);
        (docs, since)
    }

    /// `every`, the answer for `key` over every document of `segment`, without the
    /// documents it has deleted, each found by `gone`. The result is kept beside the
    /// answer and brought up to date as deletions come: when the kept one is of the
    /// segment's list before this one, only the documents deleted since are taken out.
    /// So a segment that a load rewrote (every document deleted and written again
    /// elsewhere) costs its deletions once, not at every search, and under a steady write
    /// load a query asked after each commit costs that commit's. The segment's lists
    /// are its current one and what it deleted since the one before, whatever the
    /// number of queries kept.
    fn alive_answer(
        &self,
        segment: &SegmentReader,
        key: &str,
        every: &Arc<PageFruit>,
        gone: impl FnOnce(&[DocId]) -> tantivy::Result<PageFruit>,
    ) -> tantivy::Result<Arc<PageFruit>> {
        let (deleted, since) = self.deleted(segment);
        if deleted.is_empty() {
            return Ok(every.clone());
        }
        let answer_key = (segment.segment_id(), key.to_owned());
        let kept = |deleted: usize| {
            let alive = self.alive.lock().unwrap_or_else(|p| p.into_inner());
            alive.get(&answer_key).filter(|a| a.deleted == deleted).map(|a| a.fruit.clone())
        };
        self.subtracting.find_or_build(
            &answer_key,
            || kept(deleted.len()),
            || {
                let earlier = since.and_then(|since| kept(since.before).map(|fruit| (fruit, since.docs)));
                let (mut fruit, taken_out) = match earlier {
                    Some((fruit, since)) => (PageFruit::clone(&fruit), since),
                    None => (PageFruit::clone(every), deleted.clone()),
                };
                fruit.subtract(gone(&taken_out)?);
                let fruit = Arc::new(fruit);
                // Kept only beside a kept answer, and never over one of more deletions
                // (a search on an older reader).
                if self.answer(answer_key.0, key).is_some() {
                    let mut alive = self.alive.lock().unwrap_or_else(|p| p.into_inner());
                    if alive.get(&answer_key).is_none_or(|a| a.deleted < deleted.len()) {
                        let kept = Alive {
                            deleted: deleted.len(),
                            fruit: fruit.clone(),
                        };
                        alive.insert(answer_key.clone(), kept);
                    }
                }
                Ok(fruit)
            },
        )
    }

    /// Drops what was kept for segments `searcher` no longer has.
    pub fn retain(&self, searcher: &Searcher) {
        let live: std::collections::HashSet<SegmentId> = searcher.segment_readers().iter().map(|s| s.segment_id()).collect();
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<_> = answers
            .by_key
            .keys()
            .filter(|(segment, _)| !live.contains(segment))
            .cloned()
            .collect();
        for key in gone {
            if let Some(dropped) = answers.by_key.remove(&key) {
                answers.values -= values_in(&dropped);
            }
        }
        drop(answers);
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|segment, _| live.contains(segment));
        self.alive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
    }
}

/// The documents of `now` not in `before`: both in order, and `before` a part of `now`
/// (a segment's deletions only grow).
fn deleted_since(before: &[DocId], now: &[DocId]) -> Vec<DocId> {
    let mut before = before.iter().peekable();
    now.iter().copied().filter(|doc| before.next_if_eq(&doc).is_none()).collect()
}

/// A [`PageCollector`] asking for no rows, whose answer for a large segment is kept
/// under `key` (the query, as every one of its conditions prints).
pub struct KeptCollector<'a> {
    pub page: PageCollector,
    pub kept: &'a KeptCounts,
    pub key: String,
}

impl Collector for KeptCollector<'_> {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(&self, segment_ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<PageSegment> {
        self.page.for_segment(segment_ord, segment)
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        self.page.merge_fruits(fruits)
    }

    fn collect_segment(&self, weight: &dyn Weight, segment_ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<PageFruit> {
        if segment.max_doc() < KEPT_FROM_DOCS {
            return self.page.collect_segment(weight, segment_ord, segment);
        }
        let every = self.kept.answer_or_count(segment.segment_id(), &self.key, || {
            let mut counting = self.page.for_segment(segment_ord, segment)?;
            weight.for_each_no_score(segment, &mut |docs| {
                for doc in docs {
                    counting.collect(*doc, 0.0);
                }
            })?;
            Ok(counting.harvest())
        })?;
        let alive = self.kept.alive_answer(segment, &self.key, &every, |deleted| {
            let mut gone = self.page.for_segment(segment_ord, segment)?;
            let mut scorer = weight.scorer(segment, 1.0)?;
            for doc in deleted.iter().copied() {
                if scorer.doc() < doc {
                    scorer.seek(doc);
                }
                match scorer.doc() {
                    TERMINATED => break,
                    matched if matched == doc => gone.collect(doc, 0.0),
                    _ => {}
                }
            }
            Ok(gone.harvest())
        })?;
        Ok(PageFruit::clone(&alive))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn answer(total: u64) -> PageFruit {
        PageFruit {
            hits: Vec::new(),
            total,
            facets: Vec::new(),
        }
    }

    #[test]
    fn requests_for_an_answer_being_counted_wait_for_it() {
        let kept = Arc::new(KeptCounts::default());
        let segment = SegmentId::generate_random();
        let counted = Arc::new(AtomicUsize::new(0));
        let requests: Vec<_> = (0..8)
            .map(|_| {
                let (kept, counted) = (kept.clone(), counted.clone());
                std::thread::spawn(move || {
                    kept.answer_or_count(segment, "q", || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok(answer(7))
                    })
                    .unwrap()
                    .total
                })
            })
            .collect();
        let totals: Vec<u64> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(totals, [7; 8]);
        assert_eq!(counted.load(Ordering::SeqCst), 1, "one request counted, the others waited for it");
        // Another query, or a failed count, counts again.
        let other = kept.answer_or_count(segment, "other", || Ok(answer(3))).unwrap();
        assert_eq!(other.total, 3);
        let failed = kept.answer_or_count(segment, "failing", || Err(tantivy::TantivyError::InternalError("no".into())));
        assert!(failed.is_err());
        assert_eq!(kept.answer_or_count(segment, "failing", || Ok(answer(5))).unwrap().total, 5);
    }

    #[test]
    fn the_documents_deleted_since_are_those_not_listed_before() {
        assert_eq!(deleted_since(&[2, 5, 9], &[1, 2, 5, 6, 9, 12]), [1, 6, 12]);
        assert_eq!(deleted_since(&[], &[3, 4]), [3, 4]);
        assert!(deleted_since(&[3, 4], &[3, 4]).is_empty());
    }

    #[test]
    fn a_query_longer_than_the_bound_is_counted_and_not_kept() {
        let kept = KeptCounts::default();
        let segment = SegmentId::generate_random();
        let long = "x".repeat(KEY_BYTES_KEPT + 1);
        for _ in 0..2 {
            assert_eq!(kept.answer_or_count(segment, &long, || Ok(answer(4))).unwrap().total, 4);
        }
        assert!(kept.answer(segment, &long).is_none());
        let bounded = "x".repeat(KEY_BYTES_KEPT);
        kept.answer_or_count(segment, &bounded, || Ok(answer(4))).unwrap();
        assert!(kept.answer(segment, &bounded).is_some());
    }
}
