//! Files kept with accounts over HTTP, which the API calls documents:
//! `POST /accounts/{id}/documents` streams one file (multipart, through multer with an
//! explicit limit) to a staging file while its SHA-256 and kind are read, chunk by chunk,
//! never holding it whole; the list, the metadata, the download (one byte range at most)
//! and the soft delete; `POST /documents/bulk` receives a zip the same way and queues the
//! job that keeps its files. Reads come from SQL.

use bytes::Buf;
use chrono::{DateTime, Utc};
use futures_util::{Stream, TryStreamExt};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::domain::attachment::bulk::Limits;
use crate::domain::attachment::kind::{Sniffer, Verdict};
use crate::domain::attachment::{self, Kind, Processing};
use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::http::filters::{principal, with_state};
use crate::http::idempotent::accepted;
use crate::http::multipart;
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::raw_query;
use crate::http::ranges::{self, Requested};
use crate::http::{self as api, FileBytes, ListPage, respond};
use crate::service::attachments::{self as service, AttachmentRow, Received, Served, StateUsage, StorageReport};
use crate::service::document_uploads as uploads;
use crate::service::jobs::JobView;
use crate::state::AppState;
use crate::storage::Staged;

/// A document: a file kept with an account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The name it was uploaded under, as given (up to 255 characters).
    pub name: String,
    /// The name it downloads under: the last part of `name`, control characters
    /// replaced, ending in an extension of its kind.
    pub file_name: String,
    /// Read from the content, never from the name.
    pub kind: Kind,
    /// The media type it is served as.
    pub content_type: String,
    /// In bytes.
    pub size: i64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_by: Option<Uuid>,
    /// What processing read from it.
    pub processing: ProcessingView,
}

/// What processing read from a document: its pages, thumbnail and text.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProcessingView {
    /// `pending` until read; `failed` when it could not be (`error` says why).
    pub status: Processing,
    pub processed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// A PDF's pages.
    pub page_count: Option<i32>,
    /// An image has a thumbnail at `GET /documents/{id}/thumbnail`.
    pub has_thumbnail: bool,
    /// Characters of text read from it (PDF, DOCX, plain text, email), which a search
    /// of accounts finds; 0 when none.
    pub text_chars: i32,
}

impl DocumentView {
    fn new(row: AttachmentRow) -> Self {
        Self {
            file_name: attachment::download_name(&row.name, row.kind),
            id: row.id,
            account_id: row.account_id,
            name: row.name,
            kind: row.kind,
            content_type: row.content_type,
            size: row.size,
            sha256: row.sha256,
            uploaded_by: row.uploaded_by,
            created_at: row.created_at,
            deleted_at: row.deleted_at,
            deleted_by: row.deleted_by,
            processing: ProcessingView {
                status: row.processing,
                processed_at: row.processed_at,
                error: row.processing_error,
                page_count: row.page_count,
                has_thumbnail: row.thumbnail_key.is_some(),
                text_chars: row.text_chars,
            },
        }
    }
}

/// The multipart form an upload sends, for the API description.
#[derive(utoipa::ToSchema)]
pub struct DocumentForm {
    /// The file; its `filename` is kept as the document's name.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().document_max_bytes;
    let bulk_limit = state.settings().document_bulk_max_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let bulk = warp::path!("documents" / "bulk")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(warp::any().map(move || bulk_limit))
        .then(bulk);
    let upload = warp::path!("accounts" / Uuid / "documents")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(warp::any().map(move || limit))
        .then(upload);
    let for_account = warp::path!("accounts" / Uuid / "documents")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(for_account);
    let get = warp::path!("documents" / Uuid).and(warp::get()).and(caller.clone()).then(get);
    let storage = warp::path!("documents" / "storage")
        .and(warp::get())
        .and(caller.clone())
        .then(storage);
    let account_storage = warp::path!("accounts" / Uuid / "documents" / "storage")
        .and(warp::get())
        .and(caller.clone())
        .then(account_storage);
    let content = warp::path!("documents" / Uuid / "content")
        .and(warp::get())
        .and(caller.clone())
        .and(warp::header::optional::<String>("range"))
        .then(content);
    let thumbnail = warp::path!("documents" / Uuid / "thumbnail")
        .and(warp::get())
        .and(caller.clone())
        .then(thumbnail);
    let delete = warp::path!("documents" / Uuid).and(warp::delete()).and(caller).then(delete);
    upload
        .or(bulk)
        .unify()
        .or(for_account)
        .unify()
        .or(get)
        .unify()
        .or(storage)
        .unify()
        .or(account_storage)
        .unify()
        .or(content)
        .unify()
        .or(thumbnail)
        .unify()
        .or(delete)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, bulk, for_account, get, content, thumbnail, delete, storage, account_storage))]
