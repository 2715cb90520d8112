//! Failed logins per key (a keyed hash of what is counted), in one table every instance
//! shares and a restart keeps: the lockout and the address budget of `auth::gate`.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;

/// How long `key` is refused still; `None` while it is not.
#[tracing::instrument(skip_all)]
pub async fn locked_for(pool: &PgPool, key: &[u8]) -> Result<Option<Duration>> {
    let millis: Option<i64> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM locked_until - now()) * 1000)::bigint
         FROM login_failures WHERE key = $1 AND locked_until > now()",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(millis.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or_default())))
}

/// Counts one failure of `key`, atomically: the count starts afresh once `window` has
/// passed since its first failure, and reaching `limit` refuses the key for `window`.
/// Rows whose time is over are purged on the way.
#[tracing::instrument(skip_all)]
pub async fn record(pool: &PgPool, key: &[u8], limit: u32, window: Duration) -> Result<()> {
    sqlx::query(
        "WITH w AS (SELECT make_interval(secs => $3) AS length)
         INSERT INTO login_failures AS f (key, failures, window_start, locked_until, expires_at)
         SELECT $1, 1, now(), CASE WHEN 1 >= $2 THEN now() + w.length END, now() + w.length FROM w
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN f.window_start + make_interval(secs => $3) <= now() THEN 1 ELSE f.failures + 1 END,
             window_start = CASE WHEN f.window_start + make_interval(secs => $3) <= now() THEN now() ELSE f.window_start END,
             locked_until = CASE
                 WHEN (CASE WHEN f.window_start + make_interval(secs => $3) <= now() THEN 1 ELSE f.failures + 1 END) >= $2
                 THEN now() + make_interval(secs => $3) END,
             expires_at = now() + make_interval(secs => $3)",
    )
    .bind(key)
    .bind(i64::from(limit))
    .bind(window.as_secs_f64())
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM login_failures WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(())
}

/// Forgets the failures of `key`.
#[tracing::instrument(skip_all)]
pub async fn clear(pool: &PgPool, key: &[u8]) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
