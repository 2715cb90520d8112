//! Fan-out across API instances through Redis pub/sub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use super::Events;
use crate::domain::event::Event;

const TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    /// One channel per database, so deployments (and test runs) sharing a Redis stay apart.
    channel: Arc<str>,
    publisher: ConnectionManager,
    /// True while this instance's subscription is live: only then does publishing
    /// through Redis reach this instance's own sessions too.
    up: Arc<AtomicBool>,
}

impl RedisLink {
    pub fn new(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let publisher = client
            .get_connection_manager_lazy(config)
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        Ok(Self {
            client,
            channel: format!("arrears:events:{namespace}").into(),
            publisher,
            up: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// True when Redis took the event; false means "deliver it locally".
    pub async fn publish(&self, event: &Event) -> bool {
        if !self.is_up() {
            return false;
        }
        let payload = match serde_json::to_string(event) {
            Ok(p) => p,
            Err(_) => return false,
        };
        let mut publisher = self.publisher.clone();
        let mut sent: Result<redis::RedisResult<usize>, _> =
            tokio::time::timeout(TIMEOUT, publisher.publish(&*self.channel, &payload)).await;
        // A connection that died while Redis was away fails its first command and
        // reconnects in the background; the retry waits for the new connection. (Without
        // it, the first event after Redis returns reached this instance only.)
        if matches!(&sent, Ok(Err(err)) if err.is_connection_dropped() || err.is_io_error()) {
            sent = tokio::time::timeout(TIMEOUT, publisher.publish(&*self.channel, &payload)).await;
        }
        match sent {
            Ok(Ok(_)) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis publish failed; delivering locally");
                false
            }
            Err(_) => {
                tracing::warn!("redis publish timed out; delivering locally");
                false
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&*self.channel).await?;
        Ok(pubsub)
    }

    /// Feeds what every instance publishes into this instance's hub; reconnects with
    /// back-off when Redis goes away, delivering locally meanwhile.
    pub async fn subscribe(self, events: Events, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        let mut warned = false;
        while crate::shutdown::running(&shutdown) {
            let connected = tokio::time::timeout(TIMEOUT * 2, self.connect()).await;
            let pubsub = match connected {
                Ok(Ok(pubsub)) => pubsub,
                failure => {
                    if !warned {
                        let reason = match failure {
                            Ok(Err(err)) => err.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!(error = %reason, "redis unreachable; events are delivered by this instance only");
                        warned = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.up.store(true, Ordering::Relaxed);
            tracing::info!("redis event fan-out connected");
            backoff = Duration::from_millis(100);
            warned = false;
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        match message.get_payload::<String>().map(|p| serde_json::from_str::<Event>(&p)) {
                            Ok(Ok(event)) => events.deliver_local(event),
                            _ => tracing::warn!("ignoring an unreadable event from redis"),
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
            self.up.store(false, Ordering::Relaxed);
            if crate::shutdown::running(&shutdown) {
                tracing::warn!("redis connection lost; events are delivered by this instance only until it returns");
            }
        }
    }
}
