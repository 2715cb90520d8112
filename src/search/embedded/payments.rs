//! Payments in the embedded backend: schema, query translation, and the statistics
//! collector (one pass over the decoded columns of every payment).

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query};
use tantivy::schema::{FAST, INDEXED, STRING, Schema};
use tantivy::{DocId, Searcher, SegmentReader, TantivyDocument};

use super::dense::{Dense, DenseColumns, Strs};
use super::query::{Clause, Ident, TextFields, any_of, flag, range, term, text_query};
use super::schema::{Common, EDGE, FOLDED, KEYWORD, Kind, UNASSIGNED, money_units, text};
use crate::domain::document::{Doc, Entity};
use crate::domain::search::{AgentFilter, NO_PORTFOLIO, PaymentQuery, StatsQuery};
use crate::search::{CurrencyStats, StatValue, Tally};

#[derive(Clone, Copy, Debug)]
pub struct PaymentFields {
    pub common: Common,
    pub name: tantivy::schema::Field,
    pub ident: tantivy::schema::Field,
    pub ident_prefix: tantivy::schema::Field,
    pub status: tantivy::schema::Field,
    pub method: tantivy::schema::Field,
    /// Why a failed payment failed, when it says.
    pub failure_reason: tantivy::schema::Field,
    pub currency: tantivy::schema::Field,
    pub account: tantivy::schema::Field,
    pub agent: tantivy::schema::Field,
    pub account_deleted: tantivy::schema::Field,
    /// The account's portfolio id, or [`NO_PORTFOLIO`].
    pub portfolio: tantivy::schema::Field,
    pub amount: tantivy::schema::Field,
    pub received: tantivy::schema::Field,
    pub updated: tantivy::schema::Field,
}

pub struct Payments;

impl Kind for Payments {
    const ENTITY: Entity = Entity::Payment;
    const DIR: &'static str = "payments";
    type Fields = PaymentFields;

    fn schema() -> (Schema, PaymentFields) {
        let mut b = Schema::builder();
        let fields = PaymentFields {
            common: Common::add(&mut b),
            name: b.add_text_field("name", text(FOLDED)),
            ident: b.add_text_field("ident", text(KEYWORD)),
            ident_prefix: b.add_text_field("ident_prefix", text(EDGE)),
            status: b.add_text_field("status", STRING | FAST),
            method: b.add_text_field("method", STRING | FAST),
            failure_reason: b.add_text_field("failure_reason", STRING | FAST),
            currency: b.add_text_field("currency", STRING | FAST),
            account: b.add_text_field("account", STRING),
            agent: b.add_text_field("agent", STRING),
            account_deleted: b.add_bool_field("account_deleted", INDEXED),
            portfolio: b.add_text_field("portfolio", STRING | FAST),
            amount: b.add_i64_field("amount", FAST),
            received: b.add_i64_field("received", FAST),
            updated: b.add_i64_field("updated", FAST),
        };
        (b.build(), fields)
    }

    fn common(fields: &PaymentFields) -> Common {
        fields.common
    }

    fn document(fields: &PaymentFields, doc: &Doc) -> anyhow::Result<TantivyDocument> {
        let Doc::Payment(doc) = doc else {
            anyhow::bail!("a document of another entity sent to the payment index");
        };
        let mut d = fields.common.document(doc.id, doc.search_version, false);
        d.add_text(fields.name, &doc.debtor_name);
        for ident in [Some(&doc.account_number), doc.reference.as_ref()].into_iter().flatten() {
            d.add_text(fields.ident, ident);
            d.add_text(fields.ident_prefix, ident);
        }
        d.add_text(fields.status, doc.status.as_str());
        d.add_text(fields.method, doc.method.as_str());
        if let Some(reason) = &doc.failure_reason {
            d.add_text(fields.failure_reason, reason);
        }
        d.add_text(fields.currency, &doc.currency);
        d.add_text(fields.account, doc.account_id.hyphenated().to_string());
        d.add_text(
            fields.agent,
            doc.assigned_agent_id
                .map(|a| a.hyphenated().to_string())
                .unwrap_or_else(|| UNASSIGNED.to_owned()),
        );
        d.add_bool(fields.account_deleted, doc.account_deleted);
        d.add_text(
            fields.portfolio,
            doc.portfolio_id
                .map(|p| p.hyphenated().to_string())
                .unwrap_or_else(|| NO_PORTFOLIO.to_owned()),
        );
        d.add_i64(fields.amount, money_units(doc.amount));
        d.add_i64(fields.received, doc.received_at.timestamp_micros());
        d.add_i64(fields.updated, doc.updated_at.timestamp_micros());
        d.add_text(fields.common.source, serde_json::to_string(doc)?);
        Ok(d)
    }
}

