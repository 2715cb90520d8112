//! Reading uploaded spreadsheets. The format is told by the bytes, never by the file
//! name; every cell becomes the text a person would have typed (Excel numbers in their
//! shortest exact decimal form, dates in ISO 8601), so each row can be validated exactly
//! like an API body.
//!
//! Limits, so that no file can exhaust memory: zip containers (xlsx, xlsb, ods) are
//! fully inflated into a counter before a parser sees them, so a zip bomb is refused at
//! [`MAX_INFLATED_BYTES`], and [`scan`] sizes what calamine would allocate from a
//! file's own counts and extents (shared strings, xls grids, XML runs); xlsx and xlsb
//! sheets are read cell by cell and ods sheets as a stream ([`ods`]), never as a dense
//! grid; the rows read stop at the caller's limit and their cells at [`MAX_SHEET_BYTES`].

pub mod columns;
pub mod locale;
mod ods;
pub mod rows;
mod scan;
pub mod write;

use std::io::Cursor;

use calamine::{CellErrorType, Data, DataRef, ExcelDateTime, Reader, Xls, Xlsb, Xlsx, open_workbook_from_rs};
use serde::{Deserialize, Serialize};

pub use locale::Locale;
pub use scan::{MAX_SHARED_STRINGS, MAX_XLS_CELLS};

/// The most bytes a zip container may inflate to (all entries together).
pub const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;
/// Columns read per row; cells further right are ignored.
pub const MAX_COLUMNS: usize = 256;
/// The most characters a cell may hold, as in Excel and LibreOffice.
pub const MAX_CELL_CHARS: usize = 32_767;
/// What the rows read may take in memory (see [`Grid`]): 200,000 rows of 15 short
/// text cells take about 170 MB.
pub const MAX_SHEET_BYTES: usize = 192 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Xlsb => "xlsb",
            Format::Xls => "xls",
            Format::Ods => "ods",
        }
    }
}

/// One data row: its row number in the sheet (1-based, as a spreadsheet shows it) and
/// its cells, aligned with the header.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub line: u32,
    pub cells: Vec<String>,
}

/// One problem with a row: the file's column header (or the field) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    pub column: String,
    pub message: String,
}

#[derive(Debug)]
pub struct Sheet {
    pub format: Format,
    pub name: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// Why a file is refused as a whole.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the file is empty")]
    Empty,
    #[error("this is not a spreadsheet: {0}; send xlsx, xls, xlsb, ods or CSV")]
    NotASpreadsheet(&'static str),
    #[error("the workbook is password-protected; remove the password and upload it again")]
    PasswordProtected,
    #[error("the file is damaged and cannot be read ({0})")]
    Corrupt(String),
    #[error("the file inflates to more than {} MiB; it looks like a zip bomb", MAX_INFLATED_BYTES / 1024 / 1024)]
    Inflated,
    #[error("the sheet has more than {0} data rows; split the file")]
    TooManyRows(usize),
    #[error("no sheet named {wanted:?}; the workbook has: {}", available.join(", "))]
    NoSuchSheet { wanted: String, available: Vec<String> },
    #[error("the sheet has no header row")]
    NoHeader,
    #[error(
        "a sheet spans {rows} rows by {cols} columns, more than the {MAX_XLS_CELLS} cells an xls workbook may span; it is damaged or holds stray cells far from the data: copy the data into a new workbook"
    )]
    Sprawling { rows: u64, cols: u64 },
    #[error("a cell holds more than {MAX_CELL_CHARS} characters, more than a spreadsheet cell can")]
    CellTooLong,
    #[error("the workbook is too large to read: {0}; split the file")]
    TooLarge(&'static str),
}

const CFB_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads the chosen (or first) sheet of a spreadsheet, with at most `max_rows` data rows.
/// A reader that panics on malformed input makes the file corrupt, not the server fail.
pub fn read(bytes: &[u8], sheet: Option<&str>, max_rows: usize) -> Result<Sheet, Refusal> {
    read_in(bytes, sheet, max_rows, None)
}

/// [`read`] for a sheet in `locale`: typed number cells are written with its decimal
/// separator, so they read back exactly as its text cells do.
pub fn read_in(bytes: &[u8], sheet: Option<&str>, max_rows: usize, locale: Option<Locale>) -> Result<Sheet, Refusal> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_sheet(bytes, sheet, max_rows, locale)))
        .unwrap_or_else(|_| Err(Refusal::Corrupt("its contents are malformed".into())))
}

