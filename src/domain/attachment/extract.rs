//! What processing reads out of a kept file: a PDF's page count, a thumbnail of an image,
//! and the words of a PDF, a Word document, a plain text or an email, for search. Every
//! reader is bounded (decompressed bytes, image dimensions and allocations, characters
//! kept), and the service runs this in a child process under resource limits besides
//! (`arrears extract-document`), so a file crafted against a parser costs that process,
//! never the server.

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

use super::Kind;

/// The most characters of text kept per file (the column's bound).
pub const MAX_TEXT_CHARS: usize = 100_000;
/// A thumbnail's longest side, in pixels.
pub const THUMBNAIL_SIDE: u32 = 256;
/// What one PDF stream, or a Word document's main part, may decompress to.
pub const MAX_DECOMPRESSED_BYTES: usize = 32 * 1024 * 1024;
/// An image's largest side the thumbnailer decodes, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 20_000;
/// What decoding one image may allocate.
pub const MAX_IMAGE_ALLOC: u64 = 256 * 1024 * 1024;

/// The reader process's data memory (`RLIMIT_DATA`: its private writable mappings, the
/// heap and what the allocator maps), what its readers allocate and its runtime's.
pub const READER_MAX_DATA_BYTES: u64 = 1024 * 1024 * 1024;
/// The reader process's CPU time.
pub const READER_MAX_CPU_SECONDS: u64 = 30;
/// The environment the reader process runs with, and nothing else. mimalloc otherwise
/// reserves a 1 GiB arena up front (writable, so counted as data before a byte is
/// used); without it, it maps what it uses, and the limit counts that.
pub const READER_ENV: [(&str, &str); 1] = [("MIMALLOC_ARENA_RESERVE", "0")];

/// What processing found in a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// A PDF's pages.
    pub page_count: Option<u32>,
    /// The file's words, whitespace collapsed, at most [`MAX_TEXT_CHARS`] characters;
    /// empty when it holds none (or none this build reads).
    pub text: String,
    /// A PNG of at most [`THUMBNAIL_SIDE`] pixels a side, for an image.
    #[serde(default, with = "base64_bytes")]
    pub thumbnail: Option<Vec<u8>>,
}

/// What the child process answers on its standard output, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Read(Extracted),
    /// The file could not be read, and why: reading it again will not help.
    Unreadable(String),
}

/// Reads `bytes`, a file of `kind`. An error says why the file could not be read.
pub fn extract(kind: Kind, bytes: &[u8]) -> Result<Extracted, String> {
    match kind {
        Kind::Pdf => pdf(bytes),
        Kind::Docx => Ok(Extracted {
            text: docx_text(bytes)?,
            ..Extracted::default()
        }),
        Kind::Text | Kind::Eml => Ok(Extracted {
            text: collapsed(&String::from_utf8_lossy(bytes)),
            ..Extracted::default()
        }),
        Kind::Png | Kind::Jpeg | Kind::Tiff => Ok(Extracted {
            thumbnail: Some(thumbnail(kind, bytes)?),
            ..Extracted::default()
        }),
        // No reader here: HEIC needs a codec this build does not carry, and a
        // spreadsheet's cells are not a document's words.
        Kind::Heic | Kind::Xlsx => Ok(Extracted::default()),
    }
}

/// Whitespace runs as one space, trimmed, cut at [`MAX_TEXT_CHARS`] characters.
pub fn collapsed(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        let needed = word.chars().count() + usize::from(!out.is_empty());
        if chars + needed > MAX_TEXT_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        chars += needed;
    }
    out
}

fn pdf(bytes: &[u8]) -> Result<Extracted, String> {
    let options = lopdf::LoadOptions::with_max_decompressed_size(MAX_DECOMPRESSED_BYTES);
    let document = lopdf::Document::load_mem_with_options(bytes, options).map_err(|e| format!("not a readable PDF: {e}"))?;
    let pages: Vec<u32> = document.get_pages().keys().copied().collect();
    let mut text = String::new();
    for page in &pages {
        // A page whose text cannot be read (a font without a map to Unicode, a stream
        // over the bound) adds nothing; the others still count.
        if let Ok(words) = document.extract_text_with_limit(&[*page], MAX_DECOMPRESSED_BYTES) {
            text.push_str(&words);
            text.push('\n');
        }
        if text.len() > 4 * MAX_TEXT_CHARS {
            break;
        }
    }
    Ok(Extracted {
        page_count: Some(u32::try_from(pages.len()).unwrap_or(u32::MAX)),
        text: collapsed(&text),
        thumbnail: None,
    })
}

/// The part of a Word document holding its body.
const DOCX_BODY: &str = "word/document.xml";

