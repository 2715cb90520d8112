//! The filesystem store: files under `DATA_DIR/documents/<key>`, staged under
//! `DATA_DIR/documents/staging` so that keeping one is a rename on one filesystem.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::storage::{ContentStore, Reader, Staged, check_key, remove_stale};

pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalStore {
    /// The store under `data_dir/documents`; its directories are made on the first
    /// upload (a deployment that keeps no documents needs no writable `DATA_DIR`). Staged
    /// files older than a day are removed: a process stopped during their upload, which
    /// was never answered. (Younger ones may belong to another process sharing the
    /// directory.)
    pub fn open(data_dir: &Path) -> Self {
        let root = data_dir.join("documents");
        let staging = root.join("staging");
        if let Err(err) = remove_stale(&staging) {
            tracing::warn!(dir = %staging.display(), error = %err, "stale staged uploads could not be removed");
        }
        Self { root, staging }
    }

    fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Makes a rename or removal in `dir` durable.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

impl ContentStore for LocalStore {
    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put<'a>(&'a self, key: &'a str, mut staged: Staged) -> BoxFuture<'a, io::Result<()>> {
        async move {
            let path = self.path_of(key)?;
            staged.finish().await?;
            let dir = path.parent().unwrap_or(&self.root).to_owned();
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::rename(staged.path(), &path).await?;
            staged.kept();
            sync_dir(&dir).await
        }
        .boxed()
    }

    fn read<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, io::Result<Reader>> {
        async move {
            let mut file = tokio::fs::File::open(self.path_of(key)?).await?;
            file.seek(SeekFrom::Start(range.start)).await?;
            let reader: Reader = Box::pin(file.take(range.end.saturating_sub(range.start)));
            Ok(reader)
        }
        .boxed()
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<()>> {
        async move {
            match tokio::fs::remove_file(self.path_of(key)?).await {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            }
        }
        .boxed()
    }
    fn keys_before<'a>(&'a self, before: SystemTime, after: Option<&'a str>, limit: usize) -> BoxFuture<'a, io::Result<Vec<String>>> {
        let root = self.root.clone();
        let after = after.map(str::to_owned);
        async move {
            tokio::task::spawn_blocking(move || keys_before(&root, before, after.as_deref(), limit))
                .await
                .map_err(io::Error::other)?
        }
        .boxed()
    }
}

/// Up to `limit` keys under `root` ([`crate::storage::key_for`]'s `<2 hex>/<hex>`), in
/// order, after `after`, of files last modified before `before`; anything else there
/// (staging) is not a key. One directory's names are held at a time.
fn keys_before(root: &Path, before: SystemTime, after: Option<&str>, limit: usize) -> io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let dirs = match std::fs::read_dir(root) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(keys),
        dirs => dirs?,
    };
    let mut prefixes = Vec::new();
    for dir in dirs {
        let dir = dir?;
        let prefix = dir.file_name().to_string_lossy().into_owned();
        let passed = after.is_some_and(|after| prefix.as_str() < after.split('/').next().unwrap_or_default());
        if dir.file_type()?.is_dir() && check_key(&prefix).is_ok() && !passed {
            prefixes.push(prefix);
        }
    }
    prefixes.sort();
    for prefix in prefixes {
        let mut names = Vec::new();
        for file in std::fs::read_dir(root.join(&prefix))? {
            let file = file?;
            let key = format!("{prefix}/{}", file.file_name().to_string_lossy());
            if check_key(&key).is_ok() && after.is_none_or(|after| key.as_str() > after) && file.metadata()?.modified()? < before {
                names.push(key);
            }
        }
        names.sort();
        for key in names {
            if keys.len() == limit {
                return Ok(keys);
            }
            keys.push(key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::key_for;

    #[tokio::test]
    async fn a_kept_file_reads_back_by_range_and_nothing_stays_staged() {
        let dir = std::env::temp_dir().join(format!("arrears-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalStore::open(&dir);
        let key = key_for(uuid::Uuid::new_v4());
        let mut staged = Staged::create(store.staging_dir()).await.unwrap();
        staged.write(b"hello ").await.unwrap();
        staged.write(b"world").await.unwrap();
        assert_eq!(staged.size(), 11);
        store.put(&key, staged).await.unwrap();
        let mut part = String::new();
        store.read(&key, 6..11).await.unwrap().read_to_string(&mut part).await.unwrap();
        assert_eq!(part, "world");
        assert_eq!(std::fs::read_dir(store.staging_dir()).unwrap().count(), 0);

        let abandoned = Staged::create(store.staging_dir()).await.unwrap();
        let path = abandoned.path().to_owned();
        drop(abandoned);
        assert!(!path.exists(), "a dropped upload leaves no file");

        for bad in ["../x", "/etc/passwd", "ab/../../x", ""] {
            assert!(store.read(bad, 0..1).await.is_err(), "{bad}");
        }
        store.remove(&key).await.unwrap();
        store.remove(&key).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn keys_are_listed_a_page_at_a_time_in_order() {
        let dir = std::env::temp_dir().join(format!("arrears-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalStore::open(&dir);
        let mut kept = Vec::new();
        for _ in 0..7 {
            let key = key_for(uuid::Uuid::new_v4());
            let mut staged = Staged::create(store.staging_dir()).await.unwrap();
            staged.write(b"x").await.unwrap();
            store.put(&key, staged).await.unwrap();
            kept.push(key);
        }
        kept.sort();
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.keys_before(later, after.as_deref(), 3).await.unwrap();
            assert!(page.len() <= 3);
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            listed.extend(page);
        }
        assert_eq!(listed, kept, "every key once, in order, across pages");
        let earlier = SystemTime::now() - std::time::Duration::from_secs(60);
        assert!(
            store.keys_before(earlier, None, 10).await.unwrap().is_empty(),
            "none kept a minute ago"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