fn read_sheet(bytes: &[u8], sheet: Option<&str>, max_rows: usize, locale: Option<Locale>) -> Result<Sheet, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    let format = detect(bytes)?;
    let mut grid = Grid::new(max_rows, locale::decimal_of(locale));
    let name = match format {
        Format::Csv => {
            read_csv(bytes, &mut grid)?;
            "csv".to_owned()
        }
        Format::Xlsx => {
            let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(xlsx_error)?;
            let name = pick(book.sheet_names(), sheet)?;
            let mut cells = book.worksheet_cells_reader(&name).map_err(xlsx_error)?;
            while let Some(cell) = cells.next_cell().map_err(xlsx_error)? {
                let (row, col) = cell.get_position();
                let text = text_of_ref(cell.get_value(), grid.decimal);
                grid.put(row, col, text)?;
            }
            name
        }
        Format::Xlsb => {
            let mut book: Xlsb<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(xlsb_error)?;
            let name = pick(book.sheet_names(), sheet)?;
            let mut cells = book.worksheet_cells_reader(&name).map_err(xlsb_error)?;
            while let Some(cell) = cells.next_cell().map_err(xlsb_error)? {
                let (row, col) = cell.get_position();
                let text = text_of_ref(cell.get_value(), grid.decimal);
                grid.put(row, col, text)?;
            }
            name
        }
        Format::Xls => {
            scan::xls_extent(bytes)?;
            let mut book: Xls<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
                calamine::XlsError::Password => Refusal::PasswordProtected,
                other => Refusal::Corrupt(other.to_string()),
            })?;
            let name = pick(book.sheet_names(), sheet)?;
            let range = book.worksheet_range(&name).map_err(|e| Refusal::Corrupt(e.to_string()))?;
            grid.put_range(&range)?;
            name
        }
        Format::Ods => ods::read(bytes, sheet, &mut grid)?,
    };
    let (headers, rows) = grid.finish()?;
    Ok(Sheet {
        format,
        name,
        headers,
        rows,
    })
}

fn xlsx_error(err: calamine::XlsxError) -> Refusal {
    match err {
        calamine::XlsxError::Password => Refusal::PasswordProtected,
        other => Refusal::Corrupt(other.to_string()),
    }
}

fn xlsb_error(err: calamine::XlsbError) -> Refusal {
    match err {
        calamine::XlsbError::Password => Refusal::PasswordProtected,
        other => Refusal::Corrupt(other.to_string()),
    }
}

fn pick(names: Vec<String>, wanted: Option<&str>) -> Result<String, Refusal> {
    match wanted {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .or_else(|| names.iter().find(|n| n.trim().eq_ignore_ascii_case(wanted.trim())))
            .cloned()
            .ok_or_else(|| Refusal::NoSuchSheet {
                wanted: wanted.to_owned(),
                available: names.clone(),
            }),
        None => names.into_iter().next().ok_or(Refusal::NoHeader),
    }
}

/// The format, from the bytes.
pub fn detect(bytes: &[u8]) -> Result<Format, Refusal> {
    if bytes.starts_with(ZIP_MAGIC) {
        return scan::zip_format(bytes);
    }
    if bytes.starts_with(CFB_MAGIC) {
        // An encrypted xlsx or xlsb is an OLE container holding "EncryptedPackage".
        let marker: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Err(Refusal::PasswordProtected);
        }
        return Ok(Format::Xls);
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Ok(Format::Csv);
    }
    let head = &bytes[..bytes.len().min(64 * 1024)];
    if head.contains(&0) {
        return Err(Refusal::NotASpreadsheet("binary data that is no workbook format"));
    }
    Ok(Format::Csv)
}

/// Rows as they arrive (cells in row order), turned into a header and data rows.
struct Grid {
    max_rows: usize,
    /// The decimal separator typed numbers are written with.
    decimal: char,
    /// What the rows kept so far take: see [`MAX_SHEET_BYTES`].
    bytes: usize,
    headers: Option<Vec<String>>,
    rows: Vec<Row>,
    current: Option<Row>,
}

impl Grid {
    fn new(max_rows: usize, decimal: char) -> Self {
        Self {
            max_rows,
            decimal,
            bytes: 0,
            headers: None,
            rows: Vec::new(),
            current: None,
        }
    }

