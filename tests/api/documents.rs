//! Documents kept with accounts, over HTTP against the real database and the real
//! filesystem store: each accepted kind from real bytes, read from the content and not
//! the name; refusals that keep nothing (another kind, too large, empty); downloads with
//! a safe `Content-Disposition` and one byte range; who may upload, read and delete;
//! duplicates; and the audit trail of uploads, downloads and deletes.

use std::io::Write;
use std::path::Path;

use arrears::domain::role::Role;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, TestUser, assert_problem, id_of, spawn_app, spawn_app_with, status_json};

async fn upload(app: &TestApp, token: &str, account: &str, name: &str, bytes: Vec<u8>) -> Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    app.request(Method::POST, &format!("/api/v1/accounts/{account}/documents"), Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads and asserts 201: the document.
pub(crate) async fn uploaded(app: &TestApp, token: &str, account: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = status_json(upload(app, token, account, name, bytes).await).await;
    assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    body
}

pub(crate) async fn download(app: &TestApp, token: &str, id: &str, range: Option<&str>) -> Response {
    let mut request = app.request(Method::GET, &format!("/api/v1/documents/{id}/content"), Some(token));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    for (name, text) in parts {
        writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    writer.finish().unwrap();
    out.into_inner()
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>"#;

fn docx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        (
            "_rels/.rels",
            r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#,
        ),
        (
            "word/document.xml",
            r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>I dispute this debt.</w:t></w:r></w:p></w:body></w:document>"#,
        ),
    ])
}

fn xlsx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        (
            "_rels/.rels",
            r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets><sheet name="Plan" sheetId="1"/></sheets></workbook>"#,
        ),
    ])
}

pub(crate) fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n\
      3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
        .to_vec()
}

/// A 1x1 RGBA PNG (IHDR, IDAT, IEND with their CRCs).
pub(crate) fn png() -> Vec<u8> {
    hex::decode(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000b49444154789c\
         6360000200000500017a5eab3f0000000049454e44ae426082",
    )
    .unwrap()
}

/// SOI, a JFIF APP0 segment, EOI.
fn jpeg() -> Vec<u8> {
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    bytes.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    bytes.extend_from_slice(&[0xff, 0xd9]);
    bytes
}

/// A 1x1 8-bit grey TIFF: the header, one IFD of eight entries, one pixel.
fn tiff() -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, 1),   // ImageWidth
        (257, 4, 1),   // ImageLength
        (258, 3, 8),   // BitsPerSample
        (259, 3, 1),   // Compression: none
        (262, 3, 1),   // PhotometricInterpretation: black is zero
        (273, 4, 110), // StripOffsets: after the IFD
        (278, 4, 1),   // RowsPerStrip
        (279, 4, 1),   // StripByteCounts
    ];
    let mut bytes = b"II*\0".to_vec();
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(bytes.len(), 110);
    bytes.push(0x80);
    bytes
}

/// An ISO base media file whose `ftyp` box names HEIC, then an empty `meta` box.
fn heic() -> Vec<u8> {
    let mut bytes = 24u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    bytes.extend_from_slice(&12u32.to_be_bytes());
    bytes.extend_from_slice(b"meta\0\0\0\0");
    bytes
}

fn eml() -> Vec<u8> {
    "From: Jane Doe <jane@example.com>\r\nTo: collections@example.com\r\nSubject: Payment sent\r\n\
     Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nI sent 120.00 today.\r\n"
        .as_bytes()
        .to_vec()
}

/// Waits until no document waits to be processed or is being processed (one claimed
/// before it was deleted included), so that its row is not locked and its thumbnail is
/// named.
pub(crate) async fn processing_settled(app: &TestApp) {
    crate::helpers::eventually("no document waits to be processed", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM account_documents
             WHERE processing = 'pending' AND (deleted_at IS NULL OR processing_attempts > 0)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        pending == 0
    })
    .await;
}

/// The files under the store's directory, staging included, thumbnails aside, once no
/// document waits to be processed.
pub(crate) async fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    // Processing settled first: a thumbnail is written before its row names it.
    processing_settled(app).await;
    let thumbnails: Vec<String> = sqlx::query_scalar("SELECT thumbnail_key FROM account_documents WHERE thumbnail_key IS NOT NULL")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let root = app.settings.data_dir.join("documents");
    let mut found = Vec::new();
    walk(&root, &mut found);
    found.retain(|path| !thumbnails.iter().any(|key| Path::new(path) == root.join(key)));
    found
}

