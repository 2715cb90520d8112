//! Exports: the rows a list's filters select, read from SQL in chunks in id order and
//! written as CSV (streamed) or XLSX (assembled at the end), with flat memory. CSV text
//! passes through the formula guard, so no spreadsheet runs it; an XLSX text cell is
//! typed as text, which no spreadsheet runs, so it holds the text exactly (a phone
//! number `+14155550123` stays that, with no guarding `'`).

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::account::{Bucket, days_past_due};
use crate::domain::custom_field::{Catalog, Definition, FieldType};
use crate::domain::dates::iso_date;
use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::refusal::Denied;
use crate::domain::role::Action;
use crate::domain::search::AgentFilter;
use crate::error::{Code, Error, FieldError, Result};
use crate::import::write::neutralize;
use crate::search::SearchIndex;
use crate::service::fields;
use crate::store::accounts::{self, AccountRow};
use crate::store::{payments, portfolios, users};

/// Rows read from SQL per round trip.
const CHUNK: usize = 5_000;
pub const MAX_CSV_ROWS: usize = 5_000_000;
/// The most rows a worksheet holds, below its header.
pub const MAX_XLSX_ROWS: usize = 1_048_575;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
}

/// One exported value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Money(Decimal, Currency),
    Int(i64),
    /// A custom number field's value (at most 4 decimal places).
    Number(Decimal),
    Date(NaiveDate),
    Time(DateTime<Utc>),
    Bool(bool),
    Empty,
}

impl Cell {
    fn text(value: impl Into<String>) -> Self {
        Cell::Text(value.into())
    }

    fn opt(value: Option<String>) -> Self {
        value.map_or(Cell::Empty, Cell::Text)
    }
}

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', ';', '"', '\n', '\r', '\t']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

pub fn csv_row(out: &mut String, cells: &[Cell]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Text(text) => csv_field(out, &neutralize(text)),
            Cell::Money(amount, currency) => out.push_str(&currency.format(*amount)),
            Cell::Int(n) => out.push_str(&n.to_string()),
            Cell::Number(n) => out.push_str(&n.normalize().to_string()),
            Cell::Date(date) => out.push_str(&date.to_string()),
            Cell::Time(time) => out.push_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Cell::Empty => {}
        }
    }
    out.push_str("\r\n");
}

pub const ACCOUNT_COLUMNS: &[&str] = &[
    "account_number",
    "external_ref",
    "debtor_name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "timezone",
    "status",
    "original_balance",
    "current_balance",
    "currency",
    "due_date",
    "days_past_due",
    "bucket",
    "assigned_agent_id",
    "assigned_agent_name",
    "next_action_at",
    "tags",
    "do_not_call",
    "do_not_email",
    "cease_communication",
    "portfolio",
    "created_at",
    "updated_at",
    "id",
    "version",
];

pub const PAYMENT_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "account_number",
    "debtor_name",
    "amount",
    "currency",
    "method",
    "status",
    "reference",
    "received_at",
    "failure_reason",
    "created_at",
];

/// What account cells are made with besides the row: the day delinquency is computed
/// for, the assigned agents' and the portfolios' names, the custom fields exported.
struct AccountContext<'a> {
    today: NaiveDate,
    agents: HashMap<Uuid, String>,
    portfolios: HashMap<Uuid, String>,
    custom: &'a [Definition],
}

/// A custom field's value as a typed cell (a value its definition would no longer take
/// is written as its JSON text).
fn custom_cell(definition: &Definition, value: Option<&Value>, currency: Currency) -> Cell {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Cell::Empty;
    };
    let text = || Cell::text(value.as_str().map_or_else(|| value.to_string(), str::to_owned));
    match definition.field_type {
        FieldType::Number => value
            .as_number()
            .and_then(|n| Decimal::from_str_exact(&n.to_string()).ok())
            .map_or_else(text, Cell::Number),
        FieldType::Money => value
            .as_str()
            .and_then(|t| currency.parse_amount(t).ok())
            .map_or_else(text, |amount| Cell::Money(amount, currency)),
        FieldType::Date => value.as_str().and_then(iso_date).map_or_else(text, Cell::Date),
        FieldType::Boolean => value.as_bool().map_or_else(text, Cell::Bool),
        FieldType::MultiList => match value.as_array() {
            Some(items) => Cell::text(
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            None => text(),
        },
        FieldType::Text | FieldType::List => text(),
    }
}

