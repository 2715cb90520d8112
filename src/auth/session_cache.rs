//! Sessions recently read for authentication, so a busy client's requests do not each
//! cost a query. An entry lives [`TTL`]; the process that revokes a session or changes
//! a user forgets every entry at once, so there the change is immediate, and other
//! API processes see it within [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::sessions::SessionUser;

pub const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; past it, expired ones are dropped (all, if none expired).
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Uuid, (Instant, SessionUser)>>,
}

impl SessionCache {
    pub fn get(&self, session_id: Uuid) -> Option<SessionUser> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&session_id)
            .filter(|(read, _)| read.elapsed() < TTL)
            .map(|(_, session)| session.clone())
    }

    pub fn put(&self, session: SessionUser) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (read, _)| read.elapsed() < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(session.session_id, (Instant::now(), session));
    }

    /// Forgets every session: after a logout, a revoked refresh family, or a change to
    /// a user's role or state.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionUser {
        SessionUser {
            session_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            email: "a@example.com".to_owned(),
            name: "A".to_owned(),
            role: "agent".to_owned(),
            disabled: false,
            revoked: false,
            second_factor: false,
        }
    }

    #[test]
    fn a_session_is_served_until_cleared() {
        let cache = SessionCache::default();
        let s = session();
        assert!(cache.get(s.session_id).is_none());
        cache.put(s.clone());
        assert_eq!(cache.get(s.session_id).map(|c| c.user_id), Some(s.user_id));
        cache.clear();
        assert!(cache.get(s.session_id).is_none());
    }

    #[test]
    fn an_expired_entry_is_not_served() {
        let cache = SessionCache::default();
        let s = session();
        cache
            .entries
            .lock()
            .unwrap()
            .insert(s.session_id, (Instant::now() - TTL, s.clone()));
        assert!(cache.get(s.session_id).is_none());
    }
}
