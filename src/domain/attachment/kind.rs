//! A document's kind, decided from its bytes as they stream past, never from its name
//! or the content type a client claims: the signature of each binary format, the OOXML
//! parts inside a zip, RFC 5322 header fields for a message, and valid UTF-8 without NUL
//! for plain text. Anything else is not kept.

use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;

/// The kinds of file an account may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Heic,
    Tiff,
    Docx,
    Xlsx,
    Text,
    Eml,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Pdf,
        Kind::Png,
        Kind::Jpeg,
        Kind::Heic,
        Kind::Tiff,
        Kind::Docx,
        Kind::Xlsx,
        Kind::Text,
        Kind::Eml,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Png => "png",
            Kind::Jpeg => "jpeg",
            Kind::Heic => "heic",
            Kind::Tiff => "tiff",
            Kind::Docx => "docx",
            Kind::Xlsx => "xlsx",
            Kind::Text => "text",
            Kind::Eml => "eml",
        }
    }

    /// A stored kind; `None` for one this build does not know.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The media type the file is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Heic => "image/heic",
            Kind::Tiff => "image/tiff",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Kind::Text => "text/plain; charset=utf-8",
            Kind::Eml => "message/rfc822",
        }
    }

    /// The file name extensions of the kind, the usual one first.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Kind::Pdf => &["pdf"],
            Kind::Png => &["png"],
            Kind::Jpeg => &["jpg", "jpeg"],
            Kind::Heic => &["heic", "heif"],
            Kind::Tiff => &["tif", "tiff"],
            Kind::Docx => &["docx"],
            Kind::Xlsx => &["xlsx"],
            Kind::Text => &["txt"],
            Kind::Eml => &["eml"],
        }
    }
}

/// How many of a file's first bytes the signatures and message headers are read from.
pub const HEAD_BYTES: usize = 64 * 1024;

/// What a file's bytes say once they have all streamed past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Known(Kind),
    /// A zip: DOCX or XLSX when its directory names their parts ([`ooxml_kind`]).
    Zip,
    Unsupported,
}

/// Reads a file's kind as its chunks stream past, holding only its first
/// [`HEAD_BYTES`] and the state of a UTF-8 check.
#[derive(Debug, Default)]
pub struct Sniffer {
    head: Vec<u8>,
    /// The bytes of a character a chunk ended in the middle of.
    partial: Vec<u8>,
    not_text: bool,
    has_nul: bool,
}

impl Sniffer {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.head.len() < HEAD_BYTES {
            let take = chunk.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if chunk.contains(&0) {
            self.has_nul = true;
        }
        if !self.not_text {
            self.check_utf8(chunk);
        }
    }

