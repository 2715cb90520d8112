//! Work-queue claims: an agent's hold on the account `POST /queue/next` gave them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

/// Ends any claim on the account (an activity was logged on it).
pub async fn release(tx: &mut PgConnection, account_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM queue_claims WHERE account_id = $1")
        .bind(account_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Claims for `agent` the first of `candidates` (in order) that is live, assigned to
/// them or to nobody, and not held by another agent's live claim, for `seconds`; an
/// unassigned account becomes theirs. The agent's earlier claims end. Two agents never
/// hold the same account: a row another claim is locking is skipped, and the upsert only
/// replaces an expired claim or the agent's own.
pub async fn claim(pool: &PgPool, agent: Uuid, candidates: &[Uuid], seconds: i64) -> Result<Option<(Uuid, DateTime<Utc>)>> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM queue_claims WHERE agent_id = $1")
        .bind(agent)
        .execute(&mut *tx)
        .await?;
    let claimed: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "WITH pick AS (
             SELECT a.id FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, ord)
             JOIN accounts a ON a.id = c.id
             WHERE a.deleted_at IS NULL AND (a.assigned_agent_id = $2 OR a.assigned_agent_id IS NULL)
               AND NOT EXISTS (SELECT 1 FROM queue_claims q
                               WHERE q.account_id = a.id AND q.expires_at > now() AND q.agent_id <> $2)
             ORDER BY c.ord
             LIMIT 1
             FOR UPDATE OF a SKIP LOCKED
         )
         INSERT INTO queue_claims (account_id, agent_id, expires_at)
         SELECT id, $2, now() + make_interval(secs => $3) FROM pick
         ON CONFLICT (account_id) DO UPDATE
             SET agent_id = EXCLUDED.agent_id, claimed_at = now(), expires_at = EXCLUDED.expires_at
             WHERE queue_claims.expires_at <= now() OR queue_claims.agent_id = EXCLUDED.agent_id
         RETURNING account_id, expires_at",
    )
    .bind(candidates)
    .bind(agent)
    .bind(seconds as f64)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, _)) = claimed {
        sqlx::query(
            "UPDATE accounts SET assigned_agent_id = $2, updated_by = $2, updated_at = now()
             WHERE id = $1 AND assigned_agent_id IS NULL",
        )
        .bind(id)
        .bind(agent)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}
