//! Payments: record one (with its idempotency key), move one along the state machine,
//! and the simulated processor; the rules of each, whichever adapter calls them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::document::PaymentDoc;
use crate::domain::money::{Currency, CurrencyAmount};
use crate::domain::payment::{CreatePayment, MAX_FAILURE_REASON_LEN, Method, NewPayment, PatchPayment, PaymentStatus, SimulatedOutcome};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{AgentFilter, PaymentQuery};
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::payments::{self as payment_list, PaymentStats};
use crate::search::{SearchIndex, SearchPage};
use crate::service::Window;
use crate::service::accounts::{get_for, readable, readable_as};
use crate::service::idempotency::{self, Replay};
use crate::service::portfolios;
use crate::store;
use crate::store::accounts::{self, AccountRow};
use crate::store::payment_writer::PaymentWriter;
use crate::store::payments::{self, Checked, Insert, PaymentRow};

/// How long a simulated "delay" keeps a payment pending.
const SIMULATED_DELAY: Duration = Duration::from_secs(1);
const IDEMPOTENCY_SCOPE: &str = "payment";

/// A payment as the API shows it, read from SQL or found in the index.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub method: Method,
    pub status: PaymentStatus,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub failure_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub search_version: i64,
    /// Present on search hits only: the account fields the payment was found by.
    #[serde(flatten)]
    #[schema(value_type = FoundBy)]
    pub found_by: Option<FoundBy>,
}

/// The account fields a search hit carries beside its payment (not on reads from SQL).
#[derive(Serialize, utoipa::ToSchema)]
pub struct FoundBy {
    #[schema(required = false)]
    pub account_number: String,
    #[schema(required = false)]
    pub debtor_name: String,
    #[schema(required = false)]
    pub assigned_agent_id: Option<Uuid>,
}

impl From<PaymentRow> for PaymentView {
    fn from(row: PaymentRow) -> Self {
        Self {
            amount: row.currency.format(row.amount),
            currency: row.currency.code().to_owned(),
            method: row.method,
            status: row.status,
            id: row.id,
            account_id: row.account_id,
            reference: row.reference,
            received_at: row.received_at,
            failure_reason: row.failure_reason,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            search_version: row.search_version,
            found_by: None,
        }
    }
}

impl From<PaymentDoc> for PaymentView {
    fn from(doc: PaymentDoc) -> Self {
        let CurrencyAmount { currency, amount } = CurrencyAmount::new(&doc.currency, doc.amount);
        Self {
            amount,
            currency,
            method: doc.method,
            status: doc.status,
            id: doc.id,
            account_id: doc.account_id,
            reference: doc.reference,
            received_at: doc.received_at,
            failure_reason: doc.failure_reason,
            created_by: doc.created_by,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            search_version: doc.search_version,
            found_by: Some(FoundBy {
                account_number: doc.account_number,
                debtor_name: doc.debtor_name,
                assigned_agent_id: doc.assigned_agent_id,
            }),
        }
    }
}

fn request_hash(account_id: Uuid, body: &CreatePayment) -> Result<Vec<u8>> {
    let canonical = serde_json::to_vec(&(account_id, body)).map_err(anyhow::Error::from)?;
    Ok(Sha256::digest(canonical).to_vec())
}

fn overpayment(amount: Decimal, balance: Decimal, currency: Currency) -> Error {
    Error::with_fields(
        Code::Overpayment,
        format!(
            "{} {code} exceeds the current balance of {} {code}: the excess can be accepted as a credit",
            currency.format(amount),
            currency.format(balance),
            code = currency.code()
        ),
        vec![FieldError::new("amount", "exceeds the current balance")],
    )
}

/// 422 unless a completed payment of `amount` fits the balance (or overpaying is allowed).
fn check_overpayment(account: &AccountRow, amount: Decimal, allowed: bool, currency: Currency) -> Result<()> {
    if allowed || amount <= account.current_balance {
        Ok(())
    } else {
        Err(overpayment(amount, account.current_balance, currency))
    }
}

