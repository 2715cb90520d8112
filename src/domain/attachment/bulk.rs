//! A bulk upload of documents: a zip whose files are named by account number (the file
//! `A-1001.pdf`, or any file in the folder `A-1001/`), or listed with their accounts in a
//! `manifest.csv` at its root. The zip's directory is read and checked before anything
//! is kept ([`plan`]): a name that climbs out (`..`), is absolute or holds a backslash or
//! a control character, a link, an encrypted file, more files than allowed, or files
//! declaring more bytes than allowed refuse the whole upload. Each file is then read back
//! bounded ([`extract`]): never past the size its header declared, nor past the per-file
//! limit, so a zip bomb costs at most the declared bytes it was admitted with. Entries
//! whose data overlap (the non-recursive bomb, many files on one compressed body) are
//! refused too.

use std::fmt;
use std::io::{self, Read, Seek};

use zip::ZipArchive;

/// What a bulk upload may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Files in the zip (folders and ignored files not counted).
    pub max_files: usize,
    /// Bytes of one file, uncompressed (as for a single upload).
    pub max_file_bytes: u64,
    /// Bytes of all files together, uncompressed.
    pub max_expanded_bytes: u64,
}

/// One file of the zip to keep with an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the zip's directory.
    pub index: usize,
    /// Its path in the zip.
    pub path: String,
    pub account_number: String,
    /// The name the document is kept under: the manifest's `name`, or the file's own.
    pub name: String,
}

/// Why a zip is refused as a whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NotZip(String),
    TooManyFiles { max: usize },
    UnsafeName { path: String, why: &'static str },
    Link(String),
    Encrypted(String),
    Overlapping(String),
    TooLarge { path: String, max: u64 },
    Expanded { max: u64 },
    Manifest(String),
    Empty,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotZip(why) => write!(f, "the file is not a readable zip: {why}"),
            Refusal::TooManyFiles { max } => write!(f, "the zip holds more than {max} files"),
            Refusal::UnsafeName { path, why } => write!(f, "the zip entry {path:?} is refused: its name {why}"),
            Refusal::Link(path) => write!(f, "the zip entry {path:?} is a link, which is not kept"),
            Refusal::Encrypted(path) => write!(f, "the zip entry {path:?} is encrypted"),
            Refusal::Overlapping(path) => write!(f, "the zip entry {path:?} overlaps another entry's data"),
            Refusal::TooLarge { path, max } => write!(f, "the zip entry {path:?} is larger than {max} bytes"),
            Refusal::Expanded { max } => write!(f, "the zip's files add up to more than {max} bytes uncompressed"),
            Refusal::Manifest(why) => write!(f, "manifest.csv: {why}"),
            Refusal::Empty => write!(f, "the zip holds no files to keep"),
        }
    }
}

/// The name of the optional manifest at the zip's root (any case).
pub const MANIFEST: &str = "manifest.csv";
/// The largest manifest read, in bytes.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The longest account number or name taken from a manifest or a path, in characters.
const MAX_FIELD_CHARS: usize = 255;

