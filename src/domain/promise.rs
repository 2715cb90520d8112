//! Promises to pay.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Currency;
use crate::domain::refusal::FieldError;

/// Stored as text (`promises.status`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PromiseStatus {
    Open,
    Kept,
    Broken,
    Cancelled,
}

impl PromiseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Kept => "kept",
            Self::Broken => "broken",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Body of `POST /accounts/{id}/promises`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromise {
    pub amount: String,
    pub due_date: NaiveDate,
}

impl CreatePromise {
    /// `today` is the date in the account's timezone.
    pub fn validate(self, currency: Currency, today: NaiveDate) -> Result<(Decimal, NaiveDate), Vec<FieldError>> {
        let mut errors = Vec::new();
        let amount = match currency.parse_amount(&self.amount) {
            Ok(a) if a.is_zero() => {
                errors.push(FieldError::new("amount", "must be greater than zero"));
                a
            }
            Ok(a) => a,
            Err(message) => {
                errors.push(FieldError::new("amount", message));
                Decimal::ZERO
            }
        };
        if self.due_date < today {
            errors.push(FieldError::new(
                "due_date",
                format!("must not be before today ({today}) in the account's timezone"),
            ));
        }
        if errors.is_empty() {
            Ok((amount, self.due_date))
        } else {
            Err(errors)
        }
    }
}