/// The recorded payment with its account's version after it, or why its account refused it.
fn recorded(amount: Decimal, currency: Currency, checked: Checked) -> Result<(PaymentRow, i64)> {
    match checked {
        Checked::Inserted { payment, account_version } => Ok((payment, account_version)),
        Checked::NoAccount => Err(Error::not_found("account")),
        Checked::Refused {
            currency: account_currency,
            balance,
        } => {
            if account_currency != currency.code() {
                return Err(Error::with_fields(
                    Code::CurrencyMismatch,
                    format!(
                        "the account is in {account_currency}; a payment in {} cannot be applied to it",
                        currency.code()
                    ),
                    vec![FieldError::new("currency", format!("must be {account_currency}"))],
                ));
            }
            Err(overpayment(amount, balance, currency))
        }
    }
}

/// What recording a payment did.
pub enum Recorded {
    /// Recorded now, with its account's version after it.
    Fresh { payment: PaymentRow, account_version: i64 },
    /// The same keyed request was recorded before: its answer.
    Replayed(Replay),
}

/// Records a payment on `account_id` for `caller`: anyone who works accounts may take
/// a payment on any account (a debtor calls whoever answers). Without a key it is written together
/// with the payments recorded at the same moment (group commit); with one, the key is
/// claimed and the answer kept in the payment's own transaction.
pub async fn record(
    pool: &PgPool,
    writer: &PaymentWriter,
    caller: &Principal,
    account_id: Uuid,
    key: Option<&str>,
    body: CreatePayment,
) -> Result<Recorded> {
    caller.require(Action::WorkAccount)?;
    idempotency::check_key(key)?;
    // Only a keyed request is compared with an earlier one.
    let hash = key.map(|_| request_hash(account_id, &body)).transpose()?;
    let insert = Insert {
        id: Uuid::now_v7(),
        account_id,
        payment: body.validate(Utc::now()).map_err(Error::validation)?,
        actor: caller.user_id,
    };
    let (amount, currency, insert_id) = (insert.payment.amount, insert.payment.currency, insert.id);
    // A debtor calls whoever answers, within the portfolios the agent works.
    let portfolio = accounts::portfolio_of(pool, account_id).await?;
    if portfolio.is_some() && !portfolios::in_scope(&mut *pool.acquire().await?, caller, portfolio).await? {
        return Err(Error::not_found("account"));
    }
    let Some(key) = key else {
        let (payment, account_version) = recorded(amount, currency, writer.insert(insert).await?)?;
        tracing::info!(payment_id = %insert_id, "payment recorded");
        return Ok(Recorded::Fresh { payment, account_version });
    };
    let hash = hash.unwrap_or_default();
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    if let Some(first) = idempotency::claim(&mut tx, caller, IDEMPOTENCY_SCOPE, Some(key), &hash).await? {
        return Ok(Recorded::Replayed(first));
    }
    let (payment, account_version) = record_in(&mut tx, &insert).await?;
    let view = serde_json::to_value(PaymentView::from(payment.clone())).map_err(anyhow::Error::from)?;
    idempotency::record(&mut tx, caller, IDEMPOTENCY_SCOPE, Some(key), 201, &view).await?;
    tx.commit().await?;
    tracing::info!(payment_id = %insert_id, "payment recorded");
    Ok(Recorded::Fresh { payment, account_version })
}

/// Records `insert` inside `tx` (which may hold its account locked already), alone.
async fn record_in(tx: &mut PgConnection, insert: &Insert) -> Result<(PaymentRow, i64)> {
    let mut checked = payments::insert_checked(tx, std::slice::from_ref(insert)).await?;
    recorded(insert.payment.amount, insert.payment.currency, checked.remove(0))
}

/// Records `payment` for `caller` on the account `account_id` inside `tx`, as part of a
/// larger write (a wrap-up): the payment, or why the account refused it.
pub async fn record_within(tx: &mut PgConnection, caller: &Principal, account_id: Uuid, payment: NewPayment) -> Result<PaymentRow> {
    let insert = Insert {
        id: Uuid::now_v7(),
        account_id,
        payment,
        actor: caller.user_id,
    };
    Ok(record_in(tx, &insert).await?.0)
}

