//! Documents in S3-compatible object storage, against a real S3 server no one here
//! wrote: moto's server mode (PyPI, pinned in bin/_lib.sh, in tests/providers/.venv).
//! The store keeps a file of several parts (multipart upload) whole, reads a range,
//! refuses keys it did not make and removes what it kept; through the API, a document
//! uploaded, listed, downloaded whole and by range, with the file in the bucket and
//! nothing left in staging.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrears::config::DocumentStore;
use arrears::domain::role::Role;
use arrears::storage::s3::{S3Config, S3Store};
use arrears::storage::{ContentStore, Staged, key_for};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::announced::port_after;
use crate::documents::{download, uploaded};
use crate::helpers::{id_of, spawn_guarded_app_with};

/// moto's S3 server on a port of its own, with a bucket; stopped when dropped.
struct Moto {
    process: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Moto {
    async fn start(bucket: &str) -> Self {
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers/.venv/bin/moto_server");
        assert!(server.exists(), "moto is missing: run bin/test (it installs tests/providers/.venv)");
        let mut process = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto");
        let stderr = process.stderr.take().unwrap();
        let (port, _) = port_after(stderr, "Running on http://127.0.0.1:", "moto");
        let moto = Self {
            process,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // moto takes the bucket's creation unsigned.
            match client.put(format!("{}/{bucket}", moto.endpoint)).send().await {
                Ok(response) if response.status().is_success() => break,
                _ => {
                    assert!(std::time::Instant::now() < deadline, "moto did not start within 60 s");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        moto
    }

    fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some("testing".to_owned()),
        }
    }
}

/// Bytes that differ all along (a part sent twice or out of order would show).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 4096) % 251) as u8).collect()
}

async fn read_all(store: &S3Store, key: &str, range: std::ops::Range<u64>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    store.read(key, range).await?.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

#[tokio::test]
async fn the_s3_store_keeps_a_file_of_several_parts_whole_reads_ranges_lists_and_removes_it() {
    let moto = Moto::start("arrears-store").await;
    let data_dir = std::env::temp_dir().join(format!("arrears-s3-{}", uuid::Uuid::new_v4().simple()));
    let store = S3Store::open(&moto.config("arrears-store"), &data_dir).unwrap();

    // 12 MiB: three parts of the multipart upload.
    let content = pattern(12 * 1024 * 1024 + 17);
    let mut staged = Staged::create(store.staging_dir()).await.unwrap();
    for chunk in content.chunks(100_000) {
        staged.write(chunk).await.unwrap();
    }
    let key = key_for(uuid::Uuid::now_v7());
    store.put(&key, staged).await.unwrap();
    assert_eq!(
        std::fs::read_dir(store.staging_dir()).unwrap().count(),
        0,
        "nothing is left in staging once the bucket has the file"
    );

    let len = content.len() as u64;
    assert!(read_all(&store, &key, 0..len).await.unwrap() == content, "read back whole");
    let middle = 5 * 1024 * 1024 - 3..5 * 1024 * 1024 + 5;
    assert_eq!(
        read_all(&store, &key, middle.clone()).await.unwrap(),
        content[middle.start as usize..middle.end as usize]
    );
    assert!(read_all(&store, &key, 0..0).await.unwrap().is_empty());

    // Listed by the bucket's own modification times: kept before a minute from now, not
    // before a minute ago.
    let now = std::time::SystemTime::now();
    let minute = std::time::Duration::from_secs(60);
    assert_eq!(store.keys_before(now + minute, None, 10).await.unwrap(), vec![key.clone()]);
    assert_eq!(store.keys_before(now - minute, None, 10).await.unwrap(), Vec::<String>::new());
    // A page at a time, from after a key (`start-after`): a second file, then nothing.
    let second = key_for(uuid::Uuid::now_v7());
    let mut staged = Staged::create(store.staging_dir()).await.unwrap();
    staged.write(b"second").await.unwrap();
    store.put(&second, staged).await.unwrap();
    let mut both = [key.clone(), second.clone()];
    both.sort();
    assert_eq!(store.keys_before(now + minute, None, 1).await.unwrap(), both[..1]);
    assert_eq!(store.keys_before(now + minute, Some(&both[0]), 1).await.unwrap(), both[1..]);
    assert_eq!(
        store.keys_before(now + minute, Some(&both[1]), 1).await.unwrap(),
        Vec::<String>::new()
    );
    store.remove(&second).await.unwrap();

    for bad in ["../etc/passwd", "ab/../../x", "", "AB/cd/"] {
        let refused = store.remove(bad).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    store.remove(&key).await.unwrap();
    let gone = read_all(&store, &key, 0..len).await.unwrap_err();
    assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
    store.remove(&key).await.expect("removing what is gone is not an error");
    std::fs::remove_dir_all(&data_dir).unwrap();
}

#[tokio::test]
async fn documents_uploaded_through_the_api_live_in_the_bucket() {
    let moto = Moto::start("arrears-documents").await;
    let config = moto.config("arrears-documents");
    let endpoint = moto.endpoint.clone();
    let app = spawn_guarded_app_with(move |s| {
        s.document_store = DocumentStore::S3;
        s.s3_bucket = Some("arrears-documents".to_owned());
        s.s3_endpoint = Some(endpoint);
        s.s3_access_key_id = Some("testing".to_owned());
        s.s3_secret_access_key = Some("testing".to_owned());
    })
    .await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);
    let content = pattern(6 * 1024 * 1024);
    let mut text = b"Statement of account\n".to_vec();
    text.extend(content.iter().map(|b| b'a' + b % 26));
    let document = uploaded(&app, &manager.token, &account, "statement.txt", text.clone()).await;
    let id = document["id"].as_str().unwrap();

    let whole = download(&app, &manager.token, id, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert!(whole.bytes().await.unwrap() == text, "downloaded whole from the bucket");
    let part = download(&app, &manager.token, id, Some("bytes=0-19")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap(), "Statement of account");

    // The bucket has it under the key the database names, read without the app.
    let key: String = app
        .sql_value("SELECT storage_key FROM account_documents WHERE id = $1::uuid", id)
        .await;
    let direct = S3Store::open(&config, &std::env::temp_dir()).unwrap();
    assert!(read_all(&direct, &key, 0..text.len() as u64).await.unwrap() == text);
    assert_eq!(
        std::fs::read_dir(app.settings.data_dir.join("documents/staging")).unwrap().count(),
        0
    );
}