    fn check_utf8(&mut self, mut chunk: &[u8]) {
        while !self.partial.is_empty() {
            let Some((&byte, rest)) = chunk.split_first() else { return };
            chunk = rest;
            self.partial.push(byte);
            match std::str::from_utf8(&self.partial) {
                Ok(_) => self.partial.clear(),
                Err(e) if e.error_len().is_some() => {
                    self.not_text = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            match e.error_len() {
                Some(_) => self.not_text = true,
                None => self.partial = chunk[e.valid_up_to()..].to_vec(),
            }
        }
    }

    /// The verdict on the whole file.
    pub fn finish(self) -> Verdict {
        let head = self.head.as_slice();
        if let Some(kind) = signature(head) {
            return Verdict::Known(kind);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Verdict::Zip;
        }
        if self.has_nul {
            return Verdict::Unsupported;
        }
        if is_message(head) {
            return Verdict::Known(Kind::Eml);
        }
        if !self.not_text && self.partial.is_empty() {
            return Verdict::Known(Kind::Text);
        }
        Verdict::Unsupported
    }
}

fn signature(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if head.starts_with(b"\xff\xd8\xff") {
        Some(Kind::Jpeg)
    } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|s| head.starts_with(*s)) {
        Some(Kind::Tiff)
    } else if is_heic(head) {
        Some(Kind::Heic)
    } else {
        None
    }
}

/// The brands of an ISO base media file (its `ftyp` box) that say HEIC (ISO/IEC 23008-12).
const HEIC_BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"];

/// An `ftyp` box first whose major brand is HEIC, or the generic image brand (`mif1`,
/// `msf1`, which AVIF shares) with a HEIC brand among the compatible ones.
fn is_heic(head: &[u8]) -> bool {
    if head.len() < 16 || &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let brand = |at: usize| head.get(at..at + 4);
    let is_heic_brand = |b: &[u8]| HEIC_BRANDS.iter().any(|h| h.as_slice() == b);
    let Some(major) = brand(8) else { return false };
    if is_heic_brand(major) {
        return true;
    }
    if major != b"mif1" && major != b"msf1" {
        return false;
    }
    let end = size.min(head.len());
    (16..end).step_by(4).filter_map(brand).any(is_heic_brand)
}

/// Header fields the message must have: RFC 5322 §3.6 requires the origination date and
/// the originator.
const REQUIRED_FIELDS: [&str; 2] = ["date", "from"];

/// Whether `head` begins with an RFC 5322 header section: fields (`name: value`, the
/// name printable ASCII without `:`), folded lines, then an empty line (or the end of a
/// file shorter than the head), with a `Date` and a `From` among the fields.
fn is_message(head: &[u8]) -> bool {
    let mut seen = [false; REQUIRED_FIELDS.len()];
    let mut fields = 0usize;
    let mut rest = head;
    loop {
        let (line, next, ended) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..], false),
            None => (rest, &rest[rest.len()..], true),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return fields > 0 && seen.iter().all(|s| *s);
        }
        if ended && head.len() >= HEAD_BYTES {
            // The header section goes on past what was read.
            return false;
        }
        if matches!(line[0], b' ' | b'\t') {
            if fields == 0 {
                return false;
            }
        } else {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return false;
            };
            let name = &line[..colon];
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                return false;
            }
            fields += 1;
            for (required, seen) in REQUIRED_FIELDS.iter().zip(seen.iter_mut()) {
                *seen |= name.eq_ignore_ascii_case(required.as_bytes());
            }
        }
        if ended {
            return seen.iter().all(|s| *s);
        }
        rest = next;
    }
}

/// Zips whose directory lists more entries than this are not opened: an OOXML file
/// has dozens, and the directory is read whole.
const MAX_ZIP_ENTRIES: u64 = 10_000;

/// How many entries the zip `file` (of `size` bytes) says its directory lists, read from
/// its end record alone, before the directory is parsed; `u64::MAX` for a ZIP64 count
/// (only zips beyond 65,534 entries or 4 GiB need one), `None` without an end record.
pub fn declared_entries<R: Read + Seek>(file: &mut R, size: u64) -> std::io::Result<Option<u64>> {
    let tail_len = size.min(22 + 65_535);
    file.seek(SeekFrom::Start(size - tail_len))?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail)?;
    let Some(end) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return Ok(None);
    };
    Ok(tail.get(end + 10..end + 12).map(|b| match u16::from_le_bytes([b[0], b[1]]) {
        u16::MAX => u64::MAX,
        n => u64::from(n),
    }))
}

