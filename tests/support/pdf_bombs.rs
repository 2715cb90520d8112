//! PDFs crafted against document processing: a page whose content inflates past the
//! reader's bound, object streams whose numbers would take gigabytes once parsed, and
//! nesting deeper than the parser allows. Each is a well-formed file (a cross-reference
//! table with true offsets), so what stops it is the limit it aims at. Read by the
//! memory test (`tests/bombs.rs`) and sent through the API (`tests/api/document_processing.rs`).

use std::io::Write;

use super::bombs::Bomb;

/// `data` as a zlib stream (`/FlateDecode`).
pub fn flate(data: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for chunk in data {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap()
}

/// A stream object's text: its dictionary (without `/Length`), then `data`.
pub fn stream(dictionary: &str, data: &[u8]) -> Vec<u8> {
    let mut object = format!("<<{dictionary}/Length {}>>\nstream\n", data.len()).into_bytes();
    object.extend_from_slice(data);
    object.extend_from_slice(b"\nendstream");
    object
}

/// A PDF of `objects`, numbered from 1 (object 1 the catalog), with a cross-reference
/// table of their true offsets.
pub fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

/// The catalog, page tree and one page (objects 1 to 3) whose content is object 4.
fn one_page() -> Vec<Vec<u8>> {
    vec![
        b"<</Type/Catalog/Pages 2 0 R>>".to_vec(),
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>".to_vec(),
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R>>".to_vec(),
    ]
}

/// A one-page PDF whose page shows `text` in Helvetica.
pub fn text_page(text: &str) -> Vec<u8> {
    let mut objects = one_page();
    objects[2] = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>".to_vec();
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    objects.push(stream("", content.as_bytes()));
    objects.push(b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica/Encoding/WinAnsiEncoding>>".to_vec());
    pdf(&objects)
}

/// A one-page PDF whose content stream inflates to `size` bytes of spaces.
pub fn inflating_page(size: usize) -> Vec<u8> {
    let chunks = (0..size / (1 << 20)).map(|_| vec![b' '; 1 << 20]);
    let mut objects = one_page();
    objects.push(stream("/Filter/FlateDecode", &flate(chunks)));
    pdf(&objects)
}

/// A one-page PDF with `streams` object streams, each holding one array of `numbers`
/// zeros: a few kilobytes compressed, each stream under the reader's bound on what one
/// stream inflates to, and tens of bytes per number once parsed.
pub fn number_arrays(streams: usize, numbers: usize) -> Vec<u8> {
    let mut objects = one_page();
    objects.push(stream("", b"BT ET"));
    for i in 0..streams {
        let header = format!("{} 0 ", 1000 + i);
        let mut body = b"[".to_vec();
        body.extend(std::iter::repeat_n(*b"0 ", numbers).flatten());
        body.push(b']');
        let data = flate([header.clone().into_bytes(), body]);
        objects.push(stream(
            &format!("/Type/ObjStm/N 1/First {}/Filter/FlateDecode", header.len()),
            &data,
        ));
    }
    pdf(&objects)
}

/// A one-page PDF holding an array nested `depth` deep.
pub fn nested(depth: usize) -> Vec<u8> {
    let mut objects = one_page();
    objects.push(stream("", b"BT ET"));
    let mut deep = vec![b'['; depth];
    deep.extend(std::iter::repeat_n(b']', depth));
    objects.push(deep);
    pdf(&objects)
}

/// The PDFs the memory test reads, as the processing child reads them.
pub fn documents() -> Vec<Bomb> {
    vec![
        Bomb {
            name: "PDF: a page's text (control)",
            bytes: text_page("Dispute of balance"),
            expect: "pages:1 words:3",
        },
        Bomb {
            name: "PDF: a page inflating to 1 GiB",
            bytes: inflating_page(1 << 30),
            expect: "pages:1 words:0",
        },
        Bomb {
            name: "PDF: 8 object streams of 8 M numbers (2 GiB parsed)",
            bytes: number_arrays(8, 8 << 20),
            // Stopped by the reader process's data limit (an allocation refused, then an
            // abort); a panic or a crash is not that, and fails.
            expect: "limit",
        },
        Bomb {
            name: "PDF: an array nested 100,000 deep",
            bytes: nested(100_000),
            expect: "pages:1 words:0",
        },
    ]
}
