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
/// has no values to split by. The cut values come from the largest segment, so every
/// segment of a search is split alike.
pub fn bands(
    searcher: &Searcher,
    dense: &DenseColumns,
    column: &'static str,
    descending: bool,
    after: Option<After>,
) -> tantivy::Result<Vec<Option<Band>>> {
    let Some(largest) = searcher.segment_readers().iter().max_by_key(|s| s.max_doc()) else {
        return Ok(vec![None]);
    };
    let quantiles = dense.quantiles(largest, column)?;
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
