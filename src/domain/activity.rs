//! Activities: the append-only record of contact with a debtor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::refusal::FieldError;

/// Stored as text (`activities.type`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ActivityType {
    Call,
    Sms,
    Whatsapp,
    Email,
    Letter,
    Visit,
    Note,
}

/// Stored as text (`activities.direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Stored as text (`activities.outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Outcome {
    RightParty,
    WrongParty,
    NoAnswer,
    LeftMessage,
    Refused,
    PromiseToPay,
    Dispute,
    Paid,
}

/// The wire name of a snake_case enum value (what serde writes).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Parses a wire name back into a snake_case enum value.
pub fn from_wire<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

pub const MAX_NOTES_LEN: usize = 10_000;

/// Body of `POST /accounts/{id}/activities`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    #[serde(rename = "type")]
    pub kind: ActivityType,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
    pub notes: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub next_action_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub kind: ActivityType,
    pub direction: Option<Direction>,
    pub outcome: Option<Outcome>,
    pub notes: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub next_action_at: Option<DateTime<Utc>>,
}

/// How far in the past a client's `occurred_at` may place an activity. It records when
/// the contact happened; the compliance guard judges an outbound attempt at the server's
/// time whatever it says, and counts attempts by when the server recorded them.
pub const MAX_BACKDATE: chrono::Duration = chrono::Duration::hours(24);
/// How far ahead of the server's clock `occurred_at` may be (a client's clock skew).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

impl NewActivity {
    /// A contact the debtor started (a call or message in), which anyone who works
    /// accounts may log on any account.
    pub fn is_inbound_contact(&self) -> bool {
        self.direction == Some(Direction::Inbound) && self.kind != ActivityType::Note
    }
}

impl CreateActivity {
    pub fn validate(self, now: DateTime<Utc>) -> Result<NewActivity, Vec<FieldError>> {
        let mut errors = Vec::new();
        let occurred_at = self.occurred_at.unwrap_or(now);
        if occurred_at > now + MAX_CLOCK_SKEW {
            errors.push(FieldError::new("occurred_at", "must not be in the future"));
        } else if occurred_at < now - MAX_BACKDATE {
            errors.push(FieldError::new(
                "occurred_at",
                "may record at most 24 hours of the past; log contact within a day",
            ));
        }
        let notes = self.notes.filter(|n| !n.trim().is_empty());
        if notes.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTES_LEN) {
            errors.push(FieldError::new("notes", format!("must be at most {MAX_NOTES_LEN} characters")));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewActivity {
            kind: self.kind,
            direction: self.direction,
            outcome: self.outcome,
            notes,
            occurred_at,
            next_action_at: self.next_action_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(wire_name(&Outcome::PromiseToPay), "promise_to_pay");
        assert_eq!(from_wire::<Outcome>("left_message"), Some(Outcome::LeftMessage));
        assert_eq!(from_wire::<ActivityType>("fax"), None);
    }
}