/// Moves a payment to the status `patch` asks for: the payment and its account's new
/// version.
pub async fn change_status(pool: &PgPool, caller: &Principal, id: Uuid, patch: PatchPayment) -> Result<(PaymentRow, i64)> {
    caller.require(Action::WorkAccount)?;
    let reason = patch.failure_reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        if patch.status != PaymentStatus::Failed {
            return Err(Error::field("failure_reason", "only a failed payment has a failure reason"));
        }
        if reason.chars().count() > MAX_FAILURE_REASON_LEN {
            return Err(Error::field(
                "failure_reason",
                format!("must be at most {MAX_FAILURE_REASON_LEN} characters"),
            ));
        }
    }
    transition(pool, id, Some(caller), patch.status, reason).await
}

/// Moves a payment to `next` under the account's and the payment's locks, enforcing
/// the state machine, the roles and the balance. `caller` is `None` for the simulated
/// processor acting on its own.
async fn transition(
    pool: &PgPool,
    id: Uuid,
    caller: Option<&Principal>,
    next: PaymentStatus,
    failure_reason: Option<&str>,
) -> Result<(PaymentRow, i64)> {
    let account_id = payments::get(pool, id)
        .await?
        .ok_or_else(|| Error::not_found("payment"))?
        .account_id;
    let mut tx = match caller {
        Some(caller) => store::begin_as(pool, caller.user_id).await?,
        None => pool.begin().await?,
    };
    // Account first, then payment: the order every payment write takes.
    let account = accounts::lock_including_deleted(&mut tx, account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    if let Some(caller) = caller
        && !portfolios::in_scope(&mut tx, caller, account.portfolio_id).await?
    {
        return Err(Error::not_found("payment"));
    }
    let payment = payments::lock(&mut tx, id).await?.ok_or_else(|| Error::not_found("payment"))?;
    if let Some(caller) = caller {
        // The processor still settles a deleted account's payments; people read and
        // change them no more than they read them (404, as `GET /payments/{id}`).
        if account.deleted_at.is_some() {
            return Err(Error::not_found("payment"));
        }
        caller.require_work_on(account.assigned_agent_id)?;
        if next.is_reversal() {
            caller.require(Action::ReversePayment)?;
        }
    }
    let current = payment.status;
    if !current.can_become(next) {
        let allowed: Vec<&str> = current.allowed_next().iter().map(|s| s.as_str()).collect();
        let detail = if allowed.is_empty() {
            format!("a {} payment cannot change status", current.as_str())
        } else {
            format!("a {} payment can only become {}", current.as_str(), allowed.join(" or "))
        };
        return Err(Error::with_fields(
            Code::InvalidTransition,
            detail,
            vec![FieldError::new(
                "status",
                format!("cannot go from {} to {}", current.as_str(), next.as_str()),
            )],
        )
        .with_extension("allowed", serde_json::json!(allowed)));
    }
    if next == PaymentStatus::Completed {
        check_overpayment(&account, payment.amount, payment.allow_overpayment, payment.currency)?;
    }
    let row = payments::set_status(&mut tx, id, next, failure_reason).await?;
    let account_version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(payment_id = %id, from = current.as_str(), to = next.as_str(), "payment status changed");
    Ok((row, account_version))
}

/// What a simulated processor did.
pub enum Simulated {
    /// Settled or declined now.
    Now(PaymentRow),
    /// Still pending; it settles in a moment.
    Later(PaymentRow),
}

/// A mock processor for demos: settles or declines a pending payment now, or later.
pub async fn simulate(pool: &PgPool, caller: &Principal, id: Uuid, outcome: SimulatedOutcome) -> Result<Simulated> {
    caller.require(Action::WorkAccount)?;
    let (next, reason) = match outcome {
        SimulatedOutcome::Success => (PaymentStatus::Completed, None),
        SimulatedOutcome::Failure => (PaymentStatus::Failed, Some("card_declined")),
        SimulatedOutcome::Delay => {
            let row = payments::get(pool, id).await?.ok_or_else(|| Error::not_found("payment"))?;
            let account = get_for(pool, caller, row.account_id, "account").await?;
            caller.require_work_on(account.assigned_agent_id)?;
            let current = row.status;
            if current != PaymentStatus::Pending {
                let allowed: Vec<&str> = current.allowed_next().iter().map(|s| s.as_str()).collect();
                return Err(Error::new(
                    Code::InvalidTransition,
                    format!("only a pending payment can be simulated; this one is {}", current.as_str()),
                )
                .with_extension("allowed", serde_json::json!(allowed)));
            }
            let pool = pool.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SIMULATED_DELAY).await;
                if let Err(err) = transition(&pool, id, None, PaymentStatus::Completed, None).await {
                    tracing::warn!(payment_id = %id, error = %err, "simulated settlement did not apply");
                }
            });
            return Ok(Simulated::Later(row));
        }
    };
    let (row, _) = transition(pool, id, Some(caller), next, reason).await?;
    Ok(Simulated::Now(row))
}

