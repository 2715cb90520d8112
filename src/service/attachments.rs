//! Files kept with accounts, which the API calls documents: who may upload, list, read,
//! download and delete them, and how an upload becomes a kept file and its row. A file
//! is staged and flushed to disk, renamed into the store, and only then is its row
//! committed; a failure at any step leaves neither.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::attachment::Kind;
use crate::domain::attachment::kind::{self, Verdict};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::service::Window;
use crate::service::accounts::{get_for, lock_for, readable, readable_as};
use crate::storage::{self, ContentStore, Staged};
use crate::store;
use crate::store::attachments::{self, NewAttachment};
use crate::store::audit_log::{self, NewEntry};

pub use crate::store::attachments::AttachmentRow;

/// A file received in full: staged and flushed, its name as given, its SHA-256 (hex)
/// and what its bytes said as they streamed past.
pub struct Received {
    pub staged: Staged,
    pub name: String,
    pub sha256: String,
    pub verdict: Verdict,
}

/// 403 or 404 unless `caller` may add documents to `account_id` (works it): asked
/// before the upload is read.
pub async fn check_uploader(pool: &PgPool, caller: &Principal, account_id: Uuid) -> Result<()> {
    caller.require(Action::WorkAccount)?;
    let account = get_for(pool, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    Ok(())
}

fn unsupported() -> Error {
    let accepted: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    Error::new(
        Code::UnsupportedMediaType,
        "the file is not one of the kinds kept with accounts (PDF, PNG, JPEG, HEIC, TIFF, DOCX, XLSX, \
         UTF-8 plain text, an email message); the kind is read from the content, not the name",
    )
    .with_extension("accepted", json!(accepted))
}

/// The kind of the staged file the verdict is about: a zip is opened to look for the
/// OOXML parts.
async fn kind_of(verdict: Verdict, staged: &Staged) -> Result<Kind> {
    match verdict {
        Verdict::Known(kind) => Ok(kind),
        Verdict::Unsupported => Err(unsupported()),
        Verdict::Zip => {
            let (path, size) = (staged.path().to_owned(), staged.size());
            let found = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(path)?;
                kind::ooxml_kind(std::io::BufReader::new(file), size)
            })
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("reading a zip's directory: {e}")))?
            .map_err(|e| Error::Internal(anyhow::anyhow!("reading a zip's directory: {e}")))?;
            found.ok_or_else(unsupported)
        }
    }
}

/// Keeps `received` on `account_id` for `caller`. The same content already live on the
/// account is refused (409 `duplicate_document` naming it in `duplicate_of`), not kept twice.
pub async fn upload(
    pool: &PgPool,
    content: &dyn ContentStore,
    caller: &Principal,
    account_id: Uuid,
    received: Received,
) -> Result<AttachmentRow> {
    let Received {
        staged,
        name,
        sha256,
        verdict,
    } = received;
    if staged.size() == 0 {
        return Err(Error::field("file", "the file is empty"));
    }
    let kind = kind_of(verdict, &staged).await?;
    let size = i64::try_from(staged.size()).map_err(|_| Error::Internal(anyhow::anyhow!("file size out of range")))?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    // Locked, so two uploads of one content to one account cannot both find no copy.
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    if let Some(existing) = attachments::live_copy(&mut tx, account_id, &sha256).await? {
        return Err(Error::new(
            Code::DuplicateDocument,
            format!("this account already holds this file as document {existing}"),
        )
        .with_extension("duplicate_of", json!(existing)));
    }
    let id = Uuid::now_v7();
    let key = storage::key_for(id);
    let new = NewAttachment {
        id,
        account_id,
        name: &name,
        kind,
        size,
        sha256: &sha256,
        storage_key: &key,
        uploaded_by: caller.user_id,
    };
    let row = attachments::insert(&mut tx, &new).await?;
    content
        .put(&key, staged)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("keeping document {id}: {e}")))?;
    if let Err(err) = tx.commit().await {
        if let Err(removal) = content.remove(&key).await {
            tracing::warn!(document_id = %id, error = %removal, "a document whose row was not committed could not be removed");
        }
        return Err(err.into());
    }
    tracing::info!(document_id = %id, kind = kind.as_str(), size, "document uploaded");
    Ok(row)
}

/// The live documents of `account_id`, newest first, and how many it holds: for those
/// who read the account in full (agents: their own accounts).
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<AttachmentRow>, i64)> {
    readable(pool, caller, account_id).await?;
    let rows = attachments::page(pool, account_id, window.after, window.limit).await?;
    let total = attachments::count(pool, account_id).await?;
    Ok((rows, total))
}

/// The live document `id`, for those who read its account in full. One of an account
/// outside the caller's portfolios is answered as if it did not exist.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AttachmentRow> {
    caller.require(Action::ReadAccounts)?;
    let row = attachments::get(pool, id).await?.ok_or_else(|| Error::not_found("document"))?;
    readable_as(pool, caller, row.account_id, "document").await?;
    Ok(row)
}

/// Records in the audit trail that `caller` is downloading `row` (the bytes `range`,
/// both included; `None`: all of them), before a byte is sent.
pub async fn record_download(pool: &PgPool, caller: &Principal, row: &AttachmentRow, range: Option<(u64, u64)>) -> Result<()> {
    let mut details = json!({"name": row.name, "size": row.size});
    if let Some((first, last)) = range {
        details["range"] = json!({"first": first, "last": last});
    }
    let mut conn = pool.acquire().await?;
    audit_log::append(
        &mut conn,
        NewEntry {
            actor: Some(caller.user_id),
            address: None,
            action: "document.download",
            entity: "document",
            entity_id: Some(row.id.to_string()),
            account_id: Some(row.account_id),
            details,
        },
    )
    .await
}

/// Marks the live document `id` deleted (managers and admins); its row and bytes stay.
pub async fn delete(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<AttachmentRow> {
    caller.require(Action::DeleteDocument)?;
    let existing = attachments::get(pool, id).await?.ok_or_else(|| Error::not_found("document"))?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    lock_for(&mut tx, caller, existing.account_id, "document").await?;
    let row = attachments::soft_delete(&mut tx, id, caller.user_id)
        .await?
        .ok_or_else(|| Error::not_found("document"))?;
    tx.commit().await?;
    tracing::info!(document_id = %id, "document deleted");
    Ok(row)
}
