//! Where the bytes of the files kept with accounts live (the API calls those files
//! documents). A file is received into a staging file ([`Staged`]: written chunk by
//! chunk, flushed to disk) and then handed to a [`ContentStore`], which keeps it under a
//! key made from the document's id alone ([`key_for`]), never from a name a user gave,
//! so no upload can name a path. The filesystem under `DATA_DIR` ([`local`]) is the
//! store of one binary; S3-compatible object storage ([`s3`]) the store of production.

pub mod local;
pub mod s3;

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWriteExt};
use uuid::Uuid;

/// A file's bytes, read back.
pub type Reader = Pin<Box<dyn AsyncRead + Send + Sync>>;

/// Keeps files under keys and reads them back.
pub trait ContentStore: Send + Sync + 'static {
    /// Where [`Staged`] files are written before they are kept (for the filesystem, on
    /// the same filesystem as the kept files, so keeping one is a rename).
    fn staging_dir(&self) -> &Path;

    /// Keeps the staged file under `key`, durably, before it answers.
    fn put<'a>(&'a self, key: &'a str, staged: Staged) -> BoxFuture<'a, io::Result<()>>;

    /// The bytes `range` of the file kept under `key`.
    fn read<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, io::Result<Reader>>;

    /// Removes the file kept under `key`; one already gone is not an error.
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<()>>;

    /// Up to `limit` keys, in order, after `after` (from the first without it), of the
    /// files kept before `before` (last written then), staging aside: what an upkeep
    /// checks, a page at a time, for files no row names.
    fn keys_before<'a>(&'a self, before: SystemTime, after: Option<&'a str>, limit: usize) -> BoxFuture<'a, io::Result<Vec<String>>>;
}

/// The key of document `id`'s file: its id, under a directory of its first two hex
/// digits (so no directory holds every file).
pub fn key_for(id: Uuid) -> String {
    let hex = id.simple().to_string();
    format!("{}/{hex}", &hex[..2])
}

/// Refuses a key [`key_for`] did not make (hex digits in `/`-separated parts), so no
/// key can name a path or an object outside the store's own.
pub(crate) fn check_key(key: &str) -> io::Result<()> {
    let safe = !key.is_empty()
        && key
            .split('/')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit()));
    if safe {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a content key: {key:?}")))
    }
}

/// How old a staged file must be to be taken for one a stopped process left, and a kept
/// file no row names for one a stopped upload left.
pub const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Removes the staged files in `staging` older than a day: a process stopped during
/// their upload, which was never answered. (Younger ones may belong to another process
/// sharing the directory.)
pub(crate) fn remove_stale(staging: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(staging) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if stale {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A file being received: removed when dropped unless a store kept it.
pub struct Staged {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    size: u64,
}

impl Staged {
    /// A new, empty staging file in `dir`.
    pub async fn create(dir: &Path) -> io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("{}.part", Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Self {
            path,
            file: Some(file),
            size: 0,
        })
    }

    /// A new, empty staging file in `dir` for blocking code (in `spawn_blocking`) to write
    /// through the handle returned with it; [`Staged::finish_blocking`] finishes it.
    pub fn create_blocking(dir: &Path) -> io::Result<(Self, std::fs::File)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.part", Uuid::new_v4().simple()));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        let staged = Self { path, file: None, size: 0 };
        Ok((staged, file))
    }

    /// Flushes `file`, which [`Staged::create_blocking`] handed out and `size` bytes
    /// were written to, to disk (`fsync`) and closes it.
    pub fn finish_blocking(&mut self, file: std::fs::File, size: u64) -> io::Result<()> {
        file.sync_all()?;
        self.size = size;
        Ok(())
    }

    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the staged file is already finished"))?;
        file.write_all(chunk).await?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Flushes every byte to disk (`fsync`) and closes the file.
    pub async fn finish(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks the file as kept elsewhere (renamed): it is no longer removed on drop.
    fn kept(mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            if let Err(err) = std::fs::remove_file(&self.path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), error = %err, "a staged upload could not be removed");
            }
        }
    }
}
