//! The end of a call: what came of it, and in the same step the promise or payment the
//! debtor made and the next action (docs/features/accounts.md#wrap-up).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::activity::CreateActivity;
use crate::domain::payment::CreatePayment;
use crate::domain::promise::CreatePromise;

/// Body of `POST /accounts/{id}/wrap-up`: all of it is recorded, or none of it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "contact": {"type": "call", "direction": "outbound", "outcome": "promise_to_pay",
                "notes": "Will pay on Friday", "next_action_at": "2026-12-01T15:00:00Z"},
    "promise": {"amount": "120.00", "due_date": "2026-11-27"}
}))]
pub struct WrapUp {
    /// The contact, as `POST /accounts/{id}/activities` takes it; its `next_action_at` is
    /// the next action.
    pub contact: CreateActivity,
    /// A promise to pay made on the call.
    pub promise: Option<CreatePromise>,
    /// A payment taken on the call.
    pub payment: Option<CreatePayment>,
    /// The call this wraps up, placed from the console or popped on it: the contact
    /// completes the activity the call logged (its outcome, notes and next action)
    /// instead of logging another; once per call.
    pub call_id: Option<Uuid>,
}
