//! Bulk uploads of documents over HTTP against the real database and filesystem store:
//! a zip whose files are named by account number (or listed in a manifest) queues a
//! job that keeps each file as its single upload would be, and reports each file it
//! refused; a zip that could climb out of its directory, or that is too large, too
//! many or lies about its sizes, is refused and keeps nothing.

use std::io::Write;

use arrears::domain::role::Role;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

use crate::documents::{document_rows, pdf, png, stored_files, uploaded};
use crate::helpers::{TestApp, TestUser, assert_problem, eventually, id_of, spawn_app, spawn_app_with, status_json};

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

async fn send(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    app.request(Method::POST, "/api/v1/documents/bulk", Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Sends the zip, asserts 202 with the job's Location, and waits for the job to end.
async fn finished(app: &TestApp, user: &TestUser, zip: Vec<u8>) -> Value {
    let response = send(app, &user.token, "scans.zip", zip).await;
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let (status, job) = status_json(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "document_upload");
    let path = location.expect("a Location");
    assert_eq!(path, format!("/api/v1/jobs/{}", id_of(&job)));
    eventually("the upload job ends", || async {
        status_json(app.get(&path, &user.token).await).await.1["finished_at"].is_string()
    })
    .await;
    status_json(app.get(&path, &user.token).await).await.1
}

async fn refused_files(app: &TestApp, user: &TestUser, job: &Value) -> Vec<(String, String, String)> {
    let (status, page) = status_json(app.get(&format!("/api/v1/jobs/{}/failures", id_of(job)), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("{k}: {f}")).to_owned();
            (text("file"), text("account_number"), text("error"))
        })
        .collect()
}

async fn names_on(app: &TestApp, token: &str, account: &Value) -> Vec<String> {
    let path = format!("/api/v1/accounts/{}/documents", id_of(account));
    let (_, page) = status_json(app.get(&path, token).await).await;
    let mut names: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn number(account: &Value) -> &str {
    account["account_number"].as_str().unwrap()
}

#[tokio::test]
async fn each_file_is_kept_on_the_account_it_names_and_each_refusal_says_why() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let (first, second, third) = (
        app.account(&manager.token, json!({})).await,
        app.account(&manager.token, json!({})).await,
        app.account(&manager.token, json!({})).await,
    );
    // Already on the third account: the zip's copy is a duplicate.
    uploaded(&app, &manager.token, &id_of(&third), "earlier.png", png()).await;
    let (a, b, c) = (number(&first), number(&second), number(&third));
    let zip = zip_of(&[
        (&format!("{a}.pdf"), &pdf()),
        (&format!("{b}/letter.txt"), "Zahlungsplan für März".as_bytes()),
        (&format!("{b}/scan.png"), &png()),
        (&format!("{c}.png"), &png()),
        ("NO-SUCH-ACCOUNT.pdf", &pdf()),
        (&format!("{a}/program.bin"), b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"),
        (&format!("__MACOSX/._{a}.pdf"), b"\0\x05\x16\x07 resource fork"),
        (".DS_Store", b"\0\0\0\x01Bud1"),
    ]);
    let job = finished(&app, &manager, zip).await;
    assert_eq!(job["status"], "partially_failed", "{job}");
    assert_eq!(
        (job["total"].clone(), job["succeeded"].clone(), job["failed"].clone()),
        (json!(6), json!(3), json!(3)),
        "{job}"
    );
    assert_eq!(job["result"], json!({"succeeded": 3, "failed": 3}));

    assert_eq!(names_on(&app, &manager.token, &first).await, [format!("{a}.pdf")]);
    assert_eq!(names_on(&app, &manager.token, &second).await, ["letter.txt", "scan.png"]);
    assert_eq!(names_on(&app, &manager.token, &third).await, ["earlier.png"]);

    let refused = refused_files(&app, &manager, &job).await;
    let why = |file: &str| {
        refused
            .iter()
            .find(|r| r.0 == file)
            .unwrap_or_else(|| panic!("{file} not among {refused:?}"))
            .clone()
    };
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(why(&format!("{c}.png")).2.starts_with("duplicate_document"), "{refused:?}");
    assert_eq!(why("NO-SUCH-ACCOUNT.pdf").1, "NO-SUCH-ACCOUNT");
    assert!(why("NO-SUCH-ACCOUNT.pdf").2.starts_with("not_found"), "{refused:?}");
    assert!(
        why(&format!("{a}/program.bin")).2.starts_with("unsupported_media_type"),
        "{refused:?}"
    );

    // Each kept file is recorded in the audit trail as the job's, for the manager who
    // sent the zip; the zip itself is gone from the store once the job ended.
    let uploads: i64 = app
        .sql_value(
            "SELECT count(*) FROM audit_log WHERE action = 'document.create' AND actor = $1 AND job LIKE 'document_upload:%'",
            &manager.id.to_string(),
        )
        .await;
    assert_eq!(uploads, 3);
    eventually("the zip is removed", || async { stored_files(&app).await.len() == 4 }).await;
    let key: Option<String> = app
        .sql_value("SELECT params->>'zip_key' FROM jobs WHERE id = $1", &id_of(&job))
        .await;
    assert_eq!(key, None);
}

#[tokio::test]
async fn a_manifest_names_each_files_account_and_name() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let (first, second) = (
        app.account(&manager.token, json!({})).await,
        app.account(&manager.token, json!({})).await,
    );
    let manifest = format!(
        "file,account_number,name\nscans/0001.pdf,{},Proof of payment – März.pdf\nscans/0002.png,{},\n",
        number(&first),
        number(&second)
    );
    let zip = zip_of(&[
        ("scans/0001.pdf", &pdf()),
        ("scans/0002.png", &png()),
        ("manifest.csv", manifest.as_bytes()),
    ]);
    let job = finished(&app, &manager, zip).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(names_on(&app, &manager.token, &first).await, ["Proof of payment – März.pdf"]);
    assert_eq!(names_on(&app, &manager.token, &second).await, ["0002.png"]);

    let unlisted = zip_of(&[
        ("a.pdf", &pdf()),
        ("b.pdf", &png()),
        ("manifest.csv", b"file,account_number\na.pdf,X\n"),
    ]);
    let problem = assert_problem(
        send(&app, &manager.token, "x.zip", unlisted).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("\"b.pdf\" is not listed"), "{problem}");
}

#[tokio::test]
async fn an_agents_files_are_kept_only_on_the_accounts_they_work() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let colleague = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let own = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let theirs = app.account(&manager.token, json!({"assigned_agent_id": colleague.id})).await;
    let zip = zip_of(&[
        (&format!("{}.pdf", number(&own)), &pdf()),
        (&format!("{}.pdf", number(&theirs)), &pdf()),
    ]);

    assert_problem(
        send(&app, &viewer.token, "x.zip", zip.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let job = finished(&app, &agent, zip).await;
    assert_eq!((job["succeeded"].clone(), job["failed"].clone()), (json!(1), json!(1)), "{job}");
    let refused = refused_files(&app, &agent, &job).await;
    assert!(refused[0].2.starts_with("forbidden"), "{refused:?}");
    assert_eq!(names_on(&app, &manager.token, &theirs).await, Vec::<String>::new());
    assert_eq!(names_on(&app, &manager.token, &own).await.len(), 1);
}

/// A zip whose one entry holds `real` but whose headers declare `declared` bytes.
fn lying_zip(name: &str, real: &[u8], declared: u32) -> Vec<u8> {
    let mut bytes = zip_of(&[(name, real)]);
    let patch = |bytes: &mut Vec<u8>, signature: &[u8; 4], offset: usize| {
        let at = bytes.windows(4).position(|w| w == signature).unwrap() + offset;
        bytes[at..at + 4].copy_from_slice(&declared.to_le_bytes());
    };
    patch(&mut bytes, b"PK\x03\x04", 22);
    patch(&mut bytes, b"PK\x01\x02", 24);
    bytes
}

#[tokio::test]
async fn a_zip_that_could_climb_out_or_explode_is_refused_and_keeps_nothing() {
    let app = spawn_app_with(|s| {
        s.document_max_bytes = 64 * 1024;
        s.document_bulk_max_bytes = 256 * 1024;
        s.document_bulk_max_files = 3;
    })
    .await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let n = number(&account).to_owned();
    let refuse = |bytes: Vec<u8>, status: StatusCode, code: &'static str| {
        let (app, token) = (&app, manager.token.clone());
        async move { assert_problem(send(app, &token, "x.zip", bytes).await, status, code).await }
    };
    for name in ["../evil.pdf", "a/../../evil.pdf", "/etc/evil.pdf", "C:/evil.pdf", "a\\..\\evil.pdf"] {
        let problem = refuse(
            zip_of(&[(&format!("{n}.pdf"), &pdf()), (name, &pdf())]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(problem["detail"].as_str().unwrap().contains("its name"), "{name}: {problem}");
    }
    // A file over the per-file limit, files adding up to more than four times the zip's
    // limit, more files than allowed, and a zip over the zip's limit.
    let zeros = vec![0u8; 64 * 1024 + 1];
    let problem = refuse(
        zip_of(&[(&format!("{n}.txt"), &zeros)]),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem["limit_bytes"], 64 * 1024);
    let many: Vec<String> = (0..4).map(|i| format!("{n}/{i}.txt")).collect();
    let many: Vec<(&str, &[u8])> = many.iter().map(|p| (p.as_str(), b"x".as_slice())).collect();
    let problem = refuse(zip_of(&many), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(problem["limit_files"], 3);
    let large: Vec<String> = (0..18).map(|i| format!("{n}/{i}.txt")).collect();
    let sixty = vec![b'z'; 60 * 1024];
    let large: Vec<(&str, &[u8])> = large.iter().map(|p| (p.as_str(), sixty.as_slice())).collect();
    let app_limits = spawn_app_with(|s| {
        s.document_max_bytes = 64 * 1024;
        s.document_bulk_max_bytes = 256 * 1024;
        s.document_bulk_max_files = 100;
    })
    .await;
    let ops = app_limits.user(Role::Manager).await;
    let problem = assert_problem(
        send(&app_limits, &ops.token, "x.zip", zip_of(&large)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem["limit_bytes"], 4 * 256 * 1024, "{problem}");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..300 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    let problem = refuse(
        zip_of(&[(&format!("{n}.bin"), &noise)]),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem["limit_bytes"], 256 * 1024);
    // Not a zip at all.
    refuse(pdf(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'document_upload'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    assert_eq!(stored_files(&app).await, Vec::<String>::new());

    // A file that declares 10 bytes and expands to 60 KiB is admitted with the zip and
    // refused on its own when it outgrows what it declared (the zip reader notices first;
    // the job's own bound would otherwise).
    let job = finished(&app, &manager, lying_zip(&format!("{n}.txt"), &vec![b'a'; 60 * 1024], 10)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let refused = refused_files(&app, &manager, &job).await;
    assert!(refused[0].2.contains("larger than its declared"), "{refused:?}");
    assert_eq!(document_rows(&app).await, 0);
    eventually("the zip is removed", || async { stored_files(&app).await.is_empty() }).await;
}
