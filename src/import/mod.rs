//! Reading uploaded spreadsheets. The format is told by the bytes, never by the file
//! name; every cell becomes the text a person would have typed (Excel numbers in their
//! shortest exact decimal form, dates in ISO 8601), so each row can be validated exactly
//! like an API body.
//!
//! Limits: zip containers (xlsx, xlsb, ods) are fully inflated into a counter before a
//! parser sees them, so a zip bomb is refused at [`MAX_INFLATED_BYTES`]; xlsx and xlsb
//! sheets are read cell by cell, never as a dense grid; rows stop at the caller's limit.

pub mod columns;
pub mod rows;

use std::io::{Cursor, Read};

use calamine::{CellErrorType, Data, DataRef, ExcelDateTime, Ods, Reader, Xls, Xlsb, Xlsx, open_workbook_from_rs};

/// The most bytes a zip container may inflate to (all entries together).
pub const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;
/// Columns read per row; cells further right are ignored.
pub const MAX_COLUMNS: usize = 256;
/// The largest cell grid (rows × columns of a sheet's used range) an xls sheet may
/// span: calamine allocates the whole grid, so two far-apart cells could otherwise ask
/// for gigabytes and abort the process.
pub const MAX_GRID_CELLS: u64 = 8_000_000;
const MAX_ZIP_ENTRIES: usize = 10_000;

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
        "a sheet spans {rows} rows by {cols} columns, more than {MAX_GRID_CELLS} cells; it is damaged or holds stray cells far from the data: copy the data into a new workbook"
    )]
    Sprawling { rows: u64, cols: u64 },
}

const CFB_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads the chosen (or first) sheet of a spreadsheet, with at most `max_rows` data rows.
/// A reader that panics on malformed input makes the file corrupt, not the server fail.
pub fn read(bytes: &[u8], sheet: Option<&str>, max_rows: usize) -> Result<Sheet, Refusal> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_sheet(bytes, sheet, max_rows)))
        .unwrap_or_else(|_| Err(Refusal::Corrupt("its contents are malformed".into())))
}

fn read_sheet(bytes: &[u8], sheet: Option<&str>, max_rows: usize) -> Result<Sheet, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    let format = detect(bytes)?;
    let mut grid = Grid::new(max_rows);
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
                grid.put(row, col, text_of_ref(cell.get_value()))?;
            }
            name
        }
        Format::Xlsb => {
            let mut book: Xlsb<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(xlsb_error)?;
            let name = pick(book.sheet_names(), sheet)?;
            let mut cells = book.worksheet_cells_reader(&name).map_err(xlsb_error)?;
            while let Some(cell) = cells.next_cell().map_err(xlsb_error)? {
                let (row, col) = cell.get_position();
                grid.put(row, col, text_of_ref(cell.get_value()))?;
            }
            name
        }
        Format::Xls => {
            xls_extent(bytes)?;
            let mut book: Xls<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
                calamine::XlsError::Password => Refusal::PasswordProtected,
                other => Refusal::Corrupt(other.to_string()),
            })?;
            let name = pick(book.sheet_names(), sheet)?;
            let range = book.worksheet_range(&name).map_err(|e| Refusal::Corrupt(e.to_string()))?;
            grid.put_range(&range)?;
            name
        }
        Format::Ods => {
            let mut book: Ods<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
                calamine::OdsError::Password => Refusal::PasswordProtected,
                other => Refusal::Corrupt(other.to_string()),
            })?;
            let name = pick(book.sheet_names(), sheet)?;
            let range = book.worksheet_range(&name).map_err(|e| Refusal::Corrupt(e.to_string()))?;
            grid.put_range(&range)?;
            name
        }
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
        return zip_format(bytes);
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

/// Tells xlsx, xlsb and ods apart, and inflates every entry into a counter so that no
/// parser ever meets a zip bomb.
fn zip_format(bytes: &[u8]) -> Result<Format, Refusal> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| Refusal::Corrupt(e.to_string()))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(Refusal::Inflated);
    }
    let mut format = None;
    let mut inflated: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| Refusal::Corrupt(e.to_string()))?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        match name.as_str() {
            "xl/workbook.xml" => format = Some(Format::Xlsx),
            "xl/workbook.bin" => format = Some(Format::Xlsb),
            "content.xml" if format.is_none() => format = Some(Format::Ods),
            _ => {}
        }
        let budget = MAX_INFLATED_BYTES - inflated;
        let mut limited = (&mut entry).take(budget + 1);
        let read = if name.starts_with("xl/worksheets/") && name.ends_with(".bin") {
            xlsb_sheet_records(&mut limited, budget)?
        } else {
            std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| Refusal::Corrupt(e.to_string()))?
        };
        if read > budget {
            return Err(Refusal::Inflated);
        }
        inflated += read;
    }
    format.ok_or(Refusal::NotASpreadsheet("a zip archive without a workbook in it"))
}

