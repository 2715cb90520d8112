//! Translates the account query into a tantivy query (filters and full text); the
//! building blocks serve the payment query too.

use std::ops::Bound;
use std::sync::Arc;

use tantivy::Term;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};

use super::dense::DenseColumns;
use super::digits::grams;
use super::filter::{Condition, DenseFilter};
use super::schema::{DIGITS_MAX, DIGITS_MIN, EDGE_GRAMS, EDGE_MAX, Fields, UNASSIGNED, digits, epoch_days, folded_tokens, money_units};
use crate::domain::search::{ALL_BUCKETS, AccountQuery, AgentFilter};

pub(super) type Clause = (Occur, Box<dyn Query>);

pub(super) fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

pub(super) fn flag(field: Field, value: bool) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_bool(field, value), IndexRecordOption::Basic))
}

pub(super) fn any_of(queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(queries.into_iter().map(|q| (Occur::Should, q)).collect()))
}

/// `[lo, hi]` on an i64 field; either bound may be open.
pub(super) fn range(field: Field, lo: Option<i64>, hi: Option<i64>) -> Box<dyn Query> {
    let bound = |v: Option<i64>| v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(field, v)));
    Box::new(RangeQuery::new(bound(lo), bound(hi)))
}

/// Typo tolerance grows with the word: none up to 3 letters, 1 up to 6, else 2.
/// Numbers (house numbers, postal codes, phone fragments) never match approximately.
pub(crate) fn fuzziness(word: &str) -> u8 {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

/// Where full text looks: names, other word fields (addresses), identifier fields (exact and
/// prefix), and optionally phone digits.
pub(super) struct TextFields<'a> {
    /// Matched exactly, as a prefix, or within the typo budget.
    pub names: &'a [Field],
    /// Matched exactly or as a prefix: a typo in a name would otherwise match street
    /// names, and a fuzzy pass over the address dictionary is the costliest part of a
    /// name search.
    pub words: &'a [Field],
    pub ident: Field,
    pub ident_prefix: Field,
    pub phone_digits: Option<Field>,
}

/// Full text: every word must match a name (exactly, as a prefix, or within the typo
/// budget) or another word field (exactly or as a prefix), or the whole text must match
/// an identifier or phone.
pub(super) fn text_query(fields: &TextFields<'_>, text: &str) -> Option<Box<dyn Query>> {
    let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
    let words = folded_tokens(text);
    if !words.is_empty() {
        let per_word = words
            .iter()
            .map(|word| -> Clause {
                let mut options: Vec<Box<dyn Query>> = Vec::new();
                for (field, typos) in fields
                    .names
                    .iter()
                    .map(|f| (*f, true))
                    .chain(fields.words.iter().map(|f| (*f, false)))
                {
                    let t = Term::from_field_text(field, word);
                    options.push(Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(t.clone(), IndexRecordOption::WithFreqs)),
                        3.0,
                    )));
                    options.push(Box::new(BoostQuery::new(
                        Box::new(FuzzyTermQuery::new_prefix(t.clone(), 0, true)),
                        1.5,
                    )));
                    let distance = fuzziness(word);
                    if typos && distance > 0 {
                        options.push(Box::new(FuzzyTermQuery::new(t, distance, true)));
                    }
                }
                (Occur::Must, any_of(options))
            })
            .collect();
        alternatives.push(Box::new(BooleanQuery::new(per_word)));
    }
    let whole = text.trim().to_lowercase();
    if !whole.is_empty() {
        alternatives.push(Box::new(BoostQuery::new(term(fields.ident, &whole), 5.0)));
        let length = whole.chars().count();
        if length <= EDGE_GRAMS {
            alternatives.push(Box::new(BoostQuery::new(term(fields.ident_prefix, &whole), 2.0)));
        } else if length <= EDGE_MAX {
            let prefix = FuzzyTermQuery::new_prefix(Term::from_field_text(fields.ident, &whole), 0, false);
            alternatives.push(Box::new(BoostQuery::new(Box::new(prefix), 2.0)));
        }
    }
    let phone = digits(text);
    if let Some(field) = fields.phone_digits
        && (DIGITS_MIN..=DIGITS_MAX).contains(&phone.len())
    {
        let terms: Vec<Term> = grams(&phone).into_iter().map(|g| Term::from_field_text(field, g)).collect();
        let phrase: Box<dyn Query> = match terms.len() {
            1 => Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::Basic)),
            _ => Box::new(PhraseQuery::new(terms)),
        };
        alternatives.push(Box::new(BoostQuery::new(phrase, 2.0)));
    }
    (!alternatives.is_empty()).then(|| any_of(alternatives))
}

