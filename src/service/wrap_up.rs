//! The end of a call in one step: the contact with its outcome and next action, and the
//! promise or payment made on it, in one transaction, so a refusal of any part (the guard,
//! an open promise, an overpayment) records none of it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::wrap_up::WrapUp;
use crate::error::{Error, FieldError, Result};
use crate::service::accounts::lock_for;
use crate::service::activities::{self, ActivityRow};
use crate::service::calls;
use crate::service::idempotency::{self, Replay};
use crate::service::payments;
use crate::service::promises::{self, PromiseRow};
use crate::store::payments::PaymentRow;
use crate::store::{self, accounts};

/// The scope of wrap-up idempotency keys.
const IDEMPOTENCY_SCOPE: &str = "wrap_up";

/// What one wrap-up recorded, with the account's currency and version after it.
pub struct WrappedUp {
    pub activity: ActivityRow,
    pub promise: Option<PromiseRow>,
    pub payment: Option<PaymentRow>,
    pub currency: Currency,
    pub account_version: i64,
}

/// What a wrap-up request did.
pub enum Answer {
    Fresh(Box<WrappedUp>),
    /// The same keyed request was recorded before: its answer.
    Replayed(Replay),
}

/// Records `body` on `account_id` for `caller` at `now`: every part or none. With a key,
/// `view` gives the answer kept for a retry. On an account that is not theirs an agent may
/// wrap up an inbound contact and a payment, not a promise or a next action.
pub async fn record(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    key: Option<&str>,
    body: WrapUp,
    now: DateTime<Utc>,
    view: impl FnOnce(&WrappedUp) -> Result<Value>,
) -> Result<Answer> {
    caller.require(Action::WorkAccount)?;
    idempotency::check_key(key)?;
    let hash = key
        .map(|_| serde_json::to_vec(&(account_id, &body)).map(|bytes| Sha256::digest(bytes).to_vec()))
        .transpose()
        .map_err(anyhow::Error::from)?;
    let WrapUp {
        contact,
        promise,
        payment,
        call_id,
    } = body;
    // Everything that needs no account is checked at once, each field named by its part.
    let mut errors: Vec<FieldError> = Vec::new();
    fn within(part: &'static str, found: Vec<FieldError>) -> impl Iterator<Item = FieldError> {
        found
            .into_iter()
            .map(move |e| FieldError::new(format!("{part}.{}", e.field), e.message))
    }
    let activity = contact.validate(now).map_err(|e| errors.extend(within("contact", e))).ok();
    let payment = match payment.map(|p| p.validate(now)) {
        Some(Err(e)) => {
            errors.extend(within("payment", e));
            None
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let Some(activity) = activity.filter(|_| errors.is_empty()) else {
        return Err(Error::validation(errors));
    };
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    if let Some(first) = idempotency::claim(&mut tx, caller, IDEMPOTENCY_SCOPE, key, &hash.unwrap_or_default()).await? {
        return Ok(Answer::Replayed(first));
    }
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    let activity = match call_id {
        Some(call_id) => calls::wrap_up_locked(&mut tx, caller, &account, call_id, &activity, now).await?,
        None => activities::log_locked(&mut tx, caller, &account, &activity, now)
            .await
            .map_err(|e| e.within("contact"))?,
    };
    let promise = match promise {
        Some(p) => Some(
            promises::make_locked(&mut tx, caller, &account, p, now)
                .await
                .map_err(|e| e.within("promise"))?,
        ),
        None => None,
    };
    let payment = match payment {
        Some(p) => Some(
            payments::record_within(&mut tx, caller, account_id, p)
                .await
                .map_err(|e| e.within("payment"))?,
        ),
        None => None,
    };
    let account_version = accounts::version(&mut tx, account_id).await?;
    let done = WrappedUp {
        activity,
        promise,
        payment,
        currency: account.currency,
        account_version,
    };
    if key.is_some() {
        idempotency::record(&mut tx, caller, IDEMPOTENCY_SCOPE, key, 201, &view(&done)?).await?;
    }
    tx.commit().await?;
    tracing::info!(activity_id = %done.activity.id, "call wrapped up");
    Ok(Answer::Fresh(Box::new(done)))
}