pub(crate) async fn document_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM account_documents")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_kind_is_read_from_the_content_and_served_back_as_it() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);
    let files: [(&str, Vec<u8>, &str, &str); 9] = [
        ("proof.pdf", pdf(), "pdf", "application/pdf"),
        ("receipt.png", png(), "png", "image/png"),
        ("cheque.jpg", jpeg(), "jpeg", "image/jpeg"),
        ("IMG_0001.HEIC", heic(), "heic", "image/heic"),
        ("fax.tif", tiff(), "tiff", "image/tiff"),
        (
            "dispute.docx",
            docx(),
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "plan.xlsx",
            xlsx(),
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        // The name says an image; the content says text, and text it is.
        (
            "notes.png",
            "Paid 120,00 € on 2 March.\n".as_bytes().to_vec(),
            "text",
            "text/plain; charset=utf-8",
        ),
        ("message.eml", eml(), "eml", "message/rfc822"),
    ];
    let mut ids = Vec::new();
    for (name, bytes, kind, content_type) in &files {
        let document = uploaded(&app, &manager.token, &account, name, bytes.clone()).await;
        assert_eq!(document["kind"], *kind, "{name}");
        assert_eq!(document["content_type"], *content_type, "{name}");
        assert_eq!(document["name"], *name);
        assert_eq!(document["size"], bytes.len());
        assert_eq!(document["sha256"], sha256_hex(bytes));
        assert_eq!(document["account_id"], account.as_str());
        assert_eq!(document["uploaded_by"], json!(manager.id));

        let id = id_of(&document);
        let response = download(&app, &manager.token, &id, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.headers()["content-type"], *content_type);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["accept-ranges"], "bytes");
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{name}");
        ids.push(id);
    }
    assert_eq!(
        stored_files(&app).await.len(),
        files.len(),
        "one file per document, none left staged"
    );

    let first = status_json(
        app.get(&format!("/api/v1/accounts/{account}/documents?page_size=5"), &manager.token)
            .await,
    )
    .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(first.1["total"], 9);
    let cursor = first.1["next_cursor"].as_str().unwrap().to_owned();
    let second = status_json(
        app.get(
            &format!("/api/v1/accounts/{account}/documents?page_size=5&cursor={cursor}"),
            &manager.token,
        )
        .await,
    )
    .await
    .1;
    assert_eq!(second["next_cursor"], Value::Null);
    let listed: Vec<String> = first.1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(id_of)
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    let (status, one) = status_json(app.get(&format!("/api/v1/documents/{}", ids[0]), &manager.token).await).await;
    assert_eq!((status, &one["kind"]), (StatusCode::OK, &json!("pdf")));
    assert_eq!(one["file_name"], "proof.pdf");
}

