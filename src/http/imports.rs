//! Imports over HTTP: `POST /imports` takes a spreadsheet (multipart, streamed through
//! multer with explicit limits), reads and stages it, and answers 202 with the job; the
//! rows are applied by the job runner. The rejected rows come back as `errors.xlsx`,
//! ready to fix and upload again.

use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Stream, TryStreamExt};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::job::{JobKind, JobStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::http::filters::{principal, with_state};
use crate::http::idempotent::{accept, replay};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::http::{FileBytes, ListPage};
use crate::import::columns::Column;
use crate::import::write::{error_workbook, template_workbook};
use crate::import::{self, Refusal};
use crate::service::idempotency;
use crate::service::imports::{self as submission, ImportParams, Mode};
use crate::service::jobs::Failure;
use crate::service::jobs::{self as service_jobs, JobView, visible_job};
use crate::state::AppState;
use crate::store::imports;
use crate::store::jobs::JobRow;

const IDEMPOTENCY_SCOPE: &str = "import";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// An import job: the job, plus how the file was read.
#[derive(Serialize, utoipa::ToSchema)]
struct ImportView {
    #[serde(flatten)]
    job: JobView,
    mode: Mode,
    file_name: String,
    format: String,
    sheet: String,
    columns: Vec<ColumnView>,
    unknown_columns: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ColumnView {
    header: String,
    field: Option<&'static str>,
}

impl ImportView {
    fn new(job: JobRow) -> Result<Self> {
        let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
        let columns = params
            .headers
            .iter()
            .zip(&params.mapping.columns)
            .map(|(header, column)| ColumnView {
                header: header.clone(),
                field: column.map(Column::name),
            })
            .collect();
        Ok(Self {
            job: JobView::from(job),
            mode: params.mode,
            file_name: params.file_name,
            format: params.format,
            sheet: params.sheet,
            columns,
            unknown_columns: params.mapping.unknown,
        })
    }
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let upload_limit = state.settings().import_max_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let submit = warp::path!("imports")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(warp::body::stream())
        .then(move |p, s, ct, k, body| async move { respond(submit(p, s, ct, k, body, upload_limit).await) });
    let template = warp::path!("imports" / "template.xlsx")
        .and(warp::get())
        .and(caller.clone())
        .then(|p, s| async move { respond(template(p, s).await) });
    let get = warp::path!("imports" / Uuid)
        .and(warp::get())
        .and(caller.clone())
        .then(|id, p, s| async move { respond(get(id, p, s).await) });
    let errors = warp::path!("imports" / Uuid / "errors")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(|id, p, s, q| async move { respond(errors(id, p, s, q).await) });
    let errors_xlsx = warp::path!("imports" / Uuid / "errors.xlsx")
        .and(warp::get())
        .and(caller)
        .then(|id, p, s| async move { respond(errors_xlsx(id, p, s).await) });
    submit
        .or(template)
        .unify()
        .or(get)
        .unify()
        .or(errors)
        .unify()
        .or(errors_xlsx)
        .unify()
        .boxed()
}

/// The multipart form [`read_upload`] reads, for the API description.
#[derive(utoipa::ToSchema)]
pub struct ImportForm {
    /// The spreadsheet.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// create (the default), upsert or dry_run.
    pub mode: Option<Mode>,
    /// The sheet to read; the first when absent.
    pub sheet: Option<String>,
}

/// What the multipart body held.
struct Upload {
    file_name: String,
    bytes: Vec<u8>,
    mode: Mode,
    sheet: Option<String>,
}

fn too_large(limit: u64) -> Error {
    Error::new(
        Code::PayloadTooLarge,
        match limit % (1024 * 1024) {
            0 => format!("the file exceeds the upload limit of {} MiB", limit / 1024 / 1024),
            _ => format!("the file exceeds the upload limit of {limit} bytes"),
        },
    )
    .with_extension("limit_bytes", json!(limit))
}

fn multipart_error(err: multer::Error, limit: u64) -> Error {
    match err {
        multer::Error::FieldSizeExceeded { field_name, .. } if field_name.as_deref() != Some("file") => {
            Error::field(field_name.as_deref().unwrap_or("field"), "too long")
        }
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => too_large(limit),
        multer::Error::UnknownField { field_name } => Error::field(
            field_name.as_deref().unwrap_or("field"),
            "unknown form field; send `file`, and optionally `mode` and `sheet`",
        ),
        other => Error::new(Code::InvalidParameter, format!("the multipart body is malformed: {other}")),
    }
}

async fn read_upload<S, B>(content_type: Option<String>, body: S, limit: u64) -> Result<Upload>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let boundary = content_type
        .as_deref()
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            Error::new(
                Code::UnsupportedMediaType,
                "send the file as multipart/form-data in the field `file`",
            )
        })?;
    let constraints = multer::Constraints::new().allowed_fields(vec!["file", "mode", "sheet"]).size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit + 64 * 1024)
            .per_field(limit)
            .for_field("mode", 64)
            .for_field("sheet", 1024),
    );
    let stream = body.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut mode = Mode::Create;
    let mut sheet = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(e, limit))? {
        match field.name().unwrap_or_default() {
            "file" => {
                let name = field.file_name().unwrap_or("upload").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((name, bytes));
            }
            "mode" => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                mode = Mode::parse(&text)
                    .ok_or_else(|| Error::field("mode", format!("`{text}` is not a mode; use create, upsert or dry_run")))?;
            }
            _ => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                sheet = Some(text).filter(|s| !s.trim().is_empty());
            }
        }
    }
    let (file_name, bytes) = file.ok_or_else(|| Error::field("file", "send the spreadsheet in the form field `file`"))?;
    Ok(Upload {
        file_name,
        bytes,
        mode,
        sheet,
    })
}