/// An account row as export cells.
fn account_cells(row: AccountRow, context: &AccountContext<'_>) -> Result<Vec<Cell>> {
    let (today, agents) = (context.today, &context.agents);
    let currency = row.currency;
    let status = row.status;
    let days = days_past_due(row.due_date, status, today);
    let address = row.address.clone();
    let custom = context
        .custom
        .iter()
        .map(|d| custom_cell(d, row.custom_fields.get(&d.key), currency));
    let mut cells = vec![
        Cell::text(row.account_number),
        Cell::opt(row.external_ref),
        Cell::text(row.debtor_name),
        Cell::opt(row.email),
        Cell::opt(row.phone),
        Cell::opt(address.line1),
        Cell::opt(address.line2),
        Cell::opt(address.city),
        Cell::opt(address.region),
        Cell::opt(address.postal_code),
        Cell::opt(address.country),
        Cell::text(row.timezone),
        Cell::text(status.as_str()),
        Cell::Money(row.original_balance, currency),
        Cell::Money(row.current_balance, currency),
        Cell::text(currency.code()),
        row.due_date.map_or(Cell::Empty, Cell::Date),
        Cell::Int(days),
        Cell::text(Bucket::from_days_past_due(days).as_str()),
        row.assigned_agent_id.map_or(Cell::Empty, |a| Cell::text(a.to_string())),
        Cell::opt(row.assigned_agent_id.and_then(|a| agents.get(&a).cloned())),
        row.next_action_at.map_or(Cell::Empty, Cell::Time),
        Cell::text(row.tags.join(";")),
        Cell::Bool(row.do_not_call),
        Cell::Bool(row.do_not_email),
        Cell::Bool(row.cease_communication),
        Cell::opt(row.portfolio_id.and_then(|p| context.portfolios.get(&p).cloned())),
        Cell::Time(row.created_at),
        Cell::Time(row.updated_at),
        Cell::text(row.id.to_string()),
        Cell::Int(row.search_version),
    ];
    cells.extend(custom);
    Ok(cells)
}

/// What an export reads.
#[derive(Clone)]
pub enum Source {
    /// Accounts, their delinquency computed for `today`, with a column per custom field
    /// of `custom` after the built-in ones.
    Accounts {
        today: NaiveDate,
        custom: Vec<Definition>,
    },
    Payments,
}

impl Source {
    /// Accounts with the live custom fields marked for export, in their order.
    pub fn accounts(today: NaiveDate, catalog: &Catalog) -> Self {
        let custom = catalog.definitions().filter(|d| d.flags.exported).cloned().collect();
        Source::Accounts { today, custom }
    }

    pub fn payments() -> Self {
        Source::Payments
    }

    /// The header row: built-in columns, then the custom fields' keys (which an import
    /// maps back to them).
    fn columns(&self) -> Vec<String> {
        match self {
            Source::Accounts { custom, .. } => ACCOUNT_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(custom.iter().map(|d| d.key.clone()))
                .collect(),
            Source::Payments => PAYMENT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    async fn rows(&self, pool: &sqlx::PgPool, ids: &[Uuid]) -> Result<Vec<Vec<Cell>>> {
        let mut conn = pool.acquire().await?;
        match self {
            Source::Accounts { today, custom } => {
                let mut rows = accounts::by_ids(&mut conn, ids).await?;
                rows.sort_by_key(|r| r.id);
                let agent_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.assigned_agent_id).collect();
                let portfolio_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.portfolio_id).collect();
                let context = AccountContext {
                    today: *today,
                    agents: users::names(&mut conn, &agent_ids).await?,
                    portfolios: portfolios::names(&mut conn, &portfolio_ids).await?,
                    custom,
                };
                rows.into_iter().map(|row| account_cells(row, &context)).collect()
            }
            Source::Payments => {
                let mut docs = payments::documents(&mut conn, ids).await?;
                docs.sort_by_key(|d| d.id);
                docs.into_iter()
                    .map(|p| {
                        let currency = Currency::parse(&p.currency).map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))?;
                        Ok(vec![
                            Cell::text(p.id.to_string()),
                            Cell::text(p.account_id.to_string()),
                            Cell::text(p.account_number),
                            Cell::text(p.debtor_name),
                            Cell::Money(p.amount, currency),
                            Cell::text(p.currency),
                            Cell::text(p.method.as_str()),
                            Cell::text(p.status.as_str()),
                            Cell::opt(p.reference),
                            Cell::Time(p.received_at),
                            Cell::opt(p.failure_reason),
                            Cell::Time(p.created_at),
                        ])
                    })
                    .collect()
            }
        }
    }
}

