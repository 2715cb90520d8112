//! Document retention and storage reports, over HTTP against the real database and
//! filesystem store: once `DOCUMENT_RETENTION_DAYS` have passed, the bytes of deleted
//! documents and of accounts closed or deleted are removed, their rows kept and marked;
//! the storage report says what the store holds in each state, to admins only; a file
//! no row names (a process stopped between keeping it and committing its row) is
//! removed once it is a day old.

use std::time::{Duration, SystemTime};

use arrears::domain::role::Role;
use arrears::jobs::document_retention::{Retention, Upkeep};
use clap::Parser as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::documents::{pdf, png, processing_settled, stored_files, uploaded};
use crate::helpers::{TestApp, assert_problem, id_of, spawn_app, status_json};

fn retention(app: &TestApp, days: u32) -> Retention {
    Retention {
        pool: app.pool.clone(),
        content: app.state.content().clone(),
        clock: app.clock.clone(),
        days,
    }
}

async fn report(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = status_json(app.get(path, token).await).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

#[tokio::test]
async fn the_bytes_of_expired_documents_are_removed_and_the_store_reports_each_state() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let open = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let closing = app.account(&manager.token, json!({})).await;
    let kept = uploaded(&app, &agent.token, &id_of(&open), "proof.pdf", pdf()).await;
    let deleted = uploaded(&app, &agent.token, &id_of(&open), "wrong scan.png", png()).await;
    let closed = uploaded(&app, &manager.token, &id_of(&closing), "settlement.pdf", pdf()).await;
    let (status, body) = status_json(app.delete(&format!("/api/v1/documents/{}", id_of(&deleted)), &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = status_json(
        app.patch(
            &format!("/api/v1/accounts/{}", id_of(&closing)),
            &manager.token,
            &json!({"status": "closed"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A document being processed is locked for a moment, and a retention pass skips a
    // locked row (another pass may hold it): the next pass would take it.
    processing_settled(&app).await;
    let before = report(&app, &admin.token, "/api/v1/documents/storage").await;
    let (pdf_size, png_size) = (pdf().len() as i64, png().len() as i64);
    assert_eq!(before["live"], json!({"documents": 2, "bytes": 2 * pdf_size}));
    assert_eq!(before["deleted"], json!({"documents": 1, "bytes": png_size}));
    assert_eq!(before["purged"], json!({"documents": 0, "bytes": 0}));
    assert_eq!(before["by_kind"], json!([{"kind": "pdf", "documents": 2, "bytes": 2 * pdf_size}]));
    assert_eq!(before["largest_accounts"].as_array().unwrap().len(), 2);
    assert_eq!(before["retention_days"], 0);

    // Kept for ever by default; kept until the period is over when one is set.
    assert_eq!(retention(&app, 0).pass().await.unwrap().purged, 0);
    assert_eq!(retention(&app, 30).pass().await.unwrap().purged, 0);
    app.clock.advance(chrono::Duration::days(31));
    assert_eq!(
        retention(&app, 30).pass().await.unwrap(),
        Upkeep {
            purged: 2,
            zips_removed: 0,
            orphans_removed: 0
        }
    );
    assert_eq!(retention(&app, 30).pass().await.unwrap().purged, 0, "a second pass finds nothing");
    assert_eq!(
        stored_files(&app).await.len(),
        1,
        "only the open account's live document keeps its bytes"
    );

    let (status, body) = status_json(app.get(&format!("/api/v1/documents/{}", id_of(&kept)), &agent.token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_problem(
        app.get(&format!("/api/v1/documents/{}", id_of(&closed)), &manager.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let after = report(&app, &admin.token, "/api/v1/documents/storage").await;
    assert_eq!(after["live"], json!({"documents": 1, "bytes": pdf_size}));
    assert_eq!(after["deleted"], json!({"documents": 0, "bytes": 0}));
    assert_eq!(after["purged"], json!({"documents": 2, "bytes": pdf_size + png_size}));
    let closed_account = report(
        &app,
        &manager.token,
        &format!("/api/v1/accounts/{}/documents/storage", id_of(&closing)),
    )
    .await;
    assert_eq!(closed_account["purged"], json!({"documents": 1, "bytes": pdf_size}));
    assert_eq!(closed_account["live"], json!({"documents": 0, "bytes": 0}));

    // The audit trail records each purge as the retention scheduler's.
    let purges: i64 = app
        .sql_value(
            "SELECT count(*) FROM audit_log WHERE entity = 'document' AND action = 'document.update'
               AND job = 'scheduler:document_retention' AND account_id = $1",
            &id_of(&closing),
        )
        .await;
    assert_eq!(purges, 1);

    // The whole store is an admin's to read; an account's, theirs who read it in full.
    assert_problem(
        app.get("/api/v1/documents/storage", &manager.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/accounts/{}/documents/storage", id_of(&closing)), &agent.token)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn a_file_no_document_names_is_removed_once_a_day_old() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let kept = id_of(&uploaded(&app, &manager.token, &id_of(&account), "proof.pdf", pdf()).await);
    let root = app.settings.data_dir.join("documents");
    let age = |key: &str, hours: u64| {
        let file = std::fs::File::options().write(true).open(root.join(key)).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(hours * 3600)).unwrap();
    };
    // What a process stopped between keeping a file and committing its row leaves
    // behind: a file under a key of its own, which no row names.
    let orphan = |hours: u64| {
        let key = arrears::storage::key_for(uuid::Uuid::now_v7());
        std::fs::create_dir_all(root.join(&key).parent().unwrap()).unwrap();
        std::fs::write(root.join(&key), b"%PDF-1.4 left behind").unwrap();
        age(&key, hours);
        key
    };
    let (old, young) = (orphan(25), orphan(1));
    // The document's own file, as old: its row names it, so it stays.
    let own: String = app
        .sql_value("SELECT storage_key FROM account_documents WHERE id = $1", &kept)
        .await;
    age(&own, 25);

    assert_eq!(retention(&app, 0).pass().await.unwrap().orphans_removed, 1);
    assert!(!root.join(&old).exists(), "the day-old file no row names is removed");
    assert!(root.join(&young).exists(), "a younger one may be an upload under way");
    assert!(root.join(&own).exists());
    let download = app.get(&format!("/api/v1/documents/{kept}/content"), &manager.token).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(retention(&app, 0).pass().await.unwrap().orphans_removed, 0);
}

/// Issue 75, item 8: an agent closed an account with a balance owing, and retention then
/// purged its documents, which only a manager may delete. Closing, settling or marking
/// paid an account that still owes is a manager's decision (a PATCH and a bulk update
/// alike); retention counts from the last collection activity, so work on an account
/// only delays its documents' end; and no operator can set it under the three years
/// Regulation F keeps records.
#[tokio::test]
async fn an_agent_cannot_start_a_documents_end_and_work_on_the_account_delays_it() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = id_of(
        &app.account(&manager.token, json!({"assigned_agent_id": agent.id, "original_balance": "100.00"}))
            .await,
    );
    let document = uploaded(&app, &agent.token, &account, "statement.pdf", pdf()).await;
    for status in ["closed", "settled", "paid"] {
        let refused = app
            .patch(&format!("/api/v1/accounts/{account}"), &agent.token, &json!({"status": status}))
            .await;
        let problem = assert_problem(refused, StatusCode::FORBIDDEN, "field_forbidden").await;
        assert_eq!(crate::helpers::error_fields(&problem), ["status"], "{problem}");
    }
    let body = json!({"ids": [account], "patch": {"status": "closed"}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&agent.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    crate::helpers::eventually("the bulk update ends", || async {
        let (_, job) = status_json(app.get(&format!("/api/v1/jobs/{}", id_of(&job)), &agent.token).await).await;
        job["failed"] == 1
    })
    .await;
    assert_eq!(app.get_account(&agent.token, &account).await["status"], "active");

    // Nothing owed: the agent closes it. Work on it later keeps its documents longer.
    app.create_payment(
        &agent.token,
        &account,
        &json!({"amount": "100.00", "currency": "USD", "method": "card"}),
    )
    .await;
    let (status, closed) = status_json(
        app.patch(&format!("/api/v1/accounts/{account}"), &agent.token, &json!({"status": "closed"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    processing_settled(&app).await;
    app.log_activity(
        &agent.token,
        &account,
        &json!({"type": "call", "direction": "inbound", "occurred_at": app.clock.now()}),
    )
    .await;
    let days = arrears::config::MIN_DOCUMENT_RETENTION_DAYS;
    app.clock.advance(chrono::Duration::days(i64::from(days) + 10));
    // As if the debtor's call came 20 days before the clock's now, long after the close.
    sqlx::query("UPDATE activities SET created_at = $2 WHERE account_id = $1::uuid AND type = 'call'")
        .bind(&account)
        .bind(app.clock.now() - chrono::Duration::days(20))
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(retention(&app, days).pass().await.unwrap().purged, 0, "the call keeps them");
    app.clock.advance(chrono::Duration::days(i64::from(days)));
    assert_eq!(retention(&app, days).pass().await.unwrap().purged, 1);
    let purged: bool = app
        .sql_value(
            "SELECT purged_at IS NOT NULL FROM account_documents WHERE id = $1::uuid",
            &id_of(&document),
        )
        .await;
    assert!(purged);

    for days in ["30", "1095"] {
        let Err(refused) = arrears::cli::Cli::try_parse_from(["arrears", "serve", "--document-retention-days", days]) else {
            panic!("a retention of {days} days is under three years, and refused");
        };
        let message = refused.to_string();
        assert!(message.contains("1006.100"), "{message}");
    }
    for days in ["0", "1096"] {
        assert!(arrears::cli::Cli::try_parse_from(["arrears", "serve", "--document-retention-days", days]).is_ok());
    }
}