/// The files of the zip at `reader` (`size` bytes) to keep, each with its account, in
/// directory order; or why the zip is refused. Reads only the directory (and the
/// manifest, bounded), never a file's content.
pub fn plan<R: Read + Seek>(mut reader: R, size: u64, limits: &Limits) -> Result<Vec<Entry>, Refusal> {
    // The directory's own count, read before the directory is parsed: a zip declaring
    // millions of entries is refused before one is held in memory.
    let declared = super::kind::declared_entries(&mut reader, size)
        .map_err(|e| Refusal::NotZip(e.to_string()))?
        .ok_or_else(|| Refusal::NotZip("no end of central directory".into()))?;
    // Folders and ignored files are listed too: allow as many again.
    if declared > (limits.max_files as u64).saturating_mul(2) {
        return Err(Refusal::TooManyFiles { max: limits.max_files });
    }
    reader.seek(io::SeekFrom::Start(0)).map_err(|e| Refusal::NotZip(e.to_string()))?;
    let mut archive = ZipArchive::new(reader).map_err(|e| Refusal::NotZip(e.to_string()))?;
    let mut files = Vec::new();
    let mut manifest = None;
    let mut expanded = 0u64;
    // Where each entry's local header starts, and the least its data could end at (a
    // local header is 30 bytes and the name, then the compressed data).
    let mut spans = Vec::with_capacity(archive.len());
    let mut sizes = std::collections::HashMap::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|e| Refusal::NotZip(e.to_string()))?;
        let path = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let start = entry.header_start();
        let end = start
            .saturating_add(30 + entry.name_raw().len() as u64)
            .saturating_add(entry.compressed_size());
        spans.push((start, end, path.clone()));
        let parts: Vec<String> = match safe_parts(&path) {
            Ok(parts) => parts.into_iter().map(str::to_owned).collect(),
            Err(why) => return Err(Refusal::UnsafeName { path, why }),
        };
        if entry.is_dir() || ignored(&parts) {
            continue;
        }
        if entry.is_symlink() {
            return Err(Refusal::Link(path));
        }
        if entry.encrypted() {
            return Err(Refusal::Encrypted(path));
        }
        if parts.len() == 1 && parts[0].eq_ignore_ascii_case(MANIFEST) {
            manifest = Some(index);
            continue;
        }
        if entry.size() > limits.max_file_bytes {
            return Err(Refusal::TooLarge {
                path,
                max: limits.max_file_bytes,
            });
        }
        expanded = expanded.saturating_add(entry.size());
        if expanded > limits.max_expanded_bytes {
            return Err(Refusal::Expanded {
                max: limits.max_expanded_bytes,
            });
        }
        sizes.insert(index, entry.size());
        files.push((index, path, parts));
        if files.len() > limits.max_files {
            return Err(Refusal::TooManyFiles { max: limits.max_files });
        }
    }
    spans.sort_unstable();
    if let Some(pair) = spans.windows(2).find(|pair| pair[0].1 > pair[1].0) {
        return Err(Refusal::Overlapping(pair[1].2.clone()));
    }
    let entries = match manifest {
        Some(index) => {
            let mut text = Vec::new();
            extract(&mut archive, index, MAX_MANIFEST_BYTES, |chunk| {
                text.extend_from_slice(chunk);
                Ok(())
            })
            .map_err(|e| Refusal::Manifest(e.to_string()))?;
            listed(&text, &files)?
        }
        None => files
            .into_iter()
            .map(|(index, path, parts)| named(index, path, &parts))
            .collect::<Result<_, _>>()?,
    };
    if entries.is_empty() {
        return Err(Refusal::Empty);
    }
    // A manifest may list a file more than once: the limits hold for what is kept.
    if entries.len() > limits.max_files {
        return Err(Refusal::TooManyFiles { max: limits.max_files });
    }
    let kept = entries
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(sizes.get(&e.index).copied().unwrap_or(0)));
    if kept > limits.max_expanded_bytes {
        return Err(Refusal::Expanded {
            max: limits.max_expanded_bytes,
        });
    }
    Ok(entries)
}

/// The `/`-separated parts of an entry's path, or why the name is refused. A trailing
/// `/` (a folder) is allowed.
fn safe_parts(path: &str) -> Result<Vec<&str>, &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    if path.contains('\\') {
        return Err("holds a backslash");
    }
    if path.starts_with('/') {
        return Err("is absolute");
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if parts.first().is_some_and(|p| p.len() == 2 && p.ends_with(':')) {
        return Err("names a drive");
    }
    if parts.iter().any(|p| *p == ".." || *p == "." || p.is_empty()) {
        return Err("has an empty, `.` or `..` part");
    }
    Ok(parts)
}

