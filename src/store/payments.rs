//! Payments. Balances, promise settlement and the outbox follow from the triggers of
//! migration 0003, so every write path keeps them right.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::document::PaymentDoc;
use crate::domain::money::Currency;
use crate::domain::payment::{Method, NewPayment, PaymentStatus};
use crate::error::{Error, Result};
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub currency: Currency,
    pub method: Method,
    pub status: PaymentStatus,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub failure_reason: Option<String>,
    pub allow_overpayment: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub search_version: i64,
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
    account_deleted: bool,
    portfolio_id: Option<Uuid>,
}

impl DocRow {
    fn into_doc(self) -> PaymentDoc {
        let p = self.payment;
        PaymentDoc {
            method: p.method,
            status: p.status,
            id: p.id,
            account_id: p.account_id,
            amount: p.amount,
            currency: p.currency.code().to_owned(),
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
            account_deleted: self.account_deleted,
            portfolio_id: self.portfolio_id,
        }
    }
}

const DOC_SELECT: &str = "SELECT p.id, p.account_id, p.amount, p.currency, p.method, p.status, p.reference, p.received_at, \
     p.failure_reason, p.allow_overpayment, p.created_by, p.created_at, p.updated_at, p.search_version, \
     a.account_number, a.debtor_name, a.assigned_agent_id, a.deleted_at IS NOT NULL AS account_deleted, a.portfolio_id \
     FROM payments p JOIN accounts a ON a.id = p.account_id";

/// A payment to insert under its account's lock.
#[derive(Clone, Debug)]
pub struct Insert {
    /// Chosen by the caller, so a retry of the same insert cannot make a second payment.
    pub id: Uuid,
    pub account_id: Uuid,
    pub payment: NewPayment,
    pub actor: Uuid,
}

/// What [`insert_checked`] found for one insert.
#[derive(Debug)]
pub enum Checked {
    NoAccount,
    /// Recorded, with the account's version after it (its balance changed).
    Inserted {
        payment: PaymentRow,
        account_version: i64,
    },
    /// The account refused the payment: another currency, or a completed amount above
    /// the balance.
    Refused {
        currency: String,
        balance: Decimal,
    },
}

#[derive(FromRow)]
struct CheckedRow {
    currency: Option<String>,
    balance: Option<Decimal>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    search_version: Option<i64>,
}

/// Locks the live accounts (in id order, so two of these never deadlock), checks each
/// payment's currency and balance against its account, and inserts those that
/// pass: one statement, so one round trip and one commit for all of them, race-free
/// under the accounts' locks. At most one insert per account: the balance check reads
/// the balance as it was before the statement. Answers in the order of `inserts`.
#[tracing::instrument(skip_all, fields(payments = inserts.len()))]
pub async fn insert_checked(conn: &mut PgConnection, inserts: &[Insert]) -> Result<Vec<Checked>> {
    let mut accounts: Vec<Uuid> = inserts.iter().map(|i| i.account_id).collect();
    accounts.sort_unstable();
    if accounts.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Internal(anyhow::anyhow!("two payments for one account in one insert")));
    }
    let rows = sqlx::query_as::<_, CheckedRow>(
        "WITH r AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::text[], $5::text[], $6::text[], $7::text[],
                                  $8::timestamptz[], $9::boolean[], $10::uuid[]) WITH ORDINALITY
                 AS r (id, account_id, amount, currency, method, status, reference, received_at, allow_overpayment,
                       created_by, ord)
         ), a AS (
             SELECT id, currency, current_balance FROM accounts
             WHERE id = ANY($2) AND deleted_at IS NULL ORDER BY id FOR UPDATE
         ), ins AS (
             INSERT INTO payments (id, account_id, amount, currency, method, status, reference, received_at, allow_overpayment, created_by)
             SELECT r.id, r.account_id, r.amount, r.currency, r.method, r.status, r.reference, r.received_at,
                    r.allow_overpayment, r.created_by
             FROM r JOIN a ON a.id = r.account_id
             WHERE a.currency = r.currency
               AND (r.status <> 'completed' OR r.allow_overpayment OR a.current_balance >= r.amount)
             ORDER BY r.ord
             RETURNING id, created_at, updated_at, search_version
         )
         SELECT a.currency, a.current_balance AS balance, ins.created_at, ins.updated_at, ins.search_version
         FROM r LEFT JOIN a ON a.id = r.account_id LEFT JOIN ins ON ins.id = r.id
         ORDER BY r.ord",
    )
    .bind(inserts.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.account_id).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.amount).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.currency).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.method).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.status).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.reference.clone()).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.received_at).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.payment.allow_overpayment).collect::<Vec<_>>())
    .bind(inserts.iter().map(|i| i.actor).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() != inserts.len() {
        return Err(Error::Internal(anyhow::anyhow!(
            "{} answers for {} payments",
            rows.len(),
            inserts.len()
        )));
    }
    // The payment triggers changed the accounts after the statement's snapshot: their
    // versions are read by the next statement of the transaction.
    let versions: std::collections::HashMap<Uuid, i64> =
        sqlx::query_as::<_, (Uuid, i64)>("SELECT id, search_version FROM accounts WHERE id = ANY($1)")
            .bind(&accounts)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    Ok(inserts
        .iter()
        .zip(rows)
        .map(|(insert, row)| checked(insert, row, versions.get(&insert.account_id).copied().unwrap_or_default()))
        .collect())
}

fn checked(insert: &Insert, row: CheckedRow, account_version: i64) -> Checked {
    let (Some(currency), Some(balance)) = (row.currency, row.balance) else {
        return Checked::NoAccount;
    };
    let (Some(created_at), Some(updated_at), Some(search_version)) = (row.created_at, row.updated_at, row.search_version) else {
        return Checked::Refused { currency, balance };
    };
    let payment = &insert.payment;
    let payment_row = PaymentRow {
        id: insert.id,
        account_id: insert.account_id,
        amount: payment.amount,
        currency: payment.currency,
        method: payment.method,
        status: payment.status,
        reference: payment.reference.clone(),
        received_at: payment.received_at,
        failure_reason: None,
        allow_overpayment: payment.allow_overpayment,
        created_by: Some(insert.actor),
        created_at,
        updated_at,
        search_version,
    };
    Checked::Inserted {
        payment: payment_row,
        account_version,
    }
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<PaymentRow>> {
    Ok(
        sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM payments WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// A payment whose account is not deleted: what readers may see.
pub async fn get_visible(pool: &PgPool, id: Uuid) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1
         AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = payments.account_id AND a.deleted_at IS NULL)"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
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
    .bind(status)
    .bind(failure_reason)
    .fetch_one(tx)
    .await?)
}

/// An account's payments, most recently received first, after a keyset position.
pub async fn for_account(pool: &PgPool, account_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<PaymentRow>> {
    let query = keyset::rows_where(&format!("SELECT {COLUMNS} FROM payments"), "account_id", Some(account_id));
    NewestFirst::by("received_at", "id").page(pool, query, after, limit).await
}

pub async fn count_for_account(pool: &PgPool, account_id: Uuid) -> Result<i64> {
    keyset::count(
        pool,
        keyset::rows_where("SELECT count(*) FROM payments", "account_id", Some(account_id)),
    )
    .await
}

/// Documents of the payments that still exist among `ids` (what the worker indexes).
pub async fn documents(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PaymentDoc>> {
    let rows = sqlx::query_as::<_, DocRow>(sqlx::AssertSqlSafe(format!("{DOC_SELECT} WHERE p.id = ANY($1)")))
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(DocRow::into_doc).collect())
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
    Ok(rows.into_iter().map(DocRow::into_doc).collect())
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
