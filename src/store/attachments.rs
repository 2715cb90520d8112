//! The files kept with accounts, which the API calls documents (`account_documents`,
//! migrations/0042_account_documents.sql): their rows, written in the transaction that
//! records who uploaded or deleted them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::account::AccountStatus;
use crate::domain::attachment::{Kind, Processing};
use crate::domain::document::{FileFacts, MAX_INDEXED_FILES};
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub kind: Kind,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_by: Option<Uuid>,
    pub processing: Processing,
    pub processed_at: Option<DateTime<Utc>>,
    pub processing_error: Option<String>,
    pub page_count: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub thumbnail_size: Option<i32>,
    /// Characters of text processing read (0: none).
    pub text_chars: i32,
}

const COLUMNS: &str = "id, account_id, name, kind, content_type, size, sha256, storage_key, uploaded_by, created_at, deleted_at, deleted_by,
     processing, processed_at, processing_error, page_count, thumbnail_key, thumbnail_size, coalesce(length(text_content), 0) AS text_chars";

/// A file received and kept, to record.
pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: &'a str,
    pub kind: Kind,
    pub size: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub uploaded_by: Uuid,
}

pub async fn insert(conn: &mut PgConnection, new: &NewAttachment<'_>) -> Result<AttachmentRow> {
    let row = sqlx::query_as::<_, AttachmentRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO account_documents (id, account_id, name, kind, content_type, size, sha256, storage_key, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(new.id)
    .bind(new.account_id)
    .bind(new.name)
    .bind(new.kind)
    .bind(new.kind.content_type())
    .bind(new.size)
    .bind(new.sha256)
    .bind(new.storage_key)
    .bind(new.uploaded_by)
    .fetch_one(conn)
    .await?;
    Ok(row)
}

/// The live document `id`.
/// The documents `ids`, in that order (those that exist).
pub async fn by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<AttachmentRow>> {
    Ok(sqlx::query_as::<_, AttachmentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM account_documents d JOIN unnest($1::uuid[]) WITH ORDINALITY AS wanted(id, n) USING (id) ORDER BY n"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<AttachmentRow>> {
    let row = sqlx::query_as::<_, AttachmentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM account_documents WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// The live document of `account_id` with the content `sha256` (its id and name), if
/// there is one.
pub async fn live_copy(conn: &mut PgConnection, account_id: Uuid, sha256: &str) -> Result<Option<(Uuid, String)>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM account_documents WHERE account_id = $1 AND sha256 = $2 AND deleted_at IS NULL")
            .bind(account_id)
            .bind(sha256)
            .fetch_optional(conn)
            .await?,
    )
}

const NEWEST_FIRST: NewestFirst = NewestFirst::by("created_at", "id");

/// The live documents of `account_id`, newest first, after a keyset position.
pub async fn page(pool: &PgPool, account_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<AttachmentRow>> {
    let select = format!("SELECT {COLUMNS} FROM account_documents");
    let mut query = keyset::rows_where(&select, "account_id", Some(account_id));
    query.push(" AND deleted_at IS NULL");
    NEWEST_FIRST.page(pool, query, after, limit).await
}

/// How many live documents `account_id` holds.
pub async fn count(pool: &PgPool, account_id: Uuid) -> Result<i64> {
    let mut query = keyset::rows_where("SELECT count(*) FROM account_documents", "account_id", Some(account_id));
    query.push(" AND deleted_at IS NULL");
    keyset::count(pool, query).await
}

/// Marks the live document `id` deleted by `by`; `None` when it is not live.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid, by: Uuid) -> Result<Option<AttachmentRow>> {
    let row = sqlx::query_as::<_, AttachmentRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE account_documents SET deleted_at = now(), deleted_by = $2
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(by)
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Up to `limit` documents whose bytes are still kept though their retention ended at
/// `cutoff`: deleted before it, or of an account deleted before it, or of an account in
/// a status where nothing is owed ([`AccountStatus::is_resolved`]) whose last collection
/// activity (its last change, contact logged or payment recorded) was before it. Work
/// on an account only ever delays its documents' end.
/// Locked, skipping those another pass holds; with their keys (the file's, the
/// thumbnail's).
pub async fn expired(conn: &mut PgConnection, cutoff: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, String, Option<String>)>> {
    let resolved: Vec<String> = AccountStatus::ALL
        .into_iter()
        .filter(|s| s.is_resolved())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT d.id, d.storage_key, d.thumbnail_key FROM account_documents d JOIN accounts a ON a.id = d.account_id
         WHERE d.purged_at IS NULL
           AND (d.deleted_at < $1 OR a.deleted_at < $1
                OR (a.status IN ({}) AND a.updated_at < $1
                    AND NOT EXISTS (SELECT 1 FROM activities c WHERE c.account_id = a.id AND c.created_at >= $1)
                    AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.account_id = a.id AND p.created_at >= $1)))
         ORDER BY d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED",
        resolved.join(", ")
    )))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Marks the documents `ids`, whose bytes (and thumbnails) were removed, purged (and
/// deleted, if live); the text processing read goes with them.
pub async fn mark_purged(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE account_documents SET purged_at = now(), deleted_at = coalesce(deleted_at, now()),
                text_content = NULL, thumbnail_key = NULL, thumbnail_size = NULL
         WHERE id = ANY($1) AND purged_at IS NULL",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// How many documents and bytes.
#[derive(Clone, Copy, Debug, Default, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub documents: i64,
    pub bytes: i64,
}

/// Documents of one kind, live.
#[derive(Clone, Debug, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct KindUsage {
    pub kind: Kind,
    pub documents: i64,
    pub bytes: i64,
}

