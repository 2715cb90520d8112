//! Spreadsheets crafted to make a reader allocate far more than the file's size: each is
//! a real workbook (from the fixtures written by spreadsheet libraries, or a BIFF8 file
//! built record by record) with one part replaced by something a hostile user could
//! send. Shared by the memory test (`tests/bombs.rs`) and the HTTP tests.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

/// A bomb: its name, its bytes and the outcome the reader must reach.
pub struct Bomb {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: &'static str,
}

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "imports", name].iter().collect();
    std::fs::read(path).unwrap()
}

/// `base` (a zip workbook) with `parts` added or put in place of its own.
fn with_parts(base: &[u8], parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(base)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().into_owned();
        if parts.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    for (name, data) in parts {
        out.start_file(*name, options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn ods(tables: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"#
    );
    with_parts(&fixture("accounts.ods"), &[("content.xml", content.into_bytes())])
}

/// A table whose one row of `cols` text cells repeats `rows` times.
fn repeated_table(name: &str, rows: u64, cols: u64) -> String {
    format!(
        r#"<table:table table:name="{name}"><table:table-row table:number-rows-repeated="{rows}"><table:table-cell table:number-columns-repeated="{cols}" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row></table:table>"#
    )
}

const SMALL_TABLE: &str = r#"<table:table table:name="Debtors"><table:table-row><table:table-cell office:value-type="string"><text:p>Account No</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Amount Due</text:p></table:table-cell></table:table-row><table:table-row><table:table-cell office:value-type="string"><text:p>B-1</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="12.5"/></table:table-row></table:table>"#;

fn xlsx_sheet(rows: &str, dimension: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>"#
    )
    .into_bytes()
}

fn shared_strings(declared: u64, strings: u64) -> Vec<u8> {
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{declared}" uniqueCount="{declared}">"#
    );
    for _ in 0..strings {
        xml.push_str("<si><t>a</t></si>");
    }
    xml.push_str("</sst>");
    xml.into_bytes()
}

/// An xlsx whose shared string table holds `strings` copies of a `length`-character
/// string: under every per-file bound (fewer than 1,000,000 strings, under 256 MiB
/// inflated), yet its reader keeps each one, a quarter of a gigabyte for 999,000 of 200.
pub fn shared_string_flood(strings: u64, length: usize) -> Vec<u8> {
    let text = "a".repeat(length);
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{strings}" uniqueCount="{strings}">"#
    );
    for _ in 0..strings {
        xml.push_str("<si><t>");
        xml.push_str(&text);
        xml.push_str("</t></si>");
    }
    xml.push_str("</sst>");
    xlsx(&[("xl/sharedStrings.xml", xml.into_bytes())])
}

fn xlsx(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    with_parts(&fixture("accounts.xlsx"), parts)
}

/// An xlsb shared string table of `strings` empty strings (BrtBeginSst, BrtSSTItem…,
/// BrtEndSst).
fn xlsb_strings(strings: u32) -> Vec<u8> {
    let mut bin = vec![0x9F, 0x01, 0x08];
    bin.extend(strings.to_le_bytes());
    bin.extend(strings.to_le_bytes());
    for _ in 0..strings {
        bin.extend([0x13, 0x05, 0x00, 0, 0, 0, 0]);
    }
    bin.extend([0xA0, 0x01, 0x00]);
    bin
}

/// A BIFF8 workbook, built record by record.
pub mod biff {
    use std::io::{Cursor, Write};

    pub fn record(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_le_bytes().to_vec();
        out.extend((data.len() as u16).to_le_bytes());
        out.extend(data);
        out
    }

    fn bof(kind: u16) -> Vec<u8> {
        let mut data = vec![0x00, 0x06];
        data.extend(kind.to_le_bytes());
        data.extend([0xBB, 0x0D, 0xCC, 0x07, 0, 0, 0, 0, 0x06, 0, 0, 0]);
        record(0x0809, &data)
    }

    pub fn label(row: u16, col: u16, text: &str) -> Vec<u8> {
        let mut data = Vec::new();
        for v in [row, col, 0] {
            data.extend(v.to_le_bytes());
        }
        data.extend((text.len() as u16).to_le_bytes());
        data.push(0);
        data.extend(text.as_bytes());
        record(0x0204, &data)
    }

