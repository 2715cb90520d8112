//! Documents as Elasticsearch stores them: the document's own fields (what Kibana
//! shows) plus a `derived` object the app computes for search (exact money units,
//! sort keys, phone digits), and tombstones for purged entities.

use serde_json::{Value, json};

use crate::domain::document::{AccountDoc, Doc, IndexOp, PaymentDoc};
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
    source["derived"] = derived;
    Ok(source)
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
        None => Ok(json!({ "id": op.id, "search_version": op.version, "tombstone": true })),
    }
}

/// Fields a search never needs back.
pub const EXCLUDED: [&str; 2] = ["derived", "tombstone"];