/// The account query; status, balance, date and bucket filters are checked on the
/// decoded columns of `dense` (see [`DenseFilter`]).
pub fn build(fields: &Fields, dense: &Arc<DenseColumns>, query: &AccountQuery) -> Box<dyn Query> {
    let mut clauses: Vec<Clause> = vec![(Occur::MustNot, flag(fields.common.tombstone, true))];
    let text_fields = TextFields {
        names: &[fields.name],
        words: &[fields.address],
        ident: fields.ident,
        ident_prefix: fields.ident_prefix,
        phone_digits: Some(fields.phone_digits),
    };
    match query.text.as_deref().and_then(|t| text_query(&text_fields, t)) {
        Some(text) => clauses.push((Occur::Must, text)),
        None => clauses.push((Occur::Must, Box::new(AllQuery))),
    }
    if !query.include_deleted {
        clauses.push((Occur::MustNot, flag(fields.deleted, true)));
    }
    let mut conditions = Vec::new();
    if !query.statuses.is_empty() {
        conditions.push(Condition::Terms {
            column: "status",
            terms: query.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
        });
    }
    match query.agent {
        Some(AgentFilter::Agent(id)) => clauses.push((Occur::Must, term(fields.agent, &id.hyphenated().to_string()))),
        Some(AgentFilter::Unassigned) => clauses.push((Occur::Must, term(fields.agent, UNASSIGNED))),
        None => {}
    }
    if !query.tags.is_empty() {
        clauses.push((Occur::Must, any_of(query.tags.iter().map(|t| term(fields.tags, t)).collect())));
    }
    let mut range = |column: &'static str, lo: Option<i64>, hi: Option<i64>| {
        if lo.is_some() || hi.is_some() {
            conditions.push(Condition::Range {
                column,
                lo: lo.unwrap_or(i64::MIN),
                hi: hi.unwrap_or(i64::MAX),
            });
        }
    };
    range("balance", query.min_balance.map(money_units), query.max_balance.map(money_units));
    range("due_days", query.due_from.map(epoch_days), query.due_to.map(epoch_days));
    range(
        "next_action",
        query.next_action_after.map(|t| t.timestamp_micros() + 1),
        query.next_action_before.map(|t| t.timestamp_micros() - 1),
    );
    if !query.buckets.is_empty() {
        let mut accept = [false; 6];
        for (slot, bucket) in accept.iter_mut().zip(ALL_BUCKETS) {
            *slot = query.buckets.contains(&bucket);
        }
        conditions.push(Condition::Bucket {
            today: epoch_days(query.today),
            accept,
        });
    }
    if !conditions.is_empty() {
        clauses.push((
            Occur::Must,
            Box::new(DenseFilter {
                conditions,
                dense: dense.clone(),
            }),
        ));
    }
    for (field, wanted) in [
        (fields.has_open_promise, query.has_open_promise),
        (fields.do_not_call, query.do_not_call),
        (fields.do_not_email, query.do_not_email),
        (fields.cease_communication, query.cease_communication),
    ] {
        if let Some(value) = wanted {
            clauses.push((Occur::Must, flag(field, value)));
        }
    }
    Box::new(BooleanQuery::new(clauses))
}