    pub fn number(row: u16, col: u16, value: f64) -> Vec<u8> {
        let mut data = Vec::new();
        for v in [row, col, 0] {
            data.extend(v.to_le_bytes());
        }
        data.extend(value.to_le_bytes());
        record(0x0203, &data)
    }

    /// A shared string table of `count` empty strings, in SST and CONTINUE records.
    pub fn empty_strings(count: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut first = count.to_le_bytes().to_vec();
        first.extend(count.to_le_bytes());
        let mut left = count as usize;
        let take = left.min(2738);
        first.extend(std::iter::repeat_n(0u8, take * 3));
        out.extend(record(0x00FC, &first));
        left -= take;
        while left > 0 {
            let take = left.min(2741);
            out.extend(record(0x003C, &vec![0u8; take * 3]));
            left -= take;
        }
        out
    }

    /// Globals (with `globals` records before EOF) and one sheet per cell list.
    pub fn workbook(globals: &[u8], sheets: &[Vec<u8>]) -> Vec<u8> {
        let bound_len = |i: usize| 4 + 8 + format!("S{i}").len();
        let globals_len = bof(0x0005).len() + globals.len() + (0..sheets.len()).map(bound_len).sum::<usize>() + 4;
        let mut stream = bof(0x0005);
        let mut offset = globals_len;
        let mut bodies = Vec::new();
        for (i, cells) in sheets.iter().enumerate() {
            let mut data = (offset as u32).to_le_bytes().to_vec();
            let name = format!("S{i}");
            data.extend([0, 0, name.len() as u8, 0]);
            data.extend(name.as_bytes());
            stream.extend(record(0x0085, &data));
            let mut body = bof(0x0010);
            body.extend(cells);
            body.extend(record(0x000A, &[]));
            offset += body.len();
            bodies.push(body);
        }
        stream.extend(globals);
        stream.extend(record(0x000A, &[]));
        assert_eq!(stream.len(), globals_len);
        for body in bodies {
            stream.extend(body);
        }
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        file.create_stream("/Workbook").unwrap().write_all(&stream).unwrap();
        file.flush().unwrap();
        file.into_inner().into_inner()
    }
}

/// A small valid BIFF8 workbook from the same builder as the xls bombs, so that a bomb's
/// refusal is known to come from its size and not from a malformed file.
pub fn xls_control() -> Vec<u8> {
    let mut cells = biff::label(0, 0, "Account No");
    cells.extend(biff::label(0, 1, "Amount Due"));
    cells.extend(biff::label(1, 0, "B-1"));
    cells.extend(biff::number(1, 1, 12.5));
    biff::workbook(&[], &[cells])
}

/// A small valid ODS workbook from the same builder as the ods bombs.
pub fn ods_control() -> Vec<u8> {
    ods(SMALL_TABLE)
}

