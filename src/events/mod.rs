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

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::money::Currency;
use crate::domain::role::Action;

/// How many events a session may fall behind the hub before it is dropped as slow
/// (the ring holds shared events, so this bounds memory for every session at once).
const HUB_CAPACITY: usize = 16_384;
/// `stats.updated` goes out at most this often.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Formats an object's `amount` with the minor digits of its `currency`, when it has
/// both (triggers write amounts as SQL text, "100.0000").
pub fn format_money(data: &mut Value) {
    let Some(object) = data.as_object_mut() else { return };
    let currency = object.get("currency").and_then(Value::as_str).and_then(|c| Currency::parse(c).ok());
    if let (Some(currency), Some(Value::String(amount))) = (currency, object.get("amount"))
        && let Ok(value) = amount.parse::<rust_decimal::Decimal>()
    {
        object.insert("amount".into(), Value::String(currency.format(value)));
    }
}

/// An event as the wire carries it: `{"event", "data", "id", "at"}`, plus routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The row id; `None` for events made by the instance itself (`stats.updated`).
    pub id: Option<i64>,
    pub kind: String,
    /// Set when only this user may receive it.
    pub user_id: Option<Uuid>,
    pub topics: Vec<String>,
    pub data: Value,
    pub at: DateTime<Utc>,
}

impl Event {
    /// Money in event data is formatted with its currency's minor digits, as
    /// everywhere else in the API ("100.0000" from SQL becomes "100.00"), and so is the
    /// money in a notification the event carries (`notification.created`).
    pub fn normalized(mut self) -> Self {
        format_money(&mut self.data);
        if let Some(notification) = self.data.get_mut("data") {
            format_money(notification);
        }
        self
    }

    /// Whether `who`, subscribed to `topics`, receives this event.
    pub fn visible_to(&self, who: &Principal, topics: &std::collections::HashSet<String>) -> bool {
        match self.user_id {
            Some(user) => user == who.user_id,
            None => who.can(Action::ReadAccounts) && self.topics.iter().any(|t| topics.contains(t)),
        }
    }

    /// The message a client receives.
    pub fn wire(&self) -> String {
        serde_json::json!({"event": self.kind, "data": self.data, "id": self.id, "at": self.at}).to_string()
    }
}

/// An event on its way to sessions, serialised once for all of them: sessions share
/// the same bytes (cloning is a reference count).
#[derive(Debug)]
pub struct Outgoing {
    pub event: Event,
    pub text: tokio_tungstenite::tungstenite::Utf8Bytes,
}

/// The topics a client may subscribe to.
pub fn valid_topic(topic: &str) -> bool {
    match topic.strip_prefix("account:") {
        Some(id) => Uuid::parse_str(id).is_ok(),
        None => matches!(topic, "payments" | "accounts" | "jobs" | "stats"),
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
        let text = event.wire().into();
        let _ = self.hub.send(Arc::new(Outgoing { event, text }));
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

/// Emits `stats.updated` at most once a second while payments change.
async fn coalesce_stats(events: Events, mut shutdown: watch::Receiver<bool>) {
    let mut hub = events.subscribe();
    let mut tick = tokio::time::interval(STATS_EVERY);
    let mut dirty = false;
    while crate::sync::running(&shutdown) {
        tokio::select! {
            received = hub.recv() => match received {
                Ok(outgoing) => dirty |= outgoing.event.kind.starts_with("payment."),
                Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if std::mem::take(&mut dirty) {
                    events.deliver_local(Event {
                        id: None,
                        kind: "stats.updated".into(),
                        user_id: None,
                        topics: vec!["stats".into()],
                        data: serde_json::json!({"hint": "GET /api/v1/payments/stats"}),
                        at: Utc::now(),
                    });
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::role::Role;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::nil(),
            email: String::new(),
            name: String::new(),
            role,
        }
    }

    fn event(user: Option<Uuid>, topics: &[&str]) -> Event {
        Event {
            id: Some(1),
            kind: "payment.created".into(),
            user_id: user,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            data: serde_json::json!({"amount": "12.5000", "currency": "USD"}),
            at: Utc::now(),
        }
    }

    #[test]
    fn private_events_reach_only_their_user_and_topics_need_a_subscription() {
        let subscribed = ["payments".to_owned()].into_iter().collect();
        let viewer = principal(Role::Viewer);
        assert!(event(None, &["payments"]).visible_to(&viewer, &subscribed));
        assert!(!event(None, &["accounts"]).visible_to(&viewer, &subscribed));
        assert!(!event(Some(Uuid::from_u128(2)), &[]).visible_to(&viewer, &subscribed));
        assert!(event(Some(Uuid::from_u128(1)), &[]).visible_to(&viewer, &Default::default()));
    }

    #[test]
    fn money_is_formatted_and_topics_are_checked() {
        assert_eq!(event(None, &[]).normalized().data["amount"], "12.50");
        let mut notification = event(None, &[]);
        notification.data = serde_json::json!({"kind": "payment_received", "data": {"amount": "7.0000", "currency": "JPY"}});
        assert_eq!(notification.normalized().data["data"]["amount"], "7");
        assert!(valid_topic("account:00000000-0000-0000-0000-000000000001"));
        assert!(valid_topic("stats"));
        assert!(!valid_topic("account:nope"));
        assert!(!valid_topic("users"));
    }
}