pub fn refusal(refusal: Refusal) -> Error {
    let detail = refusal.to_string();
    match refusal {
        Refusal::Empty | Refusal::NoHeader => Error::field("file", detail),
        Refusal::NotASpreadsheet(_) => Error::new(Code::UnsupportedFile, detail),
        Refusal::PasswordProtected => Error::new(Code::PasswordProtected, detail),
        Refusal::Corrupt(_) | Refusal::Sprawling { .. } => Error::new(Code::CorruptFile, detail),
        Refusal::Inflated => Error::new(Code::InflatedTooLarge, detail).with_extension("limit_bytes", json!(import::MAX_INFLATED_BYTES)),
        Refusal::CellTooLong | Refusal::TooLarge(_) => Error::new(Code::WorkbookTooLarge, detail),
        Refusal::TooManyRows(limit) => Error::new(Code::TooManyRows, detail).with_extension("limit", json!(limit)),
        Refusal::NoSuchSheet { .. } => Error::field("sheet", detail),
    }
}

/// How long an upload waits for a free slot before it is told to come back.
const SLOT_WAIT: Duration = Duration::from_secs(10);

async fn import_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit> {
    let slots = state.import_slots().clone();
    match tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Error::new(
            Code::ServiceUnavailable,
            format!(
                "{} spreadsheets are being read; try again shortly",
                state.settings().import_concurrency
            ),
        )
        .with_retry_after(Duration::from_secs(5))),
    }
}

#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", operation_id = "submit_import",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and file answers the first job")),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "The staged import job, with Location", body = ImportView),
        (status = 403, description = "The role may not create (or, with upsert, update or assign) accounts"),
        (status = 503, description = "`service_unavailable`: every import slot stayed taken for 10 s; `Retry-After` says when to come back"),
    ))]
