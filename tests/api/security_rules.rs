//! Issue 44, third pass: each test replays an attack that went through before its fix.

use arrears::domain::role::Role;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, id_of, spawn_app, status_json};

async fn stored_currency(app: &TestApp, id: &str) -> String {
    app.sql_value("SELECT currency FROM accounts WHERE id = $1", id).await
}

/// 12.34 USD promised became "12 JPY", a 50.55 USD plan "51 JPY": a currency change
/// while a promise or a plan is open is refused as one with payments is.
#[tokio::test]
async fn an_open_promise_or_plan_keeps_the_accounts_currency() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let promised = id_of(&app.account(&manager.token, json!({"currency": "USD"})).await);
    let due = (Utc::now() + Duration::days(10)).date_naive().to_string();
    let promise = app
        .create_promise(&manager.token, &promised, &json!({"amount": "12.34", "due_date": due}))
        .await;
    let planned = id_of(&app.account(&manager.token, json!({"currency": "USD"})).await);
    app.create(
        &manager.token,
        &format!("/api/v1/accounts/{planned}/plans"),
        &json!({"total": "50.55", "instalment_count": 3, "frequency": "weekly", "first_due_date": due}),
    )
    .await;
    for id in [&promised, &planned] {
        let response = app
            .patch(&format!("/api/v1/accounts/{id}"), &manager.token, &json!({"currency": "JPY"}))
            .await;
        let problem = assert_problem(response, StatusCode::CONFLICT, "conflict").await;
        assert!(problem["detail"].as_str().unwrap().contains("currency"), "{problem}");
        assert_eq!(stored_currency(&app, id).await, "USD");
    }
    // Once the promise is no longer open, the currency may change again.
    let cancel = format!("/api/v1/promises/{}/cancel", id_of(&promise));
    let (status, body) = status_json(app.post(&cancel, Some(&manager.token), &json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = app
        .patch(&format!("/api/v1/accounts/{promised}"), &manager.token, &json!({"currency": "EUR"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
