//! Accounts: the rules an operation on one applies whichever adapter calls it.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::role::NOT_ASSIGNABLE;
use crate::error::{Error, Result};
use crate::store::users;

/// An assignee must be an enabled user who works accounts.
pub async fn check_assignee(pool: &PgPool, agent_id: Option<Uuid>) -> Result<()> {
    let Some(id) = agent_id else { return Ok(()) };
    let user = users::by_id(pool, id).await?;
    match user {
        Some(u) if !u.disabled && u.role().works_accounts() => Ok(()),
        Some(_) => Err(Error::field("assigned_agent_id", NOT_ASSIGNABLE)),
        None => Err(Error::field("assigned_agent_id", "no such user")),
    }
}
