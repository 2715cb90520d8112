//! Quota counters of this process alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Budget, Spent};

/// Past this many keys, closed windows are swept before counting, bounding memory
/// however many addresses call.
const SWEEP_ABOVE_KEYS: usize = 50_000;

#[derive(Default)]
pub struct Counters {
    windows: Mutex<HashMap<String, Window>>,
}

struct Window {
    closes: Instant,
    count: u64,
}

impl Counters {
    pub fn spend(&self, keys: &[(String, Budget)]) -> Vec<Spent> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_ABOVE_KEYS {
            windows.retain(|_, window| window.closes > now);
        }
        keys.iter()
            .map(|(key, budget)| spend_one(&mut windows, key, budget.window, now))
            .collect()
    }
}

fn spend_one(windows: &mut HashMap<String, Window>, key: &str, length: Duration, now: Instant) -> Spent {
    let window = match windows.get_mut(key) {
        Some(window) if window.closes > now => window,
        _ => windows
            .entry(key.to_owned())
            .insert_entry(Window {
                closes: now + length,
                count: 0,
            })
            .into_mut(),
    };
    window.count += 1;
    Spent {
        count: window.count,
        reset: window.closes.saturating_duration_since(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_until_it_closes_then_starts_again() {
        let counters = Counters::default();
        let keys = [(
            "k".to_owned(),
            Budget {
                limit: 2,
                window: Duration::from_millis(80),
            },
        )];
        assert_eq!(counters.spend(&keys)[0].count, 1);
        let second = counters.spend(&keys)[0];
        assert_eq!(second.count, 2);
        assert!(second.reset <= Duration::from_millis(80) && second.reset > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(counters.spend(&keys)[0].count, 1, "a closed window starts again");
    }
}
