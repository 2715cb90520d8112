//! Documents as Elasticsearch stores them: the document's own fields (what Kibana
//! shows) plus a `derived` object the app computes for search (exact money units,
//! sort keys, phone digits), and tombstones for purged entities.

use serde_json::{Value, json};

use crate::domain::document::{AccountDoc, Doc, IndexOp, PaymentDoc};
use crate::search::embedded::schema::{digits, epoch_days, money_units, name_sort_key};

pub fn account(doc: &AccountDoc) -> serde_json::Result<Value> {
    let mut source = serde_json::to_value(doc)?;
    let (name_hi, name_lo) = name_sort_key(&doc.debtor_name);
    let mut derived = json!({
        "balance_units": money_units(doc.current_balance),
        "updated_micros": doc.updated_at.timestamp_micros(),
        "name_hi": name_hi,
        "name_lo": name_lo,
        "has_open_promise": doc.summary.open_promise.is_some(),
        "contact_blocked": doc.work.contact.blocked,
        "contact_windowed": doc.work.contact.windowed,
        "calls_open_micros": doc.work.contact.calls_open_at.map_or(0, |at| at.timestamp_micros()),
        "queue_rank": doc.queue_rank(),
    });
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
    source["derived"] = json!({
        "amount_units": money_units(doc.amount),
        "received_micros": doc.received_at.timestamp_micros(),
        "updated_micros": doc.updated_at.timestamp_micros(),
    });
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
