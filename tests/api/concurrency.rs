use std::collections::HashSet;

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, status_json};

/// Many writers on one row: every write gets its own version, and the state that
/// survives is the one written with the highest version, i.e. the last committed.
#[tokio::test]
async fn concurrent_updates_get_versions_in_commit_order() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    let writers: Vec<_> = (0..24)
        .map(|i| {
            let api = app.api();
            let path = path.clone();
            let token = manager.token.clone();
            tokio::spawn(async move {
                let response = api
                    .request(reqwest::Method::PATCH, &path, Some(&token))
                    .json(&json!({"custom_fields": {"writer": i}}))
                    .send()
                    .await
                    .unwrap();
                status_json(response).await
            })
        })
        .collect();
    let mut results: Vec<(i64, Value)> = Vec::new();
    for writer in writers {
        let (status, body) = writer.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        results.push((body["search_version"].as_i64().unwrap(), body["custom_fields"]["writer"].clone()));
    }
    let versions: HashSet<i64> = results.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), results.len(), "every write has its own version");
    let (max_version, last_writer) = results.iter().max_by_key(|(v, _)| *v).unwrap().clone();
    let (_, stored) = status_json(app.get(&path, &manager.token).await).await;
    assert_eq!(stored["search_version"], max_version);
    assert_eq!(stored["custom_fields"]["writer"], last_writer);
}

/// The version is drawn after the row lock: a writer that waits behind another
/// transaction gets a version larger than anything drawn while it waited.
#[tokio::test]
async fn a_blocked_writer_draws_its_version_after_the_lock() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let first = app.account(&manager.token, json!({})).await;
    let other = app.account(&manager.token, json!({})).await;
    let id: uuid::Uuid = first["id"].as_str().unwrap().parse().unwrap();
    let other_id: uuid::Uuid = other["id"].as_str().unwrap().parse().unwrap();

    let mut holder = app.pool.begin().await.unwrap();
    let held: i64 = sqlx::query_scalar("UPDATE accounts SET status = 'disputed' WHERE id = $1 RETURNING search_version")
        .bind(id)
        .fetch_one(&mut *holder)
        .await
        .unwrap();

    let pool = app.pool.clone();
    let blocked = tokio::spawn(async move {
        sqlx::query_scalar::<_, i64>("UPDATE accounts SET status = 'paid' WHERE id = $1 RETURNING search_version")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    // Wait until the second writer is really blocked on the row lock.
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let meanwhile: i64 = sqlx::query_scalar("UPDATE accounts SET status = 'closed' WHERE id = $1 RETURNING search_version")
        .bind(other_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    let after = blocked.await.unwrap();
    assert!(
        held < meanwhile && meanwhile < after,
        "held {held}, meanwhile {meanwhile}, after {after}"
    );
    let (_, stored) = status_json(app.get(&format!("/api/v1/accounts/{id}"), &manager.token).await).await;
    assert_eq!(stored["status"], "paid");
    assert_eq!(stored["search_version"], after);
}
