//! `arrears extract-document <kind> --max-bytes N`: the child process of document
//! processing (`service::document_processing`). It limits itself before it reads a byte:
//! its data memory ([`READER_MAX_DATA_BYTES`]), its CPU time ([`READER_MAX_CPU_SECONDS`]), no file
//! it may write and few it may open; then it reads the file from standard input, at most
//! `max_bytes`, and writes an [`Answer`] as JSON to standard output. A file that makes a
//! reader allocate or loop past a limit ends this process, not the server; the parent
//! also kills it after a minute of wall time.

use std::io::Write;

use anyhow::Context;
use rlimit::Resource;

use crate::domain::attachment::Kind;
use crate::domain::attachment::extract::{Answer, READER_ENV, READER_MAX_CPU_SECONDS, READER_MAX_DATA_BYTES, extract, read_bounded};

/// Files the child may hold open (its standard streams and what the runtime opens).
const MAX_OPEN_FILES: u64 = 64;

pub fn run(kind: &str, max_bytes: u64) -> anyhow::Result<()> {
    limit_self()?;
    let kind = Kind::parse(kind).with_context(|| format!("not a document kind: {kind:?}"))?;
    let bytes = read_bounded(std::io::stdin().lock(), max_bytes).context("reading the document")?;
    let answer = match extract(kind, &bytes) {
        Ok(extracted) => Answer::Read(extracted),
        Err(reason) => Answer::Unreadable(reason),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &answer)?;
    out.flush()?;
    Ok(())
}

/// Puts this process under the reader's limits (for good: a process cannot raise them
/// again).
pub fn limit_self() -> anyhow::Result<()> {
    let data = data_kib().context("reading this process's data size")?;
    if data * 1024 > READER_MAX_DATA_BYTES / 4 {
        anyhow::bail!(
            "{data} KiB of data are already mapped, most of the limit: run with {}",
            READER_ENV.map(|(name, value)| format!("{name}={value}")).join(" ")
        );
    }
    Resource::DATA
        .set(READER_MAX_DATA_BYTES, READER_MAX_DATA_BYTES)
        .context("limiting the data memory")?;
    Resource::CPU
        .set(READER_MAX_CPU_SECONDS, READER_MAX_CPU_SECONDS)
        .context("limiting CPU time")?;
    Resource::FSIZE.set(0, 0).context("forbidding file writes")?;
    Resource::NOFILE
        .set(MAX_OPEN_FILES, MAX_OPEN_FILES)
        .context("limiting open files")?;
    Ok(())
}

/// `VmData` of this process, in KiB.
fn data_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmData:")).context("no VmData line")?;
    Ok(line.split_whitespace().nth(1).context("no VmData figure")?.parse()?)
}