fn broken(err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

/// Writes CSV chunk by chunk; stops when the client goes away.
async fn produce_csv(pool: sqlx::PgPool, source: Source, ids: Vec<Uuid>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    let mut out = String::new();
    csv_row(&mut out, &source.columns().into_iter().map(Cell::Text).collect::<Vec<_>>());
    for chunk in ids.chunks(CHUNK) {
        match source.rows(&pool, chunk).await {
            Ok(rows) => {
                for row in rows {
                    csv_row(&mut out, &row);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "export failed");
                let _ = tx.send(Err(broken(err))).await;
                return;
            }
        }
        if tx.send(Ok(Bytes::from(std::mem::take(&mut out)))).await.is_err() {
            return;
        }
    }
    if !out.is_empty() {
        let _ = tx.send(Ok(Bytes::from(out))).await;
    }
}

/// Feeds the response from the blocking XLSX writer, 64 KiB at a time.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buffer));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        }
        Ok(())
    }
}

fn write_xlsx(
    columns: &[String],
    mut rows: mpsc::Receiver<Result<Vec<Vec<Cell>>>>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
) -> std::result::Result<(), String> {
    use rust_xlsxwriter::{Format as CellFormat, Workbook};
    let mut workbook = Workbook::new();
    let header = CellFormat::new().set_bold();
    let date = CellFormat::new().set_num_format("yyyy-mm-dd");
    let money = |digits: u32| {
        CellFormat::new().set_num_format(if digits == 0 {
            "0".to_owned()
        } else {
            format!("0.{}", "0".repeat(digits as usize))
        })
    };
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(|e| e.to_string())?;
    sheet.set_freeze_panes(1, 0).map_err(|e| e.to_string())?;
    for (c, name) in columns.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, name, &header)
            .map_err(|e| e.to_string())?;
    }
    let mut r: u32 = 1;
    while let Some(batch) = rows.blocking_recv() {
        for row in batch.map_err(|e| e.to_string())? {
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                let written = match cell {
                    Cell::Text(text) => sheet.write_string(r, c, text).map(|_| ()),
                    Cell::Money(amount, currency) => sheet
                        .write_number_with_format(r, c, amount.to_f64().unwrap_or(0.0), &money(currency.minor_digits()))
                        .map(|_| ()),
                    Cell::Int(n) => sheet.write_number(r, c, *n as f64).map(|_| ()),
                    Cell::Number(n) => sheet.write_number(r, c, n.to_f64().unwrap_or(0.0)).map(|_| ()),
                    Cell::Date(d) => {
                        let day = rust_xlsxwriter::ExcelDateTime::parse_from_str(&d.to_string()).map_err(|e| e.to_string())?;
                        sheet.write_datetime_with_format(r, c, &day, &date).map(|_| ())
                    }
                    Cell::Time(t) => sheet
                        .write_string(r, c, t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .map(|_| ()),
                    Cell::Bool(b) => sheet.write_boolean(r, c, *b).map(|_| ()),
                    Cell::Empty => Ok(()),
                };
                written.map_err(|e| e.to_string())?;
            }
            r += 1;
        }
        if tx.is_closed() {
            return Err("client gone".into());
        }
    }
    let mut out = ChannelWriter {
        tx,
        buffer: Vec::with_capacity(64 * 1024),
    };
    workbook.save_to_writer(&mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

/// Reads chunks from SQL for the blocking XLSX writer.
async fn feed_xlsx(pool: sqlx::PgPool, source: Source, ids: Vec<Uuid>, rows: mpsc::Sender<Result<Vec<Vec<Cell>>>>) {
    for chunk in ids.chunks(CHUNK) {
        let batch = source.rows(&pool, chunk).await;
        let failed = batch.is_err();
        if rows.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Starts producing the file; its bytes arrive on the receiver as they are ready (for
/// XLSX only once every row is written: the archive is assembled at the end).
pub fn produce(pool: sqlx::PgPool, source: Source, ids: Vec<Uuid>, format: Format) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(8);
    match format {
        Format::Csv => {
            tokio::spawn(produce_csv(pool, source, ids, tx));
        }
        Format::Xlsx => {
            let (rows_tx, rows_rx) = mpsc::channel(2);
            let columns = source.columns();
            tokio::spawn(feed_xlsx(pool, source, ids, rows_tx));
            tokio::task::spawn_blocking(move || {
                let body = tx.clone();
                if let Err(err) = write_xlsx(&columns, rows_rx, tx) {
                    tracing::warn!(error = %err, "xlsx export stopped");
                    let _ = body.blocking_send(Err(broken(err)));
                }
            });
        }
    }
    rx
}

pub fn check_size(rows: usize, format: Format) -> Result<()> {
    let limit = match format {
        Format::Csv => MAX_CSV_ROWS,
        Format::Xlsx => MAX_XLSX_ROWS,
    };
    if rows > limit {
        return Err(Error::with_fields(
            Code::ValidationFailed,
            format!(
                "the export has more than {limit} rows; narrow the filters{}",
                if format == Format::Xlsx { " or use csv" } else { "" }
            ),
            vec![FieldError::new("format", format!("at most {limit} rows"))],
        ));
    }
    Ok(())
}

/// What an export writes: the rows the filters matched (at most what the format holds),
/// and where their cells come from.
pub struct Selection {
    pub source: Source,
    pub ids: Vec<Uuid>,
}

/// The accounts `raw` (the accounts list grammar) matches now, for `caller`, in `format`.
pub async fn select_accounts(
    pool: &sqlx::PgPool,
    index: &dyn SearchIndex,
    caller: &Principal,
    raw: &str,
    format: Format,
    today: NaiveDate,
) -> Result<Selection> {
    caller.require(Action::ReadAccounts)?;
    let mut query = crate::service::accounts::query(pool, caller, raw, today).await?;
    if !caller.can(Action::ReadAnyAccount) {
        // An agent's file holds only their own accounts (personal data of others' stays
        // behind the summary, docs/security.md#what-an-agent-reads).
        match query.agent {
            None => query.agent = Some(AgentFilter::Agent(caller.user_id)),
            Some(AgentFilter::Agent(id)) if id == caller.user_id => {}
            Some(_) => return Err(Denied("agents export only the accounts assigned to them".to_owned()).into()),
        }
    }
    let ids = index.account_ids(query, MAX_CSV_ROWS + 1).await?;
    check_size(ids.len(), format)?;
    Ok(Selection {
        source: Source::accounts(today, &fields::catalog(&mut *pool.acquire().await?).await?),
        ids,
    })
}

/// The payments `raw` (the payments list grammar) matches now, for `caller`, in `format`.
pub async fn select_payments(
    pool: &sqlx::PgPool,
    index: &dyn SearchIndex,
    caller: &Principal,
    raw: &str,
    format: Format,
) -> Result<Selection> {
    caller.require(Action::ReadAccounts)?;
    let query = crate::service::payments::query(pool, caller, raw).await?;
    let ids = index.payment_ids(query, MAX_CSV_ROWS + 1).await?;
    check_size(ids.len(), format)?;
    Ok(Selection {
        source: Source::payments(),
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_fields_quoted() {
        let mut out = String::new();
        csv_row(
            &mut out,
            &[
                Cell::text("=HYPERLINK(\"x\")"),
                Cell::text("+1"),
                Cell::text("-2"),
                Cell::text("@sum"),
                Cell::text("\tx"),
                Cell::text("plain, text"),
                Cell::Money(Decimal::new(-500, 2), Currency::parse("USD").unwrap()),
            ],
        );
        assert_eq!(out, "\"'=HYPERLINK(\"\"x\"\")\",'+1,'-2,'@sum,\"'\tx\",\"plain, text\",-5.00\r\n");
    }
}
