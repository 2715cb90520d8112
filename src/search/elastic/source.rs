//! Documents as Elasticsearch stores them: the document's own fields (what Kibana
//! shows) plus a `derived` object the app computes for search (exact money units,
//! sort keys, phone digits), and tombstones for purged entities.

use serde_json::{Map, Value, json};

use chrono::NaiveDate;

use crate::domain::document::{AccountDoc, Doc, IndexOp, PaymentDoc, Typed};
use crate::domain::search::{CustomField, CustomKind, intern};
use crate::search::embedded::schema::{digits, epoch_days, money_units, name_sort_key};

/// Money is indexed in whole units (`balance_units`, `amount_units`: ranges and sorts)
/// and, for sums, in two parts, `units = hi * 2^UNITS_LOW_BITS + lo` with `lo` in
/// `[0, 2^24)` (`*_units_hi`, `*_units_lo`). Elasticsearch's `sum` adds doubles, exact
/// only while every partial sum is an integer below 2^53, and one amount may already be
/// above it (10^12 major units is 10^16 units). The bounds: a sum of `lo` parts stays
/// below 2^53 over up to 2^29 (537 million) documents, whatever their amounts; an amount
/// below 10^16 units has a `hi` below 2^30, so a sum of `hi` parts stays below 2^53 over
/// 2^23 (8.4 million) documents even if every one holds the largest amount the API
/// takes, and in general while the total is below 2^77 units (about 1.5 * 10^19 in a
/// major unit). The two sums are put together exactly in i128 ([`join_units`]).
pub const UNITS_LOW_BITS: u32 = 24;

/// `units` as `(hi, lo)`: `hi * 2^UNITS_LOW_BITS + lo == units`, `lo` never negative.
pub fn split_units(units: i64) -> (i64, i64) {
    (units >> UNITS_LOW_BITS, units & ((1 << UNITS_LOW_BITS) - 1))
}

/// Units from the sums of their parts (see [`UNITS_LOW_BITS`]).
pub fn join_units(hi: i128, lo: i128) -> i128 {
    hi * (1 << UNITS_LOW_BITS) + lo
}

/// `name_units` and its two parts, as the `derived` object holds them.
fn money_fields(derived: &mut Value, name: &str, units: i64) {
    let (hi, lo) = split_units(units);
    derived[name] = json!(units);
    derived[format!("{name}_hi")] = json!(hi);
    derived[format!("{name}_lo")] = json!(lo);
}

pub fn account(doc: &AccountDoc) -> serde_json::Result<Value> {
    let mut source = serde_json::to_value(doc)?;
    let (name_hi, name_lo) = name_sort_key(&doc.debtor_name);
    let mut derived = json!({
        "updated_micros": doc.updated_at.timestamp_micros(),
        "name_hi": name_hi,
        "name_lo": name_lo,
        "has_open_promise": doc.summary.open_promise.is_some(),
        "contact_blocked": doc.work.contact.blocked,
        "contact_windowed": doc.work.contact.windowed,
        "calls_open_micros": doc.work.contact.calls_open_at.map_or(0, |at| at.timestamp_micros()),
        "queue_rank": doc.queue_rank(),
    });
    money_fields(&mut derived, "balance_units", money_units(doc.current_balance));
    if let Some(window) = doc.work.contact.window {
        derived["window_start_min"] = json!(window.start_min);
        derived["window_end_min"] = json!(window.end_min);
    }
    if let Some(promise) = &doc.summary.open_promise {
        derived["promise_due_days"] = json!(epoch_days(promise.due_date));
    }
    if let Some(due) = doc.work.broken_promise_due {
        derived["broken_promise_days"] = json!(epoch_days(due));
    }
    if let Some(due) = doc.work.plan_missed_due {
        derived["plan_missed_days"] = json!(epoch_days(due));
    }
    if let Some(phone) = &doc.phone {
        derived["phone_digits"] = json!(digits(phone));
    }
    if let Some(due) = doc.due_date {
        derived["due_days"] = json!(epoch_days(due));
    }
    if let Some(at) = doc.next_action_at {
        derived["next_action_micros"] = json!(at.timestamp_micros());
    }
    let (typed, words) = custom(doc);
    if !words.is_empty() {
        derived["custom_words"] = json!(words);
    }
    if !typed.is_empty() {
        source[CUSTOM] = Value::Object(typed);
    }
    if let Some(name) = &doc.work.portfolio_name {
        source["portfolio_name"] = json!(name);
    }
    if !doc.work.files.is_empty() {
        source["document_kinds"] = json!(doc.work.file_kinds());
        source["document_names"] = json!(doc.work.file_names());
    }
    let file_words = doc.work.file_words();
    if !file_words.is_empty() {
        derived["document_words"] = json!(file_words);
    }
    source["derived"] = derived;
    Ok(source)
}

