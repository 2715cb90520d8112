//! Bands of an integer column's values, for a first page that stops early. A search in
//! the column's order that needs no total runs on the documents of the first band (the
//! first 1/64 of the documents in that order), then of the next (up to 1/8), then of the
//! rest, and stops once it has the page. A band is a range of values, so the pages of
//! the bands in order are the page of the whole; its bits are kept, so a band's search
//! costs about its own matches. The work queue's claim reads a dozen of an agent's
//! accounts this way instead of all of them.

use tantivy::Searcher;

use super::dense::{DenseColumns, QUANTILES};
use super::filter::Condition;
use crate::domain::search::{After, SortKey};

/// The documents of one band of a sort column's values.
#[derive(Clone, Debug)]
pub struct Band {
    pub condition: Condition,
    /// Whether the band holds a small part of the documents (all but the last band):
    /// its documents of one agent get kept bits of their own, which a scan meets a
    /// word at a time, where the agent's postings met the band one document at a time.
    pub narrow: bool,
}

/// Where the first two bands end, as fractions of the documents in the order.
const FIRST_BAND: usize = QUANTILES / 64;
const SECOND_BAND: usize = QUANTILES / 8;

/// The conditions of the bands of `column` in its ascending or descending order that
/// hold documents after `after`, in order; one band without a condition when the index
/// has no values to split by. The cut values are those of every segment's documents
/// together, so a band holds its share of the documents however the values are spread
/// over the segments (the sync writes recent changes, and so the newest values, to the
/// newest segments).
pub fn bands(
    searcher: &Searcher,
    dense: &DenseColumns,
    column: &'static str,
    descending: bool,
    after: Option<After>,
) -> tantivy::Result<Vec<Option<Band>>> {
    let quantiles = merged_quantiles(searcher, dense, column)?;
    if quantiles.is_empty() {
        return Ok(vec![None]);
    }
    // A band and the value it ends at: it is skipped when that value (and so every
    // value in it) comes before the cursor's. The middle band is left out when the
    // first ends at the column's last possible value.
    let bands: Vec<(Condition, i64)> = if descending {
        let (first, second) = (quantiles[QUANTILES - FIRST_BAND], quantiles[QUANTILES - SECOND_BAND]);
        let middle = first.checked_sub(1).map(|below| (Condition::range(column, second, below), second));
        std::iter::once((Condition::range(column, first, i64::MAX), first))
            .chain(middle)
            .chain([(Condition::not(Condition::range(column, second, i64::MAX)), i64::MIN)])
            .collect()
    } else {
        let (first, second) = (quantiles[FIRST_BAND], quantiles[SECOND_BAND]);
        let middle = first.checked_add(1).map(|above| (Condition::range(column, above, second), second));
        std::iter::once((Condition::range(column, i64::MIN, first), first))
            .chain(middle)
            .chain([(Condition::not(Condition::range(column, i64::MIN, second)), i64::MAX)])
            .collect()
    };
    let before = |end: i64, value: i128| match descending {
        true => i128::from(end) > value,
        false => i128::from(end) < value,
    };
    let count = bands.len();
    Ok(bands
        .into_iter()
        .enumerate()
        .filter(|(i, (_, end))| match after.map(|a| a.key) {
            Some(SortKey::Int(value)) => !before(*end, value),
            // Documents without a value come last, in the last band.
            Some(SortKey::Missing) => *i == count - 1,
            Some(SortKey::Score(_)) | None => true,
        })
        .map(|(i, (condition, _))| {
            Some(Band {
                condition,
                narrow: i < count - 1,
            })
        })
        .collect())
}

