//! Files kept with accounts, which the API calls documents: who may upload, list, read,
//! download and delete them, and how an upload becomes a kept file and its row. A file
//! is staged and flushed to disk, renamed into the store, and only then is its row
//! committed; a failure at any step leaves neither.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
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

pub use crate::store::attachments::{AccountUsage, AttachmentRow, KindUsage, Usage};

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
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let row = upload_in(&mut tx, content, caller, account_id, received).await?;
    commit_kept(tx, content, &row).await?;
    Ok(row)
}

/// What [`upload`] does, in the caller's transaction `tx`, which must then be committed
/// by [`commit_kept`]: the file is kept, its row written but not committed.
pub async fn upload_in(
    tx: &mut PgConnection,
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
    // Locked, so two uploads of one content to one account cannot both find no copy.
    let account = lock_for(tx, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    if let Some((existing, existing_name)) = attachments::live_copy(tx, account_id, &sha256).await? {
        return Err(Error::new(
            Code::DuplicateDocument,
            format!("this account already holds this file, as “{existing_name}”"),
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
    let row = attachments::insert(tx, &new).await?;
    content
        .put(&key, staged)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("keeping document {id}: {e}")))?;
    Ok(row)
}

/// Removes the file [`upload_in`] kept for `row`, whose transaction will not commit.
pub async fn discard_kept(content: &dyn ContentStore, row: &AttachmentRow) {
    if let Err(removal) = content.remove(&row.storage_key).await {
        tracing::warn!(document_id = %row.id, error = %removal, "a document whose row was not committed could not be removed");
    }
}

/// Commits the transaction that wrote `row` after its file was kept; the file is removed
/// again if the commit fails, so neither is left without the other.
pub async fn commit_kept(tx: Transaction<'_, Postgres>, content: &dyn ContentStore, row: &AttachmentRow) -> Result<()> {
    if let Err(err) = tx.commit().await {
        discard_kept(content, row).await;
        return Err(err.into());
    }
    tracing::info!(document_id = %row.id, kind = row.kind.as_str(), size = row.size, "document uploaded");
    Ok(())
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

/// What of a document is served to a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Whole,
    /// The bytes from `first` to `last`, both included.
    Range {
        first: u64,
        last: u64,
    },
    /// Its thumbnail: a picture of the document is a read of it too.
    Thumbnail,
}

/// Records in the audit trail that `caller` is reading `row` (`served`), before a byte
/// is sent: a download of the file (or of a range of it), or a view of its thumbnail.
pub async fn record_download(pool: &PgPool, caller: &Principal, row: &AttachmentRow, served: Served) -> Result<()> {
    let mut details = json!({"name": row.name, "size": row.size});
    let action = match served {
        Served::Whole => "document.download",
        Served::Range { first, last } => {
            details["range"] = json!({"first": first, "last": last});
            "document.download"
        }
        Served::Thumbnail => "document.view",
    };
    let mut conn = pool.acquire().await?;
    audit_log::append(
        &mut conn,
        NewEntry {
            actor: Some(caller.user_id),
            address: None,
            action,
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

/// Documents removed per transaction by [`purge_expired`].
const PURGE_BATCH: i64 = 100;

/// Removes the bytes of every document whose retention (`days`) ended before `now` and
/// marks it purged (and deleted), batch by batch, in transactions the audit trail
/// records as the retention scheduler's; returns how many. A file the store fails to
/// remove is left for the next pass. `days` 0 keeps everything.
pub async fn purge_expired(pool: &PgPool, content: &dyn ContentStore, now: DateTime<Utc>, days: u32) -> Result<u64> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut purged = 0;
    loop {
        let mut tx = store::begin_for_job(pool, "scheduler:document_retention", None).await?;
        let expired = attachments::expired(&mut tx, cutoff, PURGE_BATCH).await?;
        let mut removed = Vec::with_capacity(expired.len());
        for (id, key, thumbnail) in &expired {
            let mut gone = content.remove(key).await;
            if let (Ok(()), Some(thumbnail)) = (&gone, thumbnail) {
                gone = content.remove(thumbnail).await;
            }
            match gone {
                Ok(()) => removed.push(*id),
                Err(err) => tracing::warn!(document_id = %id, error = %err, "an expired document's file could not be removed"),
            }
        }
        purged += attachments::mark_purged(&mut tx, &removed).await?;
        tx.commit().await?;
        if removed.is_empty() || (expired.len() as i64) < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// Keys listed and checked against the database at a time by [`remove_orphans`].
const ORPHAN_BATCH: usize = 1000;

/// Removes the files kept over a day ago ([`storage::STALE`], by the store's own clock)
/// that no document row names and no bulk upload holds: what a process stopped between
/// keeping a file and committing its row left behind. Returns how many.
pub async fn remove_orphans(pool: &PgPool, content: &dyn ContentStore) -> Result<u64> {
    let before = std::time::SystemTime::now() - storage::STALE;
    let mut removed = 0;
    let mut after: Option<String> = None;
    loop {
        let keys = content
            .keys_before(before, after.as_deref(), ORPHAN_BATCH)
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("listing the document store: {e}")))?;
        for key in attachments::unreferenced(pool, &keys).await? {
            match content.remove(&key).await {
                Ok(()) => {
                    tracing::info!(key = %key, "a file no document names was removed");
                    removed += 1;
                }
                Err(err) => tracing::warn!(key = %key, error = %err, "a file no document names could not be removed"),
            }
        }
        if keys.len() < ORPHAN_BATCH {
            return Ok(removed);
        }
        after = keys.last().cloned();
    }
}

/// What documents take in the store: live, deleted with their bytes kept, purged (their
/// bytes removed; the size they had).
#[derive(Clone, Copy, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StateUsage {
    pub live: Usage,
    pub deleted: Usage,
    pub purged: Usage,
}

impl StateUsage {
    fn new([live, deleted, purged]: [Usage; 3]) -> Self {
        Self { live, deleted, purged }
    }
}

/// The whole store's use: by state, live documents by kind, the accounts whose live
/// documents take the most, and the retention in force.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StorageReport {
    #[serde(flatten)]
    pub states: StateUsage,
    pub by_kind: Vec<KindUsage>,
    /// The ten accounts whose live documents take the most bytes.
    pub largest_accounts: Vec<AccountUsage>,
    /// `DOCUMENT_RETENTION_DAYS`; 0: kept for ever.
    pub retention_days: u32,
}

/// The accounts a storage report names.
const LARGEST_ACCOUNTS: i64 = 10;

/// The whole store's use, for admins (who see every portfolio's accounts).
pub async fn storage(pool: &PgPool, caller: &Principal, retention_days: u32) -> Result<StorageReport> {
    caller.require(Action::WorkEveryPortfolio)?;
    Ok(StorageReport {
        states: StateUsage::new(attachments::usage_by_state(pool, None).await?),
        by_kind: attachments::usage_by_kind(pool).await?,
        largest_accounts: attachments::largest_accounts(pool, LARGEST_ACCOUNTS).await?,
        retention_days,
    })
}

/// One account's use, for those who read the account in full.
pub async fn account_storage(pool: &PgPool, caller: &Principal, account_id: Uuid) -> Result<StateUsage> {
    readable(pool, caller, account_id).await?;
    Ok(StateUsage::new(attachments::usage_by_state(pool, Some(account_id)).await?))
}
