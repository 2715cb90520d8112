//! Validated values and business rules. No I/O lives here.

pub mod account;
pub mod contact;
pub mod money;
pub mod patch;
pub mod role;
pub mod search;
