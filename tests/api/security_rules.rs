//! Issue 44, third pass: each test replays an attack that went through before its fix.

use arrears::domain::role::Role;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::compliance::zone_where_it_is;
use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, eventually, id_of, spawn_app, spawn_guarded_app, status_json, ts};

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

async fn patch(app: &TestApp, user: &TestUser, id: &str, body: Value) -> reqwest::Response {
    app.patch(&format!("/api/v1/accounts/{id}"), &user.token, &body).await
}

/// An agent turned off `cease_communication` and `do_not_call` and moved a disputed
/// account to `active`, and the guard stopped refusing. Agents may set restrictions,
/// never clear them, nor move an account out of `disputed`; managers may.
#[tokio::test]
async fn an_agent_cannot_lift_contact_restrictions_or_a_dispute() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let blocked = json!({"assigned_agent_id": agent.id, "do_not_call": true, "do_not_email": true,
                         "cease_communication": true, "status": "disputed"});
    let account = id_of(&app.account(&manager.token, blocked.clone()).await);
    for field in ["do_not_call", "do_not_email", "cease_communication"] {
        let problem = assert_problem(
            patch(&app, &agent, &account, json!({ field: false })).await,
            StatusCode::FORBIDDEN,
            "field_forbidden",
        )
        .await;
        assert_eq!(error_fields(&problem), [field], "{problem}");
    }
    let problem = assert_problem(
        patch(&app, &agent, &account, json!({"status": "active", "do_not_call": false})).await,
        StatusCode::FORBIDDEN,
        "field_forbidden",
    )
    .await;
    assert_eq!(error_fields(&problem), ["status", "do_not_call"], "{problem}");
    let stored: (bool, bool, bool, String) =
        sqlx::query_as("SELECT do_not_call, do_not_email, cease_communication, status FROM accounts WHERE id = $1::uuid")
            .bind(&account)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, (true, true, true, "disputed".to_owned()));

    // Restating a restriction, or workflow changes beside it, still goes.
    let (status, body) = status_json(
        patch(
            &app,
            &agent,
            &account,
            json!({"do_not_call": true, "tags": ["callback"], "status": "disputed"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An agent may set restrictions and dispute an account.
    let open = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let set = json!({"do_not_call": true, "do_not_email": true, "cease_communication": true, "status": "disputed"});
    let (status, body) = status_json(patch(&app, &agent, &open, set).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["do_not_call"].as_bool(), body["status"].as_str()),
        (Some(true), Some("disputed"))
    );

    // A manager lifts them.
    let lift = json!({"do_not_call": false, "do_not_email": false, "cease_communication": false, "status": "active"});
    let (status, body) = status_json(patch(&app, &manager, &account, lift).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["cease_communication"].as_bool(), body["status"].as_str()),
        (Some(false), Some("active"))
    );
}

/// The bulk update is the other path that changes a status: an agent's bulk update
/// leaves their disputed accounts disputed and says why, row by row.
#[tokio::test]
async fn an_agents_bulk_update_does_not_move_accounts_out_of_dispute() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let disputed = id_of(
        &app.account(&manager.token, json!({"assigned_agent_id": agent.id, "status": "disputed"}))
            .await,
    );
    let delinquent = id_of(
        &app.account(&manager.token, json!({"assigned_agent_id": agent.id, "status": "delinquent"}))
            .await,
    );
    let body = json!({"ids": [disputed, delinquent], "patch": {"status": "active"}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&agent.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the job finishes", || async {
        status_json(app.get(&path, &agent.token).await).await.1["finished_at"].is_string()
    })
    .await;
    let (_, job) = status_json(app.get(&path, &agent.token).await).await;
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(1), Some(1)), "{job}");
    let (_, failures) = status_json(app.get(&format!("{path}/failures"), &agent.token).await).await;
    assert_eq!(failures["data"][0]["account_id"], json!(disputed), "{failures}");
    assert!(failures["data"][0]["error"].as_str().unwrap().contains("disputed"), "{failures}");
    let status: String = app.sql_value("SELECT status FROM accounts WHERE id = $1", &disputed).await;
    assert_eq!(status, "disputed");
    let status: String = app.sql_value("SELECT status FROM accounts WHERE id = $1", &delinquent).await;
    assert_eq!(status, "active");

    // A manager's bulk update may.
    let body = json!({"ids": [disputed], "patch": {"status": "active"}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    eventually("the manager's job applies", || async {
        let status: String = app.sql_value("SELECT status FROM accounts WHERE id = $1", &disputed).await;
        status == "active"
    })
    .await;
}

/// The owning agent completed a pending payment and cancelled a promise and a plan of
/// an account a manager had deleted. Each is refused with the 404 a read of it answers.
#[tokio::test]
async fn writes_on_a_deleted_account_are_refused_as_reads_of_it_are() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let pending = app
        .create_payment(
            &agent.token,
            &account,
            &json!({"amount": "10.00", "currency": "USD", "method": "card", "status": "pending"}),
        )
        .await;
    let due = (Utc::now() + Duration::days(10)).date_naive().to_string();
    let promise = app
        .create_promise(&agent.token, &account, &json!({"amount": "12.34", "due_date": due}))
        .await;
    let plan = app
        .create(
            &agent.token,
            &format!("/api/v1/accounts/{account}/plans"),
            &json!({"total": "50.55", "instalment_count": 3, "frequency": "weekly", "first_due_date": due}),
        )
        .await;
    let deleted = app.delete(&format!("/api/v1/accounts/{account}"), &manager.token).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());

    let payment_path = format!("/api/v1/payments/{}", id_of(&pending));
    assert_problem(app.get(&payment_path, &agent.token).await, StatusCode::NOT_FOUND, "not_found").await;
    let attempts = [
        app.patch(&payment_path, &agent.token, &json!({"status": "completed"})).await,
        app.post(
            &format!("/api/v1/promises/{}/cancel", id_of(&promise)),
            Some(&agent.token),
            &json!({}),
        )
        .await,
        app.post(&format!("/api/v1/plans/{}/cancel", id_of(&plan)), Some(&agent.token), &json!({}))
            .await,
        app.post(&format!("/api/v1/plans/{}/cancel", id_of(&plan)), Some(&manager.token), &json!({}))
            .await,
    ];
    for response in attempts {
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let states: (String, String, String) = sqlx::query_as(
        "SELECT (SELECT status FROM payments WHERE account_id = $1::uuid),
                (SELECT status FROM promises WHERE account_id = $1::uuid),
                (SELECT status FROM plans WHERE account_id = $1::uuid)",
    )
    .bind(&account)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(states, ("pending".into(), "open".into(), "active".into()));
}

