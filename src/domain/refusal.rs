//! What the domain refuses, before any transport gives it a status: a field's value
//! that breaks a rule, and an action the caller's role or assignment does not allow.

use serde::Serialize;

/// One field (or parameter) and why its value was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The caller may not do this; the text says why. Deliberately not a `std::error::Error`,
/// so it cannot be swallowed into an untyped error: whoever receives it decides what
/// the refusal means (a 403, a job row's failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied(pub String);