    fn put(&mut self, row: u32, col: u32, text: String) -> Result<(), Refusal> {
        let col = col as usize;
        if col >= MAX_COLUMNS || text.is_empty() {
            return Ok(());
        }
        if text.len() > MAX_CELL_CHARS && text.chars().count() > MAX_CELL_CHARS {
            return Err(Refusal::CellTooLong);
        }
        if self.current.as_ref().is_none_or(|r| r.line != row + 1) {
            self.flush()?;
            self.current = Some(Row {
                line: row + 1,
                cells: Vec::new(),
            });
        }
        let current = self.current.as_mut().expect("set above");
        if current.cells.len() <= col {
            current.cells.resize(col + 1, String::new());
        }
        current.cells[col] = text;
        Ok(())
    }

    fn put_range(&mut self, range: &calamine::Range<Data>) -> Result<(), Refusal> {
        let Some((top, left)) = range.start() else { return Ok(()) };
        for (r, cells) in range.rows().enumerate() {
            for (c, value) in cells.iter().enumerate() {
                self.put(top + r as u32, left + c as u32, text_of(value, self.decimal))?;
            }
        }
        Ok(())
    }

    /// Ends the current row: the first non-empty one is the header.
    fn flush(&mut self) -> Result<(), Refusal> {
        let Some(row) = self.current.take() else { return Ok(()) };
        if row.cells.iter().all(|c| c.trim().is_empty()) {
            return Ok(());
        }
        let width = self.headers.as_ref().map_or(row.cells.len(), Vec::len);
        self.bytes += std::mem::size_of::<Row>()
            + width * std::mem::size_of::<String>()
            + row
                .cells
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| heap_bytes(c.len()))
                .sum::<usize>();
        if self.bytes > MAX_SHEET_BYTES {
            return Err(Refusal::TooLarge("its cells take more than 192 MiB"));
        }
        match &self.headers {
            None => self.headers = Some(row.cells),
            Some(headers) => {
                if self.rows.len() == self.max_rows {
                    return Err(Refusal::TooManyRows(self.max_rows));
                }
                let mut cells = row.cells;
                cells.resize(headers.len(), String::new());
                self.rows.push(Row { line: row.line, cells });
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<String>, Vec<Row>), Refusal> {
        self.flush()?;
        let headers = self.headers.ok_or(Refusal::NoHeader)?;
        Ok((headers.into_iter().map(|h| h.trim().to_owned()).collect(), self.rows))
    }
}

/// What the allocator takes for `len` bytes of text: a 16-byte-aligned chunk of at
/// least 32 bytes, 8 of them its header (glibc's malloc).
fn heap_bytes(len: usize) -> usize {
    (len + 8).next_multiple_of(16).max(32)
}

fn read_csv(bytes: &[u8], grid: &mut Grid) -> Result<(), Refusal> {
    let text = decode_text(bytes);
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| first_line.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    // The reader's own line numbers drift with CRLF and blank lines, so lines are
    // counted here: a record starts at the first byte after its position that ends no line.
    let (mut counted_to, mut line) = (0usize, 1u32);
    loop {
        let more = reader.read_record(&mut record).map_err(|e| Refusal::Corrupt(format!("CSV: {e}")))?;
        if !more {
            return Ok(());
        }
        let from = record.position().map_or(0, |p| p.byte() as usize);
        let start = from + text.as_bytes()[from..].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        line += text.as_bytes()[counted_to..start].iter().filter(|b| **b == b'\n').count() as u32;
        counted_to = start;
        for (col, field) in record.iter().enumerate() {
            grid.put(line - 1, col as u32, field.to_owned())?;
        }
    }
}

/// UTF-8 (with or without BOM) or UTF-16 with BOM; anything else is read as
/// Windows-1252, which is what spreadsheet programs write as "CSV" on Windows.
fn decode_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding.decode_without_bom_handling(&bytes[bom..]).0;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

fn text_of(value: &Data, decimal: char) -> String {
    match value {
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f, decimal),
        Data::String(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTimeIso(s) => iso_text(s),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => date_text(dt),
        Data::Error(e) => error_text(e),
        Data::Empty => String::new(),
    }
}

fn text_of_ref(value: &DataRef<'_>, decimal: char) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number_text(*f, decimal),
        DataRef::String(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::DateTimeIso(s) => iso_text(s),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => date_text(dt),
        DataRef::Error(e) => error_text(e),
        DataRef::Empty => String::new(),
    }
}

/// [`float_text`] with `decimal` before the decimals.
fn number_text(value: f64, decimal: char) -> String {
    let text = float_text(value);
    if decimal == '.' {
        text
    } else {
        text.replace('.', &decimal.to_string())
    }
}

/// The shortest decimal that reads back as the same double: 1234.56 stays "1234.56",
/// a phone number typed as a number stays all digits.
fn float_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn date_text(value: &ExcelDateTime) -> String {
    if value.is_duration() {
        return float_text(value.as_f64());
    }
    match value.as_datetime() {
        Some(at) if at.time() == chrono::NaiveTime::MIN => at.format("%Y-%m-%d").to_string(),
        Some(at) => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => float_text(value.as_f64()),
    }
}

/// ISO date-times as OpenDocument stores them: a midnight is the date alone.
fn iso_text(text: &str) -> String {
    match chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f") {
        Ok(at) if at.time() == chrono::NaiveTime::MIN => at.format("%Y-%m-%d").to_string(),
        Ok(at) => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => text.to_owned(),
    }
}

