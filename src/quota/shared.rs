//! Quota counters in Redis, shared by every instance on the same deployment.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Budget, Spent};

/// A quota check sits in front of every request: a slow Redis is given up on quickly
/// and the request is counted in this process instead.
const TIMEOUT: Duration = Duration::from_millis(250);

pub struct Counters {
    connection: ConnectionManager,
    /// One key space per database, so deployments (and test runs) sharing a Redis stay apart.
    prefix: String,
}

impl Counters {
    pub fn new(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(0);
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        Ok(Self {
            connection,
            prefix: format!("arrears:quota:{namespace}:"),
        })
    }

    /// Counts one request against each key in one atomic round trip: `INCR`, then
    /// `PEXPIRE … NX` so only the window's first request sets when it closes.
    pub async fn spend(&self, keys: &[(String, Budget)]) -> anyhow::Result<Vec<Spent>> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, budget) in keys {
            let key = format!("{}{key}", self.prefix);
            let millis = u64::try_from(budget.window.as_millis()).unwrap_or(u64::MAX);
            pipe.incr(&key, 1)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis)
                .arg("NX")
                .ignore()
                .pttl(&key);
        }
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(TIMEOUT, pipe.query_async::<Vec<i64>>(&mut connection))
            .await
            .map_err(|_| anyhow::anyhow!("redis took longer than {TIMEOUT:?}"))??;
        Ok(answer
            .chunks_exact(2)
            .zip(keys)
            .map(|(pair, (_, budget))| Spent {
                count: u64::try_from(pair[0]).unwrap_or(0),
                reset: u64::try_from(pair[1]).map(Duration::from_millis).unwrap_or(budget.window),
            })
            .collect())
    }
}
