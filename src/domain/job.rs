//! Durable jobs: the work one does and where it stands.

use serde::{Deserialize, Serialize};

/// The work a job does. Stored as text (`jobs.kind`, whose CHECK lists these names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobKind {
    BulkUpdate,
    Import,
    /// A zip of documents kept with the accounts its files name.
    DocumentUpload,
}

impl JobKind {
    /// Every kind of job the runner knows.
    pub const ALL: [JobKind; 3] = [JobKind::BulkUpdate, JobKind::Import, JobKind::DocumentUpload];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::BulkUpdate => "bulk_update",
            JobKind::Import => "import",
            JobKind::DocumentUpload => "document_upload",
        }
    }
}

/// Where a job stands. Stored as text (`jobs.status`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    PartiallyFailed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::PartiallyFailed => "partially_failed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}
