//! Document processing: each new document (and each kept before processing existed) is
//! read once by a child process, `<extractor> extract-document <kind>`, which limits its
//! own memory, CPU time and files before it reads a byte (`cli::extract`); this side
//! feeds it the file from the content store, waits at most [`WALL_TIME`], and records
//! what it answered: a PDF's page count, an image's thumbnail (kept in the content store
//! under a key of its own), the text that search then finds on the account. A file the
//! reader refuses, or that makes it cross a limit, is `failed` with the reason at once;
//! a try that failed for another cause (the store unreachable, the program missing) is
//! tried again later, [`MAX_ATTEMPTS`] times in all. The queue is the table: a
//! document claimed by a process that dies is taken again after the claim's lease.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::domain::attachment::extract::{Answer, Extracted, READER_ENV};
use crate::error::Result;
use crate::storage::{self, ContentStore, Staged};
use crate::store::attachments::{self, Pending, Processed};
use crate::telemetry::metrics;

/// The channel a new document is announced on (migration 0048).
pub const CHANNEL: &str = "arrears_documents";
/// How long the reader may run, in wall time, before it is killed.
pub const WALL_TIME: Duration = Duration::from_secs(60);
/// Tries of one document before it is `failed` for a cause other than its content.
pub const MAX_ATTEMPTS: i32 = 3;
/// The most the reader may answer (its text is at most 400 KB of UTF-8, its thumbnail
/// far less).
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;
/// The most of the reader's error output kept for the log.
const MAX_STDERR_BYTES: u64 = 4096;

/// What processing needs.
#[derive(Clone)]
pub struct Processor {
    pub pool: PgPool,
    pub content: Arc<dyn ContentStore>,
    /// The program run as the reader; `None`: documents are not processed.
    pub extractor: Option<PathBuf>,
    /// `DOCUMENT_MAX_BYTES`: the most the reader reads.
    pub max_bytes: u64,
}

/// Why a try failed.
enum Trouble {
    /// The file: the reader refused it or crossed a limit reading it. Trying again
    /// would do the same.
    File(String),
    /// Something else (the store, the program): worth another try.
    Passing(String),
}

impl Processor {
    /// Processes the document that has waited longest, if one is due; `false` when none
    /// was.
    pub async fn process_next(&self) -> Result<bool> {
        let Some(program) = &self.extractor else {
            return Ok(false);
        };
        let Some(pending) = attachments::claim_pending(&self.pool).await? else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        let outcome = match self.read(program, &pending).await {
            Ok(extracted) => {
                self.record(&pending, extracted).await?;
                "processed"
            }
            Err(Trouble::File(reason)) => {
                tracing::info!(document_id = %pending.id, kind = pending.kind.as_str(), reason = %reason, "a document could not be read");
                attachments::record_failure(&self.pool, pending.id, &reason, None).await?;
                "unreadable"
            }
            Err(Trouble::Passing(reason)) => {
                let retry = (pending.processing_attempts < MAX_ATTEMPTS).then(|| 60 * i64::from(pending.processing_attempts));
                tracing::warn!(document_id = %pending.id, attempt = pending.processing_attempts, reason = %reason, "processing a document failed");
                attachments::record_failure(&self.pool, pending.id, &reason, retry).await?;
                "failed"
            }
        };
        metrics::document_processed(pending.kind.as_str(), outcome, started.elapsed());
        Ok(true)
    }

