//! Imports: every format, header aliases, row validation, modes, the error file, refused
//! files, resumption after a crash, and the export round trip.

use std::collections::HashMap;
use std::io::Write;

use arrears::domain::role::Role;
use arrears::import::{self, Row};
use arrears::jobs::import as runner;
use arrears::service::imports::{self as submission, ImportParams, Mode};
use arrears::store::jobs;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, assert_problem, eventually, fresh_pool, spawn_app, spawn_app_with, status_json};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/imports/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub(crate) async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    for (key, value) in fields {
        form = form.text((*key).to_owned(), (*value).to_owned());
    }
    app.request(reqwest::Method::POST, "/api/v1/imports", Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads and waits until the job ends; returns the finished import.
async fn import(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> Value {
    let (status, body) = status_json(upload(app, token, name, bytes, fields).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    finished(app, token, body["id"].as_str().unwrap()).await
}

pub(crate) async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + crate::helpers::PATIENCE;
    loop {
        let job: Value = app.get(&format!("/api/v1/imports/{id}"), token).await.json().await.unwrap();
        if !job["finished_at"].is_null() {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "the import did not end: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Accounts by number, read from SQL.
async fn accounts(pool: &PgPool) -> HashMap<String, Value> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT account_number, jsonb_build_object('debtor_name', debtor_name, 'email', email, 'phone', phone,
             'original_balance', trim_scale(original_balance)::text, 'current_balance', trim_scale(current_balance)::text, 'currency', currency,
             'due_date', due_date, 'status', status, 'tags', tags, 'timezone', timezone, 'do_not_call', do_not_call,
             'address_city', address_city, 'next_action_at', next_action_at, 'assigned_agent_id', assigned_agent_id)
         FROM accounts",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn every_format_yields_the_same_accounts() {
    for name in ["accounts.xlsx", "accounts.xls", "accounts.xlsb", "accounts.ods", "accounts.csv"] {
        let app = spawn_app().await;
        let manager = app.user(Role::Manager).await;
        let job = import(&app, &manager.token, name, fixture(name), &[]).await;
        assert_eq!(job["status"], "succeeded", "{name}: {job}");
        assert_eq!(
            (job["result"]["created"].as_i64(), job["failed"].as_i64()),
            (Some(4), Some(0)),
            "{name}"
        );
        assert_eq!(job["unknown_columns"], json!(["Notes"]), "{name}");
        assert_eq!(job["format"], name.rsplit('.').next().unwrap(), "{name}");
        let fields: Vec<Value> = job["columns"].as_array().unwrap().iter().map(|c| c["field"].clone()).collect();
        let expected: Vec<Value> = [
            "account_number",
            "debtor_name",
            "phone",
            "email",
            "current_balance",
            "currency",
            "due_date",
            "status",
            "tags",
        ]
        .iter()
        .map(|f| json!(f))
        .chain([Value::Null])
        .collect();
        assert_eq!(fields, expected, "{name}");
        let all = accounts(&app.pool).await;
        let ada = &all["IMP-001"];
        assert_eq!(ada["debtor_name"], "Ada Lovelace", "{name}");
        assert_eq!(ada["phone"], "+14155550123", "{name}: a phone typed as a number");
        assert_eq!(ada["original_balance"], "1250.5", "{name}: money is exact");
        assert_eq!(ada["current_balance"], "1250.5", "{name}");
        assert_eq!(ada["due_date"], "2026-03-01", "{name}: a date cell");
        assert_eq!(ada["status"], "delinquent", "{name}");
        assert_eq!(ada["tags"], json!(["hardship", "vip"]), "{name}");
        assert_eq!(all["IMP-002"]["original_balance"], "99.99", "{name}");
        assert_eq!(all["IMP-002"]["phone"], "+12125550188", "{name}");
        let alan = &all["IMP-003"];
        assert_eq!(
            (&alan["status"], &alan["currency"]),
            (&json!("promise_to_pay"), &json!("GBP")),
            "{name}"
        );
        assert_eq!(alan["phone"], "+442079460018", "{name}");
        assert_eq!(alan["original_balance"], "310", "{name}");
        assert_eq!(all["IMP-004"]["debtor_name"], "José Álvarez", "{name}: text encoding");
        assert_eq!(all["IMP-004"]["due_date"], Value::Null, "{name}");
        let kinds: Vec<(String, i64)> = sqlx::query_as("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        assert!(kinds.contains(&("job.finished".to_owned(), 1)), "{name}: {kinds:?}");
        assert!(
            !kinds.iter().any(|(kind, _)| kind == "account.created"),
            "{name}: an import is announced by its job, not per row: {kinds:?}"
        );
        let search = format!("/api/v1/accounts?q={}", "lovelace");
        eventually("imported accounts are searchable", || {
            let request = app.get(&search, &manager.token);
            async move { request.await.json::<Value>().await.unwrap()["total"] == 1 }
        })
        .await;
    }
}

#[tokio::test]
async fn a_named_sheet_is_read_and_a_missing_one_is_refused() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let response = upload(&app, &manager.token, "a.xlsx", fixture("accounts.xlsx"), &[("sheet", "Nope")]).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("Debtors, Notes"),
        "{problem}"
    );
    let response = upload(&app, &manager.token, "a.xlsx", fixture("accounts.xlsx"), &[("sheet", "Notes")]).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("missing column"),
        "{problem}"
    );
    let job = import(&app, &manager.token, "a.xlsx", fixture("accounts.xlsx"), &[("sheet", "debtors")]).await;
    assert_eq!(job["sheet"], "Debtors");
    assert_eq!(job["succeeded"], 4);
}

#[tokio::test]
async fn every_row_error_is_reported_with_its_row_and_column() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    app.account(&manager.token, json!({"account_number": "TAKEN-1"})).await;
    let csv = format!(
        "Account,Debtor,Amount Due,Currency,Email,Phone,Due Date,Status,DNC,Agent,Timezone,Country,Next Action\n\
         OK-1,Fine Row,10.00,USD,,,,,,,,,\n\
         OK-2,Also Fine,5,JPY,,,,,no,{agent},Europe/Paris,FR,2026-06-01T09:00:00Z\n\
         E-1,,10.00,USD,,,,,,,,,\n\
         E-2,Bad Money,10.001,USD,,,,,,,,,\n\
         E-3,Bad Currency,10,XXQ,,,,,,,,,\n\
         E-4,Bad Email,10,USD,not-an-email,,,,,,,,\n\
         E-5,Bad Phone,10,USD,,12,,,,,,,\n\
         E-6,Bad Date,10,USD,,,31/12/2026,,,,,,\n\
         E-7,Bad Status,10,USD,,,,sleeping,,,,,\n\
         E-8,Bad Flag,10,USD,,,,,maybe,,,,\n\
         E-9,Bad Agent,10,USD,,,,,,nobody@example.com,,,\n\
         E-10,Viewer Agent,10,USD,,,,,,{viewer},,,\n\
         E-11,Bad Zone,10,USD,,,,,,,Mars/Olympus,,\n\
         E-12,Bad Country,10,USD,,,,,,,,ZZ,\n\
         E-13,Bad Time,10,USD,,,,,,,,,tomorrow\n\
         not a number!,Bad Number,10,USD,,,,,,,,,\n\
         TAKEN-1,Existing,10,USD,,,,,,,,,\n\
         OK-1,Repeated,10,USD,,,,,,,,,\n\
         E-14,Amount Words,ten,USD,,,,,,,,,\n",
        agent = manager.email.to_uppercase(),
        viewer = viewer.id,
    );
    let job = import(&app, &manager.token, "rows.csv", csv.into_bytes(), &[]).await;
    assert_eq!(job["status"], "partially_failed", "{job}");
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(2), Some(17)));
    let body: Value = app
        .get(
            &format!("/api/v1/imports/{}/errors?page_size=100", job["id"].as_str().unwrap()),
            &manager.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let by_row: HashMap<i64, (String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let e = &r["errors"][0];
            (
                r["row"].as_i64().unwrap(),
                (e["column"].as_str().unwrap().to_owned(), e["message"].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    let expect = [
        (4, "Debtor", "must not be empty"),
        (5, "Amount Due", "decimal"),
        (6, "Currency", ""),
        (7, "Email", "not a valid email"),
        (8, "Phone", "phone"),
        (9, "Due Date", "YYYY-MM-DD"),
        (10, "Status", "not a status"),
        (11, "DNC", "yes/no"),
        (12, "Agent", "no such user"),
        (13, "Agent", "does not work accounts"),
        (14, "Timezone", "IANA"),
        (15, "Country", ""),
        (16, "Next Action", "RFC 3339"),
        (17, "Account", "letters, digits"),
        (18, "Account", "already exists"),
        (19, "Account", "also on row 2"),
        (20, "Amount Due", ""),
    ];
    for (row, column, message) in expect {
        let (got_column, got_message) = by_row.get(&row).unwrap_or_else(|| panic!("row {row} not reported: {body}"));
        assert_eq!(got_column, column, "row {row}: {got_message}");
        assert!(got_message.contains(message), "row {row}: {got_message}");
    }
    let id = job["id"].as_str().unwrap();
    let via_jobs: Value = app
        .get(&format!("/api/v1/jobs/{id}/failures?page_size=100"), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(via_jobs["data"], body["data"], "the job's failures are the import's errors");
    let first: Value = app
        .get(&format!("/api/v1/imports/{id}/errors?page_size=10"), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["total"], body["total"]);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second: Value = app
        .get(&format!("/api/v1/imports/{id}/errors?page_size=10&cursor={cursor}"), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    let paged: Vec<&Value> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .collect();
    assert_eq!(paged, body["data"].as_array().unwrap().iter().collect::<Vec<_>>());
    assert!(second["next_cursor"].is_null(), "the last page says so");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM import_rows")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, 17, "applied rows' cells are dropped once the import ends; failed ones stay");
    let all = accounts(&app.pool).await;
    assert_eq!(all.len(), 3, "the existing account and the two valid rows");
    assert_eq!(all["OK-2"]["assigned_agent_id"], json!(manager.id), "an agent named by email");
    assert_eq!(all["OK-2"]["original_balance"], "5");
    assert_eq!(all["OK-2"]["timezone"], "Europe/Paris");
}

#[tokio::test]
async fn a_dry_run_reports_without_writing() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    app.account(&manager.token, json!({"account_number": "IMP-001", "debtor_name": "Before"}))
        .await;
    let before = accounts(&app.pool).await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind LIKE 'account.%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let csv = "account_number,debtor_name,current_balance,currency\nIMP-001,After,,USD\nNEW-1,New,5,USD\nNEW-2,,5,USD\n";
    let job = import(&app, &manager.token, "d.csv", csv.into(), &[("mode", "dry_run")]).await;
    assert_eq!(job["mode"], "dry_run");
    assert_eq!(job["result"]["dry_run"], true);
    let result = &job["result"];
    assert_eq!(
        (&result["would_create"], &result["would_update"], &result["failed"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(
        (&result["created"], &result["updated"]),
        (&json!(0), &json!(0)),
        "a dry run says what it would do, not that it did it"
    );
    assert_eq!(accounts(&app.pool).await, before, "nothing changed");
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind LIKE 'account.%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events_after, events_before, "no events for rows that were not written");
    // Its owner is told what it would do, in words, not "import job partially failed".
    let notes: Value = app.get("/api/v1/notifications", &manager.token).await.json().await.unwrap();
    let titles: Vec<&str> = notes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"Import dry run: 2 of 3 rows would be imported, 1 would be rejected"),
        "{titles:?}"
    );
}

#[tokio::test]
async fn upsert_updates_existing_accounts_and_creates_new_ones() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    app.account(
        &manager.token,
        json!({"account_number": "IMP-001", "debtor_name": "Ada", "phone": "+1 415 555 0123", "tags": ["old"]}),
    )
    .await;
    let csv = "Account No,Customer Name,Phone,Amount Due,Currency,Tags,City\n\
               imp-001,Ada Lovelace,,,USD,new;vip,London\n\
               IMP-002,Grace Hopper,,12,USD,,\n";
    let job = import(&app, &manager.token, "u.csv", csv.into(), &[("mode", "upsert")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((&job["result"]["created"], &job["result"]["updated"]), (&json!(1), &json!(1)));
    let all = accounts(&app.pool).await;
    let ada = &all["IMP-001"];
    assert_eq!(ada["debtor_name"], "Ada Lovelace");
    assert_eq!(ada["phone"], "+14155550123", "an empty cell leaves the field as it was");
    assert_eq!(ada["current_balance"], "1250", "the balance follows payments, not files");
    assert_eq!(ada["original_balance"], "1250", "a column the file lacks stays");
    assert_eq!(ada["tags"], json!(["new", "vip"]));
    assert_eq!(ada["address_city"], "London");
    assert_eq!(all["IMP-002"]["debtor_name"], "Grace Hopper");
    let agent = app.user(Role::Agent).await;
    let response = upload(&app, &agent.token, "u.csv", b"a,b\n".to_vec(), &[("mode", "upsert")]).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn the_fixed_error_file_imports_cleanly() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let csv = "Account,Debtor,Amount Due,Currency,Email\nFIX-1,Good,10,USD,a@example.com\nFIX-2,Bad Email,20,USD,nope\nFIX-3,,30,USD,\n";
    let job = import(&app, &manager.token, "f.csv", csv.into(), &[]).await;
    assert_eq!(job["failed"], 2);
    let id = job["id"].as_str().unwrap();
    let response = app.get(&format!("/api/v1/imports/{id}/errors.xlsx"), &manager.token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let errors = import::read(&response.bytes().await.unwrap(), None, 100).unwrap();
    assert_eq!(
        errors.headers,
        ["Account", "Debtor", "Amount Due", "Currency", "Email", "import_errors"]
    );
    assert_eq!(errors.rows.len(), 2);
    assert_eq!(errors.rows[0].cells[..5], ["FIX-2", "Bad Email", "20", "USD", "nope"]);
    assert!(
        errors.rows[0].cells[5].starts_with("Email: not a valid email"),
        "{:?}",
        errors.rows[0]
    );
    assert!(
        errors.rows[1].cells[5].starts_with("Debtor: must not be empty"),
        "{:?}",
        errors.rows[1]
    );
    // The operator fixes the two cells and uploads the same workbook again.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (c, header) in errors.headers.iter().enumerate() {
        sheet.write_string(0, c as u16, header).unwrap();
    }
    for (r, row) in errors.rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let fixed = match cell.as_str() {
                "nope" => "bad@example.com",
                "" if c == 1 => "Named Now",
                other => other,
            };
            sheet.write_string(r as u32 + 1, c as u16, fixed).unwrap();
        }
    }
    let fixed = workbook.save_to_buffer().unwrap();
    let again = import(&app, &manager.token, "fixed.xlsx", fixed, &[]).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["succeeded"], 2);
    assert_eq!(again["unknown_columns"], json!([]), "the error column is not reported as unknown");
    assert_eq!(accounts(&app.pool).await.len(), 3);
}

fn bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("xl/workbook.xml", options).unwrap();
    zip.write_all(b"<workbook/>").unwrap();
    // A media part: an XML part this long would be refused sooner, for its longest run.
    zip.start_file("xl/media/image1.png", options).unwrap();
    let block = vec![b' '; 1024 * 1024];
    for _ in 0..(import::MAX_INFLATED_BYTES / block.len() as u64 + 1) {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn not_a_workbook_zip() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    zip.start_file("word/document.xml", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"<document/>").unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

#[tokio::test]
async fn files_that_are_not_importable_are_refused_with_a_clear_problem() {
    let app = spawn_app_with(|s| {
        s.import_max_bytes = 512 * 1024;
        s.import_max_rows = 3;
    })
    .await;
    let manager = app.user(Role::Manager).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file",
        ),
        (
            "letter.docx",
            not_a_workbook_zip(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file",
        ),
        (
            "locked.xlsx",
            fixture("password.xlsx"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_protected",
        ),
        (
            "cut.xlsx",
            fixture("accounts.xlsx")[..3000].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_file",
        ),
        (
            "compact.xlsb",
            fixture("compact.xlsb"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_file",
        ),
        (
            "sprawling.xls",
            fixture("sprawling.xls"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_file",
        ),
        (
            "damaged.xls",
            fixture("damaged-fat.xls"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_file",
        ),
        (
            "malformed.xls",
            fixture("malformed.xls"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_file",
        ),
        ("bomb.xlsx", bomb(), StatusCode::PAYLOAD_TOO_LARGE, "inflated_too_large"),
        (
            "huge.csv",
            vec![b'a'; 600 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "long.csv",
            b"debtor_name,currency,original_balance\na,USD,1\nb,USD,1\nc,USD,1\nd,USD,1\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_rows",
        ),
        ("empty.csv", Vec::new(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            "missing.csv",
            b"debtor_name,colour\nA,red\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (name, bytes, status, code) in cases {
        let response = upload(&app, &manager.token, name, bytes, &[]).await;
        let problem = assert_problem(response, status, code).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.is_empty(), "{name}");
        if code == "payload_too_large" {
            // The limit as set (512 KiB), not rounded down to "0 MiB".
            assert!(detail.contains("524288 bytes"), "{detail}");
        }
    }
    let response = upload(&app, &manager.token, "a.csv", fixture("accounts.csv"), &[("mode", "merge")]).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let response = app
        .request(reqwest::Method::POST, "/api/v1/imports", Some(&manager.token))
        .body("debtor_name\nA\n")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let long_mode = "m".repeat(100);
    let response = upload(
        &app,
        &manager.token,
        "a.csv",
        fixture("accounts.csv"),
        &[("mode", long_mode.as_str())],
    )
    .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "mode");
    let form = Form::new().text("mode", "create");
    let response = app
        .request(reqwest::Method::POST, "/api/v1/imports", Some(&manager.token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let agent = app.user(Role::Agent).await;
    let response = upload(&app, &agent.token, "a.csv", fixture("accounts.csv"), &[]).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0, "no refused file left a job behind");
}

#[tokio::test]
async fn a_resubmission_with_the_same_key_returns_the_first_job() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let send_with = |key: String, bytes: Vec<u8>| {
        let form = Form::new().part("file", Part::bytes(bytes).file_name("a.csv"));
        app.request(reqwest::Method::POST, "/api/v1/imports", Some(&manager.token))
            .header("idempotency-key", key)
            .multipart(form)
            .send()
    };
    let send = |bytes: Vec<u8>| send_with("upload-1".to_owned(), bytes);
    let (first, second) = (
        send(fixture("accounts.csv")).await.unwrap(),
        send(fixture("accounts.csv")).await.unwrap(),
    );
    let replayed = |r: &reqwest::Response| r.headers().get("idempotency-replayed").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        (replayed(&first), replayed(&second)),
        (None, Some("true".to_owned())),
        "a retry says it is one, as payments do"
    );
    let ((first_status, first), (second_status, second)) = (status_json(first).await, status_json(second).await);
    assert_eq!((first_status, second_status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    for bad in ["has space".to_owned(), "k".repeat(256)] {
        let response = send_with(bad, fixture("accounts.csv")).await.unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    }
    assert_eq!(first["id"], second["id"]);
    let other = send(b"debtor_name,currency,original_balance\nX,USD,1\n".to_vec()).await.unwrap();
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    finished(&app, &manager.token, first["id"].as_str().unwrap()).await;
    assert_eq!(accounts(&app.pool).await.len(), 4);
}

#[tokio::test]
async fn the_template_lists_every_column() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let response = app.get("/api/v1/imports/template.xlsx", &manager.token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let template = import::read(&response.bytes().await.unwrap(), None, 10).unwrap();
    assert_eq!(template.name, "Accounts");
    let names: Vec<&str> = arrears::import::columns::Column::all().map(|c| c.1).collect();
    assert_eq!(template.headers, names);
    assert!(template.rows.is_empty());
    let agent = app.user(Role::Agent).await;
    let response = app.get("/api/v1/imports/template.xlsx", &agent.token).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}

/// Rows for the crash test: numbered accounts in four columns.
fn generated_rows(n: usize) -> (Vec<String>, Vec<Row>) {
    let headers = ["account_number", "debtor_name", "current_balance", "currency"]
        .map(String::from)
        .to_vec();
    let rows = (1..=n)
        .map(|i| Row {
            line: i as u32 + 1,
            cells: vec![format!("GEN-{i:06}"), format!("Debtor {i}"), format!("{i}.25"), "USD".into()],
        })
        .collect();
    (headers, rows)
}

/// An import queued by a manager who is then disabled (or demoted to a role that may
/// not create accounts) writes nothing: each chunk checks its submitter as they are now,
/// and fails its rows instead.
#[tokio::test]
async fn a_queued_import_runs_with_its_submitters_current_standing() {
    let pool = fresh_pool().await;
    for (email, change) in [
        ("disabled@example.com", (None, Some(true))),
        ("demoted@example.com", (Some(Role::Agent), None)),
    ] {
        let owner = arrears::store::users::insert(&pool, email, "Owner", Role::Manager, "x")
            .await
            .unwrap()
            .id;
        let (headers, rows) = generated_rows(3);
        let sheet = import::Sheet {
            format: import::Format::Csv,
            name: "csv".into(),
            headers: headers.clone(),
            rows,
        };
        let (mapping, duplicates) = submission::prepare(&sheet, Mode::Create, &arrears::domain::custom_field::Catalog::default()).unwrap();
        let params = ImportParams {
            mode: Mode::Create,
            actor: owner,
            region: "US".into(),
            locale: None,
            file_name: "gen.csv".into(),
            format: "csv".into(),
            sheet: "csv".into(),
            headers,
            mapping,
        };
        let mut tx = pool.begin().await.unwrap();
        let job = submission::stage(&mut tx, &params, &sheet.rows, &duplicates, arrears::domain::job::JobStatus::Queued)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let change = arrears::store::users::UserChange {
            role: change.0,
            disabled: change.1,
            ..Default::default()
        };
        arrears::store::users::update(&pool, owner, owner, &change).await.unwrap();
        assert_eq!(runner::run_chunk(&pool, job.id, &params).await.unwrap(), 3, "{email}");
        let written: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&pool).await.unwrap();
        assert_eq!(written, 0, "{email}: an import ran with the role its submitter no longer has");
    }
}

#[tokio::test]
async fn a_failed_chunk_is_retried_and_a_taken_over_import_resumes_without_duplicates() {
    let pool = fresh_pool().await;
    let owner = arrears::store::users::insert(&pool, "import-owner@example.com", "Owner", Role::Manager, "x")
        .await
        .unwrap()
        .id;
    let chunk = runner::CHUNK as usize;
    let total = chunk * 2 + 1500;
    let (headers, rows) = generated_rows(total);
    let sheet = import::Sheet {
        format: import::Format::Csv,
        name: "csv".into(),
        headers: headers.clone(),
        rows,
    };
    let (mapping, duplicates) = submission::prepare(&sheet, Mode::Create, &arrears::domain::custom_field::Catalog::default()).unwrap();
    let params = ImportParams {
        mode: Mode::Create,
        actor: owner,
        region: "US".into(),
        locale: None,
        file_name: "gen.csv".into(),
        format: "csv".into(),
        sheet: "csv".into(),
        headers,
        mapping,
    };
    let mut tx = pool.begin().await.unwrap();
    let job = submission::stage(&mut tx, &params, &sheet.rows, &duplicates, arrears::domain::job::JobStatus::Queued)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let claimed = jobs::claim(&pool).await.unwrap().expect("the queued import");
    assert_eq!(claimed.id, job.id);
    assert_eq!(runner::run_chunk(&pool, job.id, &params).await.unwrap(), chunk);
    // The process dies here. Nobody else may take the job while its heartbeat is fresh.
    assert!(jobs::claim(&pool).await.unwrap().is_none());
    crate::helpers::expire_heartbeat(&pool, job.id).await;
    // The next chunk's transaction fails once after writing its accounts (its outcomes
    // cannot be recorded): it must leave nothing behind and be retried.
    sqlx::raw_sql(
        "CREATE SEQUENCE fail_once;
         CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('fail_once') = 1 THEN RAISE EXCEPTION 'simulated failure mid-chunk'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_once BEFORE UPDATE ON import_progress FOR EACH STATEMENT EXECUTE FUNCTION fail_once();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let resumed = jobs::claim(&pool).await.unwrap().expect("a stale job is taken over");
    assert_eq!((resumed.id, resumed.processed), (job.id, chunk as i64));
    let (_stop, running) = tokio::sync::watch::channel(false);
    assert!(matches!(
        runner::run(&pool, &resumed, &running).await.unwrap(),
        arrears::jobs::Stop::Done
    ));
    let failures: i64 = sqlx::query_scalar("SELECT last_value FROM fail_once")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(failures >= 2, "the trigger fired, so a chunk failed and was retried");
    let done = jobs::get(&pool, job.id).await.unwrap().unwrap();
    assert_eq!((done.processed, done.succeeded, done.failed), (total as i64, total as i64, 0));
    let (count, distinct): (i64, i64) = sqlx::query_as("SELECT count(*), count(DISTINCT account_number) FROM accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((count, distinct), (total as i64, total as i64), "every row applied exactly once");
    let progress: (i32, i64) = sqlx::query_as("SELECT settled_through, created FROM import_progress WHERE job_id = $1")
        .bind(job.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(progress, (total as i32, total as i64));
}

#[tokio::test]
async fn an_exported_file_imports_back_to_the_same_accounts() {
    let source = spawn_app().await;
    let manager = source.user(Role::Manager).await;
    source
        .account(
            &manager.token,
            json!({"account_number": "RT-1", "debtor_name": "=HYPERLINK(\"http://evil\")", "tags": ["a", "b c"],
                   "address": {"city": "Lyon", "country": "FR"}, "timezone": "Europe/Paris", "do_not_call": true,
                   "next_action_at": "2026-07-01T08:30:00Z", "status": "delinquent"}),
        )
        .await;
    source
        .account(
            &manager.token,
            json!({"account_number": "RT-2", "debtor_name": "@Mention", "currency": "JPY", "original_balance": "1200"}),
        )
        .await;
    source
        .account(
            &manager.token,
            json!({"account_number": "RT-3", "debtor_name": "Plain", "phone": "+44 20 7946 0018", "due_date": null, "email": null}),
        )
        .await;
    eventually("the accounts are indexed", || {
        let request = source.get("/api/v1/accounts", &manager.token);
        async move { request.await.json::<Value>().await.unwrap()["total"] == 3 }
    })
    .await;
    let expected = accounts(&source.pool).await;
    for format in ["csv", "xlsx"] {
        let response = source
            .get(&format!("/api/v1/accounts/export?format={format}"), &manager.token)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let file = response.bytes().await.unwrap().to_vec();
        if format == "csv" {
            let text = String::from_utf8(file.clone()).unwrap();
            assert!(text.contains("'=HYPERLINK"), "formula neutralised in the export: {text}");
        }
        let target = spawn_app().await;
        let importer = target.user(Role::Manager).await;
        let job = import(&target, &importer.token, &format!("export.{format}"), file, &[]).await;
        assert_eq!(job["status"], "succeeded", "{format}: {job}");
        assert_eq!(job["unknown_columns"], json!([]), "{format}: computed columns are skipped");
        assert_eq!(accounts(&target.pool).await, expected, "{format}: the same accounts");
    }
}

#[tokio::test]
async fn the_cli_imports_a_file_and_writes_the_rejected_rows() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let file = app.settings.data_dir.join("cli.csv");
    std::fs::write(&file, "Customer Name,Balance,Currency\nCli One,10,USD\n,20,USD\n").unwrap();
    let errors = app.settings.data_dir.join("cli-errors.xlsx");
    arrears::cli::ops::import(
        app.settings.clone(),
        &file,
        (Mode::Create, None, None),
        &manager.email,
        Some(&errors),
    )
    .await
    .unwrap();
    let all = accounts(&app.pool).await;
    assert_eq!(all.len(), 1);
    assert!(all.values().any(|a| a["debtor_name"] == "Cli One"));
    let rejected = import::read(&std::fs::read(&errors).unwrap(), None, 10).unwrap();
    assert_eq!(rejected.rows.len(), 1);
    assert_eq!(rejected.rows[0].line, 2);
    assert!(rejected.rows[0].cells[3].contains("Customer Name: must not be empty"));
    let (status, job): (String, Option<Value>) = sqlx::query_as("SELECT status, result FROM jobs WHERE kind = 'import'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "partially_failed");
    assert_eq!(job.unwrap()["created"], 1);
    let refused = arrears::cli::ops::import(app.settings.clone(), &file, (Mode::Create, None, None), &agent.email, None).await;
    assert!(refused.unwrap_err().to_string().contains("may not import"));
}

#[tokio::test]
async fn cells_are_staged_and_applied_verbatim() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    // A name is one line (no tab): the tab, COPY's delimiter, goes in the address.
    let name = "Back\\slash \"Quoted\" \\N";
    let csv = format!(
        "account_number,debtor_name,current_balance,currency,address_line1\nVB-1,\"{}\",1,USD,\"Line\tone\nline two\"\nVB-1,Twice,1,USD,\n",
        name.replace('"', "\"\"")
    );
    let job = import(&app, &manager.token, "v.csv", csv.into_bytes(), &[]).await;
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(1), Some(1)), "{job}");
    let (debtor, line1): (String, String) = sqlx::query_as("SELECT debtor_name, address_line1 FROM accounts WHERE account_number = 'VB-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(debtor, name);
    assert_eq!(line1, "Line\tone\nline two");
    let errors: Value = app
        .get(&format!("/api/v1/imports/{}/errors", job["id"].as_str().unwrap()), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(errors["data"][0]["row"], 4, "the quoted field spans rows 2 and 3");
}

#[tokio::test]
async fn a_repeated_row_reports_every_error_it_has_at_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let csv = "Account,Debtor,Amount Due,Currency,Email\n\
               DUP-1,First,10.00,USD,\n\
               DUP-1,,ten,USD,not-an-email\n";
    let job = import(&app, &manager.token, "dup.csv", csv.into(), &[]).await;
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(1), Some(1)), "{job}");
    let body: Value = app
        .get(&format!("/api/v1/imports/{}/errors", job["id"].as_str().unwrap()), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    let errors: Vec<(&str, &str)> = body["data"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["column"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    let columns: Vec<&str> = errors.iter().map(|e| e.0).collect();
    assert_eq!(columns, ["Account", "Amount Due", "Debtor", "Email"], "{errors:?}");
    assert!(errors[0].1.contains("also on row 2"), "{errors:?}");
}

#[tokio::test]
async fn amounts_are_read_in_the_sheets_locale_and_ambiguous_ones_refused() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let csv =
        "Account,Debtor,Amount Due,Currency\nLOC-1,Grouped,\"1,200.00\",USD\nLOC-2,Two Ways,\"1,200\",USD\nLOC-3,Comma,\"12,50\",USD\n";
    let job = import(&app, &manager.token, "plain.csv", csv.into(), &[]).await;
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(1), Some(2)), "{job}");
    let errors: Value = app
        .get(&format!("/api/v1/imports/{}/errors", job["id"].as_str().unwrap()), &manager.token)
        .await
        .json()
        .await
        .unwrap();
    let messages: Vec<(i64, &str, &str)> = errors["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["errors"][0]["column"].as_str().unwrap(),
                r["errors"][0]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[0].0, messages[0].1), (3, "Amount Due"));
    assert!(messages[0].2.contains("reads two ways"), "{messages:?}");
    assert!(messages[1].2.contains("locale=de-DE"), "{messages:?}");
    assert_eq!(
        errors["data"][0]["errors"].as_array().unwrap().len(),
        1,
        "one error for the cell, not a second from the amount check: {errors}"
    );
    assert_eq!(accounts(&app.pool).await["LOC-1"]["original_balance"], "1200");

    let csv = "Account;Debtor;Amount Due;Currency\nDE-1;Grouped;1.200,00;EUR\nDE-2;Plain;12,5;EUR\nDE-3;Point;1200.50;EUR\n";
    let job = import(&app, &manager.token, "de.csv", csv.into(), &[("locale", "de-DE")]).await;
    assert_eq!(job["locale"], "de-DE");
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(2), Some(1)), "{job}");
    let all = accounts(&app.pool).await;
    assert_eq!(
        (all["DE-1"]["original_balance"].as_str(), all["DE-2"]["original_balance"].as_str()),
        (Some("1200"), Some("12.5"))
    );
    assert!(!all.contains_key("DE-3"), "a point under de-DE is refused, not guessed");

    let refused = upload(&app, &manager.token, "x.csv", "a\n".into(), &[("locale", "xx-YY")]).await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(crate::helpers::error_fields(&problem), ["locale"]);
}

#[tokio::test]
async fn typed_number_cells_need_no_locale() {
    use rust_xlsxwriter::Workbook;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, header) in ["Account", "Debtor", "Amount Due", "Currency"].iter().enumerate() {
        sheet.write_string(0, c as u16, *header).unwrap();
    }
    sheet.write_string(1, 0, "XL-1").unwrap();
    sheet.write_string(1, 1, "Typed").unwrap();
    sheet.write_number(1, 2, 1234.5).unwrap();
    sheet.write_string(1, 3, "EUR").unwrap();
    sheet.write_string(2, 0, "XL-2").unwrap();
    sheet.write_string(2, 1, "Text").unwrap();
    sheet.write_string(2, 2, "1.234,50").unwrap();
    sheet.write_string(2, 3, "EUR").unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let job = import(&app, &manager.token, "typed.xlsx", bytes, &[("locale", "de-DE")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let all = accounts(&app.pool).await;
    assert_eq!(all["XL-1"]["original_balance"], "1234.5", "a number cell is exact under any locale");
    assert_eq!(all["XL-2"]["original_balance"], "1234.5");
}