/// An account's live documents.
#[derive(Clone, Debug, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AccountUsage {
    pub account_id: Uuid,
    pub account_number: String,
    pub documents: i64,
    pub bytes: i64,
}

/// What the store holds in each state: live, deleted with bytes still kept, purged
/// (bytes removed, size as it was).
pub async fn usage_by_state(pool: &PgPool, account_id: Option<Uuid>) -> Result<[Usage; 3]> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT CASE WHEN purged_at IS NOT NULL THEN 'purged' WHEN deleted_at IS NOT NULL THEN 'deleted' ELSE 'live' END AS state,
                count(*), coalesce(sum(size), 0)::bigint
         FROM account_documents WHERE $1::uuid IS NULL OR account_id = $1 GROUP BY 1",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    let of = |state: &str| {
        rows.iter()
            .find(|r| r.0 == state)
            .map(|r| Usage {
                documents: r.1,
                bytes: r.2,
            })
            .unwrap_or_default()
    };
    Ok([of("live"), of("deleted"), of("purged")])
}

/// Live documents by kind, the most bytes first.
pub async fn usage_by_kind(pool: &PgPool) -> Result<Vec<KindUsage>> {
    Ok(sqlx::query_as(
        "SELECT kind, count(*) AS documents, sum(size)::bigint AS bytes FROM account_documents
         WHERE deleted_at IS NULL GROUP BY kind ORDER BY bytes DESC, kind",
    )
    .fetch_all(pool)
    .await?)
}

