//! Translates the account query into a tantivy query (filters and full text); the
//! building blocks serve the payment query too.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EmptyQuery, EnableScoring, Explanation, FuzzyTermQuery,
    Occur, PhraseQuery, Query, RangeQuery, Scorer, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, Searcher, SegmentReader, Term};
use uuid::Uuid;

use super::bands::Band;
use super::dense::DenseColumns;
use super::digits::grams;
use super::filter::{Condition, DenseFilter, KeptFilters, ValueTest};
use super::schema::{EDGE_GRAMS, EDGE_MAX, Fields, Part, UNASSIGNED, custom_column, epoch_days, money_units, phone_runs};
use crate::domain::compliance::Channel;
use crate::domain::queue::{FieldRange, QueueField};
use crate::domain::search::{ALL_BUCKETS, AccountQuery, AgentFilter, CustomFilter, CustomTest, FileReach, NO_PORTFOLIO};
use crate::search::words::{
    JOINED_QUERY_WORDS, PART_PREFIX_MIN, TYPO_EXPANSIONS, edits, folded_tokens, folded_words, fuzziness, join_windows, lucene_lowercase,
};

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

/// Where full text looks: names, joined names and identifier parts, identifier fields
/// (exact and prefix), and optionally phone digits; apart, the fields holding what an
/// agent's summary hides (addresses among them).
pub(super) struct TextFields<'a> {
    /// Matched exactly, as a prefix, or within the typo budget.
    pub names: &'a [Field],
    /// Terms that stand in for a word only where the word matches nothing above
    /// (a query word scores the best of these and the fields above, never their sum, so
    /// a name also found in its email or its joined form ranks as before): joined names
    /// and the parts of identifiers, matched whole or, from [`PART_PREFIX_MIN`]
    /// characters, as a prefix.
    pub parts: &'a [Part],
    pub ident: Ident,
    pub phone_digits: Option<Field>,
    pub hidden: Option<Hidden<'a>>,
}

/// An identifier field (whole values, lowercased) and the field of its prefixes.
#[derive(Clone, Copy)]
pub(super) struct Ident {
    pub whole: Field,
    pub prefix: Field,
}

/// The fields holding what an agent's summary of an account hides (the address, the
/// words of custom text, the external reference), matched only in the accounts of
/// `owner` when there is one ([`crate::domain::search::AccountQuery::hidden_owner`]).
pub(super) struct Hidden<'a> {
    /// Matched exactly or as a prefix: a typo in a name would otherwise match street
    /// names, and a fuzzy pass over the address dictionary is the costliest part of a
    /// name search.
    pub words: &'a [Field],
    /// Matched as [`TextFields::parts`] are.
    pub parts: &'a [Part],
    /// Matched as [`TextFields::ident`] is.
    pub ident: Ident,
    /// The owner's accounts, scoring nothing: an owner's account scores as it would
    /// without the limit.
    pub owner: Option<Box<dyn Query>>,
}

impl Hidden<'_> {
    /// Ways of matching a hidden field, as the caller may use them: each as it is, or
    /// any of them only in the owner's accounts.
    fn limit(&self, options: Vec<Box<dyn Query>>) -> Vec<Box<dyn Query>> {
        match &self.owner {
            Some(owner) if !options.is_empty() => vec![all_of([any_of(options), owner.box_clone()])],
            _ => options,
        }
    }
}

/// The accounts assigned to `agent`, scoring nothing (a filter).
pub(super) fn assigned_to(fields: &Fields, agent: Uuid) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(term(fields.agent, &agent.hyphenated().to_string()), 0.0))
}

/// At most this many dictionary terms that a word begins stand in for it. A word that
/// begins more (a short prefix) is matched by the prefix automaton into a bit set
/// instead, which costs the same however many terms it covers.
const MAX_PREFIXED: usize = 16;

/// How a dictionary term matches a word of the query.
#[derive(Clone, Copy, Debug, Default)]
struct TermMatch {
    prefix: bool,
    typo: bool,
}

