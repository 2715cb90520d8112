//! Imports: what a submission is (its mode and the parameters the job keeps), the
//! checks of a read sheet before anything is written, and staging its rows as a job.
//! The HTTP upload and the CLI both submit through here; `jobs::import` applies them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::job::{JobKind, JobStatus};
use crate::error::{FieldError, Result};
use crate::import::RowError;
use crate::import::columns::{Column, Mapping};
use crate::import::{Row, Sheet};
use crate::store::imports;
use crate::store::jobs::{self, JobRow};

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
    pub file_name: String,
    pub format: String,
    pub sheet: String,
    pub headers: Vec<String>,
    pub mapping: Mapping,
}

/// Maps the header, checks the mode's columns, and flags rows that repeat an earlier
/// row's account number (each account once per file, so the outcome never depends on
/// row order).
pub fn prepare(sheet: &Sheet, mode: Mode) -> std::result::Result<(Mapping, Vec<Option<RowError>>), Vec<FieldError>> {
    let mapping = Mapping::new(&sheet.headers)?;
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
    let settled = imports::stage(&mut *tx, job.id, rows, duplicates).await?;
    if settled > 0 {
        jobs::advance(&mut *tx, job.id, settled, settled).await?;
    }
    Ok(job)
}
