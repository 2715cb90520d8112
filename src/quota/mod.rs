//! Request quotas: how many requests a client address and a user may make in a window,
//! per class of request. Counted in this process, or in Redis when `REDIS_URL` is set so
//! that every instance spends from the same budget.
//!
//! A budget's window opens with its first request and lasts `window` (a fixed window per
//! key, as Redis `INCR` + `PEXPIRE NX` keeps it); the answer says how much is left and
//! when the window closes, which is what the `RateLimit-*` headers report.

mod local;
mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use uuid::Uuid;

use crate::config::Settings;

/// What a request costs against: ordinary calls, or the submissions that start heavy
/// work (bulk updates, imports, exports), which have a tighter budget of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Standard,
    Bulk,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Standard => "standard",
            Class::Bulk => "bulk",
        }
    }
}

/// Requests allowed per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

/// The state of the tightest budget a request was counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub budget: Budget,
    pub remaining: u32,
    /// Until the window closes and the budget is whole again.
    pub reset: Duration,
}

/// One key's count in its window, as a counter store reports it.
#[derive(Clone, Copy, Debug)]
struct Spent {
    count: u64,
    reset: Duration,
}

pub struct Quotas {
    per_user: [Budget; 2],
    per_client: [Budget; 2],
    local: local::Counters,
    shared: Option<shared::Counters>,
    /// Whether the last shared count failed, so a Redis outage is logged once, not per request.
    shared_down: AtomicBool,
}

impl Quotas {
    pub fn new(settings: &Settings, namespace: &str) -> anyhow::Result<Self> {
        let window = Duration::from_secs(settings.rate_limit_window_secs);
        let budget = |limit| Budget { limit, window };
        let shared = match settings.redis_url.as_deref() {
            Some(url) => Some(shared::Counters::new(url, namespace)?),
            None => None,
        };
        Ok(Self {
            per_user: [budget(settings.rate_limit_per_user), budget(settings.rate_limit_bulk_per_user)],
            per_client: [budget(settings.rate_limit_per_ip), budget(settings.rate_limit_bulk_per_ip)],
            local: local::Counters::default(),
            shared,
            shared_down: AtomicBool::new(false),
        })
    }

    /// Spends one request of `class` from the client address's budget and, for a known
    /// user, from the user's; answers with the tightest of them. A request over either
    /// budget is refused (and still counted: hammering does not reopen the window).
    pub async fn spend(&self, class: Class, client: &str, user: Option<Uuid>) -> Verdict {
        let slot = class as usize;
        let mut keys = vec![(format!("{}:ip:{client}", class.as_str()), self.per_client[slot])];
        if let Some(user) = user {
            keys.push((format!("{}:user:{user}", class.as_str()), self.per_user[slot]));
        }
        let spent = match &self.shared {
            Some(shared) => match shared.spend(&keys).await {
                Ok(spent) => {
                    if self.shared_down.swap(false, Ordering::Relaxed) {
                        tracing::info!("redis quota counters are back; budgets are shared again");
                    }
                    spent
                }
                Err(err) => {
                    if !self.shared_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %err, "redis quota counters unreachable; counting in this process until it returns");
                    }
                    self.local.spend(&keys)
                }
            },
            None => self.local.spend(&keys),
        };
        tightest(&keys, &spent)
    }
}

fn tightest(keys: &[(String, Budget)], spent: &[Spent]) -> Verdict {
    keys.iter()
        .zip(spent)
        .map(|((_, budget), spent)| Verdict {
            allowed: spent.count <= u64::from(budget.limit),
            budget: *budget,
            remaining: u32::try_from(u64::from(budget.limit).saturating_sub(spent.count)).unwrap_or(u32::MAX),
            reset: spent.reset,
        })
        .min_by_key(|verdict| (verdict.allowed, verdict.remaining))
        .expect("every request is counted against its client address")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u32) -> Budget {
        Budget {
            limit,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_tightest_budget_answers_and_a_refusal_wins() {
        let keys = [("ip".to_owned(), budget(10)), ("user".to_owned(), budget(3))];
        let fresh = [
            Spent {
                count: 2,
                reset: Duration::from_secs(50),
            },
            Spent {
                count: 2,
                reset: Duration::from_secs(40),
            },
        ];
        let verdict = tightest(&keys, &fresh);
        assert!(verdict.allowed);
        assert_eq!((verdict.budget.limit, verdict.remaining), (3, 1));
        let over = [
            Spent {
                count: 11,
                reset: Duration::from_secs(50),
            },
            Spent {
                count: 1,
                reset: Duration::from_secs(40),
            },
        ];
        let verdict = tightest(&keys, &over);
        assert!(!verdict.allowed);
        assert_eq!(
            (verdict.budget.limit, verdict.remaining, verdict.reset),
            (10, 0, Duration::from_secs(50))
        );
    }
}