/// Files archivers add that no one means to upload: macOS resource forks and metadata,
/// hidden files, Windows thumbnails.
fn ignored(parts: &[String]) -> bool {
    parts.first().is_some_and(|p| p == "__MACOSX")
        || parts.iter().any(|p| p.starts_with('.'))
        || parts
            .last()
            .is_some_and(|p| p.eq_ignore_ascii_case("Thumbs.db") || p.eq_ignore_ascii_case("desktop.ini"))
}

fn bounded(text: &str, what: &str, path: &str) -> Result<String, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::Manifest(format!("{path}: no {what}")));
    }
    if text.chars().count() > MAX_FIELD_CHARS {
        return Err(Refusal::Manifest(format!(
            "{path}: the {what} is longer than {MAX_FIELD_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// The account of a file without a manifest: its folder (`A-1001/letter.pdf`), or its
/// name before the last dot (`A-1001.pdf`).
fn named(index: usize, path: String, parts: &[String]) -> Result<Entry, Refusal> {
    let file = parts.last().cloned().unwrap_or_default();
    let number = if parts.len() > 1 {
        parts[0].clone()
    } else {
        match file.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
            _ => file.clone(),
        }
    };
    let number = number.trim();
    if number.is_empty() || number.chars().count() > MAX_FIELD_CHARS {
        return Err(Refusal::UnsafeName {
            path,
            why: "does not give an account number",
        });
    }
    Ok(Entry {
        index,
        account_number: number.to_owned(),
        name: file,
        path,
    })
}

/// The files a manifest lists (columns `file` and `account_number`, and `name` if
/// given), in its order. Every file of the zip must be listed, and every listed file
/// must be in the zip.
fn listed(text: &[u8], files: &[(usize, String, Vec<String>)]) -> Result<Vec<Entry>, Refusal> {
    let text =
        std::str::from_utf8(text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)).map_err(|_| Refusal::Manifest("not UTF-8 text".into()))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| Refusal::Manifest(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let (Some(file_at), Some(number_at)) = (column("file"), column("account_number")) else {
        return Err(Refusal::Manifest(
            "the header must name the columns `file` and `account_number`".into(),
        ));
    };
    let name_at = column("name");
    let by_path: std::collections::HashMap<&str, &(usize, String, Vec<String>)> = files.iter().map(|f| (f.1.as_str(), f)).collect();
    let mut listed = std::collections::HashSet::new();
    let mut entries = Vec::new();
    for (at, record) in reader.records().enumerate() {
        let line = at + 2;
        let record = record.map_err(|e| Refusal::Manifest(format!("line {line}: {e}")))?;
        let path = record.get(file_at).unwrap_or_default().trim();
        if path.is_empty() && record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let Some((index, path, parts)) = by_path.get(path) else {
            return Err(Refusal::Manifest(format!("line {line}: the zip holds no file {path:?}")));
        };
        let where_ = format!("line {line}");
        let account_number = bounded(record.get(number_at).unwrap_or_default(), "account number", &where_)?;
        let name = match name_at.and_then(|i| record.get(i)).map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => bounded(name, "name", &where_)?,
            None => parts.last().cloned().unwrap_or_default(),
        };
        listed.insert(*index);
        entries.push(Entry {
            index: *index,
            path: path.clone(),
            account_number,
            name,
        });
    }
    if let Some((_, path, _)) = files.iter().find(|f| !listed.contains(&f.0)) {
        return Err(Refusal::Manifest(format!("the zip's file {path:?} is not listed")));
    }
    Ok(entries)
}

/// Why one file of an admitted zip could not be read back.
#[derive(Debug)]
pub enum ExtractError {
    /// It expands beyond its declared size or the limit.
    TooLarge {
        max: u64,
    },
    Unreadable(String),
    /// Where it was being written failed.
    Sink(io::Error),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::TooLarge { max } => {
                write!(
                    f,
                    "the file expands beyond {max} bytes, more than its zip entry declares or the limit allows"
                )
            }
            ExtractError::Unreadable(why) => write!(f, "the file cannot be read from the zip: {why}"),
            ExtractError::Sink(err) => write!(f, "the file could not be staged: {err}"),
        }
    }
}

