//! Versioned bulk writes. Every document goes to every write target with
//! `version_type=external`, so Elasticsearch itself refuses a version that is not newer
//! (409: already applied). Items are judged one by one: transient failures are retried
//! alone, with jittered back-off and smaller batches; mapping errors go to the
//! dead-letter table; auth failures and cluster blocks stop the caller.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{Call, Client, EsError, asks_for_smaller_requests, classify, error_reason, error_type};
use crate::domain::document::DeadLetter;
use crate::telemetry::metrics;

/// One document for one write target.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The alias the document is written through.
    pub target: String,
    pub entity: &'static str,
    pub id: Uuid,
    pub version: i64,
    pub source: Value,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Applied,
    /// The target already held this version or a newer one.
    Stale,
    /// The target generation was deleted meanwhile (a rebuild finished).
    Gone,
    /// Refused for good; kept as a dead letter.
    Dead {
        error_type: String,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub base_delay: Duration,
    /// Items per request at first; halved after a request was too large or refused
    /// under load (413, 429).
    pub batch: usize,
    /// Whether a request that failed whole (a timeout, a 5xx, a 429) is tried again
    /// here. The sync worker's writes are not: they run inside its outbox transaction,
    /// and a cluster that does not answer must not hold that transaction's row locks
    /// and the database's xmin horizon through minutes of retries; the worker tries the
    /// batch again after its own back-off, outside any transaction. A rebuild's
    /// backfill holds none, and is.
    pub whole_requests: bool,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(200),
            batch: 2_000,
            whole_requests: true,
        }
    }
}

pub fn request(items: &[Item]) -> Call {
    let mut lines = Vec::with_capacity(items.len() * 2);
    for item in items {
        lines.push(json!({ "index": {
            "_index": item.target,
            "_id": item.id.hyphenated().to_string(),
            "version": item.version,
            "version_type": "external",
            "require_alias": true,
        } }));
        lines.push(item.source.clone());
    }
    Call::Bulk { lines }
}

/// Judges one item of a bulk response: an outcome, or an error to retry or stop on.
pub fn judge(item: &Value) -> Result<Outcome, EsError> {
    let result = item.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null);
    let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
    let body = json!({ "error": result.get("error").cloned().unwrap_or(Value::Null) });
    match status {
        200..=299 => Ok(Outcome::Applied),
        409 => Ok(Outcome::Stale),
        404 if error_type(&body) == "index_not_found_exception" => Ok(Outcome::Gone),
        0 => Err(EsError::Transient(format!("a bulk item without a status: {item}"))),
        _ => match classify(status, &body) {
            EsError::Rejected { .. } => Ok(Outcome::Dead {
                error_type: error_type(&body).to_owned(),
                reason: error_reason(&body),
            }),
            other => Err(other),
        },
    }
}

fn jitter(base: Duration) -> Duration {
    base.mul_f64(rand::random_range(0.5..1.5))
}

/// Writes every item, retrying what failed transiently; returns each item's outcome
/// in input order.
pub async fn write(client: &Client, items: &[Item], retry: Retry) -> Result<Vec<Outcome>, EsError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    let mut pending: Vec<usize> = (0..items.len()).collect();
    let mut batch = retry.batch.max(1);
    let mut attempt = 0;
    loop {
        let mut again = Vec::new();
        let mut last_error = None;
        let chunks: Vec<&[usize]> = pending.chunks(batch).collect();
        for (sent, chunk) in chunks.iter().enumerate() {
            let chunk_items: Vec<Item> = chunk.iter().map(|i| items[*i].clone()).collect();
            let reply = match client.send(&request(&chunk_items)).await {
                Ok(reply) if reply.status == 413 => Err(EsError::Transient("413 bulk request too large".into())),
                Ok(reply) => reply.success(),
                Err(err) => Err(err),
            };
            let body = match reply {
                Ok(body) => body,
                Err(EsError::Transient(reason)) => {
                    // The whole request failed: it and the rest of this pass wait for
                    // the next attempt. Smaller requests help a request too large or
                    // refused under load (413, 429); a timeout, a 5xx or credentials
                    // refused within the grace say the cluster is in trouble, which more
                    // and smaller requests would only add to, each holding the outbox
                    // transaction a while longer.
                    if !retry.whole_requests {
                        return Err(EsError::Transient(reason));
                    }
                    if asks_for_smaller_requests(&reason) {
                        batch = (batch / 2).max(1);
                    }
                    again.extend(chunks[sent..].iter().flat_map(|c| c.iter().copied()));
                    last_error = Some(reason);
                    break;
                }
                Err(other) => return Err(other),
            };
            let results = body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            if results.len() != chunk.len() {
                return Err(EsError::Transient(format!(
                    "bulk response has {} items for {} sent",
                    results.len(),
                    chunk.len()
                )));
            }
            for (index, result) in chunk.iter().zip(&results) {
                match judge(result) {
                    Ok(outcome) => {
                        if let Outcome::Dead { error_type, .. } = &outcome {
                            metrics::bulk_item_error(error_type);
                        }
                        outcomes[*index] = Some(outcome);
                    }
                    Err(EsError::Transient(reason)) => {
                        metrics::bulk_item_error("transient");
                        again.push(*index);
                        last_error = Some(reason);
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        if again.is_empty() {
            break;
        }
        attempt += 1;
        if attempt >= retry.attempts {
            return Err(EsError::Transient(format!(
                "{} documents still failing after {attempt} attempts: {}",
                again.len(),
                last_error.unwrap_or_default()
            )));
        }
        let delay = jitter(retry.base_delay * 2u32.saturating_pow(attempt - 1));
        tracing::warn!(
            failed = again.len(),
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            "elasticsearch bulk items failed; retrying them"
        );
        tokio::time::sleep(delay).await;
        pending = again;
    }
    Ok(outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Gone)).collect())
}

/// The dead letters among the outcomes.
pub fn dead_letters(items: &[Item], outcomes: &[Outcome]) -> Vec<DeadLetter> {
    items
        .iter()
        .zip(outcomes)
        .filter_map(|(item, outcome)| match outcome {
            Outcome::Dead { error_type, reason } => Some(DeadLetter {
                entity: item.entity.to_owned(),
                entity_id: item.id,
                version: item.version,
                target: item.target.clone(),
                error_type: error_type.clone(),
                reason: reason.clone(),
                document: item.source.clone(),
            }),
            _ => None,
        })
        .collect()
}