/// The terms of `field`, in any segment of `searcher`, that start with `word`; `None`
/// when there are more than [`MAX_PREFIXED`].
fn prefixed(searcher: &Searcher, field: Field, word: &str) -> tantivy::Result<Option<BTreeSet<String>>> {
    let mut terms = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let index = segment.inverted_index(field)?;
        // The words a prefix begins are a range of the sorted dictionary.
        let mut stream = index.terms().range().ge(word.as_bytes()).into_stream()?;
        while stream.advance() && stream.key().starts_with(word.as_bytes()) {
            terms.insert(String::from_utf8_lossy(stream.key()).into_owned());
            if terms.len() > MAX_PREFIXED {
                return Ok(None);
            }
        }
    }
    Ok(Some(terms))
}

/// The terms of `field` within `distance` edits of `word` (the word itself included),
/// at most [`TYPO_EXPANSIONS`] of them: the nearest, then the first in dictionary
/// order, as Elasticsearch's `fuzzy` keeps its `max_expansions`.
fn nearest(searcher: &Searcher, field: Field, word: &str, distance: u8) -> tantivy::Result<Vec<String>> {
    if distance == 0 {
        return Ok(Vec::new());
    }
    let automaton = FuzzyTermQuery::new(Term::from_field_text(field, word), distance, true).automaton()?;
    let mut nearest: BTreeSet<(usize, String)> = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let index = segment.inverted_index(field)?;
        let mut stream = index.terms().search(&automaton).into_stream()?;
        while stream.advance() {
            let term = String::from_utf8_lossy(stream.key());
            let candidate = (edits(&term, word), term.into_owned());
            if nearest.len() < TYPO_EXPANSIONS || nearest.last().is_some_and(|worst| candidate < *worst) {
                nearest.insert(candidate);
                if nearest.len() > TYPO_EXPANSIONS {
                    nearest.pop_last();
                }
            }
        }
    }
    Ok(nearest.into_iter().map(|(_, term)| term).collect())
}

fn constant(field: Field, text: &str, score: Score) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(term(field, text), score))
}

/// What matching `word` in `field` adds to a document's score: BM25 (tripled) for the
/// word itself, 1.5 for a word it begins, 1 for a word within its typo budget, summed.
/// The word's dictionary terms are looked up first and each becomes one posting list:
/// an exact name ("smith") reads its postings once instead of once per way of matching,
/// and no bit set is built. A word that begins too many terms falls back to the prefix
/// automaton.
fn word_options(searcher: &Searcher, field: Field, word: &str, distance: u8) -> tantivy::Result<Vec<Box<dyn Query>>> {
    let typos = nearest(searcher, field, word, distance)?;
    let prefixes = prefixed(searcher, field, word)?;
    Ok(options(field, word, typos, prefixes))
}

/// The queries of [`word_options`] from its dictionary lookups: `prefixes` is `None` when
/// the word begins too many terms to list.
fn options(field: Field, word: &str, typos: Vec<String>, prefixes: Option<BTreeSet<String>>) -> Vec<Box<dyn Query>> {
    let Some(prefixes) = prefixes else {
        let t = Term::from_field_text(field, word);
        let mut options: Vec<Box<dyn Query>> = vec![
            Box::new(BoostQuery::new(
                Box::new(TermQuery::new(t.clone(), IndexRecordOption::WithFreqs)),
                EXACT_BOOST,
            )),
            Box::new(BoostQuery::new(Box::new(FuzzyTermQuery::new_prefix(t, 0, true)), PREFIX_SCORE)),
        ];
        options.extend(typos.iter().map(|typo| constant(field, typo, TYPO_SCORE)));
        return options;
    };
    let mut terms: BTreeMap<String, TermMatch> = BTreeMap::new();
    for prefix in prefixes {
        terms.entry(prefix).or_default().prefix = true;
    }
    for typo in typos {
        terms.entry(typo).or_default().typo = true;
    }
    terms
        .into_iter()
        .map(|(text, how)| -> Box<dyn Query> {
            let score = if how.prefix { PREFIX_SCORE } else { 0.0 } + if how.typo { TYPO_SCORE } else { 0.0 };
            if text == word {
                let t = Term::from_field_text(field, &text);
                let exact = BoostQuery::new(Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)), EXACT_BOOST);
                Box::new(Shifted {
                    query: Box::new(exact),
                    by: score,
                })
            } else {
                constant(field, &text, score)
            }
        })
        .collect()
}

