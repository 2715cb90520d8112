//! Every spreadsheet bomb is refused (or read, where it is harmless) with the reader's
//! peak memory under 300 MiB above idle, and so is every zip crafted against a bulk
//! upload of documents: its directory checked, then each file it admits read back
//! bounded, as the upload job reads it; and so is every PDF crafted against document
//! processing, read under the limits of its child process (`arrears extract-document`),
//! or stopped by them, which then bound its memory. Each bomb is read in a child process of its
//! own (this binary, run as `bombs <file>`), which reports its resident set before
//! and its high-water mark after, so that one bomb's memory is never another's; the
//! parent prints a table of the figures.
//!
//! Run alone: `cargo test --test bombs` (add `--release` for the figures of a release
//! build).

#[path = "support/bombs.rs"]
mod bombs;
#[path = "support/pdf_bombs.rs"]
mod pdf_bombs;
#[path = "support/zip_bombs.rs"]
mod zip_bombs;

use std::process::Command;

use arrears::domain::attachment::extract;

/// The allocator the `arrears` binary runs with, so that the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a bomb may add to the reading process's peak resident set.
const MAX_PEAK_ABOVE_IDLE_KIB: u64 = 300 * 1024;
/// The data rows a reader may keep: the service's default `IMPORT_MAX_ROWS`.
const MAX_ROWS: usize = 200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "read" {
        if args[2].ends_with(".zip") {
            zip_child(&args[2]);
        } else if args[2].ends_with(".pdf") {
            pdf_child(&args[2]);
        } else {
            child(&args[2]);
        }
        return;
    }
    // `cargo test --test bombs -- <anything>` passes libtest's flags: ignore them.
    parent();
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn child(path: &str) {
    let idle = status_kib("VmRSS:");
    let bytes = std::fs::read(path).unwrap();
    let sheet = if path.contains("asks-debtors") { Some("Debtors") } else { None };
    let outcome = match arrears::import::read(&bytes, sheet, MAX_ROWS) {
        Ok(sheet) => format!("ok:{}", sheet.rows.len()),
        Err(arrears::import::Refusal::TooLarge(_)) => "too_large".into(),
        Err(arrears::import::Refusal::CellTooLong) => "cell_too_long".into(),
        Err(arrears::import::Refusal::Sprawling { .. }) => "sprawling".into(),
        Err(arrears::import::Refusal::NoHeader) => "no_header".into(),
        Err(other) => format!("{other:?}"),
    };
    println!("{idle} {} {outcome}", status_kib("VmHWM:"));
}

/// Reads the zip at `path` as a bulk upload does: its directory, then each admitted
/// file, bounded, into nothing.
fn zip_child(path: &str) {
    use arrears::domain::attachment::bulk::{self, Refusal};
    let idle = status_kib("VmRSS:");
    let open = || std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let size = std::fs::metadata(path).unwrap().len();
    let outcome = match bulk::plan(open(), size, &zip_bombs::DOCUMENT_LIMITS) {
        Err(refusal) => match refusal {
            Refusal::NotZip(_) => "not_zip",
            Refusal::TooManyFiles { .. } => "too_many_files",
            Refusal::UnsafeName { .. } => "unsafe_name",
            Refusal::Link(_) => "link",
            Refusal::Encrypted(_) => "encrypted",
            Refusal::Overlapping(_) => "overlapping",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Expanded { .. } => "expanded",
            Refusal::Manifest(_) => "manifest",
            Refusal::Empty => "empty",
        }
        .to_owned(),
        Ok(entries) => {
            let mut archive = zip::ZipArchive::new(open()).unwrap();
            let max = zip_bombs::DOCUMENT_LIMITS.max_file_bytes;
            let kept = entries
                .iter()
                .filter(|e| bulk::extract(&mut archive, e.index, max, |_| Ok(())).is_ok())
                .count();
            format!("kept:{kept} refused:{}", entries.len() - kept)
        }
    };
    println!("{idle} {} {outcome}", status_kib("VmHWM:"));
}

/// Reads the PDF at `path` as document processing does: in a process under the
/// reader's limits (`arrears extract-document`), which a bomb that crosses them ends.
fn pdf_child(path: &str) {
    use arrears::domain::attachment::Kind;
    let bytes = std::fs::read(path).unwrap();
    let idle = status_kib("VmRSS:");
    arrears::cli::extract::limit_self().unwrap();
    let outcome = match extract::extract(Kind::Pdf, &bytes) {
        Ok(read) => format!(
            "pages:{} words:{}",
            read.page_count.unwrap_or_default(),
            read.text.split_whitespace().count()
        ),
        Err(reason) => format!("unreadable: {reason}"),
    };
    drop(bytes);
    println!("{idle} {} {outcome}", status_kib("VmHWM:"));
}

