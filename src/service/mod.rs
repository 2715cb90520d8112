//! Operations, each taking what it needs, the caller and a validated input and
//! returning domain values: HTTP handlers, CLI commands and jobs call these, so a rule
//! lives here once.

pub mod accounts;
pub mod activities;
pub mod compliance;
pub mod exports;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod kpis;
pub mod payments;
pub mod plans;
pub mod promises;
pub mod queue;
pub mod users;