pub struct Api;

fn stored(err: std::io::Error) -> Error {
    Error::Internal(anyhow::anyhow!("staging an upload: {err}"))
}

/// What an upload's limit is called in its 413.
const LIMIT_NAME: &str = "document limit";
/// What a bulk upload's limit is called in its 413.
const BULK_LIMIT_NAME: &str = "bulk document limit";

/// Streams the form's one `file` into a staging file, reading its digest and kind on
/// the way; the staging file is removed if anything fails. Beyond `limit` bytes, the
/// 413 names `limit_name`.
async fn receive<S, B>(state: &AppState, content_type: Option<String>, body: S, limit: u64, limit_name: &str) -> Result<Received>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let boundary = multipart::boundary(content_type.as_deref())?;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["file"])
        .size_limit(multer::SizeLimit::new().whole_stream(limit + 64 * 1024).per_field(limit));
    let stream = body.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let refused = |err: multer::Error| multipart::refusal(err, limit, limit_name, "send the file in the field `file`");
    let mut received = None;
    while let Some(mut field) = multipart.next_field().await.map_err(refused)? {
        if received.is_some() {
            return Err(Error::field("file", "send one file per upload"));
        }
        let name = attachment::stored_name(field.file_name()).map_err(|message| Error::field("file", message))?;
        let mut staged = Staged::create(state.content().staging_dir()).await.map_err(stored)?;
        let (mut sniffer, mut digest) = (Sniffer::default(), Sha256::new());
        while let Some(chunk) = field.chunk().await.map_err(refused)? {
            if staged.size() + chunk.len() as u64 > limit {
                return Err(multipart::too_large(limit, limit_name));
            }
            sniffer.push(&chunk);
            digest.update(&chunk);
            staged.write(&chunk).await.map_err(stored)?;
        }
        staged.finish().await.map_err(stored)?;
        received = Some(Received {
            staged,
            name,
            sha256: hex::encode(digest.finalize()),
            verdict: sniffer.finish(),
        });
    }
    received.ok_or_else(|| Error::field("file", "send the file in the form field `file`"))
}

/// Upload a document to an account
#[utoipa::path(post, path = "/api/v1/accounts/{id}/documents", tag = "documents", operation_id = "upload_document",
    params(("id" = Uuid, Path, description = "The account to keep the file with")),
    request_body(content = DocumentForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The document, with Location; its kind read from the content", body = DocumentView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`duplicate_document`: the account already holds a live document with the same content; `duplicate_of` names it"),
        (status = 413, description = "`payload_too_large`: the file exceeds `DOCUMENT_MAX_BYTES` (`limit_bytes`); nothing is kept"),
        (status = 415, description = "`unsupported_media_type`: not multipart, or the content is none of the kinds kept (`accepted` lists them)"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn upload<S, B>(
    account_id: Uuid,
    caller: Principal,
    state: AppState,
    content_type: Option<String>,
    body: S,
    limit: u64,
) -> Result<Response>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    service::check_uploader(state.pool(), &caller, account_id).await?;
    let received = receive(&state, content_type, body, limit, LIMIT_NAME).await?;
    let row = service::upload(state.pool(), state.content().as_ref(), &caller, account_id, received).await?;
    let location = format!("/api/v1/documents/{}", row.id);
    let mut response = api::json(StatusCode::CREATED, &DocumentView::new(row));
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Upload a zip of documents to the accounts its files name
#[utoipa::path(post, path = "/api/v1/documents/bulk", tag = "documents", operation_id = "upload_documents_in_bulk",
    request_body(content = DocumentForm, content_type = "multipart/form-data",
        description = "`file`: a zip whose files are named by account number (`A-1001.pdf`, or any file in the folder `A-1001/`), or listed in a `manifest.csv` at its root with the columns `file`, `account_number` and optionally `name`"),
    responses(
        (status = 202, description = "The queued `document_upload` job, with Location; each file is kept as its single upload would be, and `GET /jobs/{id}/failures` lists the files refused and why", body = JobView),
        (status = 403, description = "The role may not upload documents"),
        (status = 413, description = "`payload_too_large`: the zip exceeds `DOCUMENT_BULK_MAX_BYTES`, holds more than `DOCUMENT_BULK_MAX_FILES` files, a file larger than `DOCUMENT_MAX_BYTES`, or files adding up to more than four times `DOCUMENT_BULK_MAX_BYTES` uncompressed; nothing is kept"),
        (status = 415, description = "`unsupported_media_type`: not multipart, or the file is not a readable zip"),
        (status = 422, description = "`validation_failed`: a file's name could climb out of the zip (`..`, absolute, a backslash, a drive, a control character), a link, an encrypted file, or a manifest that does not match the zip; nothing is kept"),
    ))]