#[tracing::instrument(skip_all)]
async fn submit<S, B>(
    caller: Principal,
    state: AppState,
    content_type: Option<String>,
    key: Option<String>,
    body: S,
    limit: u64,
) -> Result<Response>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    caller.require(Action::CreateAccount)?;
    idempotency::check_key(key.as_deref())?;
    // Taken before the upload is buffered and held until it is read and checked: the
    // file and what its reader allocates are what all imports together must bound.
    let _slot = import_slot(&state).await?;
    let upload = read_upload(content_type, body, limit).await?;
    if upload.mode != Mode::Create {
        caller.require(Action::UpdateAnyAccount)?;
    }
    let max_rows = state.settings().import_max_rows;
    let Upload {
        file_name,
        bytes,
        mode,
        sheet,
    } = upload;
    let started = std::time::Instant::now();
    // Hashing a 50 MB file, reading it and checking every row take whole seconds of CPU:
    // on the blocking pool, never on the threads that serve other requests.
    let (hash, sheet, prepared) = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        hasher.update(format!("{mode:?}\n{sheet:?}\n"));
        hasher.update(&bytes);
        let hash = hasher.finalize().to_vec();
        let read = import::read(&bytes, sheet.as_deref(), max_rows)?;
        let prepared = submission::prepare(&read, mode);
        Ok::<_, Refusal>((hash, read, prepared))
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(refusal)?;
    let (mapping, duplicates) = prepared.map_err(Error::validation)?;
    if mapping.has(Column::AssignedAgentId) {
        caller.require(Action::AssignAccount)?;
    }
    let params = ImportParams {
        mode,
        actor: caller.user_id,
        region: state.settings().default_phone_region.clone(),
        file_name,
        format: sheet.format.as_str().to_owned(),
        sheet: sheet.name.clone(),
        headers: sheet.headers.clone(),
        mapping,
    };
    let read_ms = started.elapsed().as_millis();
    let mut tx = state.pool().begin().await?;
    if let Some(first) = idempotency::claim(&mut tx, &caller, IDEMPOTENCY_SCOPE, key.as_deref(), &hash).await? {
        return Ok(replay(first));
    }
    let job = submission::stage(&mut tx, &params, &sheet.rows, &duplicates, JobStatus::Queued).await?;
    let view = serde_json::to_value(ImportView::new(job.clone())?).map_err(anyhow::Error::from)?;
    let response = accept(
        tx,
        &caller,
        IDEMPOTENCY_SCOPE,
        key.as_deref(),
        &view,
        &format!("/api/v1/imports/{}", job.id),
    )
    .await?;
    tracing::info!(
        job_id = %job.id,
        rows = sheet.rows.len(),
        format = sheet.format.as_str(),
        read_ms,
        stage_ms = started.elapsed().as_millis() - read_ms,
        "import queued"
    );
    Ok(response)
}

/// An import the caller may see: their own, or any for managers and admins.
async fn visible_import(state: &AppState, caller: &Principal, id: Uuid) -> Result<JobRow> {
    let job = visible_job(state.pool(), caller, id).await.map_err(|e| match e.code() {
        Code::NotFound => Error::not_found("import"),
        _ => e,
    })?;
    if job.kind == JobKind::Import {
        Ok(job)
    } else {
        Err(Error::not_found("import"))
    }
}

#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "get_import",
    params(("id" = Uuid, Path, description = "The import job's id")),
    responses((status = 200, description = "The import job and how its file was read", body = ImportView)))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_import(&state, &caller, id).await?;
    Ok(api::json(StatusCode::OK, &ImportView::new(job)?))
}

#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", operation_id = "list_import_errors",
    params(("id" = Uuid, Path, description = "The import job's id"), PageQuery),
    responses((status = 200, description = "The rejected rows with their errors, in file order", body = ListPage<Failure>)))]
/// The rejected rows with their errors, in file order.
async fn errors(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::<i32>::from_query(&raw)?;
    let job = visible_import(&state, &caller, id).await?;
    let rows = service_jobs::failures(state.pool(), &job, page.after, page.fetch()).await?;
    let body = page.finish(rows, job.failed, |(seq, _)| *seq, |(_, row)| Ok(row))?;
    Ok(api::json(StatusCode::OK, &body))
}

fn xlsx_response(bytes: Vec<u8>, name: &str) -> Response {
    let mut response = warp::reply::Response::new(Bytes::from(bytes).into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(XLSX));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.xlsx", tag = "imports", operation_id = "download_import_errors",
    params(("id" = Uuid, Path, description = "The import job's id")),
    responses((status = 200, description = "The rejected rows as uploaded, plus a column saying what to fix",
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = FileBytes)))]
/// The rejected rows as uploaded, plus a column saying what to fix.
async fn errors_xlsx(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = visible_import(&state, &caller, id).await?;
    let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    let rows = imports::failed_all(state.pool(), job.id).await?;
    let headers = params.headers;
    let bytes = tokio::task::spawn_blocking(move || error_workbook(&headers, &rows))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| Error::Internal(anyhow::anyhow!("writing errors.xlsx: {e}")))?;
    Ok(xlsx_response(bytes, &format!("import-{id}-errors.xlsx")))
}

#[utoipa::path(get, path = "/api/v1/imports/template.xlsx", tag = "imports", operation_id = "download_import_template",
    responses(
        (status = 200, description = "An empty workbook with every column, and a sheet describing them",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = FileBytes),
        (status = 403, description = "The role may not create accounts"),
    ))]
/// An empty workbook with every column, and a sheet describing them.
async fn template(caller: Principal, _state: AppState) -> Result<Response> {
    caller.require(Action::CreateAccount)?;
    let bytes = tokio::task::spawn_blocking(template_workbook)
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| Error::Internal(anyhow::anyhow!("writing template.xlsx: {e}")))?;
    Ok(xlsx_response(bytes, "accounts-template.xlsx"))
}