/// Received in `[from, to)`, as microseconds.
fn received_between(fields: &PaymentFields, from: Option<i64>, to: Option<i64>) -> Box<dyn Query> {
    range(fields.received, from, to.map(|t| t - 1))
}

pub fn build(searcher: &Searcher, fields: &PaymentFields, query: &PaymentQuery) -> tantivy::Result<Box<dyn Query>> {
    let mut clauses: Vec<Clause> = vec![(Occur::MustNot, flag(fields.common.tombstone, true))];
    if !query.include_deleted {
        clauses.push((Occur::MustNot, flag(fields.account_deleted, true)));
    }
    let text_fields = TextFields {
        names: &[fields.name],
        parts: &[],
        ident: Ident {
            whole: fields.ident,
            prefix: fields.ident_prefix,
        },
        phone_digits: None,
        hidden: None,
    };
    let text = match query.text.as_deref() {
        Some(t) => text_query(searcher, &text_fields, t, None)?,
        None => None,
    };
    clauses.push((Occur::Must, text.unwrap_or_else(|| Box::new(AllQuery))));
    if !query.statuses.is_empty() {
        clauses.push((
            Occur::Must,
            any_of(query.statuses.iter().map(|s| term(fields.status, s.as_str())).collect()),
        ));
    }
    if !query.methods.is_empty() {
        clauses.push((
            Occur::Must,
            any_of(query.methods.iter().map(|m| term(fields.method, m.as_str())).collect()),
        ));
    }
    if query.min_amount.is_some() || query.max_amount.is_some() {
        clauses.push((
            Occur::Must,
            range(fields.amount, query.min_amount.map(money_units), query.max_amount.map(money_units)),
        ));
    }
    if query.from.is_some() || query.to.is_some() {
        clauses.push((
            Occur::Must,
            received_between(
                fields,
                query.from.map(|t| t.timestamp_micros()),
                query.to.map(|t| t.timestamp_micros()),
            ),
        ));
    }
    if let Some(account) = query.account_id {
        clauses.push((Occur::Must, term(fields.account, &account.hyphenated().to_string())));
    }
    match query.agent {
        Some(AgentFilter::Agent(id)) => clauses.push((Occur::Must, term(fields.agent, &id.hyphenated().to_string()))),
        Some(AgentFilter::Unassigned) => clauses.push((Occur::Must, term(fields.agent, UNASSIGNED))),
        None => {}
    }
    if let Some(scope) = &query.portfolio_scope {
        let granted = scope.iter().map(|id| term(fields.portfolio, &id.hyphenated().to_string()));
        clauses.push((Occur::Must, any_of(granted.chain([term(fields.portfolio, NO_PORTFOLIO)]).collect())));
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

/// Instants of a [`StatsQuery`] in microseconds.
#[derive(Clone, Debug)]
struct Bounds {
    /// Every figure looks inside this window.
    span: (i64, i64),
    day_starts: Vec<i64>,
    today: (i64, i64),
    week: (i64, i64),
    month: (i64, i64),
}

/// Scans each segment's decoded `received` column for the span and reads the other
/// decoded columns only for the payments inside it (tombstones have no currency and
/// are skipped): a sequential pass over plain arrays is cheaper than a range query
/// followed by fast-field reads.
pub struct StatsCollector {
    bounds: Bounds,
    /// The portfolio column's terms counted (a user's scope and [`NO_PORTFOLIO`]);
    /// `None`: every payment.
    scope: Option<Vec<String>>,
    dense: Arc<DenseColumns>,
}

impl StatsCollector {
    pub fn new(query: &StatsQuery, dense: Arc<DenseColumns>) -> Self {
        let micros = |(a, b): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)| (a.timestamp_micros(), b.timestamp_micros());
        let scope = query.portfolio_scope.as_ref().map(|ids| {
            ids.iter()
                .map(|id| id.hyphenated().to_string())
                .chain([NO_PORTFOLIO.to_owned()])
                .collect()
        });
        Self {
            dense,
            scope,
            bounds: Bounds {
                span: micros(query.span()),
                day_starts: query.day_starts.iter().map(|t| t.timestamp_micros()).collect(),
                today: micros(query.today),
                week: micros(query.this_week),
                month: micros(query.this_month),
            },
        }
    }
}

type Sum = (u64, i128);

fn add(slot: &mut Sum, amount: i64) {
    slot.0 += 1;
    slot.1 += i128::from(amount);
}

/// Sums of one currency, statuses and methods by name (merged across segments).
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    today: Sum,
    week: Sum,
    month: Sum,
    series: Vec<Sum>,
    status: HashMap<String, Sum>,
    method: HashMap<String, Sum>,
}

