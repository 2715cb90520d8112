//! Payments: record, read, change status along the state machine, simulate a
//! processor, search (index) and statistics (index aggregations).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::document::{Entity, PaymentDoc};
use crate::domain::money::Currency;
use crate::domain::payment::{CreatePayment, MAX_FAILURE_REASON_LEN, Method, PatchPayment, PaymentStatus, Simulate, SimulatedOutcome};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent;
use crate::http::indexed::{WaitForIndexed, wait_for, wait_until_indexed};
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, ListPage, respond, with_etag};
use crate::lists::accounts::{encode_cursor, facets_json};
use crate::lists::payments as payment_list;
use crate::state::AppState;
use crate::store::accounts::{self, AccountRow};
use crate::store::payments::{self, Checked, Insert, PaymentRow};

/// How long a simulated "delay" keeps a payment pending.
const SIMULATED_DELAY: Duration = Duration::from_secs(1);
const IDEMPOTENCY_SCOPE: &str = "payment";

#[derive(Serialize)]
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
}

fn currency_of(code: &str) -> Result<Currency> {
    Currency::parse(code).map_err(|e| Error::Internal(anyhow::anyhow!("stored currency {code}: {e}")))
}

impl PaymentView {
    pub fn from_row(row: PaymentRow) -> Result<Self> {
        let currency = currency_of(&row.currency)?;
        Ok(Self {
            method: row.method()?,
            status: row.status()?,
            amount: currency.format(row.amount),
            currency: currency.code().to_owned(),
            id: row.id,
            account_id: row.account_id,
            reference: row.reference,
            received_at: row.received_at,
            failure_reason: row.failure_reason,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            search_version: row.search_version,
        })
    }
}

/// A search hit: the payment and the account fields it was found by.
#[derive(Serialize)]
pub struct PaymentHitView {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub account_number: String,
    pub debtor_name: String,
    pub assigned_agent_id: Option<Uuid>,
}

impl PaymentHitView {
    fn from_doc(doc: PaymentDoc) -> Result<Self> {
        let currency = currency_of(&doc.currency)?;
        Ok(Self {
            payment: PaymentView {
                id: doc.id,
                account_id: doc.account_id,
                amount: currency.format(doc.amount),
                currency: currency.code().to_owned(),
                method: doc.method,
                status: doc.status,
                reference: doc.reference,
                received_at: doc.received_at,
                failure_reason: doc.failure_reason,
                created_by: doc.created_by,
                created_at: doc.created_at,
                updated_at: doc.updated_at,
                search_version: doc.search_version,
            },
            account_number: doc.account_number,
            debtor_name: doc.debtor_name,
            assigned_agent_id: doc.assigned_agent_id,
        })
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let create = warp::path!("accounts" / Uuid / "payments")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(wait_for())
        .and(json_body::<CreatePayment>(limit))
        .then(|id, p, s, k, w, b| async move { respond(create(id, p, s, k, w, b).await) });
    let for_account = warp::path!("accounts" / Uuid / "payments")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|id, p, s, q| async move { respond(for_account(id, p, s, q).await) });
    let search = warp::path!("payments")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|p, s, q| async move { respond(search(p, s, q).await) });
    let stats = warp::path!("payments" / "stats")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|p, s, q| async move { respond(stats(p, s, q).await) });
    let get = warp::path!("payments" / Uuid)
        .and(warp::get())
        .and(caller.clone())
        .then(|id, p, s| async move { respond(get(id, p, s).await) });
    let patch = warp::path!("payments" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(wait_for())
        .and(json_body::<PatchPayment>(limit))
        .then(|id, p, s, w, b| async move { respond(patch(id, p, s, w, b).await) });
    let simulate = warp::path!("payments" / Uuid / "simulate")
        .and(warp::post())
        .and(caller)
        .and(json_body::<Simulate>(limit))
        .then(|id, p, s, b| async move { respond(simulate(id, p, s, b).await) });
    create
        .or(for_account)
        .unify()
        .or(search)
        .unify()
        .or(stats)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(simulate)
        .unify()
        .boxed()
}

fn request_hash(account_id: Uuid, body: &CreatePayment) -> Result<Vec<u8>> {
    let canonical = serde_json::to_vec(&(account_id, body)).map_err(anyhow::Error::from)?;
    Ok(Sha256::digest(canonical).to_vec())
}

