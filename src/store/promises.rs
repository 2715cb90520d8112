//! Promises to pay. Kept promises are settled by the payment trigger
//! (`settle_promises`); broken ones by [`break_overdue`], run by the sync worker.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::promise::PromiseStatus;
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow)]
pub struct PromiseRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub due_date: NaiveDate,
    pub status: PromiseStatus,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, account_id, amount, due_date, status, created_by, created_at, resolved_at";

/// Status an account takes while a promise is open, and leaves when none is.
/// `$2` is now.
const AFTER_PROMISE: &str = "CASE WHEN due_date < ($2::timestamptz AT TIME ZONE timezone)::date THEN 'delinquent' ELSE 'active' END";

/// Records an open promise; the account moves to `promise_to_pay` unless its status
/// says something stronger (disputed, on a plan, resolved).
pub async fn insert(tx: &mut PgConnection, account_id: Uuid, amount: Decimal, due_date: NaiveDate, actor: Uuid) -> Result<PromiseRow> {
    let row = sqlx::query_as::<_, PromiseRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO promises (id, account_id, amount, due_date, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(account_id)
    .bind(amount)
    .bind(due_date)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE accounts SET status = 'promise_to_pay', updated_at = now() WHERE id = $1 AND status IN ('active', 'delinquent')")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    Ok(row)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<PromiseRow>> {
    Ok(
        sqlx::query_as::<_, PromiseRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM promises WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Cancels an open promise at `now`; its account's status follows the date of `now` in
/// the debtor's zone. `None` when it is not open (any more).
pub async fn cancel(tx: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<Option<PromiseRow>> {
    let row = sqlx::query_as::<_, PromiseRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE promises SET status = 'cancelled', resolved_at = $2 WHERE id = $1 AND status = 'open' RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(promise) = &row {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE accounts SET status = {AFTER_PROMISE}, updated_at = now() WHERE id = $1 AND status = 'promise_to_pay'"
        )))
        .bind(promise.account_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(row)
}

/// An account's promises, newest first, after a keyset position.
pub async fn for_account(pool: &PgPool, account_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<PromiseRow>> {
    let query = keyset::rows_where(&format!("SELECT {COLUMNS} FROM promises"), "account_id", Some(account_id));
    NewestFirst::by("created_at", "id").page(pool, query, after, limit).await
}

pub async fn count_for_account(pool: &PgPool, account_id: Uuid) -> Result<i64> {
    keyset::count(
        pool,
        keyset::rows_where("SELECT count(*) FROM promises", "account_id", Some(account_id)),
    )
    .await
}

/// Breaks every open promise whose due date is before the date of `now` in its
/// account's timezone (a promise due today is still open), and moves those accounts
/// out of `promise_to_pay`. One statement: running it twice, or from two processes at
/// once, breaks each promise once. Returns how many it broke.
pub async fn break_overdue(pool: &PgPool, now: DateTime<Utc>) -> Result<u64> {
    let mut tx = super::begin_for_job(pool, "scheduler:promises", None).await?;
    let broken: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE promises p SET status = 'broken', resolved_at = $1
         FROM accounts a
         WHERE p.account_id = a.id AND p.status = 'open' AND p.due_date < ($1 AT TIME ZONE a.timezone)::date
         RETURNING p.account_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if !broken.is_empty() {
        sqlx::query(
            "UPDATE accounts SET status = 'delinquent', updated_at = now()
             WHERE id = ANY($1) AND status = 'promise_to_pay'",
        )
        .bind(&broken)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(broken.len() as u64)
}