/// DOCX or XLSX when the zip `file` (of `size` bytes) holds the OOXML content types
/// part and the main part of a document (`word/document.xml`) or a workbook
/// (`xl/workbook.xml`); `None` for any other or unreadable zip.
pub fn ooxml_kind<R: Read + Seek>(mut file: R, size: u64) -> std::io::Result<Option<Kind>> {
    let Some(entries) = declared_entries(&mut file, size)? else {
        return Ok(None);
    };
    if entries > MAX_ZIP_ENTRIES {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))?;
    let Ok(archive) = zip::ZipArchive::new(file) else {
        return Ok(None);
    };
    let has = |name: &str| archive.index_for_name(name).is_some();
    if !has("[Content_Types].xml") {
        return Ok(None);
    }
    Ok(if has("word/document.xml") {
        Some(Kind::Docx)
    } else if has("xl/workbook.xml") {
        Some(Kind::Xlsx)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(chunks: &[&[u8]]) -> Verdict {
        let mut sniffer = Sniffer::default();
        for chunk in chunks {
            sniffer.push(chunk);
        }
        sniffer.finish()
    }

    #[test]
    fn signatures_decide_binary_kinds() {
        assert_eq!(sniff(&[b"%PDF-1.7\n%\xe2\xe3"]), Verdict::Known(Kind::Pdf));
        assert_eq!(sniff(&[b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"]), Verdict::Known(Kind::Png));
        assert_eq!(sniff(&[b"\xff\xd8\xff\xe0\0\x10JFIF\0"]), Verdict::Known(Kind::Jpeg));
        assert_eq!(sniff(&[b"II*\0\x08\0\0\0"]), Verdict::Known(Kind::Tiff));
        assert_eq!(sniff(&[b"MM\0*\0\0\0\x08"]), Verdict::Known(Kind::Tiff));
        assert_eq!(sniff(&[b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"]), Verdict::Known(Kind::Heic));
        assert_eq!(sniff(&[b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic"]), Verdict::Known(Kind::Heic));
        assert_eq!(sniff(&[b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif"]), Verdict::Unsupported);
        assert_eq!(sniff(&[b"\0\0\0\x18ftypavif\0\0\0\0mif1miaf"]), Verdict::Unsupported);
        assert_eq!(sniff(&[b"PK\x03\x04\x14\0"]), Verdict::Zip);
        assert_eq!(sniff(&[b"MZ\x90\0\x03\0\0\0\x04\0"]), Verdict::Unsupported);
        assert_eq!(sniff(&[b"\x7fELF\x02\x01\x01\0"]), Verdict::Unsupported);
    }

    #[test]
    fn text_is_utf8_without_nul_even_split_between_chunks() {
        assert_eq!(sniff(&[b"Paid in full, thanks.\n"]), Verdict::Known(Kind::Text));
        let text = "Zahlungsbestätigung 日本 €".as_bytes();
        for split in 0..text.len() {
            assert_eq!(sniff(&[&text[..split], &text[split..]]), Verdict::Known(Kind::Text), "{split}");
        }
        assert_eq!(sniff(&[b"abc\xc3"]), Verdict::Unsupported, "ends inside a character");
        assert_eq!(sniff(&[b"abc\xff def"]), Verdict::Unsupported);
        assert_eq!(sniff(&[b"abc", b"\0def"]), Verdict::Unsupported);
        assert_eq!(sniff(&[b"\xc3", b"("]), Verdict::Unsupported);
    }

    #[test]
    fn a_message_is_known_by_its_header_section() {
        let message = b"From: Jane <jane@example.com>\r\nTo: ar@example.com\r\nSubject: my\r\n  payment\r\n\
                        Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nI paid.\r\n";
        assert_eq!(sniff(&[message]), Verdict::Known(Kind::Eml));
        // 8-bit bodies are messages too, though not UTF-8 text.
        let latin1 = b"Date: Mon, 2 Mar 2026 10:00:00 +0000\nFrom: a@example.com\n\nGr\xfc\xdfe\n";
        assert_eq!(sniff(&[latin1]), Verdict::Known(Kind::Eml));
        assert_eq!(
            sniff(&[b"From: a@example.com\nSubject: no date\n\nbody"]),
            Verdict::Known(Kind::Text)
        );
        assert_eq!(
            sniff(&[b"Dear sir: I paid.\nFrom: me\nDate: today\n\n"]),
            Verdict::Known(Kind::Text)
        );
        assert_eq!(sniff(&[b" From: a\nDate: b\n\n"]), Verdict::Known(Kind::Text));
    }

    fn zip_of(names: &[&str]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        for name in names {
            writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut writer, b"<x/>").unwrap();
        }
        writer.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn a_zip_is_docx_or_xlsx_by_its_parts() {
        let kind = |names: &[&str]| {
            let bytes = zip_of(names);
            let size = bytes.len() as u64;
            ooxml_kind(std::io::Cursor::new(bytes), size).unwrap()
        };
        assert_eq!(kind(&["[Content_Types].xml", "_rels/.rels", "word/document.xml"]), Some(Kind::Docx));
        assert_eq!(kind(&["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"]), Some(Kind::Xlsx));
        assert_eq!(kind(&["word/document.xml"]), None, "no content types part");
        assert_eq!(kind(&["[Content_Types].xml", "content.xml"]), None);
        let truncated = b"PK\x03\x04 not a zip".to_vec();
        let size = truncated.len() as u64;
        assert_eq!(ooxml_kind(std::io::Cursor::new(truncated), size).unwrap(), None);
    }
}
