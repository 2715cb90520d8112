//! The notification center: created by what happens to my accounts, read and unread.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, spawn_app, status_json};

async fn notifications(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, page) = status_json(app.get(&format!("/api/v1/notifications{query}"), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn kinds(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn assignments_payments_and_broken_promises_notify_the_agent() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app
        .account(&manager.token, json!({"assigned_agent_id": agent.id, "timezone": "UTC"}))
        .await;
    let id = account["id"].as_str().unwrap();
    let pay = json!({"amount": "100.00", "currency": "USD", "method": "card"});
    let response = app
        .post(&format!("/api/v1/accounts/{id}/payments"), Some(&manager.token), &pay)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let pending = json!({"amount": "5.00", "currency": "USD", "method": "card", "status": "pending"});
    let response = app
        .post(&format!("/api/v1/accounts/{id}/payments"), Some(&manager.token), &pending)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "a pending payment notifies nobody");
    let today = chrono::Utc::now().date_naive();
    let promise = json!({"amount": "50.00", "due_date": today});
    let response = app
        .post(&format!("/api/v1/accounts/{id}/promises"), Some(&agent.token), &promise)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let broken = arrears::store::promises::break_overdue(&app.pool, chrono::Utc::now() + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(broken, 1);

    let page = notifications(&app, &agent, "").await;
    assert_eq!(
        kinds(&page),
        ["payment_overdue", "payment_received", "account_assigned"],
        "newest first"
    );
    assert_eq!(page["unread_count"], 3);
    assert_eq!(page["data"][1]["data"]["amount"], "100.00", "money in its currency's minor digits");
    assert!(page["data"][2]["title"].as_str().unwrap().contains("assigned to you"));
    assert_eq!(notifications(&app, &manager, "").await["total"], 0, "the manager was told nothing");
}

#[tokio::test]
async fn read_and_unread_flows() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    for n in 0..3 {
        app.account(
            &manager.token,
            json!({"assigned_agent_id": agent.id, "debtor_name": format!("Person {n}")}),
        )
        .await;
    }
    let page = notifications(&app, &agent, "?page_size=2").await;
    assert_eq!((page["total"].as_i64(), page["data"].as_array().unwrap().len()), (Some(3), 2));
    let oldest_first_page = page["data"][1]["id"].as_str().unwrap().to_owned();
    let (status, read) = status_json(
        app.post(
            &format!("/api/v1/notifications/{oldest_first_page}/read"),
            Some(&agent.token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(read["read_at"].is_string());

    let page = notifications(&app, &agent, "").await;
    let read_flags: Vec<bool> = page["data"].as_array().unwrap().iter().map(|n| n["read_at"].is_string()).collect();
    assert_eq!(read_flags, [false, false, true], "unread first");
    assert_eq!(page["unread_count"], 2);
    let unread = notifications(&app, &agent, "?unread_only=true").await;
    assert_eq!(unread["total"], 2);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?page_size=1&cursor={c}"),
            None => "?page_size=1".to_owned(),
        };
        let page = notifications(&app, &agent, &query).await;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "the cursor walks every notification once");
    assert_eq!(seen[2], oldest_first_page);

    let response = app
        .post(
            &format!("/api/v1/notifications/{oldest_first_page}/read"),
            Some(&manager.token),
            &json!({}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let (_, all) = status_json(app.post("/api/v1/notifications/read-all", Some(&agent.token), &json!({})).await).await;
    assert_eq!(all["updated"], 2);
    let (_, count) = status_json(app.get("/api/v1/notifications/unread-count", &agent.token).await).await;
    assert_eq!(count["unread_count"], 0);
    let response = app.get("/api/v1/notifications?cursor=nope", &agent.token).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
}

/// `n` unassigned accounts straight into SQL.
async fn unassigned(app: &TestApp, n: i32) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, search_version)
         SELECT gen_random_uuid(), 'NOTE-' || g || '-' || substr(md5(random()::text), 1, 8), 'Note Person ' || g, 100, 100, 'USD', 0
         FROM generate_series(1, $1) g
         RETURNING id",
    )
    .bind(n)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Submits a bulk update and waits until it ended.
async fn bulk(app: &TestApp, user: &TestUser, body: Value) {
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&user.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    crate::helpers::eventually("the bulk update finishes", || async {
        status_json(app.get(&path, &user.token).await).await.1["finished_at"].is_string()
    })
    .await;
}

#[tokio::test]
async fn a_bulk_assignment_is_one_notification_that_leads_to_the_search() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    // More than a chunk, so the job's chunks add to one notification.
    let ids = unassigned(&app, arrears::jobs::bulk_update::CHUNK as i32 + 102).await;
    bulk(&app, &manager, json!({"ids": ids, "patch": {"assigned_agent_id": agent.id}})).await;

    let page = notifications(&app, &agent, "").await;
    assert_eq!(kinds(&page), ["account_assigned"], "one notification for the whole job: {page}");
    let note = &page["data"][0];
    assert_eq!(note["count"], json!(ids.len()));
    assert_eq!(note["title"], format!("{} accounts assigned to you", ids.len()));
    assert_eq!(note["link"], "#/search?assigned_agent_id=me&sort=-updated_at");
    assert_eq!(page["unread_count"], 1);
    let told: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE user_id = $1 AND kind LIKE 'notification.%'")
        .bind(agent.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(told, 2, "one live event when it was made, one when the second chunk added to it");

    // A single assignment leads to its account; a read batch is not added to.
    app.post("/api/v1/notifications/read-all", Some(&agent.token), &json!({})).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let page = notifications(&app, &agent, "?unread_only=true").await;
    assert_eq!(page["data"][0]["count"], 1);
    assert_eq!(page["data"][0]["link"], format!("#/account/{}", account["id"].as_str().unwrap()));
    assert!(page["data"][0]["title"].as_str().unwrap().starts_with("Account "));
}

#[tokio::test]
async fn nobody_is_told_of_their_own_actions() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let mine = app.account(&manager.token, json!({"assigned_agent_id": manager.id})).await;
    assert_eq!(
        notifications(&app, &manager, "").await["total"],
        0,
        "a manager assigning to themself"
    );
    let theirs = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    app.post("/api/v1/notifications/read-all", Some(&agent.token), &json!({})).await;

    let pay = json!({"amount": "10.00", "currency": "USD", "method": "cash"});
    let id = theirs["id"].as_str().unwrap();
    let (status, _) = status_json(app.post(&format!("/api/v1/accounts/{id}/payments"), Some(&agent.token), &pay).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        notifications(&app, &agent, "?unread_only=true").await["total"],
        0,
        "the agent who records a payment is not told it arrived"
    );
    let (status, _) = status_json(
        app.post(&format!("/api/v1/accounts/{id}/payments"), Some(&manager.token), &pay)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let page = notifications(&app, &agent, "?unread_only=true").await;
    assert_eq!(kinds(&page), ["payment_received"], "a payment someone else records is news");
    assert_eq!(page["data"][0]["link"], format!("#/account/{id}"));

    let mine = mine["id"].as_str().unwrap();
    let (status, _) = status_json(
        app.patch(
            &format!("/api/v1/accounts/{mine}"),
            &manager.token,
            &json!({"assigned_agent_id": agent.id}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = notifications(&app, &agent, "?unread_only=true").await;
    assert_eq!(
        kinds(&page),
        ["account_assigned", "payment_received"],
        "a reassignment by someone else is news"
    );
    assert_eq!(notifications(&app, &manager, "").await["total"], 0);
}
