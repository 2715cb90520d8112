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

use chrono::Utc;
use tokio::sync::{broadcast, watch};

use crate::domain::event::Event;

/// How many events a session may fall behind the hub before it is dropped as slow
/// (the ring holds shared events, so this bounds memory for every session at once).
const HUB_CAPACITY: usize = 16_384;
/// The kind of the hint that a user's sessions changed (logout, disabled, new role):
/// their sockets check their session at once. Never sent to a client.
pub const SESSIONS_CHANGED: &str = "sessions.changed";
/// `stats.updated` goes out at most this often.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// An event on its way to sessions, serialised once for all of them: sessions share
/// the same bytes (cloning is a reference count).
#[derive(Debug)]
pub struct Outgoing {
    pub event: Event,
    pub text: tokio_tungstenite::tungstenite::Utf8Bytes,
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

/// Emits `stats.updated` at most once a second while payments change.
async fn coalesce_stats(events: Events, mut shutdown: watch::Receiver<bool>) {
    let mut hub = events.subscribe();
    let mut tick = tokio::time::interval(STATS_EVERY);
    let mut dirty = false;
    while crate::shutdown::running(&shutdown) {
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
                        account_deleted: false,
                        portfolio_id: None,
                    });
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}
