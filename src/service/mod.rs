//! Operations, each taking what it needs, the caller and a validated input and
//! returning domain values: HTTP handlers, CLI commands and jobs call these, so a rule
//! lives here once.

pub mod accounts;
pub mod activities;
pub mod attachments;
pub mod audit_log;
pub mod calls;
pub mod compliance;
pub mod credentials;
pub mod document_processing;
pub mod document_uploads;
pub mod events;
pub mod exports;
pub mod fields;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod kpis;
pub mod messages;
pub mod notifications;
pub mod payments;
pub mod plans;
pub mod portfolios;
pub mod promises;
pub mod queue;
pub mod second_factor;
pub mod sessions;
pub mod system;
pub mod timeline;
pub mod users;
pub mod webhooks;
pub mod wrap_up;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a keyset read of a list starts and how many rows it fetches.
#[derive(Clone, Copy, Debug)]
pub struct Window<P = (DateTime<Utc>, Uuid)> {
    /// The sort key of the last row already read; `None` from the start.
    pub after: Option<P>,
    pub limit: i64,
}