pub fn all() -> Vec<Bomb> {
    // Two cells far apart: a sheet spanning 65,536 rows by 122 columns, just under the
    // 8,000,000 cells a single xls sheet was allowed before; twelve of them.
    let mut far = biff::number(0, 0, 1.0);
    far.extend(biff::number(65_535, 121, 1.0));
    let header_256: String = (0..256)
        .map(|c| format!(r#"<c r="{}1" t="inlineStr"><is><t>h{c}</t></is></c>"#, column(c)))
        .collect();
    let wide_rows: String = (2..=200_000)
        .map(|r| format!(r#"<row r="{r}"><c r="IV{r}" t="s"><v>0</v></c></row>"#))
        .collect();
    vec![
        Bomb {
            name: "ods: 6,000 rows x 16,000 text cells, one repeated element",
            bytes: ods(&repeated_table("S1", 6_000, 16_000)),
            expect: "ok",
        },
        Bomb {
            name: "ods: ten sheets of 1,048,576 x 16,384 repeated cells",
            bytes: ods(&(0..10)
                .map(|i| repeated_table(&format!("S{i}"), 1_048_576, 16_384))
                .collect::<String>()),
            expect: "too_large",
        },
        Bomb {
            name: "ods: ten bomb sheets, then the small sheet asked for",
            bytes: ods(&((0..10)
                .map(|i| repeated_table(&format!("S{i}"), 1_048_576, 16_384))
                .collect::<String>()
                + SMALL_TABLE)),
            expect: "ok",
        },
        Bomb {
            name: "ods: 4,294,967,295 empty rows, then a row",
            bytes: ods(&format!(
                r#"<table:table table:name="S1"><table:table-row table:number-rows-repeated="4294967295"><table:table-cell table:number-columns-repeated="4294967295"/></table:table-row>{}</table:table>"#,
                &SMALL_TABLE[SMALL_TABLE.find("<table:table-row>").unwrap()..SMALL_TABLE.len() - "</table:table>".len()]
            )),
            expect: "no_header",
        },
        Bomb {
            name: "ods: a cell of 2,000,000,000 spaces (text:s)",
            bytes: ods(
                r#"<table:table table:name="S1"><table:table-row><table:table-cell office:value-type="string"><text:p>a<text:s text:c="2000000000"/>b</text:p></table:table-cell></table:table-row></table:table>"#,
            ),
            expect: "cell_too_long",
        },
        Bomb {
            name: "xlsx: sharedStrings declares 4,000,000,000 strings",
            bytes: xlsx(&[("xl/sharedStrings.xml", shared_strings(4_000_000_000, 1))]),
            expect: "too_large",
        },
        Bomb {
            name: "xlsx: 999,000 shared strings of 200 characters",
            bytes: shared_string_flood(999_000, 200),
            expect: "ok",
        },
        Bomb {
            name: "xlsx: 1,500,000 shared strings",
            bytes: xlsx(&[("xl/sharedStrings.xml", shared_strings(1, 1_500_000))]),
            expect: "too_large",
        },
        Bomb {
            name: "xlsx: dimension A1:XFD1048576 over the fixture's cells",
            bytes: {
                let base = fixture("accounts.xlsx");
                let mut archive = zip::ZipArchive::new(Cursor::new(&base)).unwrap();
                let mut sheet = String::new();
                archive
                    .by_name("xl/worksheets/sheet1.xml")
                    .unwrap()
                    .read_to_string(&mut sheet)
                    .unwrap();
                let sheet = sheet.replace(r#"<dimension ref="A1:J5" />"#, r#"<dimension ref="A1:XFD1048576" />"#);
                assert!(sheet.contains("XFD1048576"));
                with_parts(&base, &[("xl/worksheets/sheet1.xml", sheet.into_bytes())])
            },
            expect: "ok",
        },
        Bomb {
            name: "xlsx: 256-column header, 200,000 rows of one far cell",
            bytes: xlsx(&[
                (
                    "xl/worksheets/sheet1.xml",
                    xlsx_sheet(&format!(r#"<row r="1">{header_256}</row>{wide_rows}"#), "A1:IV200000"),
                ),
                ("xl/sharedStrings.xml", shared_strings(1, 1)),
            ]),
            expect: "too_large",
        },
        Bomb {
            name: "xlsx: one value of 4 MiB",
            bytes: xlsx(&[(
                "xl/worksheets/sheet1.xml",
                xlsx_sheet(
                    &format!(
                        r#"<row r="1"><c r="A1" t="inlineStr"><is><t>{}</t></is></c></row>"#,
                        "x".repeat(4 << 20)
                    ),
                    "A1",
                ),
            )]),
            expect: "too_large",
        },
        Bomb {
            name: "xlsb: 1,500,000 shared strings",
            bytes: with_parts(&fixture("accounts.xlsb"), &[("xl/sharedStrings.bin", xlsb_strings(1_500_000))]),
            expect: "too_large",
        },
        Bomb {
            name: "xls: twelve sheets of 65,536 x 122 cells",
            bytes: biff::workbook(&[], &vec![far; 12]),
            expect: "sprawling",
        },
        Bomb {
            name: "xls: 16,000,000 empty shared strings",
            bytes: biff::workbook(&biff::empty_strings(16_000_000), &[biff::label(0, 0, "Account No")]),
            expect: "too_large",
        },
    ]
}

/// The spreadsheet name of a 0-based column (0 → A, 255 → IV).
fn column(index: usize) -> String {
    let mut name = String::new();
    let mut n = index + 1;
    while n > 0 {
        name.insert(0, (b'A' + ((n - 1) % 26) as u8) as char);
        n = (n - 1) / 26;
    }
    name
}
