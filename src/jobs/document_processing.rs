//! The document reader's loop: every API process runs one. It wakes when a document is
//! kept (LISTEN on the documents channel) and every second (for retries falling due, a
//! claim whose process died, a missed notification), and processes the due documents
//! one at a time (`service::document_processing`).

use tokio::sync::watch;

use crate::service::document_processing::{CHANNEL, Processor};
use crate::shutdown::running;

pub async fn run(processor: Processor, mut shutdown: watch::Receiver<bool>) {
    if processor.extractor.is_none() {
        return;
    }
    let mut listener = super::listen(&processor.pool, CHANNEL).await;
    while running(&shutdown) {
        match processor.process_next().await {
            // One was due: more may be.
            Ok(true) => continue,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "processing documents failed"),
        }
        super::idle(&mut listener, &mut shutdown).await;
    }
}