/// Walks an xlsb sheet's records, returning the bytes read (at most `budget + 1`).
/// calamine skips the compact "short" cell records (BrtShort*, 0x0D-0x12) some writers
/// use, which would drop cells silently, so such a sheet is refused instead.
fn xlsb_sheet_records(reader: impl Read, budget: u64) -> Result<u64, Refusal> {
    let mut reader = std::io::BufReader::new(reader);
    let mut read: u64 = 0;
    let cut = |read: u64| {
        if read > budget {
            Refusal::Inflated
        } else {
            Refusal::Corrupt("an xlsb record is cut short".into())
        }
    };
    while let Some((kind, n)) = varint(&mut reader, 2)? {
        read += n;
        let (size, n) = varint(&mut reader, 4)?.ok_or_else(|| cut(read))?;
        read += n;
        if (0x0D..=0x12).contains(&kind) {
            return Err(Refusal::Corrupt(
                "this xlsb file uses compact cell records that cannot be read reliably; save it as xlsx".into(),
            ));
        }
        let skipped =
            std::io::copy(&mut (&mut reader).take(u64::from(size)), &mut std::io::sink()).map_err(|e| Refusal::Corrupt(e.to_string()))?;
        read += skipped;
        if skipped < u64::from(size) {
            return Err(cut(read));
        }
    }
    Ok(read)
}

/// A record header number: 7 bits per byte, high bit set while more follow. Returns the
/// value and its length, or `None` at the end of the stream.
fn varint(reader: &mut impl Read, max_bytes: u32) -> Result<Option<(u32, u64)>, Refusal> {
    let mut value = 0u32;
    for i in 0..max_bytes {
        let mut byte = [0u8];
        if reader.read(&mut byte).map_err(|e| Refusal::Corrupt(e.to_string()))? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(Refusal::Corrupt("an xlsb record is cut short".into()))
            };
        }
        value |= u32::from(byte[0] & 0x7F) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some((value, u64::from(i) + 1)));
        }
    }
    Err(Refusal::Corrupt("an xlsb record header is malformed".into()))
}

/// Refuses an xls workbook whose sheets would make calamine allocate an oversized
/// grid: it sizes each sheet from its DIMENSIONS record and from its cells' positions,
/// walking the BIFF records of the Workbook stream.
fn xls_extent(bytes: &[u8]) -> Result<(), Refusal> {
    let corrupt = |e: std::io::Error| Refusal::Corrupt(e.to_string());
    let mut file = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(corrupt)?;
    let Some(name) = ["/Workbook", "/Book"].into_iter().find(|n| file.is_stream(n)) else {
        return Ok(());
    };
    let mut stream = Vec::new();
    file.open_stream(name).map_err(corrupt)?.read_to_end(&mut stream).map_err(corrupt)?;
    let u16_at = |data: &[u8], at: usize| data.get(at..at + 2).map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |data: &[u8], at: usize| {
        data.get(at..at + 4)
            .map_or(0, |b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let check = |rows: u64, cols: u64| {
        if rows.saturating_mul(cols) > MAX_GRID_CELLS {
            Err(Refusal::Sprawling { rows, cols })
        } else {
            Ok(())
        }
    };
    // (first row, last row, first column, last column) of the current sheet's cells.
    let mut extent: Option<(u64, u64, u64, u64)> = None;
    let mut pos = 0;
    while pos + 4 <= stream.len() {
        let kind = u16_at(&stream, pos);
        let len = u16_at(&stream, pos + 2) as usize;
        let data = &stream[pos + 4..(pos + 4 + len).min(stream.len())];
        pos += 4 + len;
        let cells: &[(u64, u64)] = &match kind {
            // BOF: a new substream (sheet) starts.
            0x0809 => {
                extent = None;
                continue;
            }
            // DIMENSIONS, BIFF8 (32-bit rows) or older (16-bit rows); the ends are exclusive.
            0x0200 => {
                let (first_row, end_row, first_col, end_col) = if data.len() >= 14 {
                    (u32_at(data, 0), u32_at(data, 4), u16_at(data, 8), u16_at(data, 10))
                } else {
                    (u16_at(data, 0), u16_at(data, 2), u16_at(data, 4), u16_at(data, 6))
                };
                check(end_row.saturating_sub(first_row), end_col.saturating_sub(first_col))?;
                continue;
            }
            // Cells: NUMBER, LABEL, RSTRING, BOOLERR, RK, LABELSST, FORMULA.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => [(u16_at(data, 0), u16_at(data, 2)); 2],
            // MULRK: a row of cells from the first column to the last.
            0x00BD => [
                (u16_at(data, 0), u16_at(data, 2)),
                (u16_at(data, 0), u16_at(data, data.len().saturating_sub(2))),
            ],
            _ => continue,
        };
        for &(row, col) in cells {
            let (r0, r1, c0, c1) = extent.unwrap_or((row, row, col, col));
            let grown = (r0.min(row), r1.max(row), c0.min(col), c1.max(col));
            check(grown.1 - grown.0 + 1, grown.3 - grown.2 + 1)?;
            extent = Some(grown);
        }
    }
    Ok(())
}

/// Rows as they arrive (cells in row order), turned into a header and data rows.
struct Grid {
    max_rows: usize,
    headers: Option<Vec<String>>,
    rows: Vec<Row>,
    current: Option<Row>,
}

impl Grid {
    fn new(max_rows: usize) -> Self {
        Self {
            max_rows,
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
                self.put(top + r as u32, left + c as u32, text_of(value))?;
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

fn text_of(value: &Data) -> String {
    match value {
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::String(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTimeIso(s) => iso_text(s),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => date_text(dt),
        Data::Error(e) => error_text(e),
        Data::Empty => String::new(),
    }
}

fn text_of_ref(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => float_text(*f),
        DataRef::String(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::DateTimeIso(s) => iso_text(s),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => date_text(dt),
        DataRef::Error(e) => error_text(e),
        DataRef::Empty => String::new(),
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
