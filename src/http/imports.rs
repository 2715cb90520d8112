//! Imports over HTTP: `POST /imports` takes a spreadsheet (multipart, streamed through
//! multer with explicit limits), reads and stages it, and answers 202 with the job; the
//! rows are applied by the job runner. The rejected rows come back as `errors.xlsx`,
//! ready to fix and upload again.

use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Stream, TryStreamExt};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::http::filters::{principal, with_state};
use crate::http::idempotent::{accepted, replay};
use crate::http::multipart;
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::query::raw_query;
use crate::http::{self as api, respond};
use crate::http::{FileBytes, ListPage};
use crate::service::imports::{self as service, ImportView, Locale, Mode, Reading, Upload};
use crate::service::jobs::{self, Failure, Queued};
use crate::state::AppState;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let upload_limit = state.settings().import_max_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("imports")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(warp::body::stream())
        .and(warp::any().map(move || upload_limit))
        .then(submit)
        .or(warp::path!("imports" / "template.xlsx")
            .and(warp::get())
            .and(caller.clone())
            .then(template))
        .unify()
        .or(warp::path!("imports" / Uuid).and(warp::get()).and(caller.clone()).then(get))
        .unify()
        .or(warp::path!("imports" / Uuid / "errors")
            .and(warp::get())
            .and(caller.clone())
            .and(raw_query())
            .then(errors))
        .unify()
        .or(warp::path!("imports" / Uuid / "errors.xlsx")
            .and(warp::get())
            .and(caller)
            .then(errors_xlsx))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(submit, template, get, errors, errors_xlsx))]
pub struct Api;

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
    /// How the sheet's text cells write amounts (`en-US`: 1,234.56; `de-DE`: 1.234,56;
    /// `fr-FR`: 1 234,56; also en-GB, de-CH, es-ES, it-IT, nl-NL). Typed number cells
    /// need none. When absent, `.` is the decimal separator and a value that reads two
    /// ways (`1,200`) is refused.
    pub locale: Option<String>,
}

/// What the upload's limit is called in its 413.
const LIMIT_NAME: &str = "upload limit";

/// The problem a multipart error of this upload answers.
fn refused(err: multer::Error, limit: u64) -> Error {
    multipart::refusal(err, limit, LIMIT_NAME, "send `file`, and optionally `mode`, `sheet` and `locale`")
}

async fn read_upload<S, B>(content_type: Option<String>, body: S, limit: u64) -> Result<Upload>
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let boundary = multipart::boundary(content_type.as_deref())?;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["file", "mode", "sheet", "locale"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(limit + 64 * 1024)
                .per_field(limit)
                .for_field("mode", 64)
                .for_field("sheet", 1024)
                .for_field("locale", 64),
        );
    let stream = body.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut mode = Mode::Create;
    let mut sheet = None;
    let mut locale = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| refused(e, limit))? {
        match field.name().unwrap_or_default() {
            "file" => {
                let name = field.file_name().unwrap_or("upload").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| refused(e, limit))? {
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((name, bytes));
            }
            "mode" => {
                let text = field.text().await.map_err(|e| refused(e, limit))?;
                mode = Mode::parse(&text)
                    .ok_or_else(|| Error::field("mode", format!("`{text}` is not a mode; use create, upsert or dry_run")))?;
            }
            "locale" => {
                let text = field.text().await.map_err(|e| refused(e, limit))?;
                if !text.trim().is_empty() {
                    locale = Some(Locale::parse(&text).map_err(|message| Error::field("locale", message))?);
                }
            }
            _ => {
                let text = field.text().await.map_err(|e| refused(e, limit))?;
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
        locale,
    })
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

/// Import accounts from a spreadsheet
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
    let importer = service::importer(&caller)?;
    // Taken before the upload is buffered and held until it is read and checked: the
    // file and what its reader allocates are what all imports together must bound.
    let _slot = import_slot(&state).await?;
    let upload = read_upload(content_type, body, limit).await?;
    let reading = Reading {
        max_rows: state.settings().import_max_rows,
        region: state.settings().default_phone_region.clone(),
    };
    match service::submit(state.pool(), importer, key.as_deref(), upload, reading).await? {
        Queued::Fresh(job) => {
            let location = format!("/api/v1/imports/{}", job.id);
            Ok(accepted(&ImportView::new(job)?, &location))
        }
        Queued::Replayed(first) => Ok(replay(first)),
    }
}

/// Read an import job
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "get_import",
    params(("id" = Uuid, Path, description = "The import job's id")),
    responses((status = 200, description = "The import job and how its file was read", body = ImportView)))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let job = service::visible(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &ImportView::new(job)?))
}

#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", operation_id = "list_import_errors",
    params(("id" = Uuid, Path, description = "The import job's id"), PageQuery),
    responses(
        (status = 200, description = "The rejected rows with their errors, in file order", body = ListPage<Failure>),
        (status = 403, description = "`forbidden`: another user's import, whose rows only its maker and admins read"),
    ))]
/// The rejected rows with their errors, in file order.
async fn errors(id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::<i32>::from_query(&raw)?;
    let job = service::visible(state.pool(), &caller, id).await?;
    let (rows, total) = jobs::failures(state.pool(), &caller, &job, page.after, page.fetch()).await?;
    let body = page.finish(rows, total, |(seq, _)| *seq, |(_, row)| Ok(row))?;
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
    responses(
        (status = 200, description = "The rejected rows as uploaded, plus a column saying what to fix",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = FileBytes),
        (status = 403, description = "`forbidden`: another user's import, whose rows only its maker and admins read"),
    ))]
/// The rejected rows as uploaded, plus a column saying what to fix.
async fn errors_xlsx(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let bytes = service::rejected_workbook(state.pool(), &caller, id).await?;
    Ok(xlsx_response(bytes, &format!("import-{id}-errors.xlsx")))
}

#[utoipa::path(get, path = "/api/v1/imports/template.xlsx", tag = "imports", operation_id = "download_import_template",
    responses(
        (status = 200, description = "An empty workbook with every column, and a sheet describing them",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = FileBytes),
        (status = 403, description = "The role may not create accounts"),
    ))]
/// An empty workbook with every column, and a sheet describing them.
async fn template(caller: Principal, state: AppState) -> Result<Response> {
    let bytes = service::template(state.pool(), &caller).await?;
    Ok(xlsx_response(bytes, "accounts-template.xlsx"))
}
