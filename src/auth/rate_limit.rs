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

    /// Records an attempt for `key`, or refuses it and says how long until one is allowed.
    pub fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if hits.len() > SWEEP_ABOVE_KEYS {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let queue = hits.entry(key.to_owned()).or_default();
        while queue.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            queue.pop_front();
        }
        if queue.len() >= self.limit as usize {
            let oldest = *queue.front().expect("a full queue has a front");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        queue.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_recovers_after_the_window() {
        let limiter = RateLimiter::new(2, Duration::from_millis(50));
        assert!(limiter.try_acquire("a").is_ok());
        assert!(limiter.try_acquire("a").is_ok());
        let wait = limiter.try_acquire("a").unwrap_err();
        assert!(wait <= Duration::from_millis(50));
        assert!(limiter.try_acquire("b").is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.try_acquire("a").is_ok());
    }
}
