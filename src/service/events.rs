//! Live events read back from the log: where it ends, and the catch-up of a client that
//! reconnects, holding only what its user may see.

use sqlx::PgPool;

use crate::domain::event::Event;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::Result;
use crate::store::events::{self, Audience};

/// The id of the latest committed event, if any.
pub async fn latest_id(pool: &PgPool) -> Result<Option<i64>> {
    events::latest_id(pool).await
}

/// Up to `limit` committed events `caller` may see, after `after` and before `before`
/// (when given), oldest first: events addressed to them, and, for a role that may read
/// accounts, the shared events of `topics`.
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
