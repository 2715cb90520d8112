//! OpenDocument spreadsheets, read as a stream. calamine expands `number-rows-repeated`
//! and `number-columns-repeated` into a dense grid of every sheet when it opens a
//! workbook, so a few kilobytes of `content.xml` could ask for gigabytes; here a
//! repeated row or cell is handed to the grid as often as it repeats, the grid stops at
//! its row and size limits, and empty repeats cost nothing. Cell values follow
//! calamine's reading, so every format of the same workbook reads the same cells.

use std::io::{BufReader, Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{Grid, MAX_CELL_CHARS, MAX_COLUMNS, Refusal, iso_text, number_text};

/// Rows past the last one a spreadsheet program shows are ignored, as calamine and
/// LibreOffice ignore them (LibreOffice pads a sheet with empty rows up to it).
const MAX_SHEET_ROWS: u32 = 1_048_576;

type Xml<'a> = Reader<BufReader<&'a mut dyn Read>>;

/// Reads the chosen (or first) table of an ODS workbook into `grid`; returns its name.
pub(super) fn read(bytes: &[u8], wanted: Option<&str>, grid: &mut Grid) -> Result<String, Refusal> {
    let names = with_content(bytes, sheet_names)?;
    let name = super::pick(names, wanted)?;
    with_content(bytes, |xml| read_named_table(xml, &name, grid))?;
    Ok(name)
}

fn with_content<T>(bytes: &[u8], read: impl FnOnce(&mut Xml<'_>) -> Result<T, Refusal>) -> Result<T, Refusal> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut file = archive.by_name("content.xml").map_err(corrupt)?;
    let mut xml = Reader::from_reader(BufReader::new(&mut file as &mut dyn Read));
    let config = xml.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = false;
    config.check_comments = false;
    read(&mut xml)
}

fn corrupt(err: impl std::fmt::Display) -> Refusal {
    Refusal::Corrupt(format!("content.xml: {err}"))
}

fn next<'b>(xml: &mut Xml<'_>, buf: &'b mut Vec<u8>) -> Result<Event<'b>, Refusal> {
    buf.clear();
    xml.read_event_into(buf).map_err(corrupt)
}

fn is(element: &BytesStart<'_>, name: &str) -> bool {
    element.name().as_ref() == name
}

fn attribute(element: &BytesStart<'_>, name: &str) -> Result<Option<String>, Refusal> {
    match element.try_get_attribute(name).map_err(corrupt)? {
        Some(value) => Ok(Some(
            value
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(corrupt)?
                .into_owned(),
        )),
        None => Ok(None),
    }
}

/// A repeat count; absent means once.
fn repeats(element: &BytesStart<'_>, name: &str) -> Result<u32, Refusal> {
    attribute(element, name)?.map_or(Ok(1), |v| {
        v.trim().parse().map_err(|_| corrupt(format!("{name}=\"{v}\" is not a count")))
    })
}

fn skip(xml: &mut Xml<'_>, element: &BytesStart<'_>) -> Result<(), Refusal> {
    let mut buf = Vec::new();
    xml.read_to_end_into(element.name(), &mut buf).map_err(corrupt)?;
    Ok(())
}

fn sheet_names(xml: &mut Xml<'_>) -> Result<Vec<String>, Refusal> {
    let mut names = Vec::new();
    let mut buf = Vec::new();
    loop {
        match next(xml, &mut buf)? {
            Event::Start(e) if is(&e, "table:table") => {
                let e = e.into_owned();
                if let Some(name) = attribute(&e, "table:name")? {
                    names.push(name);
                }
                skip(xml, &e)?;
            }
            Event::Eof => return Ok(names),
            _ => {}
        }
    }
}

fn read_named_table(xml: &mut Xml<'_>, name: &str, grid: &mut Grid) -> Result<(), Refusal> {
    let mut buf = Vec::new();
    loop {
        match next(xml, &mut buf)? {
            Event::Start(e) if is(&e, "table:table") => {
                let e = e.into_owned();
                if attribute(&e, "table:name")?.as_deref() == Some(name) {
                    return read_table(xml, grid);
                }
                skip(xml, &e)?;
            }
            Event::Eof => return Err(corrupt(format!("no table named {name:?}"))),
            _ => {}
        }
    }
}

/// Rows until the table ends; rows inside row groups and header rows count alike.
fn read_table(xml: &mut Xml<'_>, grid: &mut Grid) -> Result<(), Refusal> {
    let mut row: u32 = 0;
    let mut buf = Vec::new();
    loop {
        match next(xml, &mut buf)? {
            Event::Start(e) if is(&e, "table:table-row") => {
                let times = repeats(&e, "table:number-rows-repeated")?.min(MAX_SHEET_ROWS - row);
                let cells = read_row(xml, grid.decimal)?;
                if !cells.is_empty() {
                    for offset in 0..times {
                        for (col, text) in &cells {
                            grid.put(row + offset, *col, text.clone())?;
                        }
                    }
                }
                row += times;
            }
            Event::End(e) if e.name().as_ref() == "table:table" => return Ok(()),
            Event::Eof => return Err(corrupt("it ends inside a table")),
            _ => {}
        }
    }
}

/// The row's cells that hold text, by column (columns past [`MAX_COLUMNS`] dropped).
fn read_row(xml: &mut Xml<'_>, decimal: char) -> Result<Vec<(u32, String)>, Refusal> {
    let mut cells = Vec::new();
    let mut col: u32 = 0;
    let mut buf = Vec::new();
    loop {
        match next(xml, &mut buf)? {
            Event::Start(e) if is(&e, "table:table-cell") || is(&e, "table:covered-table-cell") => {
                let e = e.into_owned();
                let times = repeats(&e, "table:number-columns-repeated")?;
                let text = cell_text(xml, &e, decimal)?;
                if !text.trim().is_empty() {
                    let end = col.saturating_add(times).min(MAX_COLUMNS as u32);
                    cells.extend((col..end).map(|c| (c, text.clone())));
                }
                col = col.saturating_add(times);
            }
            Event::End(e) if e.name().as_ref() == "table:table-row" => return Ok(cells),
            Event::Eof => return Err(corrupt("it ends inside a row")),
            _ => {}
        }
    }
}

/// A cell's value as a person would have typed it, consuming the cell's element. The
/// first value attribute wins; a string cell without `office:string-value` (and an error
/// cell, whose text LibreOffice keeps in the content) is read from its paragraphs.
fn cell_text(xml: &mut Xml<'_>, cell: &BytesStart<'_>, decimal: char) -> Result<String, Refusal> {
    let mut value = None;
    let (mut is_string, mut is_error) = (false, false);
    for attr in cell.attributes().with_checks(false) {
        let attr = attr.map_err(corrupt)?;
        let text = || attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(corrupt);
        match attr.key.as_ref() {
            "office:value" if value.is_none() => {
                let number: f64 = text()?
                    .trim()
                    .parse()
                    .map_err(|_| corrupt("a cell's office:value is not a number"))?;
                value = Some(number_text(number, decimal));
            }
            "office:string-value" | "office:time-value" if value.is_none() => value = Some(text()?.into_owned()),
            "office:date-value" if value.is_none() => value = Some(iso_text(&text()?)),
            "office:boolean-value" if value.is_none() => {
                let text = text()?;
                value = Some((text == "true" || text == "TRUE").to_string());
            }
            "office:value-type" if value.is_none() => is_string = text()? == "string",
            "calcext:value-type" => is_error = text()? == "error",
            _ => {}
        }
    }
    match value {
        Some(value) if !(is_error && value.is_empty()) => {
            skip(xml, cell)?;
            Ok(value)
        }
        None if !is_string && !is_error => {
            skip(xml, cell)?;
            Ok(String::new())
        }
        _ => paragraphs(xml, cell),
    }
}

/// The text of a cell's paragraphs, one line each, without its annotations.
fn paragraphs(xml: &mut Xml<'_>, cell: &BytesStart<'_>) -> Result<String, Refusal> {
    let mut text = String::new();
    let mut first = true;
    let mut buf = Vec::new();
    loop {
        match next(xml, &mut buf)? {
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => match quick_xml::escape::resolve_xml_entity(&r) {
                Some(entity) => text.push_str(entity),
                None => text.extend(r.resolve_char_ref().map_err(corrupt)?),
            },
            Event::Start(e) if is(&e, "office:annotation") => {
                let e = e.into_owned();
                skip(xml, &e)?;
            }
            Event::Start(e) if is(&e, "text:p") => {
                if !first {
                    text.push('\n');
                }
                first = false;
            }
            Event::Start(e) if is(&e, "text:s") => {
                let spaces = repeats(&e, "text:c")? as usize;
                if spaces > MAX_CELL_CHARS {
                    return Err(Refusal::CellTooLong);
                }
                text.extend(std::iter::repeat_n(' ', spaces));
            }
            Event::Start(e) if is(&e, "text:tab") => text.push('\t'),
            Event::Start(e) if is(&e, "text:line-break") => text.push('\n'),
            Event::End(e) if e.name() == cell.name() => return Ok(text),
            Event::Eof => return Err(corrupt("it ends inside a cell")),
            _ => {}
        }
        // Bytes bound the memory here; the grid counts the characters.
        if text.len() > 4 * MAX_CELL_CHARS {
            return Err(Refusal::CellTooLong);
        }
    }
}