/// Feeds the content of entry `index` to `sink`, chunk by chunk, reading at most what
/// its header declared and never more than `max` bytes; returns its size. A damaged
/// entry (its CRC-32 does not match) is unreadable.
pub fn extract<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: usize,
    max: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64, ExtractError> {
    let mut file = archive.by_index(index).map_err(|e| ExtractError::Unreadable(e.to_string()))?;
    let bound = file.size().min(max);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(|e| ExtractError::Unreadable(e.to_string()))?;
        if read == 0 {
            return Ok(total);
        }
        total += read as u64;
        if total > bound {
            return Err(ExtractError::TooLarge { max: bound });
        }
        sink(&buffer[..read]).map_err(ExtractError::Sink)?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;

    use super::*;

    const LIMITS: Limits = Limits {
        max_files: 10,
        max_file_bytes: 1000,
        max_expanded_bytes: 3000,
    };

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            if name.ends_with('/') {
                writer.add_directory(*name, SimpleFileOptions::default()).unwrap();
            } else {
                writer.start_file(*name, SimpleFileOptions::default()).unwrap();
                writer.write_all(bytes).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    fn plan_of(bytes: &[u8]) -> Result<Vec<Entry>, Refusal> {
        plan(Cursor::new(bytes), bytes.len() as u64, &LIMITS)
    }

    fn accounts(entries: &[Entry]) -> Vec<(&str, &str)> {
        entries.iter().map(|e| (e.account_number.as_str(), e.name.as_str())).collect()
    }

    #[test]
    fn files_are_named_by_account_number_or_folder() {
        let bytes = zip_of(&[
            ("A-1001.pdf", b"x"),
            ("A-1002/", b""),
            ("A-1002/letter 1.pdf", b"y"),
            ("B.7.txt", b"z"),
            ("__MACOSX/._A-1001.pdf", b"fork"),
            (".DS_Store", b"meta"),
            ("A-1002/Thumbs.db", b"thumbs"),
        ]);
        let entries = plan_of(&bytes).unwrap();
        assert_eq!(
            accounts(&entries),
            [("A-1001", "A-1001.pdf"), ("A-1002", "letter 1.pdf"), ("B.7", "B.7.txt")]
        );
    }

    #[test]
    fn a_name_that_could_climb_out_refuses_the_zip() {
        for name in [
            "../evil.pdf",
            "A/../../evil.pdf",
            "/etc/passwd",
            "C:/x.pdf",
            "a\\..\\b.pdf",
            "a//b.pdf",
            "./a.pdf",
            "a\nb.pdf",
        ] {
            let refusal = plan_of(&zip_of(&[("ok.pdf", b"x"), (name, b"y")])).unwrap_err();
            assert!(matches!(refusal, Refusal::UnsafeName { .. }), "{name}: {refusal:?}");
        }
    }

    #[test]
    fn sizes_and_counts_are_checked_before_any_content_is_read() {
        let big = vec![b'a'; 1001];
        assert_eq!(
            plan_of(&zip_of(&[("A.txt", &big)])).unwrap_err(),
            Refusal::TooLarge {
                path: "A.txt".into(),
                max: 1000
            }
        );
        let k = vec![b'a'; 1000];
        let four: Vec<(String, &[u8])> = (0..4).map(|i| (format!("A{i}.txt"), k.as_slice())).collect();
        let four: Vec<(&str, &[u8])> = four.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        assert_eq!(plan_of(&zip_of(&four)).unwrap_err(), Refusal::Expanded { max: 3000 });
        let many: Vec<String> = (0..11).map(|i| format!("A{i}.txt")).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|n| (n.as_str(), b"x".as_slice())).collect();
        assert_eq!(plan_of(&zip_of(&many)).unwrap_err(), Refusal::TooManyFiles { max: 10 });
        assert_eq!(plan_of(&zip_of(&[("A/", b"")])).unwrap_err(), Refusal::Empty);
        assert!(matches!(plan_of(b"PK\x03\x04 not really").unwrap_err(), Refusal::NotZip(_)));
    }

    #[test]
    fn a_manifest_lists_every_file_with_its_account() {
        let manifest = "\u{feff}File,Account_Number,Name\nscans/1.pdf,A-1,Proof of payment.pdf\nscans/2.pdf, A-2 ,\n\n";
        let bytes = zip_of(&[("scans/1.pdf", b"x"), ("scans/2.pdf", b"y"), ("MANIFEST.CSV", manifest.as_bytes())]);
        let entries = plan_of(&bytes).unwrap();
        assert_eq!(accounts(&entries), [("A-1", "Proof of payment.pdf"), ("A-2", "2.pdf")]);
        let unlisted = zip_of(&[
            ("1.pdf", b"x"),
            ("2.pdf", b"y"),
            ("manifest.csv", b"file,account_number\n1.pdf,A-1\n"),
        ]);
        assert!(matches!(plan_of(&unlisted).unwrap_err(), Refusal::Manifest(m) if m.contains("\"2.pdf\" is not listed")));
        let missing = zip_of(&[("1.pdf", b"x"), ("manifest.csv", b"file,account_number\n1.pdf,A-1\n9.pdf,A-9\n")]);
        assert!(matches!(plan_of(&missing).unwrap_err(), Refusal::Manifest(m) if m.contains("line 3")));
        let repeated = format!("file,account_number\n{}", "1.pdf,A-1\n".repeat(11));
        let twice = zip_of(&[("1.pdf", b"x"), ("manifest.csv", repeated.as_bytes())]);
        assert_eq!(plan_of(&twice).unwrap_err(), Refusal::TooManyFiles { max: 10 });
        let k = vec![b'a'; 1000];
        let four = zip_of(&[
            ("1.pdf", &k),
            ("manifest.csv", b"file,account_number\n1.pdf,A\n1.pdf,B\n1.pdf,C\n1.pdf,D\n"),
        ]);
        assert_eq!(plan_of(&four).unwrap_err(), Refusal::Expanded { max: 3000 });
        let headless = zip_of(&[("1.pdf", b"x"), ("manifest.csv", b"path,account\n1.pdf,A-1\n")]);
        assert!(matches!(plan_of(&headless).unwrap_err(), Refusal::Manifest(_)));
    }

    #[test]
    fn entries_sharing_their_data_are_refused() {
        let one = zip_of(&[("A-1.txt", b"the one body")]);
        let central = one.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        let end = one.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
        let mut record = one[central..end].to_vec();
        let mut bomb = one[..end].to_vec();
        record[46..53].copy_from_slice(b"A-2.txt");
        bomb.extend_from_slice(&record);
        let mut eocd = one[end..].to_vec();
        eocd[8..10].copy_from_slice(&2u16.to_le_bytes());
        eocd[10..12].copy_from_slice(&2u16.to_le_bytes());
        eocd[12..16].copy_from_slice(&(2 * (end - central) as u32).to_le_bytes());
        bomb.extend_from_slice(&eocd);
        assert!(matches!(plan_of(&bomb).unwrap_err(), Refusal::Overlapping(path) if path.starts_with("A-")));
    }

    #[test]
    fn a_file_is_read_back_no_further_than_its_declared_size() {
        let bytes = zip_of(&[("A.txt", b"hello world")]);
        let mut archive = ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = Vec::new();
        let size = extract(&mut archive, 0, 1000, |c| {
            out.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!((size, out.as_slice()), (11, b"hello world".as_slice()));
        assert!(matches!(
            extract(&mut archive, 0, 5, |_| Ok(())),
            Err(ExtractError::TooLarge { max: 5 })
        ));
    }
}
