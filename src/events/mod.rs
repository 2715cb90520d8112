//! Real-time events: committed changes (rows of `events`, written by triggers) fanned
//! out to WebSocket sessions, across API instances through Redis when `REDIS_URL` is
//! set, in-process otherwise.
//!
//! One relay per deployment (leader by advisory lock) publishes events in id order.
//! Every instance subscribes to the Redis channel and hands what arrives to its local
//! hub, which every session of that instance listens to. Without Redis (or while it is
//! down) the relay hands events to its own hub: delivery degrades to the relay's
//! instance, and clients can ask for what they missed by event id.

pub mod redis;
pub mod relay;
pub mod visibility;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::domain::event::Event;
use crate::domain::principal::Principal;
use crate::domain::privacy::Access;

/// How many events a session may fall behind the hub before it is dropped as slow
/// (the ring holds shared events, so this bounds memory for every session at once).
const HUB_CAPACITY: usize = 16_384;
/// The kind of the hint that a user's sessions changed (logout, disabled, new role):
/// their sockets check their session at once. Never sent to a client.
pub const SESSIONS_CHANGED: &str = "sessions.changed";
/// `stats.updated` goes out at most this often.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// The most payment changes one `stats.updated` carries; past them it says `truncated`
/// and a client reads the statistics again.
const STATS_CHANGES: usize = 200;

type Text = tokio_tungstenite::tungstenite::Utf8Bytes;

/// An event on its way to sessions, serialised once for all of them, in full and as its
/// summary, each by the first session that sends it: sessions share the same bytes
/// (cloning is a reference count).
#[derive(Debug)]
pub struct Outgoing {
    pub event: Event,
    full: OnceLock<Text>,
    /// The event's [summary](visibility::summary) (`None`: nothing).
    summary: OnceLock<Option<Text>>,
}

impl Outgoing {
    pub fn new(event: Event) -> Self {
        Outgoing {
            event,
            full: OnceLock::new(),
            summary: OnceLock::new(),
        }
    }

    /// What of the event is sent to `reader` (to whom it is visible): the event, its
    /// summary, or nothing ([`visibility::access`]).
    pub fn text_for(&self, reader: &Principal) -> Option<Text> {
        match visibility::access(reader, &self.event) {
            Access::Full => Some(self.full.get_or_init(|| self.event.wire().into()).clone()),
            Access::Summary => self
                .summary
                .get_or_init(|| visibility::summary(&self.event).map(|summary| summary.wire().into()))
                .clone(),
        }
    }
}

/// This instance's end of the fan-out.
#[derive(Clone)]
pub struct Events {
    hub: broadcast::Sender<Arc<Outgoing>>,
    redis: Option<redis::RedisLink>,
    closing: watch::Sender<bool>,
}