/// Whether a PDF reader that ended without answering was stopped by a limit of its
/// process, and if not, how it died. The data limit makes an allocation fail, and the
/// runtime then aborts (`SIGABRT`) saying "memory allocation of N bytes failed"; the CPU
/// limit sends `SIGXCPU` (`SIGKILL` at the hard limit). A panic (exit code 101, or an
/// abort after "panicked"), a stack overflow, a crash or any other exit is a reader that
/// broke, not a limit that held.
fn stopped_by_limit(status: std::process::ExitStatus, stderr: &str) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    const SIGKILL: i32 = 9;
    const SIGXCPU: i32 = 24;
    let panicked = stderr.contains("panicked");
    match status.signal() {
        Some(SIGABRT) if !panicked && stderr.contains("memory allocation of") => Ok(()),
        Some(SIGXCPU | SIGKILL) if !panicked => Ok(()),
        _ => {
            // A panic's message is on the line after "panicked at <file>".
            let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
            let said = match lines.iter().position(|l| l.contains("panicked")) {
                Some(at) => lines[at..].iter().take(2).copied().collect::<Vec<_>>().join(" "),
                None => lines.last().copied().unwrap_or_default().to_owned(),
            };
            Err(format!("died: {status}: {said}"))
        }
    }
}

fn parent() {
    let dir = std::env::temp_dir().join(format!("arrears-bombs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let me = std::env::current_exe().unwrap();
    let read = |name: &str, bytes: &[u8]| -> (String, u64, u64) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut reader = Command::new(&me);
        if name.ends_with(".pdf") {
            reader.envs(extract::READER_ENV);
        }
        let out = reader.arg("read").arg(&path).output().unwrap();
        if name.ends_with(".pdf") && !out.status.success() {
            return match stopped_by_limit(out.status, &String::from_utf8_lossy(&out.stderr)) {
                // Stopped by its limits: its peak is bounded by the data memory it had.
                Ok(()) => ("limit".to_owned(), 0, extract::READER_MAX_DATA_BYTES / 1024),
                // A reader that broke is no limit enforced: the outcome names how it died.
                Err(died) => (died, 0, 0),
            };
        }
        assert!(
            out.status.success(),
            "{name}: the reader died: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let mut fields = line.trim().splitn(3, ' ');
        let mut number = || {
            fields
                .next()
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("{name}: {line}"))
        };
        let (idle, peak) = (number(), number());
        (fields.next().unwrap_or_default().to_owned(), idle, peak)
    };
    // The builders make readable workbooks: a bomb's refusal comes from its size.
    assert_eq!(read("control.xls", &bombs::xls_control()).0, "ok:1");
    assert_eq!(read("control.ods", &bombs::ods_control()).0, "ok:1");

    let mut failures = Vec::new();
    println!(
        "{:<58} {:>9} {:>14} {:>14}  outcome",
        "bomb", "file KiB", "idle RSS KiB", "peak +KiB"
    );
    let zips = zip_bombs::document_zips().into_iter().map(|bomb| (bomb, ".zip"));
    let pdfs = pdf_bombs::documents().into_iter().map(|bomb| (bomb, ".pdf"));
    let all = bombs::all().into_iter().map(|bomb| (bomb, "")).chain(zips).chain(pdfs);
    for (i, (bomb, extension)) in all.enumerate() {
        let file = if bomb.name.contains("asked for") {
            format!("{i}-asks-debtors")
        } else {
            format!("{i}{extension}")
        };
        let (outcome, idle, peak) = read(&file, &bomb.bytes);
        let above = peak.saturating_sub(idle);
        println!(
            "{:<58} {:>9} {:>14} {:>14}  {outcome}",
            bomb.name,
            bomb.bytes.len() / 1024,
            idle,
            above
        );
        let expected = outcome == bomb.expect || (bomb.expect == "ok" && outcome.starts_with("ok:"));
        // A reader its limits stopped is bounded by them instead.
        let bound = if outcome == "limit" { peak } else { MAX_PEAK_ABOVE_IDLE_KIB };
        if !expected || above > bound {
            failures.push(format!(
                "{}: {outcome}, {above} KiB above idle (expected {}, under {MAX_PEAK_ABOVE_IDLE_KIB} KiB)",
                bomb.name, bomb.expect
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}
