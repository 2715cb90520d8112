//! Live events read back from the log: where it ends, and the catch-up of a client that
//! reconnects, holding only what its user may see.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::event::Event;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::Result;
use crate::store::events::{self, Audience};

/// The id of the latest committed event, if any.
pub async fn latest_id(pool: &PgPool) -> Result<Option<i64>> {
    events::latest_id(pool).await
}

/// Up to `limit` committed events after `after` and before `before` (when given), oldest
/// first, each with its account's owner now: events addressed to `caller`, and, for a
/// role that may read accounts, the shared events of `topics`. The caller sends only
/// those [visible](crate::domain::event::Event::visible_to) to them with their
/// [`scope`], as much of each as [`crate::events::visibility::access`] allows (the
/// page's size tells a client whether to ask for more).
pub async fn replay(
    pool: &PgPool,
    caller: &Principal,
    topics: &[String],
    after: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>> {
    let topics = if caller.can(Action::ReadAccounts) { topics } else { &[] };
    let audience = Audience {
        user_id: caller.user_id,
        topics,
    };
    events::replay(pool, &audience, after, before, limit).await
}

/// The portfolios whose shared events `caller` receives (`None`: every one), as their
/// searches see them.
pub async fn scope(pool: &PgPool, caller: &Principal) -> Result<Option<Vec<Uuid>>> {
    super::portfolios::search_scope(pool, caller).await
}
