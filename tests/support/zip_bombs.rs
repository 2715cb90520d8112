//! Zips crafted against a bulk upload of documents (`POST /documents/bulk`): bombs that
//! declare or hide gigabytes, overlapping files, crowds of entries, names that climb
//! out and links. Read by the memory test (`tests/bombs.rs`).

use std::io::{Cursor, Write};

use crate::bombs::Bomb;

/// The service's defaults for a bulk upload of documents (`DOCUMENT_BULK_MAX_FILES`,
/// `DOCUMENT_MAX_BYTES`, four times `DOCUMENT_BULK_MAX_BYTES`).
pub const DOCUMENT_LIMITS: arrears::domain::attachment::bulk::Limits = arrears::domain::attachment::bulk::Limits {
    max_files: 10_000,
    max_file_bytes: 25 * 1024 * 1024,
    max_expanded_bytes: 4 * 512 * 1024 * 1024,
};

fn deflated() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true)
}

/// A zip of one file `name` of `size` zero bytes, deflated (about a thousandth of it).
fn zeros(name: &str, size: u64) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    out.start_file(name, deflated()).unwrap();
    let chunk = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    out.finish().unwrap().into_inner()
}

/// The single entry of `zip`, copied compressed under each of `names`.
fn copies(zip: &[u8], names: impl Iterator<Item = String>) -> Vec<u8> {
    let mut source = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for name in names {
        out.raw_copy_file_rename(source.by_index(0).unwrap(), name).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Writes `value` at `offset` past each occurrence of `signature` in `bytes`.
fn patch_u32(bytes: &mut [u8], signature: &[u8; 4], offset: usize, value: u32) {
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == signature)
        .map(|(i, _)| i)
        .collect();
    for at in starts {
        bytes[at + offset..at + offset + 4].copy_from_slice(&value.to_le_bytes());
    }
}

/// A non-recursive zip bomb of overlapping files (David Fifield, 2019): `count`
/// directory records, each naming a file of its own, all pointing at the one
/// compressed body of `zip`'s single entry.
fn overlapping(zip: &[u8], count: usize) -> Vec<u8> {
    let central = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let end = zip.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let record = &zip[central..end];
    let name_len = u16::from_le_bytes([record[28], record[29]]) as usize;
    let mut out = zip[..central].to_vec();
    for i in 0..count {
        let mut copy = record.to_vec();
        let name = format!("{i:0width$}", width = name_len);
        copy[46..46 + name_len].copy_from_slice(&name.as_bytes()[..name_len]);
        out.extend_from_slice(&copy);
    }
    let mut eocd = zip[end..].to_vec();
    let n = (count as u16).to_le_bytes();
    eocd[8..10].copy_from_slice(&n);
    eocd[10..12].copy_from_slice(&n);
    eocd[12..16].copy_from_slice(&((record.len() * count) as u32).to_le_bytes());
    out.extend_from_slice(&eocd);
    out
}

/// Zips crafted against a bulk upload of documents, each with the outcome of reading
/// its directory and then each file it admits: `kept:<n> refused:<m>`, or why the whole
/// zip is refused.
pub fn document_zips() -> Vec<Bomb> {
    const MIB: u64 = 1024 * 1024;
    let lying = {
        let mut bytes = zeros("A-1.txt", 1024 * MIB);
        patch_u32(&mut bytes, b"PK\x03\x04", 22, 10);
        patch_u32(&mut bytes, b"PK\x01\x02", 24, 10);
        bytes
    };
    let link = {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.add_symlink("A-1.txt", "/etc/shadow", zip::write::SimpleFileOptions::default())
            .unwrap();
        out.finish().unwrap().into_inner()
    };
    let traversal = {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.start_file("../../etc/cron.d/A-1", zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(b"* * * * * root true\n").unwrap();
        out.finish().unwrap().into_inner()
    };
    let crowd = {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..30_000 {
            out.start_file(format!("A-{i}.txt"), zip::write::SimpleFileOptions::default())
                .unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    let body = zeros("0000.txt", 24 * MIB);
    vec![
        Bomb {
            name: "zip: one file of 1 GiB of zeros, declared",
            bytes: zeros("A-1.txt", 1024 * MIB),
            expect: "too_large",
        },
        Bomb {
            name: "zip: one file declaring 10 bytes, inflating to 1 GiB",
            bytes: lying,
            expect: "kept:0 refused:1",
        },
        Bomb {
            name: "zip: 400 files of 24 MiB of zeros (9.4 GiB)",
            bytes: copies(&body, (0..400).map(|i| format!("A-{i}.txt"))),
            expect: "expanded",
        },
        Bomb {
            name: "zip: 80 overlapping files of 24 MiB on one body",
            bytes: overlapping(&body, 80),
            expect: "overlapping",
        },
        Bomb {
            name: "zip: 30,000 empty files",
            bytes: crowd,
            expect: "too_many_files",
        },
        Bomb {
            name: "zip: ../../etc/cron.d/A-1",
            bytes: traversal,
            expect: "unsafe_name",
        },
        Bomb {
            name: "zip: a link to /etc/shadow",
            bytes: link,
            expect: "link",
        },
    ]
}