#[tracing::instrument(skip_all)]
async fn bulk<S, B>(caller: Principal, state: AppState, content_type: Option<String>, body: S, limit: u64) -> Result<Response>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    uploads::check_uploader(&caller)?;
    let received = receive(&state, content_type, body, limit, BULK_LIMIT_NAME).await?;
    if received.verdict != Verdict::Zip {
        return Err(Error::new(Code::UnsupportedMediaType, "send the documents as one zip file"));
    }
    let settings = state.settings();
    let limits = Limits {
        max_files: settings.document_bulk_max_files,
        max_file_bytes: settings.document_max_bytes,
        max_expanded_bytes: settings.document_bulk_max_bytes.saturating_mul(4),
    };
    let job = uploads::submit(state.pool(), state.content().as_ref(), &caller, received.staged, limits).await?;
    let location = format!("/api/v1/jobs/{}", job.id);
    Ok(accepted(&JobView::from(job), &location))
}

/// An account's documents
#[utoipa::path(get, path = "/api/v1/accounts/{id}/documents", tag = "documents", operation_id = "list_account_documents",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's live documents, newest first", body = ListPage<DocumentView>),
        (status = 403, description = "The role may not read this account in full (an agent: not assigned to them)"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn for_account(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::for_account(state.pool(), &caller, account_id, page.window()).await?;
    let body = page.finish(rows, total, |r| (r.created_at, r.id), |r| Ok(DocumentView::new(r)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// What documents take in the store
#[utoipa::path(get, path = "/api/v1/documents/storage", tag = "documents", operation_id = "get_document_storage",
    responses(
        (status = 200, description = "Documents and bytes live, deleted (bytes kept) and purged (bytes removed by retention), live ones by kind, the ten accounts whose live documents take the most, and `DOCUMENT_RETENTION_DAYS`", body = StorageReport),
        (status = 403, description = "Only admins read the whole store's use"),
    ))]
async fn storage(caller: Principal, state: AppState) -> Result<Response> {
    let report = service::storage(state.pool(), &caller, state.settings().document_retention_days).await?;
    Ok(api::json(StatusCode::OK, &report))
}

/// What an account's documents take in the store
#[utoipa::path(get, path = "/api/v1/accounts/{id}/documents/storage", tag = "documents", operation_id = "get_account_document_storage",
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's documents and bytes live, deleted (bytes kept) and purged", body = StateUsage),
        (status = 403, description = "The role may not read this account in full (an agent: not assigned to them)"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn account_storage(account_id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let usage = service::account_storage(state.pool(), &caller, account_id).await?;
    Ok(api::json(StatusCode::OK, &usage))
}

/// Read a document's metadata
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents", operation_id = "get_document",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "The live document", body = DocumentView),
        (status = 403, description = "The role may not read its account in full"),
    ))]
#[tracing::instrument(skip_all, fields(document_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::get(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &DocumentView::new(row)))
}

