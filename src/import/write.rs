//! Spreadsheets written back to users: the import template and the rejected rows of an
//! import (XLSX, whose text cells no spreadsheet runs, so they hold the text exactly),
//! and the formula guard every CSV text cell passes through.

use crate::import::RowError;
use crate::import::columns::ERROR_COLUMN;

/// Whether a spreadsheet reads a cell starting with `c` as a formula.
fn starts_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// A leading `'` on text a spreadsheet would read as a formula; also after every `;`,
/// where a spreadsheet in a semicolon locale starts a new cell (a quote there would
/// open a quoted cell, so it is guarded too).
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    let guarded = |c: char, after_semicolon: bool| starts_formula(c) || (after_semicolon && c == '"');
    let risky = text.chars().next().is_some_and(|c| guarded(c, false))
        || text
            .split(';')
            .skip(1)
            .any(|part| part.chars().next().is_some_and(|c| guarded(c, true)));
    if !risky {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 4);
    for (i, part) in text.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        if part.chars().next().is_some_and(|c| guarded(c, i > 0)) {
            out.push('\'');
        }
        out.push_str(part);
    }
    out.into()
}

/// The rejected rows as uploaded, plus a column saying what to fix.
pub fn error_workbook(headers: &[String], rows: &[(Vec<String>, Vec<RowError>)]) -> std::result::Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(|e| e.to_string())?;
    sheet.set_freeze_panes(1, 0).map_err(|e| e.to_string())?;
    let error_column = headers.len() as u16;
    for (c, name) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, name, &bold)
            .map_err(|e| e.to_string())?;
    }
    sheet
        .write_string_with_format(0, error_column, ERROR_COLUMN, &bold)
        .map_err(|e| e.to_string())?;
    for (r, (cells, errors)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in cells.iter().enumerate().filter(|(_, cell)| !cell.is_empty()) {
            sheet.write_string(r, c as u16, cell).map_err(|e| e.to_string())?;
        }
        let message: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.column, e.message)).collect();
        sheet.write_string(r, error_column, message.join("; ")).map_err(|e| e.to_string())?;
    }
    workbook.save_to_buffer().map_err(|e| e.to_string())
}

/// An empty workbook with `columns` (header, what it holds), and a sheet describing them.
pub fn template_workbook(columns: &[(String, String)]) -> std::result::Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let accounts = workbook.add_worksheet();
    accounts.set_name("Accounts").map_err(|e| e.to_string())?;
    accounts.set_freeze_panes(1, 0).map_err(|e| e.to_string())?;
    for (c, (name, _)) in columns.iter().enumerate() {
        accounts
            .write_string_with_format(0, c as u16, name, &bold)
            .map_err(|e| e.to_string())?;
        accounts
            .set_column_width(c as u16, name.len().max(12) as f64)
            .map_err(|e| e.to_string())?;
    }
    let help = workbook.add_worksheet();
    help.set_name("Columns").map_err(|e| e.to_string())?;
    help.write_string_with_format(0, 0, "column", &bold).map_err(|e| e.to_string())?;
    help.write_string_with_format(0, 1, "what it holds", &bold)
        .map_err(|e| e.to_string())?;
    help.set_column_width(0, 22).map_err(|e| e.to_string())?;
    help.set_column_width(1, 90).map_err(|e| e.to_string())?;
    for (r, (name, description)) in columns.iter().enumerate() {
        help.write_string(r as u32 + 1, 0, name).map_err(|e| e.to_string())?;
        help.write_string(r as u32 + 1, 1, description).map_err(|e| e.to_string())?;
    }
    workbook.save_to_buffer().map_err(|e| e.to_string())
}
