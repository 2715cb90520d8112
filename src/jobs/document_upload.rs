//! Keeps the files of a bulk document upload, a few per chunk. The zip is copied from
//! the document store to a staging file for the run; each file is read back bounded
//! ([`bulk::extract`]) into a staging file of its own and kept as the submitter's single
//! upload would be ([`attachments::upload_in`]). The file's row, its entry's outcome and
//! the job's counters are committed in one transaction, the entry locked first: a
//! replayed or doubly run chunk keeps no file twice. A file refused (no such account,
//! not one the submitter works, a duplicate, an unsupported kind, a lie about its size)
//! is recorded with why; a failure of the store or the database is retried as a chunk's.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::attachment::bulk;
use crate::domain::attachment::kind::Sniffer;
use crate::domain::principal::Principal;
use crate::error::{Error, Result};
use crate::jobs::Stop;
use crate::service::attachments::{self, Received};
use crate::service::document_uploads::UploadParams;
use crate::storage::{ContentStore, Staged};
use crate::store::document_uploads::{self, Pending};
use crate::store::jobs::{self, JobRow};
use crate::store::{self, accounts, users};

/// Files per chunk: each is committed on its own; a chunk opens the zip once and stages
/// at most this many files on disk at a time.
const CHUNK: i64 = 10;

/// Where documents are kept, and how large one may be.
#[derive(Clone)]
pub struct Documents {
    pub content: Arc<dyn ContentStore>,
    pub max_file_bytes: u64,
}

pub async fn run(pool: &PgPool, documents: &Documents, job: &JobRow, shutdown: &watch::Receiver<bool>) -> Result<Stop> {
    let params: UploadParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    let zip = fetch(documents.content.as_ref(), &params).await?;
    super::chunks(pool, job.id, shutdown, || run_chunk(pool, documents, job.id, &params, zip.path())).await
}

/// A local copy of the job's zip, which the document store may hold remotely.
async fn fetch(content: &dyn ContentStore, params: &UploadParams) -> Result<Staged> {
    let failed = |e: std::io::Error| Error::Internal(anyhow::anyhow!("fetching the zip {}: {e}", params.zip_key));
    let mut reader = content.read(&params.zip_key, 0..params.zip_size).await.map_err(failed)?;
    let mut staged = Staged::create(content.staging_dir()).await.map_err(failed)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer).await.map_err(failed)?;
        if read == 0 {
            break;
        }
        staged.write(&buffer[..read]).await.map_err(failed)?;
    }
    staged.finish().await.map_err(failed)?;
    Ok(staged)
}

/// The submitter as the files are kept for: their role now, `None` once they may no
/// longer sign in.
async fn uploader(pool: &PgPool, id: Uuid) -> Result<Option<Principal>> {
    Ok(users::by_id(pool, id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .map(|u| Principal {
            role: u.role(),
            user_id: u.id,
            session_id: Uuid::nil(),
            email: u.email,
            name: u.name,
        }))
}

/// Keeps the next chunk's files; returns how many it settled (0: the job is done).
async fn run_chunk(pool: &PgPool, documents: &Documents, job: Uuid, params: &UploadParams, zip: &Path) -> Result<usize> {
    let pending = document_uploads::pending(pool, job, CHUNK).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let uploader = uploader(pool, params.actor).await?;
    let extracted = extract(
        zip.to_owned(),
        documents.content.staging_dir().to_owned(),
        documents.max_file_bytes,
        pending.clone(),
    )
    .await?;
    for (entry, received) in pending.iter().zip(extracted) {
        let kept = match (&uploader, received) {
            (None, _) => Err("the uploader's account is disabled".to_owned()),
            (Some(_), Err(why)) => Err(why),
            (Some(uploader), Ok(received)) => keep(pool, documents.content.as_ref(), job, uploader, entry, received).await?,
        };
        if let Err(why) = kept {
            refuse(pool, job, params.actor, entry.seq, &why).await?;
        }
    }
    Ok(pending.len())
}

/// Reads `entries` out of the zip into staging files, in a blocking thread: each the
/// file received, or why it could not be read.
async fn extract(zip: PathBuf, staging: PathBuf, max: u64, entries: Vec<Pending>) -> Result<Vec<Result<Received, String>>> {
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Result<Received, String>>> {
        let file = std::fs::File::open(zip)?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(std::io::Error::other)?;
        let mut received = Vec::with_capacity(entries.len());
        for entry in entries {
            let (mut staged, mut out) = Staged::create_blocking(&staging)?;
            let (mut sniffer, mut digest) = (Sniffer::default(), Sha256::new());
            let index = usize::try_from(entry.zip_index).unwrap_or(usize::MAX);
            let extracted = bulk::extract(&mut archive, index, max, |chunk| {
                sniffer.push(chunk);
                digest.update(chunk);
                std::io::Write::write_all(&mut out, chunk)
            });
            match extracted {
                Ok(size) => {
                    staged.finish_blocking(out, size)?;
                    received.push(Ok(Received {
                        staged,
                        name: entry.name,
                        sha256: hex::encode(digest.finalize()),
                        verdict: sniffer.finish(),
                    }));
                }
                Err(bulk::ExtractError::Sink(err)) => return Err(err),
                Err(err) => received.push(Err(err.to_string())),
            }
        }
        Ok(received)
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading a zip: {e}")))?
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading a zip: {e}")))
}

fn scope(job: Uuid) -> String {
    format!("document_upload:{job}")
}

/// Keeps one file on the account its entry names, settling the entry in the same
/// transaction; `Err(why)` when the file is refused (a problem a client would be
/// answered), an error when the store or database failed.
async fn keep(
    pool: &PgPool,
    content: &dyn ContentStore,
    job: Uuid,
    uploader: &Principal,
    entry: &Pending,
    received: Received,
) -> Result<std::result::Result<(), String>> {
    let mut tx = store::begin_for_job(pool, &scope(job), Some(uploader.user_id)).await?;
    if !document_uploads::lock(&mut tx, job, entry.seq).await? {
        return Ok(Ok(()));
    }
    let kept = match accounts::id_by_number(&mut tx, &entry.account_number).await? {
        None => Err(Error::not_found("account")),
        Some(account) => attachments::upload_in(&mut tx, content, uploader, account, received).await,
    };
    match kept {
        Ok(row) => {
            let recorded = async {
                document_uploads::settle(&mut tx, job, entry.seq, Some(row.id), None).await?;
                jobs::advance(&mut tx, job, 1, 0).await
            }
            .await;
            if let Err(err) = recorded {
                attachments::discard_kept(content, &row).await;
                return Err(err);
            }
            attachments::commit_kept(tx, content, &row).await?;
            Ok(Ok(()))
        }
        Err(Error::Problem(problem)) => Ok(Err(Error::Problem(problem).to_string())),
        Err(internal) => Err(internal),
    }
}

/// Records that file `seq` was refused for `why`.
async fn refuse(pool: &PgPool, job: Uuid, actor: Uuid, seq: i32, why: &str) -> Result<()> {
    let mut tx = store::begin_for_job(pool, &scope(job), Some(actor)).await?;
    if document_uploads::settle(&mut tx, job, seq, None, Some(why)).await? {
        jobs::advance(&mut tx, job, 1, 1).await?;
    }
    tx.commit().await?;
    Ok(())
}
