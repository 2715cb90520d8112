//! The sender: every API process runs one. It wakes when a message is queued (LISTEN on
//! the messages channel) and every second (for retries falling due, and a missed
//! notification), asks the contact guard again about each due message and hands those
//! it allows to their channel's provider (`service::messages`).

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::messaging::Providers;
use crate::service::messages;
use crate::shutdown::running;
use crate::storage::ContentStore;

pub async fn run(pool: PgPool, providers: Providers, content: Arc<dyn ContentStore>, clock: Clock, mut shutdown: watch::Receiver<bool>) {
    let mut listener = super::listen(&pool, messages::CHANNEL).await;
    while running(&shutdown) {
        match messages::deliver_due(&pool, &providers, content.as_ref(), clock.now()).await {
            // Some were due: more may be.
            Ok(taken) if taken > 0 => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sending messages failed"),
        }
        super::idle(&mut listener, &mut shutdown).await;
    }
}