/// The payments of `account_id` from SQL, newest first, and how many it holds.
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<PaymentRow>, i64)> {
    readable(pool, caller, account_id).await?;
    let rows = payments::for_account(pool, account_id, window.after, window.limit).await?;
    Ok((rows, payments::count_for_account(pool, account_id).await?))
}

/// The payment `id` of a live account.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<PaymentRow> {
    caller.require(Action::ReadAccounts)?;
    let row = payments::get_visible(pool, id).await?.ok_or_else(|| Error::not_found("payment"))?;
    readable_as(pool, caller, row.account_id, "payment").await?;
    Ok(row)
}

/// The index query `raw` (the payments list grammar) asks for `caller`, limited to the
/// payments of the accounts `caller` sees by their portfolio and, for an agent, of the
/// accounts assigned to them (what they read by id): asking for another agent's or the
/// unassigned accounts' payments is refused.
pub async fn query(pool: &PgPool, caller: &Principal, raw: &str) -> Result<PaymentQuery> {
    let mut query = payment_list::parse(raw, caller)?;
    query.portfolio_scope = portfolios::search_scope(pool, caller).await?;
    if !caller.can(Action::ReadAnyAccount) {
        let own = AgentFilter::Agent(caller.user_id);
        if query.agent.is_some_and(|asked| asked != own) {
            return Err(Error::forbidden(
                "an agent reads the payments of the accounts assigned to them only",
            ));
        }
        query.agent = Some(own);
    }
    Ok(query)
}

/// The payments matching `raw` (the payments list grammar) from the index, with the
/// signature of the sort their cursor belongs to.
pub async fn search(pool: &PgPool, index: &dyn SearchIndex, caller: &Principal, raw: &str) -> Result<(SearchPage<PaymentDoc>, String)> {
    caller.require(Action::ReadAccounts)?;
    let query = query(pool, caller, raw).await?;
    let signature = payment_list::sort_signature(query.sort);
    Ok((index.search_payments(query).await?, signature))
}

/// Payment statistics per currency over the local days `raw` asks for, as of `now`, of
/// the payments of the accounts `caller` sees by their portfolio.
pub async fn stats(pool: &PgPool, index: &dyn SearchIndex, caller: &Principal, raw: &str, now: DateTime<Utc>) -> Result<PaymentStats> {
    caller.require(Action::ReadAccounts)?;
    let mut request = payment_list::parse_stats(raw, now)?;
    request.query.portfolio_scope = portfolios::search_scope(pool, caller).await?;
    // Read before the index: a change committed after it cannot be searchable yet when
    // the index answers, so the events after it are changes the answer lacks (the
    // dashboard applies them).
    let last_event_id = super::events::latest_id(pool).await?;
    let stats = index.payment_stats(request.query.clone()).await?;
    Ok(payment_list::stats_view(&request, stats, last_event_id))
}