/// A call at 05:36 in the debtor's zone went through because the client said it
/// happened the afternoon before: the guard judges an outbound attempt at the server's
/// time, whatever `occurred_at` says.
#[tokio::test]
async fn a_backdated_call_is_judged_at_the_servers_time() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    // It is between 01:00 and 07:00 there now; sixteen hours ago it was afternoon.
    let zone = zone_where_it_is(app.clock.now(), 1, 7);
    let account = id_of(
        &app.account(&manager.token, json!({"assigned_agent_id": agent.id, "timezone": zone}))
            .await,
    );
    let body = json!({"type": "call", "direction": "outbound", "outcome": "no_answer",
                      "occurred_at": ts(Utc::now() - Duration::hours(16))});
    let response = app
        .post(&format!("/api/v1/accounts/{account}/activities"), Some(&agent.token), &body)
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "contact_blocked").await;
    assert_eq!(problem["rule"], "outside_window", "{problem}");
    let logged: i64 = app
        .sql_value("SELECT count(*) FROM activities WHERE account_id = $1", &account)
        .await;
    assert_eq!(logged, 0);
}

/// `occurred_at` records at most a day of the past, and no more than the clock skew of
/// the future.
#[tokio::test]
async fn occurred_at_records_at_most_a_day_of_the_past() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({})).await);
    let path = format!("/api/v1/accounts/{account}/activities");
    for at in [Utc::now() - Duration::hours(25), Utc::now() + Duration::minutes(10)] {
        let body = json!({"type": "note", "notes": "n", "occurred_at": ts(at)});
        let problem = assert_problem(
            app.post(&path, Some(&manager.token), &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), ["occurred_at"], "{at}: {problem}");
    }
    let body = json!({"type": "call", "direction": "outbound", "occurred_at": ts(Utc::now() - Duration::hours(23))});
    let (status, body) = status_json(app.post(&path, Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Calls count toward the 7-in-7 limit from when the server recorded them: seven calls
/// the server took within the period hold the eighth back, whatever times they claimed.
#[tokio::test]
async fn call_attempts_count_from_when_the_server_recorded_them() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let zone = zone_where_it_is(app.clock.now(), 10, 18);
    let account = id_of(
        &app.account(&manager.token, json!({"assigned_agent_id": agent.id, "timezone": zone}))
            .await,
    );
    // Seven calls recorded in the last hour, each claiming a time eight days ago (as
    // the API let a client claim before the bound on `occurred_at`).
    sqlx::query(
        "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id, created_at)
         SELECT gen_random_uuid(), $1::uuid, 'call', 'outbound', 'no_answer', now() - interval '8 days', $2,
                now() - g * interval '1 minute'
         FROM generate_series(1, 7) g",
    )
    .bind(&account)
    .bind(agent.id)
    .execute(&app.pool)
    .await
    .unwrap();
    let body = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let response = app
        .post(&format!("/api/v1/accounts/{account}/activities"), Some(&agent.token), &body)
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "contact_blocked").await;
    assert_eq!(problem["rule"], "call_attempts", "{problem}");
}
