//! Document processing over HTTP against the real database, the filesystem store and
//! the real binary as the reader (`arrears extract-document`, in a child process):
//! files written by programs no one here wrote (a PDF printed by Chromium, a Word
//! document by python-docx, a JPEG and a TIFF by Pillow; `tests/fixtures/documents`)
//! get their page count, thumbnail and text; their words find the account, for those
//! who read its documents only; kinds and names are facets; a file the reader refuses,
//! or crafted to cross its limits, is `failed` with the reason and the server goes on.

#[path = "../support/pdf_bombs.rs"]
mod pdf_bombs;

use std::path::Path;

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::documents::uploaded;
use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with, status_json};

/// The memory test's kind of crafted file, as this module names them.
mod bombs {
    pub struct Bomb {
        pub name: &'static str,
        pub bytes: Vec<u8>,
        pub expect: &'static str,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents").join(name)).unwrap()
}

/// The document once processing settled it (processed or failed).
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + crate::helpers::PATIENCE;
    loop {
        let (status, body) = status_json(app.get(&format!("/api/v1/documents/{id}"), token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["processing"]["status"] != "pending" {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "document {id} still pending: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The account numbers a search as `token` finds.
async fn found(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (status, body) = status_json(app.get(&format!("/api/v1/accounts?{query}"), token).await).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let mut numbers: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    numbers
}

/// Waits until a search as `token` finds exactly `expected`, as long as the tests wait
/// for any background work (a file's text is extracted by a child process, then indexed).
async fn finds(app: &TestApp, token: &str, query: &str, expected: &[&str]) {
    let mut last = Vec::new();
    let waited = tokio::time::timeout(crate::helpers::PATIENCE, async {
        loop {
            last = found(app, token, query).await;
            if last == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{query}: found {last:?}, expected {expected:?}");
}

#[tokio::test]
async fn files_written_by_real_programs_get_pages_thumbnails_and_searchable_text() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, serde_json::json!({"account_number": "A-1001"})).await;
    let id = account["id"].as_str().unwrap();

    let pdf = uploaded(&app, &manager.token, id, "dispute-letter.pdf", fixture("dispute-letter.pdf")).await;
    let pdf = settled(&app, &manager.token, pdf["id"].as_str().unwrap()).await;
    assert_eq!(pdf["processing"]["status"], "processed", "{pdf}");
    assert_eq!(pdf["processing"]["page_count"], 3, "Chromium printed three pages: {pdf}");
    assert_eq!(pdf["processing"]["has_thumbnail"], false);
    assert!(pdf["processing"]["text_chars"].as_i64().unwrap() > 100, "{pdf}");
    assert_eq!(pdf["processing"]["error"], Value::Null);

    let docx = uploaded(&app, &manager.token, id, "payment-plan.docx", fixture("payment-plan.docx")).await;
    let docx = settled(&app, &manager.token, docx["id"].as_str().unwrap()).await;
    assert_eq!(docx["processing"]["status"], "processed", "{docx}");
    assert_eq!(docx["processing"]["page_count"], Value::Null);
    assert!(docx["processing"]["text_chars"].as_i64().unwrap() > 50, "{docx}");

    for (name, side) in [("receipt-photo.jpg", (256, 192)), ("scan.tiff", (256, 192))] {
        let image = uploaded(&app, &manager.token, id, name, fixture(name)).await;
        let image_id = image["id"].as_str().unwrap();
        let image = settled(&app, &manager.token, image_id).await;
        assert_eq!(image["processing"]["status"], "processed", "{image}");
        assert_eq!(image["processing"]["has_thumbnail"], true, "{image}");
        assert_eq!(image["processing"]["text_chars"], 0);
        let response = app.get(&format!("/api/v1/documents/{image_id}/thumbnail"), &manager.token).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "a debtor's document is kept in no browser cache of a shared workstation"
        );
        let png = response.bytes().await.unwrap();
        let thumbnail = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!(
            (thumbnail.width(), thumbnail.height()),
            side,
            "{name}: the aspect is kept within 256 px"
        );
        // Seeing the picture is a read of the document, in the audit trail, as a view
        // (the account's history does not show a download nobody asked for).
        let seen: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM audit_log WHERE entity_id = $1::text AND action LIKE 'document.%' AND action <> 'document.create'",
        )
        .bind(image_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        assert_eq!(seen, ["document.view"], "{name}");
    }
    let no_thumbnail = app
        .get(
            &format!("/api/v1/documents/{}/thumbnail", pdf["id"].as_str().unwrap()),
            &manager.token,
        )
        .await;
    assert_problem(no_thumbnail, StatusCode::NOT_FOUND, "not_found").await;

    // The words of each document find the account: a word in the PDF's second page, a
    // prefix of one in the Word document, two words from different pages.
    let other = app.account(&manager.token, serde_json::json!({"account_number": "B-2002"})).await;
    let other_id = other["id"].as_str().unwrap();
    uploaded(
        &app,
        &manager.token,
        other_id,
        "note.txt",
        b"Called about the garden fence".to_vec(),
    )
    .await;
    finds(&app, &manager.token, "q=marmalade", &["A-1001"]).await;
    finds(&app, &manager.token, "q=pomegran", &["A-1001"]).await;
    finds(&app, &manager.token, "q=quartermaine%20oakridge", &["A-1001"]).await;
    finds(&app, &manager.token, "q=garden", &["B-2002"]).await;
    finds(&app, &manager.token, "q=nowhere-in-any-file", &[]).await;

    // Kinds and names are facets, and a kind is a filter.
    let (status, body) = status_json(app.get("/api/v1/accounts?facets=document_kind,document_name", &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let count = |facet: &str, value: &str| {
        body["facets"][facet]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["value"] == value)
            .map(|v| v["count"].as_i64().unwrap())
    };
    assert_eq!(count("document_kind", "pdf"), Some(1), "{body}");
    assert_eq!(count("document_kind", "text"), Some(1), "{body}");
    assert_eq!(count("document_kind", "jpeg"), Some(1), "{body}");
    assert_eq!(count("document_name", "payment-plan.docx"), Some(1), "{body}");
    finds(&app, &manager.token, "document_kind=text", &["B-2002"]).await;
    finds(&app, &manager.token, "document_kind=pdf,text", &["A-1001", "B-2002"]).await;
    app.assert_refused_parameter(&manager.token, "/api/v1/accounts?document_kind=exe", "document_kind")
        .await;

    // A deleted document's words no longer find its account.
    let (status, _) = status_json(
        app.delete(&format!("/api/v1/documents/{}", pdf["id"].as_str().unwrap()), &manager.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    finds(&app, &manager.token, "q=marmalade", &[]).await;
    finds(&app, &manager.token, "q=pomegranate", &["A-1001"]).await;
}

#[tokio::test]
async fn an_agent_finds_words_only_in_the_documents_of_their_own_accounts() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let (mine, theirs) = (app.user(Role::Agent).await, app.user(Role::Agent).await);
    let own = app
        .account(
            &manager.token,
            serde_json::json!({"account_number": "OWN-1", "assigned_agent_id": mine.id}),
        )
        .await;
    let colleague = app
        .account(
            &manager.token,
            serde_json::json!({"account_number": "THEIRS-1", "assigned_agent_id": theirs.id}),
        )
        .await;
    for (account, words) in [(&own, "bankruptcy notice zanzibar"), (&colleague, "bankruptcy notice zanzibar")] {
        let file = uploaded(
            &app,
            &manager.token,
            account["id"].as_str().unwrap(),
            "letter.txt",
            words.as_bytes().to_vec(),
        )
        .await;
        settled(&app, &manager.token, file["id"].as_str().unwrap()).await;
    }
    finds(&app, &manager.token, "q=zanzibar", &["OWN-1", "THEIRS-1"]).await;
    finds(&app, &mine.token, "q=zanzibar", &["OWN-1"]).await;
    finds(&app, &theirs.token, "q=zanzibar", &["THEIRS-1"]).await;
    // Their names still find both accounts, as before.
    finds(&app, &mine.token, "q=OWN-1", &["OWN-1"]).await;
    finds(&app, &mine.token, "q=THEIRS-1", &["THEIRS-1"]).await;
    // What documents accounts hold is not an agent's to count or filter by.
    for query in ["facets=document_kind", "facets=document_name", "document_kind=text"] {
        let response = app.get(&format!("/api/v1/accounts?{query}"), &mine.token).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
}

#[tokio::test]
async fn files_the_reader_refuses_or_that_cross_its_limits_fail_with_a_reason_and_the_server_goes_on() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, serde_json::json!({})).await;
    let id = account["id"].as_str().unwrap();
    let mut crafted = vec![
        bombs::Bomb {
            name: "a PDF header on nothing",
            bytes: b"%PDF-1.7\nnothing follows".to_vec(),
            expect: "unreadable: not a readable PDF",
        },
        bombs::Bomb {
            name: "a PNG declaring 100,000 pixels a side",
            bytes: {
                let mut png = hex::decode("89504e470d0a1a0a0000000d49484452").unwrap();
                png.extend_from_slice(&100_000u32.to_be_bytes());
                png.extend_from_slice(&100_000u32.to_be_bytes());
                png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
                png
            },
            expect: "unreadable: not a readable image",
        },
    ];
    // The memory test's PDFs, each read by the server's own child process.
    crafted.extend(pdf_bombs::documents());
    let mut ids = Vec::new();
    for bomb in &crafted {
        let file = uploaded(&app, &manager.token, id, &format!("{}.bin", ids.len()), bomb.bytes.clone()).await;
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    for (bomb, file) in crafted.iter().zip(&ids) {
        let file = settled(&app, &manager.token, file).await;
        let processing = &file["processing"];
        match (bomb.expect.strip_prefix("unreadable: "), bomb.expect.strip_prefix("pages:")) {
            (Some(reason), _) => {
                assert_eq!(processing["status"], "failed", "{}: {file}", bomb.name);
                assert!(processing["error"].as_str().unwrap().contains(reason), "{}: {file}", bomb.name);
            }
            (None, Some(pages)) => {
                assert_eq!(processing["status"], "processed", "{}: {file}", bomb.name);
                let pages: i64 = pages.split(' ').next().unwrap().parse().unwrap();
                assert_eq!(processing["page_count"], pages, "{}: {file}", bomb.name);
            }
            (None, None) => {
                assert_eq!(bomb.expect, "limit");
                assert_eq!(processing["status"], "failed", "{}: {file}", bomb.name);
                let error = processing["error"].as_str().unwrap();
                assert!(error.contains("memory or stack limit"), "{}: {error}", bomb.name);
            }
        }
        let tries: i32 = app
            .sql_value(
                "SELECT processing_attempts FROM account_documents WHERE id = $1",
                file["id"].as_str().unwrap(),
            )
            .await;
        assert_eq!(tries, 1, "{}: a file is read once, whatever it did to the reader", bomb.name);
    }
    // The server is still answering, and the next file is read.
    let letter = uploaded(&app, &manager.token, id, "page.pdf", pdf_bombs::text_page("Settlement accepted")).await;
    let letter = settled(&app, &manager.token, letter["id"].as_str().unwrap()).await;
    assert_eq!(letter["processing"]["status"], "processed", "{letter}");
    assert_eq!(letter["processing"]["page_count"], 1);
    finds(
        &app,
        &manager.token,
        "q=settlement%20accepted",
        &[account["account_number"].as_str().unwrap()],
    )
    .await;
}

#[tokio::test]
async fn a_try_that_fails_for_another_cause_than_the_file_is_tried_again_then_failed_after_three() {
    // A reader that cannot be started: the program, not the file, is at fault.
    let app = spawn_app_with(|s| s.document_extractor = Some("/nonexistent/arrears-reader".into())).await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, serde_json::json!({})).await;
    let file = uploaded(
        &app,
        &manager.token,
        account["id"].as_str().unwrap(),
        "note.txt",
        b"Call back on Monday".to_vec(),
    )
    .await;
    let id = file["id"].as_str().unwrap();
    for attempt in 1..=3 {
        let tried = || async {
            let tries: i32 = app
                .sql_value("SELECT processing_attempts FROM account_documents WHERE id = $1", id)
                .await;
            let error: Option<String> = app
                .sql_value("SELECT processing_error FROM account_documents WHERE id = $1", id)
                .await;
            tries == attempt && error.is_some()
        };
        crate::helpers::eventually(&format!("try {attempt} is recorded"), tried).await;
        let (status, body) = status_json(app.get(&format!("/api/v1/documents/{id}"), &manager.token).await).await;
        assert_eq!(status, StatusCode::OK);
        let error = body["processing"]["error"].as_str().unwrap();
        assert!(error.contains("could not be started"), "{error}");
        if attempt < 3 {
            assert_eq!(body["processing"]["status"], "pending", "try {attempt} of 3: {body}");
            let wait: f64 = app
                .sql_value(
                    "SELECT extract(epoch FROM process_after - now())::float8 FROM account_documents WHERE id = $1",
                    id,
                )
                .await;
            assert!((50.0..=60.0 * f64::from(attempt)).contains(&wait), "try {attempt} waits {wait} s");
            // The wait is over. The error goes too, so that the next one seen is the next
            // try's: a claimed try is counted before it runs, with this try's error still
            // there, so the count alone would be seen while the try is under way.
            sqlx::query("UPDATE account_documents SET process_after = now(), processing_error = NULL WHERE id = $1::uuid")
                .bind(id)
                .execute(&app.pool)
                .await
                .unwrap();
        } else {
            assert_eq!(body["processing"]["status"], "failed", "after three tries: {body}");
        }
    }
}

/// What the reader's answer is recorded with, and what a manager's delete does in one
/// transaction (the account locked, then the document marked), at the same moment: the
/// recording takes the account first too, so neither waits on the other's row (the
/// other order deadlocked, PostgreSQL aborted the recording, and the document waited
/// for the claim's five-minute lease).
#[tokio::test]
async fn a_document_deleted_while_its_answer_is_recorded_is_recorded_without_a_deadlock() {
    let app = spawn_app_with(|s| s.document_extractor = Some(std::path::PathBuf::new())).await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, serde_json::json!({})).await;
    let file = uploaded(&app, &manager.token, account["id"].as_str().unwrap(), "note.txt", b"Paid".to_vec()).await;
    let id: uuid::Uuid = file["id"].as_str().unwrap().parse().unwrap();
    let account_id: uuid::Uuid = account["id"].as_str().unwrap().parse().unwrap();

    let mut delete = app.pool.begin().await.unwrap();
    arrears::store::accounts::lock(&mut delete, account_id).await.unwrap().unwrap();
    let recording = tokio::spawn({
        let pool = app.pool.clone();
        async move {
            let processed = arrears::store::attachments::Processed {
                page_count: None,
                text: "paid",
                thumbnail: None,
            };
            arrears::store::attachments::record_processed(&pool, id, &processed).await
        }
    });
    // The recording waits on a lock (the account's, or on the old order the document's
    // row is its own and the account's is waited on).
    crate::helpers::eventually("the recording waits on a lock", || async {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        waiting == 1
    })
    .await;
    let deleted = arrears::store::attachments::soft_delete(&mut delete, id, manager.id).await;
    assert!(deleted.as_ref().is_ok_and(Option::is_some), "the delete: {deleted:?}");
    delete.commit().await.unwrap();
    let recorded = recording.await.unwrap();
    assert!(matches!(recorded, Ok(true)), "the recording: {recorded:?}");
    let (processing, deleted): (String, bool) =
        sqlx::query_as("SELECT processing, deleted_at IS NOT NULL FROM account_documents WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((processing.as_str(), deleted), ("processed", true));
}

/// Suspicion checked (issue 75): one process reads one document at a time, so a user who
/// uploads many files that each take the reader's whole CPU budget held everyone's
/// documents back behind all of theirs. Uploaders take turns: another user's document
/// is read after at most one of theirs.
#[tokio::test]
async fn uploaders_take_turns_so_many_slow_files_hold_anothers_back_by_one_at_most() {
    // No reader runs: the test takes the claims itself, in the order a reader would.
    let app = spawn_app_with(|s| s.document_extractor = Some(std::path::PathBuf::new())).await;
    let manager = app.user(Role::Manager).await;
    let flooder = app.user(Role::Agent).await;
    let theirs = app
        .account(&manager.token, serde_json::json!({"assigned_agent_id": flooder.id}))
        .await;
    let theirs = theirs["id"].as_str().unwrap();
    let mut flood = Vec::new();
    for n in 0..6 {
        let file = uploaded(
            &app,
            &flooder.token,
            theirs,
            &format!("slow-{n}.txt"),
            format!("slow {n}").into_bytes(),
        )
        .await;
        flood.push(file["id"].as_str().unwrap().to_owned());
    }
    let account = app.account(&manager.token, serde_json::json!({})).await;
    let other = uploaded(&app, &manager.token, account["id"].as_str().unwrap(), "proof.txt", b"Paid".to_vec()).await;
    let mut claimed = Vec::new();
    while let Some(pending) = arrears::store::attachments::claim_pending(&app.pool).await.unwrap() {
        claimed.push(pending.id.to_string());
    }
    assert_eq!(claimed.len(), 7, "{claimed:?}");
    assert_eq!(claimed[0], flood[0], "the longest waiting first");
    assert_eq!(
        claimed[1],
        other["id"].as_str().unwrap(),
        "then another uploader's, before the flood's second"
    );
    assert_eq!(claimed[2..], flood[1..], "then the rest in the order they came");
}
