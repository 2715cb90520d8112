//! Validated values and business rules. No I/O lives here.

pub mod account;
pub mod activity;
pub mod audit_log;
pub mod bulk;
pub mod compliance;
pub mod contact;
pub mod dates;
pub mod device;
pub mod document;
pub mod event;
pub mod job;
pub mod kpi;
pub mod money;
pub mod notification;
pub mod patch;
pub mod payment;
pub mod plan;
pub mod principal;
pub mod privacy;
pub mod promise;
pub mod queue;
pub mod refusal;
pub mod role;
pub mod search;
pub mod timeline;
pub mod wrap_up;
