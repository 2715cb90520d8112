//! Bulk uploads of documents: a zip received whole, its directory checked
//! ([`crate::domain::attachment::bulk::plan`]) before the job is queued, and each of its
//! files kept as its single upload would be ([`super::attachments::upload_in`]), by
//! the job in `jobs::document_upload`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::attachment::bulk::{self, Entry, Limits, Refusal};
use crate::domain::job::{JobKind, JobStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::storage::{self, ContentStore, Staged};
use crate::store::jobs::{self, JobRow};
use crate::store::{self, document_uploads};

/// What the job needs to know of its submission.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadParams {
    /// Who submitted it: each file is kept as their upload.
    pub actor: Uuid,
    /// Where the zip is kept until the job ends ([`discard_ended_zips`] then removes it
    /// and this key).
    pub zip_key: String,
    pub zip_size: u64,
}

/// 403 unless `caller` may upload documents at all (each file is then checked against
/// its account as a single upload is).
pub fn check_uploader(caller: &Principal) -> Result<()> {
    Ok(caller.require(Action::WorkAccount)?)
}

/// The problem a refused zip answers; a limit it exceeds is named as a single upload's
/// 413 names its own (`limit_bytes`), or `limit_files`.
fn refused(refusal: Refusal) -> Error {
    let detail = refusal.to_string();
    match refusal {
        Refusal::TooLarge { max, .. } | Refusal::Expanded { max } => {
            Error::new(Code::PayloadTooLarge, detail).with_extension("limit_bytes", json!(max))
        }
        Refusal::TooManyFiles { max } => Error::new(Code::PayloadTooLarge, detail).with_extension("limit_files", json!(max)),
        Refusal::NotZip(_) => Error::new(Code::UnsupportedMediaType, detail),
        _ => Error::new(Code::ValidationFailed, detail),
    }
}

/// Checks the staged zip and queues the job that keeps its files; nothing is kept
/// when the zip is refused.
pub async fn submit(pool: &PgPool, content: &dyn ContentStore, caller: &Principal, zip: Staged, limits: Limits) -> Result<JobRow> {
    check_uploader(caller)?;
    let (path, size) = (zip.path().to_owned(), zip.size());
    let entries: Vec<Entry> = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path).map_err(|e| Refusal::NotZip(e.to_string()))?;
        bulk::plan(std::io::BufReader::new(file), size, &limits)
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading a zip's directory: {e}")))?
    .map_err(refused)?;
    let zip_key = storage::key_for(Uuid::now_v7());
    let params = UploadParams {
        actor: caller.user_id,
        zip_key: zip_key.clone(),
        zip_size: size,
    };
    let params = serde_json::to_value(&params).map_err(anyhow::Error::from)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let job = jobs::insert(
        &mut tx,
        JobKind::DocumentUpload,
        JobStatus::Queued,
        &params,
        caller.user_id,
        entries.len() as i64,
    )
    .await?;
    document_uploads::insert(&mut tx, job.id, &entries).await?;
    content
        .put(&zip_key, zip)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("keeping the zip of job {}: {e}", job.id)))?;
    if let Err(err) = tx.commit().await {
        if let Err(removal) = content.remove(&zip_key).await {
            tracing::warn!(error = %removal, "the zip of a job that was not queued could not be removed");
        }
        return Err(err.into());
    }
    tracing::info!(job_id = %job.id, files = entries.len(), size, "document upload queued");
    Ok(job)
}

/// Removes the zips of bulk uploads that ended, the job's own included (a job cancelled
/// before it ran leaves its zip to the next upkeep); returns how many were removed.
pub async fn discard_ended_zips(pool: &PgPool, content: &dyn ContentStore) -> Result<u64> {
    let mut removed = 0;
    for (job, key) in document_uploads::ended_zips(pool).await? {
        match content.remove(&key).await {
            Ok(()) => {
                document_uploads::zip_removed(pool, job).await?;
                removed += 1;
            }
            Err(err) => tracing::warn!(job_id = %job, error = %err, "the zip of an ended document upload could not be removed"),
        }
    }
    Ok(removed)
}
