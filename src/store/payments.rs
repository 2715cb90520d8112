//! Payments. Balances, promise settlement and the outbox follow from the triggers of
//! migration 0003, so every write path keeps them right.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::payment::{Method, NewPayment, PaymentStatus};
use crate::error::{Error, Result};
use crate::search::document::PaymentDoc;

#[derive(Clone, Debug, FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub method: String,
    pub status: String,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub failure_reason: Option<String>,
    pub allow_overpayment: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub search_version: i64,
}

impl PaymentRow {
    pub fn status(&self) -> Result<PaymentStatus> {
        PaymentStatus::parse(&self.status).ok_or_else(|| Error::Internal(anyhow::anyhow!("payment {} has status {}", self.id, self.status)))
    }

    pub fn method(&self) -> Result<Method> {
        Method::parse(&self.method).ok_or_else(|| Error::Internal(anyhow::anyhow!("payment {} has method {}", self.id, self.method)))
    }
}

const COLUMNS: &str = "id, account_id, amount, currency, method, status, reference, received_at, failure_reason, \
     allow_overpayment, created_by, created_at, updated_at, search_version";

/// A payment with the account fields its document carries.
#[derive(FromRow)]
struct DocRow {
    #[sqlx(flatten)]
    payment: PaymentRow,
    account_number: String,
    debtor_name: String,
    assigned_agent_id: Option<Uuid>,
}

impl DocRow {
    fn into_doc(self) -> Result<PaymentDoc> {
        let p = self.payment;
        Ok(PaymentDoc {
            method: p.method()?,
            status: p.status()?,
            id: p.id,
            account_id: p.account_id,
            amount: p.amount,
            currency: p.currency,
            reference: p.reference,
            received_at: p.received_at,
            failure_reason: p.failure_reason,
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
            search_version: p.search_version,
            account_number: self.account_number,
            debtor_name: self.debtor_name,
            assigned_agent_id: self.assigned_agent_id,
        })
    }
}

const DOC_SELECT: &str = "SELECT p.id, p.account_id, p.amount, p.currency, p.method, p.status, p.reference, p.received_at, \
     p.failure_reason, p.allow_overpayment, p.created_by, p.created_at, p.updated_at, p.search_version, \
     a.account_number, a.debtor_name, a.assigned_agent_id FROM payments p JOIN accounts a ON a.id = p.account_id";

/// What [`insert_checked`] found.
pub enum Checked {
    NoAccount,
    Inserted(PaymentRow),
    /// The account refused the payment: another currency, another agent's account, or
    /// a completed amount above the balance.
    Refused {
        currency: String,
        balance: Decimal,
        assigned_agent_id: Option<Uuid>,
    },
}

#[derive(FromRow)]
struct CheckedRow {
    currency: String,
    balance: Decimal,
    assigned_agent_id: Option<Uuid>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    search_version: Option<i64>,
}

/// Locks the live account, checks currency, agent (`only_agent`: the caller when it
/// may work only on assigned accounts) and balance, and inserts: one statement, so
/// one round trip, and race-free under the account's lock.
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
pub async fn insert_checked(
    conn: &mut PgConnection,
    account_id: Uuid,
    payment: &NewPayment,
    actor: Uuid,
    only_agent: Option<Uuid>,
) -> Result<Checked> {
    let id = Uuid::now_v7();
    let row = sqlx::query_as::<_, CheckedRow>(
        "WITH a AS (
             SELECT id, currency, current_balance, assigned_agent_id FROM accounts
             WHERE id = $2 AND deleted_at IS NULL FOR UPDATE
         ), ins AS (
             INSERT INTO payments (id, account_id, amount, currency, method, status, reference, received_at, allow_overpayment, created_by)
             SELECT $1, a.id, $3, $4, $5, $6, $7, $8, $9, $10 FROM a
             WHERE a.currency = $4
               AND ($11::uuid IS NULL OR a.assigned_agent_id = $11)
               AND ($6 <> 'completed' OR $9 OR a.current_balance >= $3)
             RETURNING created_at, updated_at, search_version
         )
         SELECT a.currency, a.current_balance AS balance, a.assigned_agent_id, ins.created_at, ins.updated_at, ins.search_version
         FROM a LEFT JOIN ins ON true",
    )
    .bind(id)
    .bind(account_id)
    .bind(payment.amount)
    .bind(payment.currency.code())
    .bind(payment.method.as_str())
    .bind(payment.status.as_str())
    .bind(payment.reference.as_deref())
    .bind(payment.received_at)
    .bind(payment.allow_overpayment)
    .bind(actor)
    .bind(only_agent)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(Checked::NoAccount) };
    let (Some(created_at), Some(updated_at), Some(search_version)) = (row.created_at, row.updated_at, row.search_version) else {
        return Ok(Checked::Refused {
            currency: row.currency,
            balance: row.balance,
            assigned_agent_id: row.assigned_agent_id,
        });
    };
    Ok(Checked::Inserted(PaymentRow {
        id,
        account_id,
        amount: payment.amount,
        currency: payment.currency.code().to_owned(),
        method: payment.method.as_str().to_owned(),
        status: payment.status.as_str().to_owned(),
        reference: payment.reference.clone(),
        received_at: payment.received_at,
        failure_reason: None,
        allow_overpayment: payment.allow_overpayment,
        created_by: Some(actor),
        created_at,
        updated_at,
        search_version,
    }))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<PaymentRow>> {
    Ok(
        sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM payments WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Locks a payment for the rest of `tx`.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?)
}

pub async fn set_status(tx: &mut PgConnection, id: Uuid, status: PaymentStatus, failure_reason: Option<&str>) -> Result<PaymentRow> {
    Ok(sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $2, failure_reason = coalesce($3, failure_reason), updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status.as_str())
    .bind(failure_reason)
    .fetch_one(tx)
    .await?)
}

/// An account's payments, most recently received first, after a keyset position.
pub async fn for_account(pool: &PgPool, account_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE account_id = $1
           AND ($2::timestamptz IS NULL OR (received_at, id) < ($2, $3))
         ORDER BY received_at DESC, id DESC LIMIT $4"
    )))
    .bind(account_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn count_for_account(pool: &PgPool, account_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM payments WHERE account_id = $1")
        .bind(account_id)
        .fetch_one(pool)
        .await?)
}

/// Documents of the payments that still exist among `ids` (what the worker indexes).
pub async fn documents(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PaymentDoc>> {
    let rows = sqlx::query_as::<_, DocRow>(sqlx::AssertSqlSafe(format!("{DOC_SELECT} WHERE p.id = ANY($1)")))
        .bind(ids)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(DocRow::into_doc).collect()
}

/// The next `limit` documents after `after` and up to `last` in id order (backfill).
pub async fn page_by_id(pool: &PgPool, after: Option<Uuid>, last: Uuid, limit: i64) -> Result<Vec<PaymentDoc>> {
    let rows = sqlx::query_as::<_, DocRow>(sqlx::AssertSqlSafe(format!(
        "{DOC_SELECT} WHERE ($1::uuid IS NULL OR p.id > $1) AND p.id <= $2 ORDER BY p.id LIMIT $3"
    )))
    .bind(after)
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(DocRow::into_doc).collect()
}

pub async fn max_id(pool: &PgPool) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM payments ORDER BY id DESC LIMIT 1")
        .fetch_optional(pool)
        .await?)
}

pub async fn count_all(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM payments").fetch_one(pool).await?)
}

pub async fn versions(pool: &PgPool) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as("SELECT id, search_version FROM payments").fetch_all(pool).await?)
}

pub async fn versions_of(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as("SELECT id, search_version FROM payments WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?)
}