/// The values of `column` at the quantiles 0, 1/[`QUANTILES`], ..., 1 of the documents of
/// every segment that have one, ascending; empty when none has. Each segment's quantiles
/// are merged in value order, each standing for 1/[`QUANTILES`] of its segment's
/// documents (its first, the smallest value, for none).
fn merged_quantiles(searcher: &Searcher, dense: &DenseColumns, column: &'static str) -> tantivy::Result<Vec<i64>> {
    let mut points: Vec<(i64, u64)> = Vec::new();
    for segment in searcher.segment_readers() {
        let quantiles = dense.quantiles(segment, column)?;
        if let Some((first, rest)) = quantiles.values.split_first() {
            points.push((*first, 0));
            points.extend(rest.iter().map(|value| (*value, quantiles.documents)));
        }
    }
    if points.is_empty() {
        return Ok(Vec::new());
    }
    points.sort_unstable();
    let mut reached = Vec::with_capacity(points.len());
    let mut sum = 0;
    for (_, weight) in &points {
        sum += weight;
        reached.push(sum);
    }
    let total = sum / QUANTILES as u64;
    Ok((0..=QUANTILES as u64)
        .map(|q| {
            let at = reached.partition_point(|r| *r < q * total).min(points.len() - 1);
            points[at].0
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::embedded::filter::ValueTest;

    /// The bands' value ranges, in order (the last band as everything not in the range).
    fn ranges(bands: &[Option<Band>]) -> Vec<(i64, i64)> {
        bands
            .iter()
            .map(|band| match &band.as_ref().unwrap().condition {
                Condition::Value(ValueTest::Range { lo, hi, .. }) => (*lo, *hi),
                Condition::Not(inner) => match &**inner {
                    Condition::Value(ValueTest::Range { lo, hi, .. }) => (*lo, *hi),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Writes `batches` of balances, one segment each (no merges), and reads the index.
    fn segments(batches: &[std::ops::Range<i64>]) -> Searcher {
        let (schema, fields) = super::super::schema::build();
        let index = tantivy::Index::create_in_ram(schema);
        super::super::schema::register_tokenizers(&index).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        for batch in batches {
            for value in batch.clone() {
                let mut document = fields.common.document(uuid::Uuid::new_v4(), 1, false);
                document.add_i64(fields.balance, value);
                writer.add_document(document).unwrap();
            }
            writer.commit().unwrap();
        }
        index.reader().unwrap().searcher()
    }

    /// An older, larger segment holds the smallest values and four newer ones the
    /// larger ones, batch by batch, as the sync leaves an index after a load: the first
    /// band in either order holds about its 1/64 of the documents, not every document of
    /// the segments on its side of the largest one's values.
    #[test]
    fn the_first_band_holds_its_share_when_each_segment_holds_its_own_values() {
        let batches = [0..6_400, 6_400..8_000, 8_000..9_600, 9_600..11_200, 11_200..12_800];
        let searcher = segments(&batches);
        assert_eq!(searcher.segment_readers().len(), batches.len());
        let dense = DenseColumns::default();
        let share = 12_800 / 64;
        for descending in [true, false] {
            let first = ranges(&bands(&searcher, &dense, "balance", descending, None).unwrap())[0];
            let held = (0..12_800).filter(|v| (first.0..=first.1).contains(v)).count();
            assert!(
                (share / 2..=share * 2).contains(&held),
                "descending {descending}: the first band {first:?} holds {held} of 12,800 documents"
            );
        }
    }

    #[test]
    fn a_first_band_ending_at_the_last_value_leaves_no_middle_band_to_overlap_it() {
        let (schema, fields) = super::super::schema::build();
        let index = tantivy::Index::create_in_ram(schema);
        super::super::schema::register_tokenizers(&index).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
        for n in 0..1_000i64 {
            let mut document = fields.common.document(uuid::Uuid::new_v4(), 1, false);
            document.add_i64(fields.balance, if n % 100 == 0 { n } else { i64::MAX });
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let dense = DenseColumns::default();
        let ascending = bands(&searcher, &dense, "balance", false, None).unwrap();
        assert_eq!(
            ranges(&ascending),
            [(i64::MIN, i64::MAX), (i64::MIN, i64::MAX)],
            "no wrapped middle band"
        );
        let descending = bands(&searcher, &dense, "balance", true, None).unwrap();
        assert_eq!(
            ranges(&descending),
            [(i64::MAX, i64::MAX), (i64::MAX, i64::MAX - 1), (i64::MAX, i64::MAX)]
        );
    }
}
