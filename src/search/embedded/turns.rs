//! Entries built once however many searches want them at the same time. The first
//! searches after a large segment appears (a load, a merge, a server start) all want its
//! decoded columns and kept answers at once: each building its own copy cost the work
//! and the memory several times over (at 5,000,000 accounts, 650 MiB more resident
//! memory at a server's first searches, and seconds more of CPU).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// A turn per key being built: a caller that wants an entry another caller is building
/// waits for that build and then finds the entry, instead of building it too.
pub(super) struct Turns<K> {
    building: Mutex<HashMap<K, Arc<Mutex<()>>>>,
}

impl<K> Default for Turns<K> {
    fn default() -> Self {
        Self {
            building: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Turns<K> {
    /// What `find` finds, or else what `build` builds (and keeps where `find` looks), one
    /// caller of `key` at a time: the others wait for the turn and then look again. After
    /// a failed build the next caller builds.
    pub fn find_or_build<T, E>(&self, key: &K, find: impl Fn() -> Option<T>, build: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        if let Some(found) = find() {
            return Ok(found);
        }
        let turn = self
            .building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = find() {
            return Ok(found);
        }
        let built = build();
        self.building.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        built
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn callers_of_an_entry_being_built_wait_for_it() {
        let turns = Arc::new(Turns::<&str>::default());
        let kept = Arc::new(Mutex::new(HashMap::<&str, u64>::new()));
        let builds = Arc::new(AtomicUsize::new(0));
        let find = |kept: &Mutex<HashMap<&str, u64>>, key| kept.lock().unwrap().get(key).copied();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (turns, kept, builds) = (turns.clone(), kept.clone(), builds.clone());
                std::thread::spawn(move || {
                    turns.find_or_build(
                        &"a",
                        || find(&kept, "a"),
                        || -> Result<u64, ()> {
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            kept.lock().unwrap().insert("a", 7);
                            Ok(7)
                        },
                    )
                })
            })
            .collect();
        let found: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(found, [Ok(7); 8]);
        assert_eq!(builds.load(Ordering::SeqCst), 1, "one caller built, the others waited for it");
        assert!(turns.building.lock().unwrap().is_empty(), "no turn left behind");
        // A failed build leaves the entry to the next caller.
        assert_eq!(turns.find_or_build(&"b", || find(&kept, "b"), || Err("failed")), Err("failed"));
        let built = turns.find_or_build(&"b", || find(&kept, "b"), || -> Result<u64, &str> { Ok(3) });
        assert_eq!(built, Ok(3));
        assert!(turns.building.lock().unwrap().is_empty());
    }
}
