//! S3-compatible object storage (AWS S3, MinIO, anything that speaks its API) through
//! `object_store`: each file is an object named by its key in `S3_BUCKET`. An upload is
//! staged on local disk as with the filesystem store (so a refused or cut-off upload
//! never reaches the bucket), then sent in 5 MiB parts (multipart upload; memory stays at
//! a few parts whatever the file's size), and only then is the document recorded. Reads
//! stream the range asked for. Tested against moto's S3 server (tests/api/s3.rs).

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::storage::{ContentStore, Reader, Staged, check_key, remove_stale};

/// The size of each part sent; S3 takes parts of 5 MiB and up (but the last).
const PART: usize = 5 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Where the bucket is and how to reach it.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// `https://s3.eu-west-1.amazonaws.com`, `http://minio:9000` ...; unset, AWS's own
    /// for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

pub struct S3Store {
    store: AmazonS3,
    staging: PathBuf,
}

impl S3Store {
    /// The store of `config`, staging uploads under `data_dir/documents/staging`.
    /// Nothing is asked of the bucket until the first file.
    pub fn open(config: &S3Config, data_dir: &Path) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|e| anyhow::anyhow!("S3: {e}"))?;
        let staging = data_dir.join("documents").join("staging");
        if let Err(err) = remove_stale(&staging) {
            tracing::warn!(dir = %staging.display(), error = %err, "stale staged uploads could not be removed");
        }
        Ok(Self { store, staging })
    }

    async fn upload(&self, key: &str, staged: &mut Staged) -> io::Result<()> {
        staged.finish().await?;
        let mut file = tokio::fs::File::open(staged.path()).await?;
        let upload = self.store.put_multipart(&ObjectPath::from(key)).await.map_err(to_io)?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buffer = vec![0; 256 * 1024];
        loop {
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            parts.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(to_io)?;
            parts.write(&buffer[..read]);
        }
        parts.finish().await.map_err(to_io)?;
        Ok(())
    }
}

fn to_io(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error.to_string()),
        other => io::Error::other(other.to_string()),
    }
}

impl ContentStore for S3Store {
    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put<'a>(&'a self, key: &'a str, mut staged: Staged) -> BoxFuture<'a, io::Result<()>> {
        async move {
            check_key(key)?;
            self.upload(key, &mut staged).await
        }
        .boxed()
    }

    fn read<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, io::Result<Reader>> {
        async move {
            check_key(key)?;
            if range.is_empty() {
                let reader: Reader = Box::pin(tokio::io::empty());
                return Ok(reader);
            }
            let options = GetOptions {
                range: Some(range.into()),
                ..GetOptions::default()
            };
            let got = self.store.get_opts(&ObjectPath::from(key), options).await.map_err(to_io)?;
            // The client's stream is Send but not Sync, as readers are to be.
            let stream = sync_wrapper::SyncStream::new(got.into_stream().map_err(to_io));
            let reader: Reader = Box::pin(tokio_util::io::StreamReader::new(stream));
            Ok(reader)
        }
        .boxed()
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<()>> {
        async move {
            check_key(key)?;
            match self.store.delete(&ObjectPath::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(other) => Err(to_io(other)),
            }
        }
        .boxed()
    }
    fn keys_before<'a>(&'a self, before: SystemTime, after: Option<&'a str>, limit: usize) -> BoxFuture<'a, io::Result<Vec<String>>> {
        async move {
            let before: chrono::DateTime<chrono::Utc> = before.into();
            // The bucket lists in key order, from after the offset (ListObjectsV2's
            // `start-after`), a thousand a request: the listing stops once the page is full.
            let mut listed = match after {
                Some(after) => self.store.list_with_offset(None, &object_store::path::Path::from(after)),
                None => self.store.list(None),
            };
            let mut keys = Vec::new();
            while keys.len() < limit
                && let Some(object) = listed.try_next().await.map_err(to_io)?
            {
                let key = object.location.to_string();
                if object.last_modified < before && check_key(&key).is_ok() {
                    keys.push(key);
                }
            }
            Ok(keys)
        }
        .boxed()
    }
}