/// A joined name or identifier part: the word whole and, from [`PART_PREFIX_MIN`]
/// characters, the terms it begins, once (as Elasticsearch's `prefix` scores): up to
/// [`EDGE_GRAMS`] characters one term of the part's prefixes, beyond them the terms of
/// the dictionary.
fn part_options(searcher: &Searcher, part: Part, word: &str) -> tantivy::Result<Vec<Box<dyn Query>>> {
    let chars = word.chars().count();
    if chars > EDGE_GRAMS {
        return word_options(searcher, part.whole, word, 0);
    }
    let exact = BoostQuery::new(
        Box::new(TermQuery::new(
            Term::from_field_text(part.whole, word),
            IndexRecordOption::WithFreqs,
        )),
        EXACT_BOOST,
    );
    let mut options: Vec<Box<dyn Query>> = vec![Box::new(exact)];
    if chars >= PART_PREFIX_MIN {
        options.push(constant(part.prefix, word, PREFIX_SCORE));
    }
    Ok(options)
}

/// What one query word must match: a name (exactly, as a prefix or within the typo
/// budget) or another word field (exactly or as a prefix), summed; or else, scored on
/// their own, a joined name or an identifier part.
fn word_query(searcher: &Searcher, fields: &TextFields<'_>, word: &str) -> tantivy::Result<Box<dyn Query>> {
    let mut options: Vec<Box<dyn Query>> = Vec::new();
    for field in fields.names {
        options.extend(word_options(searcher, *field, word, fuzziness(word))?);
    }
    if let Some(hidden) = &fields.hidden {
        let mut found = Vec::new();
        for field in hidden.words {
            found.extend(word_options(searcher, *field, word, 0)?);
        }
        options.extend(hidden.limit(found));
    }
    let mut best_of = vec![one_of(options)];
    for field in fields.parts {
        best_of.push(one_of(part_options(searcher, *field, word)?));
    }
    if let Some(hidden) = &fields.hidden {
        for field in hidden.parts {
            best_of.push(one_of(hidden.limit(part_options(searcher, *field, word)?)));
        }
    }
    Ok(match best_of.len() {
        1 => best_of.remove(0),
        _ => Box::new(DisjunctionMaxQuery::new(best_of)),
    })
}

/// The phones in `field` holding `digits` as a run, the grams of the run in a row.
fn phone_query(field: Field, digits: &str) -> Box<dyn Query> {
    let terms: Vec<Term> = grams(digits).into_iter().map(|g| Term::from_field_text(field, g)).collect();
    let phrase: Box<dyn Query> = match terms.len() {
        1 => Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::Basic)),
        _ => Box::new(PhraseQuery::new(terms)),
    };
    Box::new(BoostQuery::new(phrase, 2.0))
}

/// Any of `options`; nothing when there are none.
fn one_of(options: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    match options.len() {
        0 => Box::new(EmptyQuery),
        _ => any_of(options),
    }
}

/// A run of adjacent query words joined into one (`mc donald` as `mcdonald`), matched
/// against names exactly or as a prefix; `None` when no name term is or begins with it,
/// so the alternative it would make is left out (it could match nothing).
fn joined_query(searcher: &Searcher, names: &[Field], joined: &str) -> tantivy::Result<Option<Box<dyn Query>>> {
    let mut found: Vec<Box<dyn Query>> = Vec::new();
    for field in names {
        let prefixes = prefixed(searcher, *field, joined)?;
        if prefixes.as_ref().is_none_or(|terms| !terms.is_empty()) {
            found.extend(options(*field, joined, Vec::new(), prefixes));
        }
    }
    Ok((!found.is_empty()).then(|| any_of(found)))
}

fn all_of(queries: impl IntoIterator<Item = Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(queries.into_iter().map(|q| (Occur::Must, q)).collect()))
}

const EXACT_BOOST: Score = 3.0;
const PREFIX_SCORE: Score = 1.5;
const TYPO_SCORE: Score = 1.0;