/// The same inside one segment, statuses and methods by term ordinal: no hashing per
/// document.
#[derive(Clone, Debug)]
struct SegmentSums {
    today: Sum,
    week: Sum,
    month: Sum,
    series: Vec<Sum>,
    status: Vec<Sum>,
    method: Vec<Sum>,
}

pub struct StatsSegment {
    bounds: Bounds,
    currency: Arc<Strs>,
    status: Arc<Strs>,
    method: Arc<Strs>,
    amount: Arc<Dense>,
    received: Arc<Dense>,
    completed_ord: Option<u32>,
    /// By currency ordinal.
    by_currency: Vec<Option<SegmentSums>>,
}

pub type StatsFruit = HashMap<String, Accumulator>;

impl StatsCollector {
    /// The statistics of every live payment `searcher` holds.
    pub fn collect(&self, searcher: &Searcher) -> tantivy::Result<StatsFruit> {
        let mut fruits = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            let mut sums = self.for_segment(segment)?;
            let alive = segment.alive_bitset();
            let received = sums.received.clone();
            let scoped = self.scoped(segment)?;
            received.for_each_in(self.bounds.span, |doc, at| {
                if alive.is_none_or(|a| a.is_alive(doc))
                    && scoped
                        .as_ref()
                        .is_none_or(|(column, counted)| column.any_ord(doc, |o| counted[o as usize]))
                {
                    sums.add(doc, at);
                }
            });
            fruits.push(sums.harvest());
        }
        Ok(merge_fruits(fruits))
    }

    /// The segment's portfolio column and, by its ordinals, whether the scope counts
    /// the term; `None` without a scope.
    fn scoped(&self, segment: &SegmentReader) -> tantivy::Result<Option<(Arc<Strs>, Vec<bool>)>> {
        let Some(scope) = &self.scope else { return Ok(None) };
        let column = self.dense.strs(segment, "portfolio")?;
        let counted = column.terms.iter().map(|t| scope.contains(t)).collect();
        Ok(Some((column, counted)))
    }

    fn for_segment(&self, segment: &SegmentReader) -> tantivy::Result<StatsSegment> {
        let dense = &self.dense;
        let (status, currency, method) = (
            dense.strs(segment, "status")?,
            dense.strs(segment, "currency")?,
            dense.strs(segment, "method")?,
        );
        Ok(StatsSegment {
            bounds: self.bounds.clone(),
            completed_ord: status.term_ord("completed"),
            by_currency: vec![None; currency.terms.len()],
            currency,
            status,
            method,
            amount: dense.i64(segment, "amount")?,
            received: dense.i64(segment, "received")?,
        })
    }
}

fn merge_fruits(fruits: Vec<StatsFruit>) -> StatsFruit {
    let mut merged = StatsFruit::new();
    for fruit in fruits {
        for (currency, acc) in fruit {
            let into = merged.entry(currency).or_default();
            for (a, b) in [
                (&mut into.today, acc.today),
                (&mut into.week, acc.week),
                (&mut into.month, acc.month),
            ] {
                a.0 += b.0;
                a.1 += b.1;
            }
            if into.series.len() < acc.series.len() {
                into.series.resize(acc.series.len(), (0, 0));
            }
            for (a, b) in into.series.iter_mut().zip(acc.series) {
                a.0 += b.0;
                a.1 += b.1;
            }
            for (into, from) in [(&mut into.status, acc.status), (&mut into.method, acc.method)] {
                for (k, v) in from {
                    let slot = into.entry(k).or_default();
                    slot.0 += v.0;
                    slot.1 += v.1;
                }
            }
        }
    }
    merged
}

