//! Imports: what a submission is (its mode and the parameters the job keeps), the
//! checks of a read sheet before anything is written, and staging its rows as a job.
//! The HTTP upload and the CLI both submit through here; `jobs::import` applies them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::custom_field::Catalog;
use crate::domain::job::{JobKind, JobStatus};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::import::columns::{Column, Mapping, template_columns};
use crate::import::write::{error_workbook, template_workbook};
use crate::import::{self, Refusal, RowError};
use crate::import::{Row, Sheet};
use crate::service::jobs::{JobView, Queued, rows_scope, visible_job};
use crate::service::{fields, idempotency};
use crate::store;
use crate::store::imports;
use crate::store::jobs::{self, JobRow};

pub use crate::import::Locale;

const IDEMPOTENCY_SCOPE: &str = "import";

/// An import job: the job, plus how the file was read.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportView {
    #[serde(flatten)]
    job: JobView,
    mode: Mode,
    locale: Option<Locale>,
    file_name: String,
    format: String,
    sheet: String,
    columns: Vec<ColumnView>,
    unknown_columns: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ColumnView {
    header: String,
    /// The built-in field it fills (`portfolio` by name or id), `custom_fields.<key>` for
    /// a custom field, or null when nothing takes it.
    field: Option<String>,
}

impl ImportView {
    pub fn new(job: JobRow) -> Result<Self> {
        let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
        let columns = params
            .headers
            .iter()
            .zip(&params.mapping.columns)
            .enumerate()
            .map(|(i, (header, column))| ColumnView {
                header: header.clone(),
                // Jobs staged before custom fields have no `custom`.
                field: match (column, params.mapping.custom.get(i).and_then(Option::as_ref)) {
                    (Some(column), _) => Some(column.name().to_owned()),
                    (None, Some(key)) => Some(format!("custom_fields.{key}")),
                    (None, None) => None,
                },
            })
            .collect();
        Ok(Self {
            job: JobView::from(job),
            mode: params.mode,
            locale: params.locale,
            file_name: params.file_name,
            format: params.format,
            sheet: params.sheet,
            columns,
            unknown_columns: params.mapping.unknown,
        })
    }
}

/// A caller who may import accounts: [`importer`] made it, so an upload is read only
/// for someone whose role allows imports, and [`submit`] takes no one else.
pub struct Importer<'a>(&'a Principal);

/// `caller` as an [`Importer`], or 403: checked before an upload is read.
pub fn importer(caller: &Principal) -> Result<Importer<'_>> {
    caller.require(Action::CreateAccount)?;
    Ok(Importer(caller))
}

/// A spreadsheet as uploaded, with how to import it.
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub mode: Mode,
    pub sheet: Option<String>,
    /// How the sheet writes amounts; the API's own form when absent.
    pub locale: Option<Locale>,
}

/// The limits and defaults a submission is read with.
pub struct Reading {
    pub max_rows: usize,
    /// Phone numbers without a country code are read in this region.
    pub region: String,
}

/// Reads, checks and stages `upload` as an import job for the importer; the answer is
/// kept under `key`. Hashing a 50 MB file, reading it and checking every row take whole
/// seconds of CPU: on the blocking pool, never on the threads that serve requests.
pub async fn submit(pool: &PgPool, importer: Importer<'_>, key: Option<&str>, upload: Upload, reading: Reading) -> Result<Queued> {
    let caller = importer.0;
    idempotency::check_key(key)?;
    if upload.mode != Mode::Create {
        caller.require(Action::UpdateAnyAccount)?;
    }
    let Upload {
        file_name,
        bytes,
        mode,
        sheet,
        locale,
    } = upload;
    let started = std::time::Instant::now();
    let max_rows = reading.max_rows;
    let catalog = fields::catalog(&mut *pool.acquire().await?).await?;
    let (hash, sheet, prepared) = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        hasher.update(format!("{mode:?}\n{sheet:?}\n"));
        hasher.update(&bytes);
        let hash = hasher.finalize().to_vec();
        let read = import::read_in(&bytes, sheet.as_deref(), max_rows, locale)?;
        let prepared = prepare(&read, mode, &catalog);
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
        region: reading.region,
        locale,
        file_name,
        format: sheet.format.as_str().to_owned(),
        sheet: sheet.name.clone(),
        headers: sheet.headers.clone(),
        mapping,
    };
    let read_ms = started.elapsed().as_millis();
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    if let Some(first) = idempotency::claim(&mut tx, caller, IDEMPOTENCY_SCOPE, key, &hash).await? {
        return Ok(Queued::Replayed(first));
    }
    let job = stage(&mut tx, &params, &sheet.rows, &duplicates, JobStatus::Queued).await?;
    let view = serde_json::to_value(ImportView::new(job.clone())?).map_err(anyhow::Error::from)?;
    idempotency::record(&mut tx, caller, IDEMPOTENCY_SCOPE, key, 202, &view).await?;
    tx.commit().await?;
    tracing::info!(
        job_id = %job.id,
        rows = sheet.rows.len(),
        format = sheet.format.as_str(),
        read_ms,
        stage_ms = started.elapsed().as_millis() - read_ms,
        "import queued"
    );
    Ok(Queued::Fresh(job))
}