/// Full text: every word must match a name (exactly, as a prefix, or within the typo
/// budget), another word field (exactly or as a prefix), or a joined name or an
/// identifier part ([`TextFields::parts`]); or a run of adjacent words joined matches a
/// name; or the whole text must match an identifier; or a run of it that reads as a
/// phone number ([`phone_runs`]) matches a phone and every other word matches as above.
pub(super) fn text_query(
    searcher: &Searcher,
    fields: &TextFields<'_>,
    text: &str,
    also: Option<Box<dyn Query>>,
) -> tantivy::Result<Option<Box<dyn Query>>> {
    let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
    let located = folded_words(text);
    let words: Vec<String> = located.iter().map(|(_, word)| word.clone()).collect();
    if !words.is_empty() {
        let per_word = words
            .iter()
            .map(|word| word_query(searcher, fields, word))
            .collect::<tantivy::Result<Vec<_>>>()?;
        if let Some(field) = fields.phone_digits {
            for run in phone_runs(text) {
                let others = located.iter().zip(&per_word).filter(|((at, _), _)| !run.covers(at));
                let phone = phone_query(field, &run.digits);
                alternatives.push(all_of(others.map(|(_, q)| q.box_clone()).chain(std::iter::once(phone))));
            }
        }
        if words.len() <= JOINED_QUERY_WORDS {
            for window in join_windows(words.len()) {
                if let Some(joined) = joined_query(searcher, fields.names, &words[window.clone()].concat())? {
                    let before = per_word[..window.start].iter().map(|q| q.box_clone());
                    let after = per_word[window.end..].iter().map(|q| q.box_clone());
                    alternatives.push(all_of(before.chain(std::iter::once(joined)).chain(after)));
                }
            }
        }
        alternatives.push(all_of(per_word));
    }
    let whole = lucene_lowercase(text.trim());
    if !whole.is_empty() {
        alternatives.extend(ident_options(fields.ident, &whole));
        if let Some(hidden) = &fields.hidden {
            alternatives.extend(hidden.limit(ident_options(hidden.ident, &whole)));
        }
    }
    alternatives.extend(also);
    Ok((!alternatives.is_empty()).then(|| any_of(alternatives)))
}

/// The identifiers that are `whole` (lowercased) or begin with it.
fn ident_options(ident: Ident, whole: &str) -> Vec<Box<dyn Query>> {
    let mut options: Vec<Box<dyn Query>> = vec![Box::new(BoostQuery::new(term(ident.whole, whole), 5.0))];
    let length = whole.chars().count();
    if length <= EDGE_GRAMS {
        options.push(Box::new(BoostQuery::new(term(ident.prefix, whole), 2.0)));
    } else if length <= EDGE_MAX {
        let prefix = FuzzyTermQuery::new_prefix(Term::from_field_text(ident.whole, whole), 0, false);
        options.push(Box::new(BoostQuery::new(Box::new(prefix), 2.0)));
    }
    options
}

/// The accounts whose documents' words hold every word of `text` (each exactly or as a
/// prefix), among those `reach` lets the caller find that way; `None` when it lets none
/// or the text has no words.
fn file_text_query(searcher: &Searcher, fields: &Fields, text: &str, reach: FileReach) -> tantivy::Result<Option<Box<dyn Query>>> {
    let owner = match reach {
        FileReach::None => return Ok(None),
        FileReach::All => None,
        FileReach::Assigned(agent) => Some(term(fields.agent, &agent.hyphenated().to_string())),
    };
    let words = folded_tokens(text);
    if words.is_empty() {
        return Ok(None);
    }
    let mut must = Vec::with_capacity(words.len() + 1);
    for word in &words {
        must.push(one_of(word_options(searcher, fields.document_words, word, 0)?));
    }
    must.extend(owner);
    Ok(Some(all_of(must)))
}