fn error_text(value: &CellErrorType) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_reads_the_same_cells() {
        for name in ["accounts.xlsx", "accounts.xls", "accounts.xlsb", "accounts.ods", "accounts.csv"] {
            let path = format!("{}/tests/fixtures/imports/{name}", env!("CARGO_MANIFEST_DIR"));
            let sheet = read(&std::fs::read(path).unwrap(), None, 100).unwrap();
            assert!(sheet.headers.len() >= 4, "{name}: {sheet:?}");
            assert_eq!(
                sheet.headers[..4],
                ["Account No", "Customer Name", "Phone Number", "E-mail"],
                "{name}"
            );
            assert_eq!(sheet.rows.len(), 4, "{name}");
            assert_eq!(
                sheet.rows[0].cells[..9],
                [
                    "IMP-001",
                    "Ada Lovelace",
                    "4155550123",
                    "ada@example.com",
                    "1250.5",
                    "USD",
                    "2026-03-01",
                    "delinquent",
                    "vip;hardship"
                ],
                "{name}"
            );
            assert_eq!(sheet.rows[3].line, 5, "{name}");
            assert_eq!(sheet.rows[3].cells[1], "José Álvarez", "{name}");
        }
    }

    #[test]
    fn damaged_xls_is_refused_before_it_can_exhaust_memory_or_panic() {
        let fixture = |name: &str| std::fs::read(format!("{}/tests/fixtures/imports/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let sprawling = read(&fixture("sprawling.xls"), None, 100);
        assert!(
            matches!(sprawling, Err(Refusal::Sprawling { rows: 65536, cols: 256 })),
            "{sprawling:?}"
        );
        for name in ["damaged-fat.xls", "malformed.xls"] {
            let damaged = read(&fixture(name), None, 100);
            assert!(matches!(damaged, Err(Refusal::Corrupt(_))), "{name}: {damaged:?}");
        }
    }

    #[test]
    fn floats_read_as_people_typed_them() {
        assert_eq!(float_text(1234.56), "1234.56");
        assert_eq!(float_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float_text(4155550123.0), "4155550123");
        assert_eq!(float_text(-12.5), "-12.5");
    }

    #[test]
    fn formats_are_told_by_their_bytes() {
        assert_eq!(detect(b"name,amount\nA,1\n"), Ok(Format::Csv));
        assert_eq!(
            detect(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(Refusal::NotASpreadsheet("binary data that is no workbook format"))
        );
        assert!(matches!(detect(b"PK\x03\x04garbage"), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn csv_delimiters_and_encodings_are_recognised() {
        let sheet = read("Name;Amount\r\nJosé;12,50\r\n\r\nAna;3\r\n".as_bytes(), None, 10).unwrap();
        assert_eq!(sheet.headers, ["Name", "Amount"]);
        assert_eq!(sheet.rows.len(), 2);
        assert_eq!(
            sheet.rows[0],
            Row {
                line: 2,
                cells: vec!["José".into(), "12,50".into()]
            }
        );
        assert_eq!(sheet.rows[1].line, 4);
        let latin1 = b"Name,City\nRen\xe9,K\xf6ln\n";
        assert_eq!(read(latin1, None, 10).unwrap().rows[0].cells, ["René", "Köln"]);
        assert!(matches!(read(b"a,b\n1,2\n2,3\n", None, 1), Err(Refusal::TooManyRows(1))));
    }
}