/// Why a file cannot be imported, as the problem the uploader gets.
fn refusal(refusal: Refusal) -> Error {
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

/// An import the caller may see: their own, or any for managers and admins.
pub async fn visible(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<JobRow> {
    let job = visible_job(pool, caller, id).await.map_err(|e| match e.code() {
        Code::NotFound => Error::not_found("import"),
        _ => e,
    })?;
    if job.kind == JobKind::Import {
        Ok(job)
    } else {
        Err(Error::not_found("import"))
    }
}

/// The rejected rows of the import `id` as uploaded, plus a column saying what to fix,
/// as a workbook.
pub async fn rejected_workbook(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<Vec<u8>> {
    let job = visible(pool, caller, id).await?;
    rows_scope(pool, caller, &job).await?;
    let params: ImportParams = serde_json::from_value(job.params.0.clone()).map_err(anyhow::Error::from)?;
    let rows = imports::failed_all(pool, job.id).await?;
    let headers = params.headers;
    tokio::task::spawn_blocking(move || error_workbook(&headers, &rows))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| Error::Internal(anyhow::anyhow!("writing errors.xlsx: {e}")))
}

/// An empty workbook with every column, and a sheet describing them, for those who may
/// import.
pub async fn template(pool: &PgPool, caller: &Principal) -> Result<Vec<u8>> {
    caller.require(Action::CreateAccount)?;
    let catalog = fields::catalog(&mut *pool.acquire().await?).await?;
    tokio::task::spawn_blocking(move || template_workbook(&template_columns(&catalog)))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| Error::Internal(anyhow::anyhow!("writing template.xlsx: {e}")))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every row creates an account; an existing account number is an error.
    Create,
    /// Rows whose account number exists update it (non-empty cells only); others create.
    Upsert,
    /// Validate as upsert would, report what would happen, write nothing.
    DryRun,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text.trim() {
            "create" => Some(Mode::Create),
            "upsert" => Some(Mode::Upsert),
            "dry_run" => Some(Mode::DryRun),
            _ => None,
        }
    }

    /// Columns the mode cannot do without.
    fn required(self) -> &'static [&'static [Column]] {
        match self {
            Mode::Create => &[
                &[Column::DebtorName],
                &[Column::Currency],
                &[Column::OriginalBalance, Column::CurrentBalance],
            ],
            Mode::Upsert | Mode::DryRun => &[&[Column::AccountNumber]],
        }
    }
}

/// What the job stores: how to read the staged cells, and who imports them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportParams {
    pub mode: Mode,
    pub actor: Uuid,
    pub region: String,
    /// How the sheet writes amounts (jobs staged before locales have none).
    #[serde(default)]
    pub locale: Option<Locale>,
    pub file_name: String,
    pub format: String,
    pub sheet: String,
    pub headers: Vec<String>,
    pub mapping: Mapping,
}

/// Maps the header, checks the mode's columns, and flags rows that repeat an earlier
/// row's account number (each account once per file, so the outcome never depends on
/// row order). A flagged row is still validated when its chunk runs, and fails with
/// this error and all its others together.
pub fn prepare(sheet: &Sheet, mode: Mode, catalog: &Catalog) -> std::result::Result<(Mapping, Vec<Option<RowError>>), Vec<FieldError>> {
    let mapping = Mapping::new(&sheet.headers, catalog)?;
    mapping.require(mode.required())?;
    let position = mapping.columns.iter().position(|c| *c == Some(Column::AccountNumber));
    let mut first_seen: HashMap<String, u32> = HashMap::new();
    let duplicates = sheet
        .rows
        .iter()
        .map(|row: &Row| {
            // PostgreSQL text cannot hold NUL: the row is refused here, by column, and
            // nothing of it reaches a statement.
            if let Some(at) = row.cells.iter().position(|cell| cell.contains('\0')) {
                return Some(RowError {
                    column: sheet.headers.get(at).cloned().unwrap_or_default(),
                    message: "may not contain the NUL character".to_owned(),
                });
            }
            let index = position?;
            let number = crate::domain::account::account_number(row.cells.get(index)?.trim()).ok()?;
            match first_seen.get(&number) {
                Some(line) => Some(RowError {
                    column: sheet.headers[index].clone(),
                    message: format!("account number {number} is also on row {line}; each account may appear once per file"),
                }),
                None => {
                    first_seen.insert(number, row.line);
                    None
                }
            }
        })
        .collect();
    Ok((mapping, duplicates))
}

/// Creates the job and stages its rows in `tx`.
pub async fn stage(
    tx: &mut PgConnection,
    params: &ImportParams,
    rows: &[Row],
    duplicates: &[Option<RowError>],
    status: JobStatus,
) -> Result<JobRow> {
    let value = serde_json::to_value(params).map_err(anyhow::Error::from)?;
    let job = jobs::insert(&mut *tx, JobKind::Import, status, &value, params.actor, rows.len() as i64).await?;
    imports::stage(&mut *tx, job.id, rows, duplicates).await?;
    Ok(job)
}