/// The account query, on the documents of `band` if given (see `super::bands`);
/// status, balance, date and bucket filters are checked on the decoded columns of
/// `dense`, their bits kept in `kept` (see [`DenseFilter`]).
pub fn build(
    searcher: &Searcher,
    fields: &Fields,
    dense: &Arc<DenseColumns>,
    kept: &Arc<KeptFilters>,
    query: &AccountQuery,
    band: Option<Band>,
) -> tantivy::Result<Box<dyn Query>> {
    let mut clauses: Vec<Clause> = vec![(Occur::MustNot, flag(fields.common.tombstone, true))];
    let text_fields = TextFields {
        names: &[fields.name],
        parts: &[fields.name_joined, fields.ident_parts],
        ident: Ident {
            whole: fields.ident,
            prefix: fields.ident_prefix,
        },
        phone_digits: Some(fields.phone_digits),
        hidden: Some(Hidden {
            words: &[fields.address, fields.custom_words],
            parts: &[fields.reference_parts],
            ident: Ident {
                whole: fields.reference,
                prefix: fields.reference_prefix,
            },
            owner: query.hidden_owner().map(|agent| assigned_to(fields, agent)),
        }),
    };
    let text = match query.text.as_deref() {
        Some(t) => text_query(searcher, &text_fields, t, file_text_query(searcher, fields, t, query.file_reach)?)?,
        None => None,
    };
    clauses.push((Occur::Must, text.unwrap_or_else(|| Box::new(AllQuery))));
    if !query.include_deleted {
        clauses.push((Occur::MustNot, flag(fields.deleted, true)));
    }
    // A queue tier's own range first: it is the most selective.
    let mut conditions = Vec::new();
    if let Some(tier) = &query.tier {
        conditions.extend(tier.within.map(queue_range));
        conditions.extend(tier.outside.iter().map(|outside| Condition::not(queue_range(*outside))));
    }
    let agent = match query.agent {
        Some(AgentFilter::Agent(id)) => Some(id.hyphenated().to_string()),
        Some(AgentFilter::Unassigned) => Some(UNASSIGNED.to_owned()),
        None => None,
    };
    match (band, &agent) {
        (Some(band), Some(agent)) if band.narrow => {
            let posted = Condition::Posted {
                field: fields.agent,
                term: agent.clone(),
            };
            conditions.push(Condition::AnyOf(vec![vec![posted, band.condition]]));
        }
        (band, _) => conditions.extend(band.map(|b| b.condition)),
    }
    if !query.statuses.is_empty() {
        conditions.push(Condition::Value(ValueTest::Terms {
            column: "status",
            terms: query.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
        }));
    }
    if !query.portfolios.is_empty() {
        let terms = query
            .portfolios
            .iter()
            .map(|p| p.map_or_else(|| NO_PORTFOLIO.to_owned(), |id| id.hyphenated().to_string()));
        conditions.push(Condition::Value(ValueTest::Terms {
            column: "portfolio",
            terms: terms.collect(),
        }));
    }
    if let Some(scope) = &query.portfolio_scope {
        conditions.push(Condition::Value(ValueTest::Terms {
            column: "portfolio",
            terms: scope
                .iter()
                .map(|id| id.hyphenated().to_string())
                .chain([NO_PORTFOLIO.to_owned()])
                .collect(),
        }));
    }
    conditions.extend(query.custom.iter().map(custom_condition));
    if let Some(agent) = &agent {
        clauses.push((Occur::Must, term(fields.agent, agent)));
    }
    if let Some(owner) = query.owner_limit() {
        clauses.push((Occur::Must, assigned_to(fields, owner)));
    }
    if !query.document_kinds.is_empty() {
        let kinds = query.document_kinds.iter().map(|k| term(fields.document_kinds, k.as_str()));
        clauses.push((Occur::Must, any_of(kinds.collect())));
    }
    if !query.tags.is_empty() {
        clauses.push((Occur::Must, any_of(query.tags.iter().map(|t| term(fields.tags, t)).collect())));
    }
    let mut range = |column: &'static str, lo: Option<i64>, hi: Option<i64>| {
        if lo.is_some() || hi.is_some() {
            conditions.push(Condition::range(column, lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX)));
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
        conditions.push(Condition::Value(ValueTest::Bucket {
            today: epoch_days(query.today),
            accept,
        }));
    }
    if let Some(contactable) = &query.contactable {
        let channel = contactable.channel.as_str();
        let posted = |field: Field| Condition::Posted {
            field,
            term: channel.to_owned(),
        };
        conditions.push(Condition::not(posted(fields.contact_blocked)));
        if contactable.channel == Channel::Call {
            conditions.push(Condition::range("calls_open", i64::MIN, contactable.now.timestamp_micros()));
        }
        // No window on the channel, or now inside it (either day's minute: a window
        // may end after midnight UTC).
        let mut ways = vec![vec![Condition::not(posted(fields.contact_windowed))]];
        ways.extend(contactable.minutes().into_iter().map(|minute| {
            vec![
                Condition::range("window_start", i64::MIN, i64::from(minute)),
                Condition::range("window_end", i64::from(minute) + 1, i64::MAX),
            ]
        }));
        conditions.push(Condition::AnyOf(ways));
    }
    if !conditions.is_empty() {
        clauses.push((
            Occur::Must,
            Box::new(DenseFilter {
                conditions,
                dense: dense.clone(),
                kept: kept.clone(),
            }),
        ));
    }
    if !query.plan_statuses.is_empty() {
        let statuses = query.plan_statuses.iter().map(|s| term(fields.plan_status, s.as_str())).collect();
        clauses.push((Occur::Must, any_of(statuses)));
    }
    if let Some(before) = query.plan_next_before {
        clauses.push((Occur::Must, self::range(fields.plan_next_due, None, Some(epoch_days(before) - 1))));
    }
    for (field, wanted) in [
        (fields.has_open_promise, query.has_open_promise),
        (fields.has_plan, query.has_plan),
        (fields.do_not_call, query.do_not_call),
        (fields.do_not_email, query.do_not_email),
        (fields.cease_communication, query.cease_communication),
    ] {
        if let Some(value) = wanted {
            clauses.push((Occur::Must, flag(field, value)));
        }
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

/// A custom field filter as a condition on the field's column.
fn custom_condition(filter: &CustomFilter) -> Condition {
    let column = custom_column(filter.field);
    let ordered = filter.field.kind.is_ordered();
    match &filter.test {
        CustomTest::OneOf(values) => Condition::Value(ValueTest::Terms {
            column,
            terms: values.clone(),
        }),
        CustomTest::Range { lo, hi } => Condition::range(column, lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX)),
        CustomTest::Exists(wanted) => {
            let present = if ordered {
                Condition::range(column, i64::MIN, i64::MAX)
            } else {
                Condition::Value(ValueTest::Present { column })
            };
            if *wanted { present } else { Condition::not(present) }
        }
    }
}