fn overpayment(amount: Decimal, balance: Decimal, currency: Currency) -> Error {
    Error::with_fields(
        Code::Overpayment,
        format!(
            "{} exceeds the current balance of {}; send \"allow_overpayment\": true to accept it as a credit",
            currency.format(amount),
            currency.format(balance)
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

/// The recorded payment, or why its account refused it.
fn recorded(caller: &Principal, amount: Decimal, currency: Currency, checked: Checked) -> Result<PaymentRow> {
    match checked {
        Checked::Inserted(row) => Ok(row),
        Checked::NoAccount => Err(Error::not_found("account")),
        Checked::Refused {
            currency: account_currency,
            balance,
            assigned_agent_id,
        } => {
            caller.require_work_on(assigned_agent_id)?;
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

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn create(
    account_id: Uuid,
    caller: Principal,
    state: AppState,
    key: Option<String>,
    wait: WaitForIndexed,
    body: CreatePayment,
) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    idempotent::check_key(key.as_deref())?;
    // Only a keyed request is compared with an earlier one.
    let hash = if key.is_some() {
        request_hash(account_id, &body)?
    } else {
        Vec::new()
    };
    let insert = Insert {
        id: Uuid::now_v7(),
        account_id,
        payment: body.validate(Utc::now()).map_err(Error::validation)?,
        actor: caller.user_id,
        only_agent: (!caller.can(Action::UpdateAnyAccount)).then_some(caller.user_id),
    };
    let row = match &key {
        // Written together with the payments recorded at the same moment (group commit).
        None => {
            let (amount, currency) = (insert.payment.amount, insert.payment.currency);
            recorded(&caller, amount, currency, state.payment_writer().insert(insert).await?)?
        }
        Some(key) => {
            let mut tx = state.pool().begin().await?;
            if let Some(first) = idempotent::claim(&mut tx, &caller, IDEMPOTENCY_SCOPE, Some(key), &hash).await? {
                return Ok(first);
            }
            let mut checked = payments::insert_checked(&mut tx, std::slice::from_ref(&insert)).await?;
            let row = recorded(&caller, insert.payment.amount, insert.payment.currency, checked.remove(0))?;
            let view = serde_json::to_value(PaymentView::from_row(row.clone())?).map_err(anyhow::Error::from)?;
            idempotent::record(&mut tx, &caller, IDEMPOTENCY_SCOPE, Some(key), StatusCode::CREATED, &view).await?;
            tx.commit().await?;
            row
        }
    };
    let (payment_id, version) = (row.id, row.search_version);
    tracing::info!(payment_id = %payment_id, "payment recorded");
    if wait.is_requested() {
        // Read after commit: a later version (another payment meanwhile) only waits longer.
        let account_version = accounts::version(&mut *state.pool().acquire().await?, account_id).await?;
        let documents = [
            (Entity::Payment, payment_id, version),
            (Entity::Account, account_id, account_version),
        ];
        wait_until_indexed(&state, wait, &documents).await?;
    }
    let view = PaymentView::from_row(row)?;
    let mut response = with_etag(api::json(StatusCode::CREATED, &view), version);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/payments/{payment_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn for_account(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let page = PageRequest::from_query(&raw)?;
    accounts::get(state.pool(), account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    let rows = payments::for_account(state.pool(), account_id, page.after, page.fetch()).await?;
    let total = payments::count_for_account(state.pool(), account_id).await?;
    let body = page.finish(rows, total, |p| (p.received_at, p.id), PaymentView::from_row)?;
    Ok(api::json(StatusCode::OK, &body))
}

#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let row = payments::get_visible(state.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("payment"))?;
    let version = row.search_version;
    Ok(with_etag(api::json(StatusCode::OK, &PaymentView::from_row(row)?), version))
}

/// Moves a payment to `next` under the account's and the payment's locks, enforcing
/// the state machine, the roles and the balance. `caller` is `None` for the simulated
/// processor acting on its own.
async fn transition(
    state: &AppState,
    id: Uuid,
    caller: Option<&Principal>,
    next: PaymentStatus,
    failure_reason: Option<&str>,
) -> Result<(PaymentRow, i64)> {
    let account_id = payments::get(state.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("payment"))?
        .account_id;
    let mut tx = state.pool().begin().await?;
    // Account first, then payment: the order every payment write takes.
    let account = accounts::lock_including_deleted(&mut tx, account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    let payment = payments::lock(&mut tx, id).await?.ok_or_else(|| Error::not_found("payment"))?;
    if let Some(caller) = caller {
        caller.require_work_on(account.assigned_agent_id)?;
        if next.is_reversal() {
            caller.require(Action::ReversePayment)?;
        }
    }
    let current = payment.status()?;
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
        check_overpayment(&account, payment.amount, payment.allow_overpayment, currency_of(&payment.currency)?)?;
    }
    let row = payments::set_status(&mut tx, id, next, failure_reason).await?;
    let account_version = accounts::version(&mut tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(payment_id = %id, from = current.as_str(), to = next.as_str(), "payment status changed");
    Ok((row, account_version))
}

#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn patch(id: Uuid, caller: Principal, state: AppState, wait: WaitForIndexed, body: PatchPayment) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    let reason = body.failure_reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        if body.status != PaymentStatus::Failed {
            return Err(Error::field("failure_reason", "only a failed payment has a failure reason"));
        }
        if reason.chars().count() > MAX_FAILURE_REASON_LEN {
            return Err(Error::field(
                "failure_reason",
                format!("must be at most {MAX_FAILURE_REASON_LEN} characters"),
            ));
        }
    }
    let (row, account_version) = transition(&state, id, Some(&caller), body.status, reason).await?;
    wait_until_indexed(
        &state,
        wait,
        &[
            (Entity::Payment, row.id, row.search_version),
            (Entity::Account, row.account_id, account_version),
        ],
    )
    .await?;
    let version = row.search_version;
    Ok(with_etag(api::json(StatusCode::OK, &PaymentView::from_row(row)?), version))
}

/// A mock processor for demos: settles or declines a pending payment now, or later.
#[tracing::instrument(skip_all, fields(payment_id = %id))]
async fn simulate(id: Uuid, caller: Principal, state: AppState, body: Simulate) -> Result<Response> {
    caller.require(Action::WorkAccount)?;
    let (next, reason) = match body.outcome {
        SimulatedOutcome::Success => (PaymentStatus::Completed, None),
        SimulatedOutcome::Failure => (PaymentStatus::Failed, Some("card_declined")),
        SimulatedOutcome::Delay => {
            let row = payments::get(state.pool(), id).await?.ok_or_else(|| Error::not_found("payment"))?;
            let account = accounts::get(state.pool(), row.account_id)
                .await?
                .ok_or_else(|| Error::not_found("account"))?;
            caller.require_work_on(account.assigned_agent_id)?;
            let current = row.status()?;
            if current != PaymentStatus::Pending {
                let allowed: Vec<&str> = current.allowed_next().iter().map(|s| s.as_str()).collect();
                return Err(Error::new(
                    Code::InvalidTransition,
                    format!("only a pending payment can be simulated; this one is {}", current.as_str()),
                )
                .with_extension("allowed", serde_json::json!(allowed)));
            }
            tokio::spawn(async move {
                tokio::time::sleep(SIMULATED_DELAY).await;
                if let Err(err) = transition(&state, id, None, PaymentStatus::Completed, None).await {
                    tracing::warn!(payment_id = %id, error = %err, "simulated settlement did not apply");
                }
            });
            return Ok(api::json(StatusCode::ACCEPTED, &PaymentView::from_row(row)?));
        }
    };
    let (row, _) = transition(&state, id, Some(&caller), next, reason).await?;
    Ok(api::json(StatusCode::OK, &PaymentView::from_row(row)?))
}

#[tracing::instrument(skip_all)]
async fn search(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let query = payment_list::parse(&raw, &caller)?;
    let signature = payment_list::sort_signature(query.sort);
    let page = state.search().search_payments(query).await?;
    let data = page
        .hits
        .into_iter()
        .map(|hit| PaymentHitView::from_doc(hit.doc))
        .collect::<Result<Vec<_>>>()?;
    let body = ListPage {
        data,
        total: page.total,
        next_cursor: page.next.map(|after| encode_cursor(after, &signature)),
        facets: facets_json(&page.facets),
        more: (),
    };
    Ok(api::json(StatusCode::OK, &body))
}

#[tracing::instrument(skip_all)]
async fn stats(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    caller.require(Action::ReadAccounts)?;
    let request = payment_list::parse_stats(&raw, Utc::now())?;
    let stats = state.search().payment_stats(request.query.clone()).await?;
    Ok(api::json(StatusCode::OK, &payment_list::stats_json(&request, stats)?))
}