/// Download a document
#[utoipa::path(get, path = "/api/v1/documents/{id}/content", tag = "documents", operation_id = "download_document",
    params(
        ("id" = Uuid, Path, description = "The document's id"),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-500`); several ranges or another unit are answered with the whole file"),
    ),
    responses(
        (status = 200, description = "The whole file, as its stored content type, with `Content-Disposition: attachment` (RFC 6266 `filename*`) and `Accept-Ranges: bytes`",
            content((FileBytes = "application/pdf"), (FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/heic"),
                (FileBytes = "image/tiff"), (FileBytes = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (FileBytes = "text/plain"),
                (FileBytes = "message/rfc822"))),
        (status = 206, description = "The range asked for, with `Content-Range`",
            content((FileBytes = "application/pdf"), (FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/heic"),
                (FileBytes = "image/tiff"), (FileBytes = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (FileBytes = "text/plain"),
                (FileBytes = "message/rfc822"))),
        (status = 403, description = "The role may not read its account in full"),
        (status = 416, description = "`range_not_satisfiable`: the range starts past the end; `Content-Range: bytes */size`"),
    ))]
#[tracing::instrument(skip_all, fields(document_id = %id))]
async fn content(id: Uuid, caller: Principal, state: AppState, range: Option<String>) -> Result<Response> {
    let row = service::get(state.pool(), &caller, id).await?;
    let size = u64::try_from(row.size).unwrap_or_default();
    let (status, first, last) = match ranges::resolve(range.as_deref(), size) {
        Requested::Whole => (StatusCode::OK, 0, size.checked_sub(1)),
        Requested::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, Some(last)),
        Requested::Unsatisfiable => {
            let mut response = Error::new(
                Code::RangeNotSatisfiable,
                format!("the range asked for starts past the end of the file ({size} bytes)"),
            )
            .with_extension("size", json!(size))
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let part = (status == StatusCode::PARTIAL_CONTENT).then_some((first, last.unwrap_or_default()));
    let served = part.map_or(Served::Whole, |(first, last)| Served::Range { first, last });
    service::record_download(state.pool(), &caller, &row, served).await?;
    let end = last.map_or(0, |last| last + 1);
    let reader = state
        .content()
        .read(&row.storage_key, first..end)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("reading document {id}: {e}")))?;
    let mut response = warp::reply::stream(ReaderStream::new(reader)).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let disposition = attachment::content_disposition(&attachment::download_name(&row.name, row.kind));
    for (name, value) in [
        (header::CONTENT_TYPE, row.content_type.clone()),
        (header::CONTENT_LENGTH, (end - first).to_string()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ] {
        let value = HeaderValue::from_str(&value).map_err(|e| Error::Internal(anyhow::anyhow!("header {name}: {e}")))?;
        headers.insert(name, value);
    }
    if let Some((first, last)) = part {
        let value = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}"))
            .map_err(|e| Error::Internal(anyhow::anyhow!("content range: {e}")))?;
        headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// A document's thumbnail
#[utoipa::path(get, path = "/api/v1/documents/{id}/thumbnail", tag = "documents", operation_id = "get_document_thumbnail",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "A PNG of at most 256 x 256 pixels, made by processing from a PNG, JPEG or TIFF image", content((FileBytes = "image/png"))),
        (status = 403, description = "The role may not read its account in full"),
        (status = 404, description = "No such document, or it has no thumbnail (not an image, or not processed yet)"),
    ))]
#[tracing::instrument(skip_all, fields(document_id = %id))]
async fn thumbnail(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::get(state.pool(), &caller, id).await?;
    let (Some(key), Some(size)) = (row.thumbnail_key.as_deref(), row.thumbnail_size) else {
        return Err(Error::not_found("thumbnail"));
    };
    let size = u64::try_from(size).unwrap_or_default();
    service::record_download(state.pool(), &caller, &row, Served::Thumbnail).await?;
    let reader = state
        .content()
        .read(key, 0..size)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("reading the thumbnail of document {id}: {e}")))?;
    let mut response = warp::reply::stream(ReaderStream::new(reader)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

/// Delete a document
#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "documents", operation_id = "delete_document",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "The document, marked deleted; its row and bytes are kept", body = DocumentView),
        (status = 403, description = "Only managers and admins delete documents"),
    ))]
#[tracing::instrument(skip_all, fields(document_id = %id))]
async fn delete(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::delete(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &DocumentView::new(row)))
}