/// A work-queue tier's range as a condition on its column.
fn queue_range(range: FieldRange) -> Condition {
    let column = match range.field {
        QueueField::BrokenPromiseDue => "broken_promise_days",
        QueueField::PromiseDue => "promise_due_days",
        QueueField::NextAction => "next_action",
        QueueField::PlanMissedDue => "plan_missed_days",
    };
    Condition::range(column, range.lo, range.hi)
}

/// A query whose every match scores `by` more: an exact word's BM25 plus what its prefix
/// and typo matches would add, from one scorer over one posting list.
#[derive(Debug)]
struct Shifted {
    query: Box<dyn Query>,
    by: Score,
}

impl Clone for Shifted {
    fn clone(&self) -> Self {
        Self {
            query: self.query.box_clone(),
            by: self.by,
        }
    }
}

impl Query for Shifted {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let weight = self.query.weight(scoring)?;
        Ok(if scoring.is_scoring_enabled() {
            Box::new(ShiftedWeight { weight, by: self.by })
        } else {
            weight
        })
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.query.query_terms(visitor);
    }
}

struct ShiftedWeight {
    weight: Box<dyn Weight>,
    by: Score,
}

impl Weight for ShiftedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(ShiftedScorer {
            scorer: self.weight.scorer(reader, boost)?,
            by: self.by * boost,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let inner = self.weight.explain(reader, doc)?;
        let mut explanation = Explanation::new_with_string(format!("plus {}", self.by), inner.value() + self.by);
        explanation.add_detail(inner);
        Ok(explanation)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        self.weight.count(reader)
    }
}

struct ShiftedScorer {
    scorer: Box<dyn Scorer>,
    by: Score,
}

impl DocSet for ShiftedScorer {
    fn advance(&mut self) -> DocId {
        self.scorer.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.scorer.seek(target)
    }

    fn doc(&self) -> DocId {
        self.scorer.doc()
    }

    fn size_hint(&self) -> u32 {
        self.scorer.size_hint()
    }

    fn cost(&self) -> u64 {
        self.scorer.cost()
    }
}

impl Scorer for ShiftedScorer {
    fn score(&mut self) -> Score {
        self.scorer.score() + self.by
    }
}
