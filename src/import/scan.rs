//! What a workbook would make its parser allocate, measured before the parser runs.
//! calamine trusts counts and extents that a file declares and builds some structures
//! whole (xls sheets as dense grids, shared string tables as vectors), so each of
//! those is sized here from the bytes, cheaply and as a stream, and an oversized one is
//! refused instead of being allocated.

use std::io::{Cursor, Read};

use super::{Format, MAX_INFLATED_BYTES, Refusal};

/// Entries a zip container may hold.
const MAX_ZIP_ENTRIES: usize = 10_000;
/// Shared strings (xlsx, xlsb) a workbook may declare or hold: calamine keeps them all,
/// and reserves the declared number up front.
pub const MAX_SHARED_STRINGS: u64 = 1_000_000;
/// The longest text or tag in an XML part: a parser buffers one whole at a time.
pub const MAX_XML_RUN: u64 = 1024 * 1024;
/// The cells all sheets of an xls workbook may span together (the rows × columns of
/// each sheet's used range) and hold: calamine builds every sheet as a dense grid when
/// it opens the workbook.
pub const MAX_XLS_CELLS: u64 = 1_000_000;
/// The bytes of an xls shared string table: an entry takes as little as three bytes
/// and becomes a 24-byte string.
pub const MAX_XLS_STRING_TABLE: u64 = 16 * 1024 * 1024;

/// Tells xlsx, xlsb and ods apart, and inflates every entry into a counter so that no
/// parser ever meets a zip bomb; XML parts are scanned for oversized runs, shared string
/// tables counted, xlsb sheets walked record by record.
pub(super) fn zip_format(bytes: &[u8]) -> Result<Format, Refusal> {
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
        let limited = (&mut entry).take(budget + 1);
        let read = if name.starts_with("xl/worksheets/") && name.ends_with(".bin") {
            xlsb_records(limited, budget, Xlsb::Sheet)?
        } else if name == "xl/sharedStrings.bin" {
            xlsb_records(limited, budget, Xlsb::SharedStrings)?
        } else if name.ends_with(".xml") || name.ends_with(".rels") {
            xml_part(limited, name == "xl/sharedStrings.xml")?
        } else {
            std::io::copy(&mut { limited }, &mut std::io::sink()).map_err(|e| Refusal::Corrupt(e.to_string()))?
        };
        if read > budget {
            return Err(Refusal::Inflated);
        }
        inflated += read;
    }
    format.ok_or(Refusal::NotASpreadsheet("a zip archive without a workbook in it"))
}

/// Streams an XML part, refusing a text or tag longer than [`MAX_XML_RUN`]; in an xlsx
/// shared string table also counts the strings (`<si>`) and reads the declared
/// `uniqueCount`. Returns the bytes read.
fn xml_part(mut reader: impl Read, shared_strings: bool) -> Result<u64, Refusal> {
    let mut read: u64 = 0;
    let mut run: u64 = 0;
    let mut strings: u64 = 0;
    // The part's first bytes, where `<sst uniqueCount="...">` is; checked once.
    let mut head: Option<Vec<u8>> = shared_strings.then(Vec::new);
    // The last bytes of the previous chunk, so a `<si>` split across chunks is seen.
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| Refusal::Corrupt(e.to_string()))?;
        if let Some(bytes) = &mut head {
            bytes.extend_from_slice(&chunk[..n.min(HEAD - bytes.len())]);
            if (bytes.len() == HEAD || n == 0) && declared_unique_count(bytes) > MAX_SHARED_STRINGS {
                return Err(Refusal::TooLarge("it declares more than 1,000,000 shared strings"));
            }
            if bytes.len() == HEAD {
                head = None;
            }
        }
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
        for &byte in &chunk[..n] {
            run = if byte == b'<' || byte == b'>' { 0 } else { run + 1 };
            if run > MAX_XML_RUN {
                return Err(Refusal::TooLarge("an XML part holds a text or tag longer than 1 MiB"));
            }
        }
        if shared_strings {
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&chunk[..n]);
            strings += count_si(&window);
            if strings > MAX_SHARED_STRINGS {
                return Err(Refusal::TooLarge("it holds more than 1,000,000 shared strings"));
            }
            tail = window[window.len().saturating_sub(3)..].to_vec();
        }
    }
}

/// How much of a shared string table's start is searched for its `<sst>` element.
const HEAD: usize = 4096;

/// `<si>` and `<si ...>` openings in `window` (a chunk after the previous chunk's last
/// three bytes, too few to hold an opening counted before).
fn count_si(window: &[u8]) -> u64 {
    window
        .windows(4)
        .filter(|w| w[..3] == *b"<si" && matches!(w[3], b'>' | b' ' | b'/' | b'\t' | b'\r' | b'\n'))
        .count() as u64
}

