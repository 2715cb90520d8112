//! Payments: methods, the status state machine, and validation of create bodies.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Currency;
use crate::domain::refusal::FieldError;

/// Stored as text (`payments.method`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Method {
    Card,
    BankTransfer,
    Ach,
    Cash,
    Check,
    DigitalWallet,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Self::Card,
        Self::BankTransfer,
        Self::Ach,
        Self::Cash,
        Self::Check,
        Self::DigitalWallet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::BankTransfer => "bank_transfer",
            Self::Ach => "ach",
            Self::Cash => "cash",
            Self::Check => "check",
            Self::DigitalWallet => "digital_wallet",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Stored as text (`payments.status`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Completed,
    Failed,
    Refunded,
    Reversed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 5] = [Self::Pending, Self::Completed, Self::Failed, Self::Refunded, Self::Reversed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Refunded => "refunded",
            Self::Reversed => "reversed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The state machine: the statuses a payment in `self` may move to.
    pub fn allowed_next(self) -> &'static [PaymentStatus] {
        match self {
            Self::Pending => &[Self::Completed, Self::Failed],
            Self::Completed => &[Self::Refunded, Self::Reversed],
            Self::Failed | Self::Refunded | Self::Reversed => &[],
        }
    }

    pub fn can_become(self, next: PaymentStatus) -> bool {
        self.allowed_next().contains(&next)
    }

    /// Undoing a completed payment gives money back; managers decide that.
    pub fn is_reversal(self) -> bool {
        matches!(self, Self::Refunded | Self::Reversed)
    }
}

/// Statuses a payment may be created in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InitialStatus {
    Pending,
    Completed,
}

impl From<InitialStatus> for PaymentStatus {
    fn from(status: InitialStatus) -> Self {
        match status {
            InitialStatus::Pending => Self::Pending,
            InitialStatus::Completed => Self::Completed,
        }
    }
}

/// Body of `POST /accounts/{id}/payments`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "amount": "150.00",
    "currency": "USD",
    "method": "card",
    "reference": "txn-8812",
    "received_at": "2026-02-01T10:30:00Z",
    "status": "completed"
}))]
pub struct CreatePayment {
    pub amount: String,
    pub currency: String,
    pub method: Method,
    pub reference: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    pub status: Option<InitialStatus>,
    #[serde(default)]
    pub allow_overpayment: bool,
}

/// A create body checked against the account it pays.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub amount: Decimal,
    pub currency: Currency,
    pub method: Method,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub status: PaymentStatus,
    pub allow_overpayment: bool,
}

pub const MAX_REFERENCE_LEN: usize = 200;
pub const MAX_FAILURE_REASON_LEN: usize = 500;

impl CreatePayment {
    /// Checks the fields on their own; that the currency is the account's is checked
    /// against the account, under its lock.
    pub fn validate(self, now: DateTime<Utc>) -> Result<NewPayment, Vec<FieldError>> {
        let mut errors = Vec::new();
        let currency = match Currency::parse(&self.currency) {
            Ok(c) => Some(c),
            Err(message) => {
                errors.push(FieldError::new("currency", message));
                None
            }
        };
        let parsed = match currency {
            Some(c) => c.parse_amount(&self.amount),
            None => Ok(Decimal::ONE),
        };
        let amount = match parsed {
            Ok(a) if a.is_zero() => {
                errors.push(FieldError::new("amount", "must be greater than zero"));
                Decimal::ZERO
            }
            Ok(a) => a,
            Err(message) => {
                errors.push(FieldError::new("amount", message));
                Decimal::ZERO
            }
        };
        let reference = self.reference.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if reference.as_ref().is_some_and(|r| r.chars().count() > MAX_REFERENCE_LEN) {
            errors.push(FieldError::new(
                "reference",
                format!("must be at most {MAX_REFERENCE_LEN} characters"),
            ));
        }
        let received_at = self.received_at.unwrap_or(now);
        if received_at > now + chrono::Duration::minutes(5) {
            errors.push(FieldError::new("received_at", "must not be in the future"));
        }
        let Some(currency) = currency.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(NewPayment {
            amount,
            currency,
            method: self.method,
            reference,
            received_at,
            status: self.status.map_or(PaymentStatus::Completed, PaymentStatus::from),
            allow_overpayment: self.allow_overpayment,
        })
    }
}

/// Body of `PATCH /payments/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPayment {
    pub status: PaymentStatus,
    pub failure_reason: Option<String>,
}

/// Body of `POST /payments/{id}/simulate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Simulate {
    pub outcome: SimulatedOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedOutcome {
    Success,
    Failure,
    Delay,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_allows_exactly_the_documented_moves() {
        use PaymentStatus::*;
        let allowed = [
            (Pending, Completed),
            (Pending, Failed),
            (Completed, Refunded),
            (Completed, Reversed),
        ];
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
    }

    fn body(amount: &str, currency: &str) -> CreatePayment {
        CreatePayment {
            amount: amount.into(),
            currency: currency.into(),
            method: Method::Card,
            reference: None,
            received_at: None,
            status: None,
            allow_overpayment: false,
        }
    }

    #[test]
    fn amounts_follow_the_currency() {
        let now = Utc::now();
        assert!(body("10.50", "USD").validate(now).is_ok());
        assert!(body("10.500", "KWD").validate(now).is_ok());
        for bad in ["0", "0.00", "-5.00", "1.234", "ten"] {
            assert!(body(bad, "USD").validate(now).is_err(), "{bad}");
        }
        let errors = body("1.00", "XYZ").validate(now).unwrap_err();
        assert_eq!(errors[0].field, "currency");
    }
}