impl Events {
    /// `namespace` names the deployment (its database) on a shared Redis.
    pub fn new(redis_url: Option<&str>, namespace: &str) -> anyhow::Result<Self> {
        let (hub, _) = broadcast::channel(HUB_CAPACITY);
        let redis = redis_url.map(|url| redis::RedisLink::new(url, namespace)).transpose()?;
        Ok(Self {
            hub,
            redis,
            closing: watch::channel(false).0,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Outgoing>> {
        self.hub.subscribe()
    }

    /// Hands an event to this instance's sessions.
    pub fn deliver_local(&self, event: Event) {
        let _ = self.hub.send(Arc::new(Outgoing::new(event)));
    }

    /// Publishes to every instance (through Redis when it is up), or locally.
    pub async fn publish(&self, event: Event) {
        if let Some(redis) = &self.redis
            && redis.publish(&event).await
        {
            return;
        }
        self.deliver_local(event);
    }

    /// Tells `user_id`'s sockets on every instance (through Redis when it is up, else on
    /// this one) to check their session now.
    pub async fn sessions_changed(&self, user_id: uuid::Uuid) {
        self.publish(Event {
            id: None,
            kind: SESSIONS_CHANGED.into(),
            user_id: Some(user_id),
            topics: Vec::new(),
            data: serde_json::Value::Null,
            at: Utc::now(),
            account_deleted: false,
            portfolio_id: None,
            account_owner: None,
        })
        .await;
    }

    /// `disabled`, `ok`, or `down` (delivering locally only).
    pub fn redis_status(&self) -> &'static str {
        match &self.redis {
            None => "disabled",
            Some(link) if link.is_up() => "ok",
            Some(_) => "down",
        }
    }

    /// Tells every session to close (server shutdown).
    pub fn close_sessions(&self) {
        let _ = self.closing.send(true);
    }

    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Starts the Redis subscriber (if any) and the `stats.updated` coalescer.
    pub fn start(&self, shutdown: watch::Receiver<bool>, tasks: &mut tokio::task::JoinSet<()>) {
        if let Some(redis) = &self.redis {
            tasks.spawn(redis.clone().subscribe(self.clone(), shutdown.clone()));
        }
        tasks.spawn(coalesce_stats(self.clone(), shutdown));
    }
}

/// The payment changes of one portfolio (`None`: accounts in none) since the last
/// `stats.updated`.
#[derive(Default)]
struct Changes {
    payments: Vec<serde_json::Value>,
    truncated: bool,
}

/// Emits `stats.updated` at most once a second while payments change: one per portfolio
/// whose payments changed, carrying each change as the statistics count it (so it
/// reaches only those who work the portfolio, as the payments' own events do).
async fn coalesce_stats(events: Events, mut shutdown: watch::Receiver<bool>) {
    let mut hub = events.subscribe();
    let mut tick = tokio::time::interval(STATS_EVERY);
    let mut pending: HashMap<Option<Uuid>, Changes> = HashMap::new();
    let mut lagged = false;
    while crate::shutdown::running(&shutdown) {
        tokio::select! {
            received = hub.recv() => match received {
                Ok(outgoing) => {
                    if let Some(change) = payment_change(&outgoing.event) {
                        let changes = pending.entry(outgoing.event.portfolio_id).or_default();
                        if changes.payments.len() < STATS_CHANGES {
                            changes.payments.push(change);
                        } else {
                            changes.truncated = true;
                        }
                    }
                }
                // What was missed is unknown: everyone reads the statistics again.
                Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if std::mem::take(&mut lagged) {
                    events.deliver_local(stats_updated(None, Changes { payments: Vec::new(), truncated: true }));
                }
                for (portfolio, changes) in pending.drain() {
                    events.deliver_local(stats_updated(portfolio, changes));
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// A `stats.updated` of `portfolio`'s changes (`None`: accounts in no portfolio, or
/// after a lag, when whose changes were missed is unknown: every reader receives it).
fn stats_updated(portfolio: Option<Uuid>, changes: Changes) -> Event {
    Event {
        id: None,
        kind: "stats.updated".into(),
        user_id: None,
        topics: vec!["stats".into()],
        data: serde_json::json!({
            "payments": changes.payments,
            "truncated": changes.truncated,
            "hint": "GET /api/v1/payments/stats",
        }),
        at: Utc::now(),
        account_deleted: false,
        portfolio_id: portfolio,
        account_owner: None,
    }
}

/// What a payment event changes in the statistics: the payment's currency, amount,
/// method and received time, and the status it left (`from`, null for a new payment)
/// and took (`to`). None for other events, and for a deleted account's payments (the
/// statistics leave them out).
fn payment_change(event: &Event) -> Option<serde_json::Value> {
    if !matches!(event.kind.as_str(), "payment.created" | "payment.updated") || event.account_deleted {
        return None;
    }
    let data = &event.data;
    Some(serde_json::json!({
        "id": data.get("id")?,
        "currency": data.get("currency")?,
        "amount": data.get("amount")?,
        "method": data.get("method")?,
        "received_at": data.get("received_at")?,
        "from": data.get("previous_status").cloned().unwrap_or_default(),
        "to": data.get("status")?,
    }))
}