fn within(t: i64, (from, to): (i64, i64)) -> bool {
    from <= t && t < to
}

impl StatsSegment {
    /// Adds a payment received at `received` (inside the span).
    fn add(&mut self, doc: DocId, received: i64) {
        let (Some(currency), Some(amount)) = (self.currency.ord(doc), self.amount.i64(doc)) else {
            return;
        };
        let status = self.status.ord(doc);
        let method = self.method.ord(doc);
        let starts = &self.bounds.day_starts;
        let days = starts.len().saturating_sub(1);
        let (status_terms, method_terms) = (self.status.terms.len(), self.method.terms.len());
        let sums = self.by_currency[currency as usize].get_or_insert_with(|| SegmentSums {
            today: (0, 0),
            week: (0, 0),
            month: (0, 0),
            series: vec![(0, 0); days],
            status: vec![(0, 0); status_terms],
            method: vec![(0, 0); method_terms],
        });
        let in_range = days > 0 && within(received, (starts[0], starts[days]));
        if in_range {
            if let Some(status) = status {
                add(&mut sums.status[status as usize], amount);
            }
            if let Some(method) = method {
                add(&mut sums.method[method as usize], amount);
            }
        }
        if status.is_none() || status != self.completed_ord {
            return;
        }
        if in_range {
            let day = starts.partition_point(|start| *start <= received) - 1;
            add(&mut sums.series[day], amount);
        }
        for (slot, window) in [
            (&mut sums.today, self.bounds.today),
            (&mut sums.week, self.bounds.week),
            (&mut sums.month, self.bounds.month),
        ] {
            if within(received, window) {
                add(slot, amount);
            }
        }
    }

    fn harvest(self) -> StatsFruit {
        let named = |strs: &Strs, sums: Vec<Sum>| -> HashMap<String, Sum> {
            sums.into_iter()
                .enumerate()
                .filter(|(_, sum)| sum.0 > 0)
                .map(|(ord, sum)| (strs.term(ord as u32).unwrap_or_default().to_owned(), sum))
                .collect()
        };
        let mut fruit = StatsFruit::new();
        for (ord, sums) in self.by_currency.into_iter().enumerate() {
            let Some(sums) = sums else { continue };
            let acc = Accumulator {
                today: sums.today,
                week: sums.week,
                month: sums.month,
                series: sums.series,
                status: named(&self.status, sums.status),
                method: named(&self.method, sums.method),
            };
            fruit.insert(self.currency.term(ord as u32).unwrap_or_default().to_owned(), acc);
        }
        fruit
    }
}

fn tally((count, units): Sum) -> Tally {
    Tally {
        count,
        amount: Decimal::from_i128_with_scale(units, 4),
    }
}

fn values(from: HashMap<String, Sum>) -> Vec<StatValue> {
    let mut out: Vec<StatValue> = from
        .into_iter()
        .map(|(value, (count, units))| StatValue {
            value,
            count,
            sum: Decimal::from_i128_with_scale(units, 4),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

/// The collector's fruit as per-currency statistics, sorted by currency.
pub fn finish(fruit: StatsFruit, days: usize) -> Vec<CurrencyStats> {
    let mut out: Vec<CurrencyStats> = fruit
        .into_iter()
        .map(|(currency, acc)| {
            let mut series: Vec<Tally> = acc.series.into_iter().map(tally).collect();
            series.resize(days, Tally::default());
            CurrencyStats {
                currency,
                today: tally(acc.today),
                this_week: tally(acc.week),
                this_month: tally(acc.month),
                series,
                by_status: values(acc.status),
                by_method: values(acc.method),
            }
        })
        .collect();
    out.sort_by(|a, b| a.currency.cmp(&b.currency));
    out
}