/// The `uniqueCount` of the `<sst>` element in a part's first bytes (0 when absent).
fn declared_unique_count(head: &[u8]) -> u64 {
    let Some(sst) = head.windows(4).position(|w| w == b"<sst") else {
        return 0;
    };
    let element = &head[sst..];
    let element = &element[..element.iter().position(|b| *b == b'>').unwrap_or(element.len())];
    let Some(at) = element.windows(13).position(|w| w == b"uniqueCount=\"") else {
        return 0;
    };
    let digits = element[at + 13..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&element[at + 13..at + 13 + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(if digits > 0 { u64::MAX } else { 0 })
}

#[derive(Clone, Copy, PartialEq)]
enum Xlsb {
    Sheet,
    SharedStrings,
}

/// Walks an xlsb part's records, returning the bytes read (at most `budget + 1`). In a
/// sheet, calamine skips the compact "short" cell records (BrtShort*, 0x0D-0x12) some
/// writers use, which would drop cells silently, so such a sheet is refused instead; in
/// the shared string table the strings (BrtSSTItem, 0x13) are counted.
fn xlsb_records(reader: impl Read, budget: u64, part: Xlsb) -> Result<u64, Refusal> {
    let mut reader = std::io::BufReader::new(reader);
    let mut read: u64 = 0;
    let mut strings: u64 = 0;
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
        match part {
            Xlsb::Sheet if (0x0D..=0x12).contains(&kind) => {
                return Err(Refusal::Corrupt(
                    "this xlsb file uses compact cell records that cannot be read reliably; save it as xlsx".into(),
                ));
            }
            Xlsb::SharedStrings if kind == 0x13 => {
                strings += 1;
                if strings > MAX_SHARED_STRINGS {
                    return Err(Refusal::TooLarge("it holds more than 1,000,000 shared strings"));
                }
            }
            _ => {}
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

/// Refuses an xls workbook that would make calamine allocate too much when it opens it:
/// all sheets' grids together (each sized from its DIMENSIONS record and from its cells'
/// positions), all cell records together (a file may repeat a position), and the shared
/// string table; walks the BIFF records of the Workbook stream.
pub(super) fn xls_extent(bytes: &[u8]) -> Result<(), Refusal> {
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
    // The grids of the sheets already walked, and the cell records seen so far.
    let (mut earlier_sheets, mut records): (u64, u64) = (0, 0);
    // (first row, last row, first column, last column) of the current sheet's cells.
    let mut extent: Option<(u64, u64, u64, u64)> = None;
    let area = |e: Option<(u64, u64, u64, u64)>| e.map_or(0, |(r0, r1, c0, c1)| (r1 - r0 + 1).saturating_mul(c1 - c0 + 1));
    let check = |rows: u64, cols: u64, earlier: u64| {
        if earlier.saturating_add(rows.saturating_mul(cols)) > MAX_XLS_CELLS {
            Err(Refusal::Sprawling { rows, cols })
        } else {
            Ok(())
        }
    };
    // The record before a CONTINUE, and the bytes of the shared string table.
    let (mut previous, mut string_table): (u64, u64) = (0, 0);
    let mut pos = 0;
    while pos + 4 <= stream.len() {
        let kind = u16_at(&stream, pos);
        let len = u16_at(&stream, pos + 2) as usize;
        let data = &stream[pos + 4..(pos + 4 + len).min(stream.len())];
        pos += 4 + len;
        if kind == 0x00FC || (kind == 0x003C && previous == 0x00FC) {
            string_table += len as u64;
            if string_table > MAX_XLS_STRING_TABLE {
                return Err(Refusal::TooLarge("its shared string table is larger than 16 MiB"));
            }
        }
        if kind != 0x003C {
            previous = kind;
        }
        let cells: &[(u64, u64)] = &match kind {
            // BOF: a new substream (sheet) starts.
            0x0809 => {
                earlier_sheets = earlier_sheets.saturating_add(area(extent.take()));
                continue;
            }
            // DIMENSIONS, BIFF8 (32-bit rows) or older (16-bit rows); the ends are exclusive.
            0x0200 => {
                let (first_row, end_row, first_col, end_col) = if data.len() >= 14 {
                    (u32_at(data, 0), u32_at(data, 4), u16_at(data, 8), u16_at(data, 10))
                } else {
                    (u16_at(data, 0), u16_at(data, 2), u16_at(data, 4), u16_at(data, 6))
                };
                check(end_row.saturating_sub(first_row), end_col.saturating_sub(first_col), earlier_sheets)?;
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
        records += if kind == 0x00BD {
            (data.len().saturating_sub(6) / 6) as u64
        } else {
            1
        };
        if records > MAX_XLS_CELLS {
            return Err(Refusal::TooLarge("its sheets hold more than 1,000,000 cells"));
        }
        for &(row, col) in cells {
            let (r0, r1, c0, c1) = extent.unwrap_or((row, row, col, col));
            let grown = (r0.min(row), r1.max(row), c0.min(col), c1.max(col));
            check(grown.1 - grown.0 + 1, grown.3 - grown.2 + 1, earlier_sheets)?;
            extent = Some(grown);
        }
    }
    Ok(())
}
