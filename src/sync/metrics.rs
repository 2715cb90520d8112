//! Sync metrics: outbox depth and age, commit-to-searchable lag, counters. Kept in
//! process for readiness and the benchmarks, and exported to Prometheus as they are
//! recorded.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::document::Entity;
use crate::search::ApplyReport;
use crate::telemetry::metrics;

/// Upper bounds (ms) of the lag histogram buckets; the last bucket is open.
const LAG_BOUNDS_MS: [u64; 19] = [
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 5000, 10000,
];

#[derive(Default)]
pub struct SyncMetrics {
    applied: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
    outbox_depth: AtomicI64,
    oldest_age_ms: AtomicI64,
    /// Documents the index refused for good (dead letters).
    rejected: AtomicU64,
    lag: Mutex<[u64; LAG_BOUNDS_MS.len() + 1]>,
    /// Why the last batch failed, while batches fail.
    trouble: Mutex<Option<Trouble>>,
    /// Entities whose changes wait in the outbox, and why (an index built with another
    /// release's mapping).
    held: Mutex<BTreeMap<&'static str, String>>,
}

/// Why the sync's batches fail, since when.
#[derive(Clone, Debug, PartialEq)]
pub struct Trouble {
    /// The index refuses the sync (credentials past their grace, a write block) until an
    /// operator acts; otherwise the failure is expected to pass (a restart, a timeout).
    pub refused: bool,
    pub reason: String,
    /// When batches began to fail (kept while they fail for the same kind of reason).
    pub since: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub applied: u64,
    pub stale: u64,
    pub errors: u64,
    pub outbox_depth: i64,
    pub oldest_age_ms: i64,
    pub lag_samples: u64,
    /// Upper bound of the bucket holding the median and the 99th percentile, in ms.
    pub lag_p50_ms: Option<u64>,
    pub lag_p99_ms: Option<u64>,
}

impl SyncMetrics {
    /// One indexed batch: each change's lag and what became of its documents.
    pub fn record_batch(&self, lags: impl Iterator<Item = Duration>, report: &ApplyReport) {
        for lag in lags {
            self.record_lag(lag);
        }
        self.applied.fetch_add(report.applied as u64, Ordering::Relaxed);
        self.stale.fetch_add(report.stale as u64, Ordering::Relaxed);
        self.rejected.fetch_add(report.rejected as u64, Ordering::Relaxed);
        metrics::documents(report.applied, report.stale, report.rejected);
    }

    pub fn record_outbox(&self, depth: i64, oldest_age_ms: i64) {
        self.outbox_depth.store(depth, Ordering::Relaxed);
        self.oldest_age_ms.store(oldest_age_ms, Ordering::Relaxed);
        metrics::outbox(depth, Duration::from_millis(u64::try_from(oldest_age_ms).unwrap_or(0)));
    }

    /// A batch that failed and is tried again: soon, or (`refused`) slowly until an
    /// operator acts. True when batches did not already fail for this kind of reason.
    pub fn record_failure(&self, refused: bool, reason: String) -> bool {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::sync_failure(refused);
        let mut trouble = self.trouble.lock().unwrap_or_else(|p| p.into_inner());
        let since = match trouble.as_ref() {
            Some(known) if known.refused == refused => known.since,
            _ => chrono::Utc::now(),
        };
        let new = trouble.as_ref().is_none_or(|known| known.refused != refused);
        *trouble = Some(Trouble { refused, reason, since });
        new
    }

    /// A batch that went through: whatever failed before has passed. True when batches
    /// were failing.
    pub fn record_success(&self) -> bool {
        self.trouble.lock().unwrap_or_else(|p| p.into_inner()).take().is_some()
    }

    /// Why batches fail, while they do.
    pub fn trouble(&self) -> Option<Trouble> {
        self.trouble.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record_lag(&self, lag: Duration) {
        metrics::sync_lag(lag);
        let ms = lag.as_millis() as u64;
        let slot = LAG_BOUNDS_MS.iter().position(|bound| ms <= *bound).unwrap_or(LAG_BOUNDS_MS.len());
        self.lag.lock().unwrap_or_else(|p| p.into_inner())[slot] += 1;
    }

    /// Records that `entity`'s changes are held; true when they were not already.
    pub fn hold(&self, entity: Entity, reason: String) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let new = held.insert(entity.plural(), reason).is_none();
        metrics::sync_held(entity.plural(), true);
        new
    }

    /// Records that `entity`'s changes flow again; true when they were held.
    pub fn release(&self, entity: Entity) -> bool {
        let released = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(entity.plural())
            .is_some();
        if released {
            metrics::sync_held(entity.plural(), false);
        }
        released
    }

    /// Why each held entity's changes wait, by entity.
    pub fn held(&self) -> BTreeMap<&'static str, String> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn reset_lag(&self) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = [0; LAG_BOUNDS_MS.len() + 1];
    }

    pub fn snapshot(&self) -> Snapshot {
        let lag = *self.lag.lock().unwrap_or_else(|p| p.into_inner());
        let samples: u64 = lag.iter().sum();
        let percentile = |p: f64| -> Option<u64> {
            if samples == 0 {
                return None;
            }
            let target = (samples as f64 * p).ceil() as u64;
            let mut seen = 0;
            for (i, count) in lag.iter().enumerate() {
                seen += count;
                if seen >= target {
                    return Some(LAG_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX));
                }
            }
            None
        };
        Snapshot {
            applied: self.applied.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            outbox_depth: self.outbox_depth.load(Ordering::Relaxed),
            oldest_age_ms: self.oldest_age_ms.load(Ordering::Relaxed),
            lag_samples: samples,
            lag_p50_ms: percentile(0.50),
            lag_p99_ms: percentile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_come_from_the_buckets() {
        let metrics = SyncMetrics::default();
        for _ in 0..98 {
            metrics.record_lag(Duration::from_millis(15));
        }
        metrics.record_lag(Duration::from_millis(400));
        metrics.record_lag(Duration::from_millis(400));
        let snap = metrics.snapshot();
        assert_eq!(snap.lag_samples, 100);
        assert_eq!(snap.lag_p50_ms, Some(20));
        assert_eq!(snap.lag_p99_ms, Some(400));
    }
}