/// The object holding custom field values typed by their definitions: one sub-object
/// per kind, mapped by the template's dynamic templates.
pub const CUSTOM: &str = "cf";

/// The sub-object of a kind under [`CUSTOM`].
fn family(kind: CustomKind) -> &'static str {
    match kind {
        CustomKind::Keyword => "kw",
        CustomKind::Boolean => "bool",
        CustomKind::Number => "num",
        CustomKind::Money => "money",
        CustomKind::Date => "date",
    }
}

/// Where a custom field's values are: `cf.<kind>.<key>`.
pub fn custom_path(field: CustomField) -> &'static str {
    intern(&format!("{CUSTOM}.{}.{}", family(field.kind), field.key.key()))
}

/// A day in the form the `cf.date` fields take.
pub fn day(epoch_days: i64) -> String {
    let day = NaiveDate::default() + chrono::Duration::days(epoch_days);
    day.to_string()
}

/// The typed custom values by kind, and the searchable text values' words.
fn custom(doc: &AccountDoc) -> (Map<String, Value>, Vec<String>) {
    let mut typed = Map::new();
    let mut words = Vec::new();
    for custom in &doc.work.custom {
        let (kind, value) = match &custom.value {
            Typed::Text {
                text,
                searchable,
                filterable,
            } => {
                if *searchable {
                    words.push(text.clone());
                }
                if !*filterable {
                    continue;
                }
                (CustomKind::Keyword, json!(text))
            }
            Typed::Keywords(values) => (CustomKind::Keyword, json!(values)),
            Typed::Boolean(value) => (CustomKind::Boolean, json!(value)),
            Typed::Number(units) => (CustomKind::Number, json!(units)),
            Typed::Money(units) => (CustomKind::Money, json!(units)),
            Typed::Date(days) => (CustomKind::Date, json!(day(*days))),
        };
        if let Value::Object(of_kind) = typed.entry(family(kind)).or_insert_with(|| json!({})) {
            of_kind.insert(custom.key.clone(), value);
        }
    }
    (typed, words)
}

pub fn payment(doc: &PaymentDoc) -> serde_json::Result<Value> {
    let mut source = serde_json::to_value(doc)?;
    let mut derived = json!({
        "received_micros": doc.received_at.timestamp_micros(),
        "updated_micros": doc.updated_at.timestamp_micros(),
    });
    money_fields(&mut derived, "amount_units", money_units(doc.amount));
    source["derived"] = derived;
    Ok(source)
}

/// The `_source` of an operation: the document, or a tombstone that keeps the purge's
/// version so an older replay cannot bring the entity back.
pub fn of(op: &IndexOp) -> serde_json::Result<Value> {
    match &op.doc {
        Some(Doc::Account(doc)) => account(doc),
        Some(Doc::Payment(doc)) => payment(doc),
        Some(Doc::Report(doc)) => Ok(doc.source.clone()),
        None => Ok(json!({ "id": op.id, "search_version": op.version, "tombstone": true })),
    }
}

/// Fields a search never needs back (the typed custom values are few and small; a
/// reader ignores them).
pub const EXCLUDED: [&str; 2] = ["derived", "tombstone"];