#[tokio::test]
async fn other_kinds_empty_files_and_stray_fields_are_refused_keeping_nothing() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);
    let mut exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    exe.extend_from_slice(&[0; 64]);
    let refused: [(&str, Vec<u8>); 5] = [
        // An executable renamed, with a content type that claims PDF.
        ("statement.pdf", exe),
        ("tool.elf", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec()),
        (
            "letter.docx",
            zip_of(&[("[Content_Types].xml", CONTENT_TYPES), ("content.xml", "<x/>")]),
        ),
        ("broken.docx", b"PK\x03\x04 and then nothing a zip holds".to_vec()),
        ("latin1.txt", b"Gr\xfc\xdfe, bezahlt".to_vec()),
    ];
    for (name, bytes) in refused {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name).mime_str("application/pdf").unwrap());
        let response = app
            .request(Method::POST, &format!("/api/v1/accounts/{account}/documents"), Some(&manager.token))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
        assert_eq!(problem["accepted"].as_array().unwrap().len(), 9, "{name}: {problem}");
    }

    let empty = upload(&app, &manager.token, &account, "empty.txt", Vec::new()).await;
    assert_problem(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let stray = Form::new()
        .part("file", Part::bytes(pdf()).file_name("a.pdf"))
        .text("note", "hello");
    let response = app
        .request(Method::POST, &format!("/api/v1/accounts/{account}/documents"), Some(&manager.token))
        .multipart(stray)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let json = app
        .post(&format!("/api/v1/accounts/{account}/documents"), Some(&manager.token), &json!({}))
        .await;
    assert_problem(json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    assert_eq!(document_rows(&app).await, 0);
    assert_eq!(stored_files(&app).await, Vec::<String>::new(), "nothing kept, nothing left staged");
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_413_and_nothing_is_kept() {
    let app = spawn_app_with(|s| s.document_max_bytes = 64 * 1024).await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);

    let over = "x".repeat(64 * 1024 + 1).into_bytes();
    let problem = assert_problem(
        upload(&app, &manager.token, &account, "big.txt", over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem["limit_bytes"], 64 * 1024);
    assert_eq!(document_rows(&app).await, 0);
    assert_eq!(stored_files(&app).await, Vec::<String>::new());

    // Far over: refused while it streams, long before the body ends.
    let huge = "y".repeat(8 * 1024 * 1024).into_bytes();
    assert_problem(
        upload(&app, &manager.token, &account, "huge.txt", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(stored_files(&app).await, Vec::<String>::new());

    let at_limit = "z".repeat(64 * 1024).into_bytes();
    let document = uploaded(&app, &manager.token, &account, "fits.txt", at_limit).await;
    assert_eq!(document["size"], 64 * 1024);
    assert_eq!(document_rows(&app).await, 1);
}

#[tokio::test]
async fn a_download_sends_one_byte_range_and_refuses_one_past_the_end() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);
    let text = b"0123456789abcdefghij".to_vec();
    let id = id_of(&uploaded(&app, &manager.token, &account, "digits.txt", text.clone()).await);

    for (range, body, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=18-400", "ij", "bytes 18-19/20"),
    ] {
        let response = download(&app, &manager.token, &id, Some(range)).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(response.headers()["content-range"], content_range);
        assert_eq!(response.headers()["content-length"], body.len().to_string().as_str());
        assert_eq!(response.text().await.unwrap(), body, "{range}");
    }
    // Several ranges, or another unit: the whole file.
    for range in ["bytes=0-1,4-5", "items=0-1"] {
        let response = download(&app, &manager.token, &id, Some(range)).await;
        assert_eq!(response.status(), StatusCode::OK, "{range}");
        assert!(response.headers().get("content-range").is_none());
        assert_eq!(response.bytes().await.unwrap().as_ref(), text.as_slice());
    }
    for range in ["bytes=20-", "bytes=25-30", "bytes=-0"] {
        let response = download(&app, &manager.token, &id, Some(range)).await;
        assert_eq!(response.headers()["content-range"], "bytes */20", "{range}");
        let problem = assert_problem(response, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
        assert_eq!(problem["size"], 20);
    }
}

/// The `filename*` value of a `Content-Disposition`, percent-decoded.
fn extended_filename(disposition: &str) -> String {
    let encoded = disposition.split("filename*=UTF-8''").nth(1).unwrap();
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            decoded.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).unwrap()
}

async fn assert_safe_disposition(app: &TestApp, token: &str, id: &str, expected_name: &str) -> String {
    let response = download(app, token, id, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let values: Vec<_> = response.headers().get_all("content-disposition").iter().collect();
    assert_eq!(values.len(), 1);
    let disposition = values[0].to_str().expect("an ASCII header value").to_owned();
    assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
    assert!(
        disposition.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "printable ASCII only: {disposition}"
    );
    let fallback = disposition
        .strip_prefix("attachment; filename=\"")
        .and_then(|rest| rest.split("\"; filename*=").next())
        .unwrap();
    assert!(!fallback.contains(['"', '\\', '/']), "{fallback}");
    assert_eq!(extended_filename(&disposition), expected_name, "{disposition}");
    assert!(response.headers().get("set-cookie").is_none());
    disposition
}

#[tokio::test]
async fn a_hostile_name_is_kept_as_given_and_downloads_under_a_safe_disposition() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);

    let hostile = "../../etc/\"Zahlung\" naïve\tрезюме %0D%0A.html";
    let document = uploaded(&app, &manager.token, &account, hostile, b"<script>alert(1)</script>".to_vec()).await;
    assert_eq!(document["name"], hostile, "kept as given");
    assert_eq!(document["kind"], "text");
    let expected = "\"Zahlung\" naïve_резюме %0D%0A.html.txt";
    assert_eq!(document["file_name"], expected);
    let id = id_of(&document);
    let disposition = assert_safe_disposition(&app, &manager.token, &id, expected).await;
    assert!(disposition.contains("%250D%250A"), "a literal percent stays literal: {disposition}");

    // U+202E shows the rest of a line reversed: "evil\u{202e}gpj.pdf" reads as
    // "evilfdp.jpg" (issue 75, item 13). It is replaced where the name is shown.
    let reversed = uploaded(&app, &manager.token, &account, "evil\u{202e}gpj.pdf", pdf()).await;
    assert_eq!(reversed["file_name"], "evil_gpj.pdf", "{reversed}");
    assert_safe_disposition(&app, &manager.token, &id_of(&reversed), "evil_gpj.pdf").await;

    // A name holding a line break (written by a path other than a multipart header,
    // which cannot carry one) still makes one header line and no other header.
    sqlx::query("UPDATE account_documents SET name = $2 WHERE id = $1::uuid")
        .bind(&id)
        .bind("x\r\nSet-Cookie: session=1\r\n..\\proof.pdf")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_safe_disposition(&app, &manager.token, &id, "proof.pdf.txt").await;

    // A raw line break in the multipart header itself ends that header: a malformed body.
    let broken = upload(&app, &manager.token, &account, "a\r\nb.txt", b"text".to_vec()).await;
    assert_problem(broken, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(document_rows(&app).await, 2, "the two named above, no third");
}

async fn portfolio_granted_to(app: &TestApp, admin: &TestUser, users: &[&TestUser]) -> String {
    let id = id_of(&app.create(&admin.token, "/api/v1/portfolios", &json!({"name": "Acme Bank"})).await);
    for user in users {
        app.create(
            &admin.token,
            &format!("/api/v1/portfolios/{id}/grants"),
            &json!({"user_id": user.id}),
        )
        .await;
    }
    id
}

#[tokio::test]
async fn documents_follow_who_may_read_and_work_the_account_and_only_managers_delete() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let owner = app.user(Role::Agent).await;
    let colleague = app.user(Role::Agent).await;
    let outsider = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let acme = portfolio_granted_to(&app, &admin, &[&manager, &owner, &colleague]).await;
    // Viewers are granted a portfolio through their team.
    sqlx::query("UPDATE users SET team = 'Auditors' WHERE id = $1")
        .bind(viewer.id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{acme}/grants"),
        &json!({"team": "Auditors"}),
    )
    .await;
    let account = id_of(
        &app.account(&admin.token, json!({"portfolio_id": acme, "assigned_agent_id": owner.id}))
            .await,
    );
    let list = format!("/api/v1/accounts/{account}/documents");

    // The agent who works the account uploads and reads.
    let document = uploaded(&app, &owner.token, &account, "proof.pdf", pdf()).await;
    let id = id_of(&document);
    let metadata = format!("/api/v1/documents/{id}");
    for user in [&owner, &manager, &viewer, &admin] {
        assert_eq!(app.get(&list, &user.token).await.status(), StatusCode::OK);
        assert_eq!(app.get(&metadata, &user.token).await.status(), StatusCode::OK);
        assert_eq!(download(&app, &user.token, &id, None).await.status(), StatusCode::OK);
    }

    // An agent outside the portfolio learns nothing: 404, as for an account that is not.
    for response in [
        app.get(&list, &outsider.token).await,
        app.get(&metadata, &outsider.token).await,
        download(&app, &outsider.token, &id, None).await,
        upload(&app, &outsider.token, &account, "x.txt", b"x".to_vec()).await,
    ] {
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    // One granted the portfolio but not assigned the account reads its summary only.
    for response in [
        app.get(&list, &colleague.token).await,
        app.get(&metadata, &colleague.token).await,
        download(&app, &colleague.token, &id, None).await,
        upload(&app, &colleague.token, &account, "x.txt", b"x".to_vec()).await,
        upload(&app, &viewer.token, &account, "x.txt", b"x".to_vec()).await,
    ] {
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }

    // Agents do not delete; a manager outside the portfolio finds nothing to delete.
    for agent in [&owner, &outsider] {
        assert_problem(app.delete(&metadata, &agent.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let stranger = app.user(Role::Manager).await;
    assert_problem(app.delete(&metadata, &stranger.token).await, StatusCode::NOT_FOUND, "not_found").await;

    // A manager's delete is soft: the row and the bytes stay, the API no longer shows it.
    let (status, deleted) = status_json(app.delete(&metadata, &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted_by"], json!(manager.id));
    assert!(deleted["deleted_at"].is_string());
    assert_problem(app.get(&metadata, &manager.token).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(download(&app, &manager.token, &id, None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.delete(&metadata, &manager.token).await, StatusCode::NOT_FOUND, "not_found").await;
    let (_, page) = status_json(app.get(&list, &manager.token).await).await;
    assert_eq!((page["total"].clone(), page["data"].clone()), (json!(0), json!([])));
    let kept: Option<chrono::DateTime<chrono::Utc>> = app.sql_value("SELECT deleted_at FROM account_documents WHERE id = $1", &id).await;
    assert!(kept.is_some());
    assert_eq!(stored_files(&app).await.len(), 1, "the bytes of a deleted document are kept");
}

#[tokio::test]
async fn a_duplicate_is_reported_and_uploads_downloads_and_deletes_are_audited() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let other = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);

    let id = id_of(&uploaded(&app, &agent.token, &account, "proof.pdf", pdf()).await);
    let problem = assert_problem(
        upload(&app, &agent.token, &account, "proof again.pdf", pdf()).await,
        StatusCode::CONFLICT,
        "duplicate_document",
    )
    .await;
    assert_eq!(problem["duplicate_of"], id.as_str());
    assert_eq!(
        problem["detail"], "this account already holds this file, as “proof.pdf”",
        "the detail names the file a person knows, not its id"
    );
    assert_eq!(document_rows(&app).await, 1, "a duplicate is not kept twice");
    // The same bytes on another account are that account's own document.
    uploaded(&app, &agent.token, &other, "proof.pdf", pdf()).await;

    let response = download(&app, &agent.token, &id, Some("bytes=0-3")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(download(&app, &agent.token, &id, None).await.status(), StatusCode::OK);
    let (status, _) = status_json(app.delete(&format!("/api/v1/documents/{id}"), &manager.token).await).await;
    assert_eq!(status, StatusCode::OK);
    // Once deleted, the same content may be kept again.
    let again = uploaded(&app, &agent.token, &account, "proof.pdf", pdf()).await;
    assert_ne!(id_of(&again), id);

    let entries: Vec<(String, Option<uuid::Uuid>, Option<uuid::Uuid>, Value)> =
        sqlx::query_as("SELECT action, actor, account_id, details FROM audit_log WHERE entity = 'document' AND entity_id = $1 ORDER BY id")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let account_id = Some(uuid::Uuid::parse_str(&account).unwrap());
    let actions: Vec<(&str, Option<uuid::Uuid>, Option<uuid::Uuid>)> = entries
        .iter()
        .map(|(action, actor, on, _)| (action.as_str(), *actor, *on))
        .collect();
    assert_eq!(
        actions,
        [
            ("document.create", Some(agent.id), account_id),
            ("document.download", Some(agent.id), account_id),
            ("document.download", Some(agent.id), account_id),
            ("document.update", Some(manager.id), account_id),
        ]
    );
    assert_eq!(entries[0].3["row"]["sha256"], sha256_hex(&pdf()));
    assert_eq!(entries[0].3["row"]["name"], "proof.pdf");
    assert_eq!(entries[1].3["range"], json!({"first": 0, "last": 3}));
    assert_eq!(entries[2].3.get("range"), None);
    assert_eq!(entries[3].3["changes"]["deleted_by"]["after"], json!(manager.id));

    // The audit routes find them by entity and in the account's history.
    let (status, page) = status_json(
        app.get(&format!("/api/v1/audit?entity=document&entity_id={id}"), &admin.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 4, "{page}");
}