/// The `limit` accounts whose live documents take the most bytes.
pub async fn largest_accounts(pool: &PgPool, limit: i64) -> Result<Vec<AccountUsage>> {
    Ok(sqlx::query_as(
        "SELECT d.account_id, a.account_number, count(*) AS documents, sum(d.size)::bigint AS bytes
         FROM account_documents d JOIN accounts a ON a.id = d.account_id
         WHERE d.deleted_at IS NULL GROUP BY d.account_id, a.account_number
         ORDER BY bytes DESC, d.account_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Of `keys`, those no document row names (as its file or its thumbnail) and no bulk
/// upload still holds as its zip.
pub async fn unreferenced(pool: &PgPool, keys: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "WITH zips AS (SELECT params->>'zip_key' AS key FROM jobs WHERE kind = 'document_upload' AND params ? 'zip_key')
         SELECT k FROM unnest($1::text[]) AS k
         WHERE NOT EXISTS (SELECT 1 FROM account_documents d WHERE d.storage_key = k)
           AND NOT EXISTS (SELECT 1 FROM account_documents d WHERE d.thumbnail_key = k)
           AND NOT EXISTS (SELECT 1 FROM zips WHERE zips.key = k)",
    )
    .bind(keys)
    .fetch_all(pool)
    .await?)
}

/// The live documents of the accounts `ids` as their search documents hold them, oldest
/// first, at most [`MAX_INDEXED_FILES`] per account.
pub async fn search_facts(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<FileFacts>>> {
    let rows: Vec<(Uuid, Kind, String, Option<String>)> = sqlx::query_as(
        "SELECT account_id, kind, name, text_content FROM (
             SELECT account_id, kind, name, text_content,
                    row_number() OVER (PARTITION BY account_id ORDER BY created_at, id) AS n
             FROM account_documents WHERE account_id = ANY($1) AND deleted_at IS NULL) held
         WHERE n <= $2 ORDER BY account_id, n",
    )
    .bind(ids)
    .bind(MAX_INDEXED_FILES as i64)
    .fetch_all(conn)
    .await?;
    let mut facts: HashMap<Uuid, Vec<FileFacts>> = HashMap::new();
    for (account_id, kind, name, text) in rows {
        facts.entry(account_id).or_default().push(FileFacts { kind, name, text });
    }
    Ok(facts)
}

/// A document waiting to be processed, claimed by one worker for [`CLAIM_LEASE`].
#[derive(Clone, Debug, FromRow)]
pub struct Pending {
    pub id: Uuid,
    pub kind: Kind,
    pub storage_key: String,
    pub size: i64,
    /// Tries so far, this one included.
    pub processing_attempts: i32,
}

/// How long a claimed document is left to its worker before another takes it (a worker
/// whose process died).
pub const CLAIM_LEASE: &str = "5 minutes";

/// The next live document whose try is due, claimed: its try counted and put off by
/// [`CLAIM_LEASE`], skipping those another worker holds. Uploaders take turns: a
/// document's turn is its place among its uploader's due documents plus the uploader's
/// documents in hand (claimed within the lease and not done), so each uploader's
/// longest-waiting document goes before anyone's second, and one who uploads many files
/// that each take the reader's whole CPU budget delays everyone else's by one file at
/// most, not by all of theirs.
pub async fn claim_pending(pool: &PgPool) -> Result<Option<Pending>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE account_documents SET processing_attempts = processing_attempts + 1,
                process_after = now() + interval '{CLAIM_LEASE}', processing_claimed_at = now()
         WHERE id = (WITH in_hand AS (SELECT uploaded_by, count(*) AS held FROM account_documents
                                      WHERE processing = 'pending' AND deleted_at IS NULL AND process_after > now()
                                        AND processing_claimed_at > now() - interval '{CLAIM_LEASE}'
                                      GROUP BY uploaded_by)
                     SELECT d.id FROM account_documents d
                     JOIN (SELECT p.id, row_number() OVER (PARTITION BY p.uploaded_by ORDER BY p.process_after, p.id)
                                        + coalesce(h.held, 0) AS turn
                           FROM account_documents p
                           LEFT JOIN in_hand h ON h.uploaded_by IS NOT DISTINCT FROM p.uploaded_by
                           WHERE p.processing = 'pending' AND p.deleted_at IS NULL AND p.process_after <= now()) due
                       ON due.id = d.id
                     WHERE d.processing = 'pending' AND d.deleted_at IS NULL AND d.process_after <= now()
                     ORDER BY due.turn, d.process_after, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED)
         RETURNING id, kind, storage_key, size, processing_attempts"
    )))
    .fetch_optional(pool)
    .await?)
}

/// What processing read from a document, to record.
pub struct Processed<'a> {
    pub page_count: Option<i32>,
    /// Empty: none.
    pub text: &'a str,
    /// The thumbnail's key and size.
    pub thumbnail: Option<(&'a str, i32)>,
}

/// Locks the account of document `id` as its search trigger would (`touch_account`),
/// before the document's row is written: a delete locks the account, then the document;
/// a write taking the document first deadlocks with it.
async fn lock_account_of(tx: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query(
        "SELECT 1 FROM accounts WHERE id = (SELECT account_id FROM account_documents WHERE id = $1)
         FOR NO KEY UPDATE",
    )
    .bind(id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records that document `id` was processed; `false` when it was not waiting any more
/// (purged, or recorded by another worker), and nothing was recorded.
pub async fn record_processed(pool: &PgPool, id: Uuid, processed: &Processed<'_>) -> Result<bool> {
    let mut tx = pool.begin().await?;
    lock_account_of(&mut tx, id).await?;
    let done = sqlx::query(
        "UPDATE account_documents SET processing = 'processed', processed_at = now(), process_after = NULL,
                processing_error = NULL, page_count = $2, text_content = nullif($3, ''), thumbnail_key = $4,
                thumbnail_size = $5
         WHERE id = $1 AND processing = 'pending' AND purged_at IS NULL",
    )
    .bind(id)
    .bind(processed.page_count)
    .bind(processed.text)
    .bind(processed.thumbnail.map(|(key, _)| key))
    .bind(processed.thumbnail.map(|(_, size)| size))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Records why processing document `id` failed: tried again after `retry_in` seconds,
/// or, with `None`, failed for good.
pub async fn record_failure(pool: &PgPool, id: Uuid, error: &str, retry_in: Option<i64>) -> Result<()> {
    let error: String = error.chars().take(2000).collect();
    let mut tx = pool.begin().await?;
    lock_account_of(&mut tx, id).await?;
    sqlx::query(
        "UPDATE account_documents SET processing_error = $2,
                processing = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'pending' END,
                process_after = now() + make_interval(secs => $3::bigint)
         WHERE id = $1 AND processing = 'pending'",
    )
    .bind(id)
    .bind(&error)
    .bind(retry_in)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