/// The words of a Word document's body: the runs' text (`w:t`), a paragraph or a break
/// between lines, a tab as a space.
fn docx_text(bytes: &[u8]) -> Result<String, String> {
    use quick_xml::events::Event;

    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable zip: {e}"))?;
    let part = zip.by_name(DOCX_BODY).map_err(|e| format!("{DOCX_BODY} cannot be read: {e}"))?;
    if part.size() > MAX_DECOMPRESSED_BYTES as u64 {
        return Err(format!("{DOCX_BODY} declares more than {MAX_DECOMPRESSED_BYTES} bytes"));
    }
    // Never past what it declared, whatever its data inflates to.
    let declared = part.size();
    let mut xml = quick_xml::Reader::from_reader(std::io::BufReader::new(part.take(declared)));
    let mut text = String::new();
    let mut in_run_text = false;
    let mut buf = Vec::new();
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|e| format!("{DOCX_BODY} is not well-formed: {e}"))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_run_text = true,
            Event::End(e) if e.local_name().as_ref() == "t" => in_run_text = false,
            Event::End(e) if e.local_name().as_ref() == "p" => text.push('\n'),
            Event::Empty(e) if matches!(e.local_name().as_ref(), "br" | "cr") => text.push('\n'),
            Event::Empty(e) if e.local_name().as_ref() == "tab" => text.push(' '),
            Event::Text(t) if in_run_text => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_run_text => match quick_xml::escape::resolve_xml_entity(&r) {
                Some(entity) => text.push_str(entity),
                None => text.extend(r.resolve_char_ref().ok().flatten()),
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
        if text.len() > 4 * MAX_TEXT_CHARS {
            break;
        }
    }
    Ok(collapsed(&text))
}

/// A PNG of the image, at most [`THUMBNAIL_SIDE`] pixels a side, its aspect kept.
fn thumbnail(kind: Kind, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let format = match kind {
        Kind::Png => image::ImageFormat::Png,
        Kind::Jpeg => image::ImageFormat::Jpeg,
        Kind::Tiff => image::ImageFormat::Tiff,
        other => return Err(format!("no thumbnail for a {} file", other.as_str())),
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("not a readable image: {e}"))?;
    // A small image keeps its size: a thumbnail is never larger than its image.
    let fits = image.width() <= THUMBNAIL_SIDE && image.height() <= THUMBNAIL_SIDE;
    let scaled = if fits {
        image
    } else {
        image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    };
    let small = image::DynamicImage::ImageRgba8(scaled.to_rgba8());
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("the thumbnail could not be written: {e}"))?;
    Ok(png)
}

/// The thumbnail as base64 in JSON (what the child process writes to its parent).
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Reads the whole of `input`, refusing more than `limit` bytes.
pub fn read_bounded(input: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("more than {limit} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_collapsed_and_cut_on_a_word() {
        assert_eq!(collapsed("  Dispute\n\tletter  of   May "), "Dispute letter of May");
        let long = "word ".repeat(MAX_TEXT_CHARS);
        let cut = collapsed(&long);
        assert!(cut.chars().count() <= MAX_TEXT_CHARS);
        assert!(cut.ends_with("word"));
    }

    #[test]
    fn a_thumbnail_keeps_the_aspect_within_its_side() {
        let wide = image::RgbImage::from_pixel(1024, 512, image::Rgb([200, 10, 10]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(wide)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let out = extract(Kind::Png, &png).unwrap();
        let thumb = image::load_from_memory(out.thumbnail.as_ref().unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (256, 128));
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused_before_it_is_decoded() {
        // A PNG header declaring 100,000 x 100,000 pixels and no data.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        let err = extract(Kind::Png, &png).unwrap_err();
        assert!(err.contains("not a readable image"), "{err}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn a_word_document_gives_its_runs_text() {
        let body = r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Dispute</w:t></w:r><w:r><w:t xml:space="preserve"> of the &amp; balance</w:t></w:r></w:p><w:p><w:r><w:t>Signed</w:t><w:tab/><w:t>Müller</w:t></w:r></w:p></w:body></w:document>"#;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("[Content_Types].xml", options).unwrap();
        std::io::Write::write_all(&mut zip, b"<Types/>").unwrap();
        zip.start_file(DOCX_BODY, options).unwrap();
        std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let out = extract(Kind::Docx, &bytes).unwrap();
        assert_eq!(out.text, "Dispute of the & balance Signed Müller");
        assert_eq!(out.page_count, None);
    }

    #[test]
    fn the_wire_form_round_trips() {
        let extracted = Extracted {
            page_count: Some(3),
            text: "words".into(),
            thumbnail: Some(vec![0, 1, 2, 255]),
        };
        let json = serde_json::to_string(&extracted).unwrap();
        assert_eq!(serde_json::from_str::<Extracted>(&json).unwrap(), extracted);
    }
}
