//! In-process sliding-window rate limiter (one API instance; Redis takes over with several).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many keys, stale ones are swept before inserting, bounding memory.
const SWEEP_ABOVE_KEYS: usize = 10_000;

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has budget left; if not, how long until it has.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(queue) = hits.get_mut(key) else {
            return Ok(());
        };
        while queue.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            queue.pop_front();
        }
        match queue.front() {
            Some(oldest) if queue.len() >= self.limit as usize => Err(self.window.saturating_sub(now.duration_since(*oldest))),
            _ => Ok(()),
        }
    }

    /// Spends one unit of `key`'s budget if it has one left (check and spend at once, so
    /// racing callers cannot overspend); if not, how long until it has.
    pub fn try_record(&self, key: &str) -> Result<(), Duration> {
        let mut hits = self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if hits.len() > SWEEP_ABOVE_KEYS {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let queue = hits.entry(key.to_owned()).or_default();
        while queue.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            queue.pop_front();
        }
        match queue.front() {
            Some(oldest) if queue.len() >= self.limit as usize => Err(self.window.saturating_sub(now.duration_since(*oldest))),
            _ => {
                queue.push_back(now);
                Ok(())
            }
        }
    }

    /// Spends one unit of `key`'s budget.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if hits.len() > SWEEP_ABOVE_KEYS {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        hits.entry(key.to_owned()).or_default().push_back(now);
    }

    /// Forgets what `key` spent.
    pub fn clear(&self, key: &str) {
        self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_recovers_after_the_window() {
        let limiter = RateLimiter::new(2, Duration::from_millis(50));
        limiter.record("a");
        assert!(limiter.check("a").is_ok());
        limiter.record("a");
        let wait = limiter.check("a").unwrap_err();
        assert!(wait <= Duration::from_millis(50));
        assert!(limiter.check("b").is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.check("a").is_ok());
        limiter.record("a");
        limiter.record("a");
        limiter.clear("a");
        assert!(limiter.check("a").is_ok());
        assert!(limiter.try_record("a").is_ok());
        assert!(limiter.try_record("a").is_ok());
        assert!(limiter.try_record("a").is_err(), "no third spend");
    }
}