    /// Runs the reader on the stored file and reads its answer.
    async fn read(&self, program: &std::path::Path, pending: &Pending) -> std::result::Result<Extracted, Trouble> {
        let size = u64::try_from(pending.size).unwrap_or_default();
        let file = self
            .content
            .read(&pending.storage_key, 0..size)
            .await
            .map_err(|e| Trouble::Passing(format!("the stored file could not be read: {e}")))?;
        let mut child = tokio::process::Command::new(program)
            .arg("extract-document")
            .arg(pending.kind.as_str())
            .arg("--max-bytes")
            .arg(self.max_bytes.to_string())
            // Nothing of the server's configuration (database, secrets) reaches it.
            .env_clear()
            .envs(READER_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Trouble::Passing(format!("the reader {} could not be started: {e}", program.display())))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
            return Err(Trouble::Passing("the reader's streams were not piped".to_owned()));
        };
        let feed = async move {
            let mut file = file;
            // A reader that stops early (a limit) closes its input: not this side's error.
            let _ = tokio::io::copy(&mut file, &mut stdin).await;
        };
        let answer = async move {
            let mut out = Vec::new();
            stdout.take(MAX_ANSWER_BYTES).read_to_end(&mut out).await.map(|_| out)
        };
        let errors = async move {
            let mut err = Vec::new();
            let _ = stderr.take(MAX_STDERR_BYTES).read_to_end(&mut err).await;
            err
        };
        let run = async {
            let ((), answer, errors) = tokio::join!(feed, answer, errors);
            (answer, errors, child.wait().await)
        };
        let Ok((answer, errors, status)) = tokio::time::timeout(WALL_TIME, run).await else {
            return Err(Trouble::File(format!("reading it took longer than {} s", WALL_TIME.as_secs())));
        };
        let status = status.map_err(|e| Trouble::Passing(format!("waiting for the reader: {e}")))?;
        if !status.success() {
            let said = String::from_utf8_lossy(&errors);
            tracing::debug!(status = %status, stderr = %said.trim(), "the document reader stopped");
            return Err(Trouble::File(stopped(status)));
        }
        let answer = answer.map_err(|e| Trouble::Passing(format!("reading the reader's answer: {e}")))?;
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Read(extracted)) => Ok(extracted),
            Ok(Answer::Unreadable(reason)) => Err(Trouble::File(reason)),
            Err(err) => Err(Trouble::Passing(format!("the reader's answer is not one: {err}"))),
        }
    }

    /// Keeps the thumbnail, then records the document processed; a thumbnail kept for a
    /// document that stopped waiting meanwhile (purged) is removed.
    async fn record(&self, pending: &Pending, extracted: Extracted) -> Result<()> {
        let thumbnail_key = match &extracted.thumbnail {
            Some(png) => Some(self.keep(png).await?),
            None => None,
        };
        let thumbnail_size = extracted
            .thumbnail
            .as_ref()
            .map_or(0, |png| i32::try_from(png.len()).unwrap_or(i32::MAX));
        let processed = Processed {
            page_count: extracted.page_count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            text: &extracted.text,
            thumbnail: thumbnail_key.as_deref().map(|key| (key, thumbnail_size)),
        };
        let recorded = attachments::record_processed(&self.pool, pending.id, &processed).await;
        if !matches!(recorded, Ok(true))
            && let Some(key) = &thumbnail_key
            && let Err(err) = self.content.remove(key).await
        {
            tracing::warn!(key = %key, error = %err, "an unused thumbnail could not be removed");
        }
        recorded.map(drop)
    }

    /// Keeps `png` in the content store under a new key.
    async fn keep(&self, png: &[u8]) -> Result<String> {
        let io = |e: std::io::Error| crate::error::Error::Internal(anyhow::anyhow!("keeping a thumbnail: {e}"));
        let mut staged = Staged::create(self.content.staging_dir()).await.map_err(io)?;
        staged.write(png).await.map_err(io)?;
        staged.finish().await.map_err(io)?;
        let key = storage::key_for(Uuid::new_v4());
        self.content.put(&key, staged).await.map_err(io)?;
        Ok(key)
    }
}

/// Why the reader stopped, in words: a limit it crossed, or its exit code.
fn stopped(status: ExitStatus) -> String {
    const SIGABRT: i32 = 6;
    const SIGKILL: i32 = 9;
    const SIGSEGV: i32 = 11;
    const SIGXCPU: i32 = 24;
    match status.signal() {
        Some(SIGXCPU) | Some(SIGKILL) => "reading it took more CPU time than the limit".to_owned(),
        Some(SIGABRT) => "reading it crossed the reader's memory or stack limit".to_owned(),
        Some(SIGSEGV) => "the reader crashed on it".to_owned(),
        Some(signal) => format!("the reader stopped on signal {signal}"),
        None => format!("the reader failed ({status})"),
    }
}
