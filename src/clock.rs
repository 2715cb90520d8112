//! The one source of "now" for the decisions that depend on the date or the hour in a
//! debtor's zone: the schedulers (promises, plans, KPI snapshots, contact windows), the
//! contact guard, and the dates promises and plans are checked against. Production reads
//! the system clock; a test sets an instant (a local midnight, a DST change) and every
//! one of those decisions sees it.

use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};

/// Cheap to clone; clones share the instant a test sets.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock. A settable clock follows the system clock until it is
    /// set, then stays at the instant set until it is set or advanced again.
    set: Option<Arc<RwLock<Option<DateTime<Utc>>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads the system clock until [`Clock::set`] holds it at an instant.
    pub fn settable() -> Self {
        Self { set: Some(Arc::default()) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.set
            .as_ref()
            .and_then(|set| *set.read().unwrap_or_else(PoisonError::into_inner))
            .unwrap_or_else(Utc::now)
    }

    /// Holds a settable clock at `at`.
    ///
    /// # Panics
    /// On the system clock, which nothing sets.
    pub fn set(&self, at: DateTime<Utc>) {
        let set = self.set.as_ref().expect("only a settable clock is set");
        *set.write().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    /// Holds a settable clock `by` after what it reads now.
    pub fn advance(&self, by: Duration) {
        self.set(self.now() + by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settable_clock_follows_the_system_until_set_and_its_clones_share_the_instant() {
        let clock = Clock::settable();
        let before = Utc::now();
        let read = clock.now();
        assert!(read >= before && read <= Utc::now());
        let at = DateTime::parse_from_rfc3339("2026-03-08T06:59:59Z").unwrap().with_timezone(&Utc);
        let shared = clock.clone();
        clock.set(at);
        assert_eq!(shared.now(), at);
        shared.advance(Duration::seconds(1));
        assert_eq!(clock.now(), at + Duration::seconds(1));
    }

    #[test]
    #[should_panic(expected = "only a settable clock is set")]
    fn the_system_clock_is_not_set() {
        Clock::system().set(Utc::now());
    }
}
