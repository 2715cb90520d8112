//! Group commit for payments. Recording a payment is one statement, but much of what
//! PostgreSQL spends on it comes per statement and per commit, not per row: one
//! statement for sixteen payments measured 3.2× the payments per second of sixteen
//! statements (pgbench, same triggers, 32 clients). So requests that arrive together
//! are written together: a few writer tasks each take whatever is queued (up to
//! [`MAX_BATCH`]) and insert it with one [`payments::insert_checked`]. Alone, a payment
//! is written at once, on its own; under load the batches form by themselves.
//!
//! Each payment is still checked against its own account under the account's lock and
//! answered on its own; a batch holds at most one payment per account (the others wait
//! for the next one), and if the statement fails, each of its payments is retried on
//! its own so that one bad payment cannot fail the others.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::payments::{self, Checked, Insert};
use crate::error::{Error, Result};

/// Payments one statement writes at most.
const MAX_BATCH: usize = 64;

struct Queued {
    insert: Insert,
    answer: oneshot::Sender<Result<Checked>>,
}

/// The queue in front of the writer tasks; cheap to clone. The tasks stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct PaymentWriter {
    queue: mpsc::Sender<Queued>,
}

impl PaymentWriter {
    /// Starts `writers` tasks writing into `pool`, each holding one connection while it
    /// writes: how many batches can be in flight at once. Under load a request waits
    /// for about one batch, so more writers make smaller batches.
    pub fn start(pool: PgPool, writers: usize) -> Self {
        let (queue, received) = mpsc::channel(writers.max(1) * MAX_BATCH);
        let received = Arc::new(Mutex::new(received));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), received.clone()));
        }
        Self { queue }
    }

    /// Inserts one payment (see [`payments::insert_checked`]), together with whatever
    /// other payments are being recorded at the same moment.
    pub async fn insert(&self, insert: Insert) -> Result<Checked> {
        let (answer, answered) = oneshot::channel();
        let stopped = || Error::Internal(anyhow::anyhow!("the payment writer has stopped"));
        self.queue.send(Queued { insert, answer }).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write_batches(pool: PgPool, received: Arc<Mutex<mpsc::Receiver<Queued>>>) {
    let mut next: Vec<Queued> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut next);
        if batch.is_empty() {
            let mut received = received.lock().await;
            match received.recv().await {
                Some(queued) => batch.push(queued),
                None => return,
            }
            take_queued(&mut received, &mut batch);
        } else if let Ok(mut received) = received.try_lock() {
            // Held back by an earlier batch: never wait for new arrivals to write them.
            take_queued(&mut received, &mut batch);
        }
        let mut accounts = HashSet::with_capacity(batch.len());
        let (now, later): (Vec<_>, Vec<_>) = batch.into_iter().partition(|q| accounts.insert(q.insert.account_id));
        next = later;
        write(&pool, now).await;
    }
}

fn take_queued(received: &mut mpsc::Receiver<Queued>, batch: &mut Vec<Queued>) {
    while batch.len() < MAX_BATCH {
        let Ok(queued) = received.try_recv() else { break };
        batch.push(queued);
    }
}

async fn write(pool: &PgPool, batch: Vec<Queued>) {
    let (inserts, answers): (Vec<Insert>, Vec<_>) = batch.into_iter().map(|q| (q.insert, q.answer)).unzip();
    match insert(pool, &inserts).await {
        Ok(checked) => {
            for (answer, checked) in answers.into_iter().zip(checked) {
                let _ = answer.send(Ok(checked));
            }
        }
        Err(error) if answers.len() == 1 => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, payments = inserts.len(), "batched payment insert failed; inserting one by one");
            for (answer, insert) in answers.into_iter().zip(&inserts) {
                let checked = self::insert(pool, std::slice::from_ref(insert)).await;
                let _ = answer.send(checked.map(|mut checked| checked.remove(0)));
            }
        }
    }
}

async fn insert(pool: &PgPool, inserts: &[Insert]) -> Result<Vec<Checked>> {
    payments::insert_checked(&mut *pool.acquire().await?, inserts).await
}
