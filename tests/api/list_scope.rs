//! Issue 75, items 3, 7 and 9: every list answers what the reads by id answer. Plans,
//! activities and contact overrides of a portfolio the caller has no grant for are
//! missing from their lists as they are by id; an agent reads the payments and plans of
//! the accounts they work only, by id as in the lists; a manager reads another user's
//! job rows only for the accounts of their portfolios.

use arrears::domain::role::Role;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, id_of, spawn_app, status_json};

async fn portfolio(app: &TestApp, admin: &TestUser, name: &str) -> String {
    id_of(&app.create(&admin.token, "/api/v1/portfolios", &json!({"name": name})).await)
}

async fn grant(app: &TestApp, admin: &TestUser, portfolio: &str, user: &TestUser) {
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{portfolio}/grants"),
        &json!({"user_id": user.id}),
    )
    .await;
}

/// The ids of a list page's rows.
async fn listed(app: &TestApp, user: &TestUser, path: &str) -> Vec<String> {
    let (status, page) = status_json(app.get(path, &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    page["data"].as_array().unwrap().iter().map(id_of).collect()
}

/// Polls the job until it ends.
async fn finished(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let deadline = std::time::Instant::now() + crate::helpers::PATIENCE;
    loop {
        let (_, job) = status_json(app.get(&format!("/api/v1/jobs/{id}"), &user.token).await).await;
        if !job["finished_at"].is_null() {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "the job did not end: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A manager, a viewer and an agent without a grant for a portfolio list none of its
/// plans, activities (notes) or contact overrides (reasons): with and without naming its
/// account, as reading each by id answers 404. The plan of an account in their own
/// portfolio stays listed, so the lists are not simply empty.
#[tokio::test]
async fn lists_of_plans_activities_and_overrides_answer_what_reads_by_id_answer() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let hidden = portfolio(&app, &admin, "Hidden Creditor").await;
    let theirs = portfolio(&app, &admin, "Their Creditor").await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let agent = app.user(Role::Agent).await;
    // Viewers are granted nothing (grants go to those who work accounts): they read the
    // accounts in no portfolio.
    for user in [&manager, &agent] {
        grant(&app, &admin, &theirs, user).await;
    }
    let secret = id_of(
        &app.account(&admin.token, json!({"portfolio_id": hidden, "account_number": "HID-1"}))
            .await,
    );
    let visible = id_of(
        &app.account(
            &admin.token,
            json!({"portfolio_id": theirs, "account_number": "VIS-1", "assigned_agent_id": agent.id}),
        )
        .await,
    );
    let first = (Utc::now() + Duration::days(3)).date_naive();
    let plan_body = json!({"total": "90.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": first});
    let secret_plan = id_of(
        &app.create(&admin.token, &format!("/api/v1/accounts/{secret}/plans"), &plan_body)
            .await,
    );
    let visible_plan = id_of(
        &app.create(&admin.token, &format!("/api/v1/accounts/{visible}/plans"), &plan_body)
            .await,
    );
    let note = app
        .log_activity(
            &admin.token,
            &secret,
            &json!({"type": "note", "notes": "debtor has cancer", "occurred_at": Utc::now()}),
        )
        .await;
    let override_made = app
        .create(
            &admin.token,
            &format!("/api/v1/accounts/{secret}/contact-overrides"),
            &json!({"channel": "call", "reason": "court order 17-443, hardship"}),
        )
        .await;

    for (role, user) in [("manager", &manager), ("viewer", &viewer), ("agent", &agent)] {
        let plans = listed(&app, user, "/api/v1/plans").await;
        assert!(!plans.contains(&secret_plan), "{role}: GET /plans lists a hidden plan");
        if role != "viewer" {
            assert!(plans.contains(&visible_plan), "{role}: their portfolio's plan is listed");
        }
        let named = listed(&app, user, &format!("/api/v1/plans?account_id={secret}")).await;
        assert!(named.is_empty(), "{role}: GET /plans?account_id= lists {named:?}");
        let by_id = app.get(&format!("/api/v1/plans/{secret_plan}"), &user.token).await;
        assert_problem(by_id, StatusCode::NOT_FOUND, "not_found").await;

        let notes = listed(&app, user, &format!("/api/v1/activities?account_id={secret}")).await;
        assert!(
            !notes.contains(&id_of(&note)),
            "{role}: GET /activities?account_id= lists the hidden note"
        );
        let all = listed(&app, user, "/api/v1/activities").await;
        assert!(!all.contains(&id_of(&note)), "{role}: GET /activities lists the hidden note");
    }
    let overrides = listed(&app, &manager, "/api/v1/contact-overrides").await;
    assert!(
        !overrides.contains(&id_of(&override_made)),
        "GET /contact-overrides lists the hidden reason"
    );
    let named = listed(&app, &manager, &format!("/api/v1/contact-overrides?account_id={secret}")).await;
    assert!(named.is_empty(), "GET /contact-overrides?account_id= lists {named:?}");
    let admins = listed(&app, &admin, "/api/v1/contact-overrides").await;
    assert!(admins.contains(&id_of(&override_made)), "an admin still lists it");
}

/// An agent granted the portfolio who does not work the account reads neither its
/// payment nor its plan by id (403, as the account's own payment and plan routes
/// answer), nor finds them in the lists; the agent who works it reads both.
#[tokio::test]
async fn agents_read_payments_and_plans_only_of_the_accounts_they_work() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let owner = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let account = id_of(&app.account(&manager.token, json!({"assigned_agent_id": owner.id})).await);
    let payment = app
        .create_payment(
            &manager.token,
            &account,
            &json!({"amount": "25.00", "currency": "USD", "method": "card", "reference": "card ****4242 auth 88"}),
        )
        .await;
    let first = (Utc::now() + Duration::days(3)).date_naive();
    let plan = app
        .create(
            &manager.token,
            &format!("/api/v1/accounts/{account}/plans"),
            &json!({"total": "90.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": first}),
        )
        .await;
    let (payment, plan) = (id_of(&payment), id_of(&plan));

    for path in [format!("/api/v1/payments/{payment}"), format!("/api/v1/plans/{plan}")] {
        let refused = app.get(&path, &other.token).await;
        assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
        let (status, body) = status_json(app.get(&path, &owner.token).await).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    assert!(!listed(&app, &other, "/api/v1/plans").await.contains(&plan));
    assert!(listed(&app, &owner, "/api/v1/plans").await.contains(&plan));
    crate::helpers::eventually("the payment is indexed", || async {
        listed(&app, &owner, "/api/v1/payments").await.contains(&payment)
    })
    .await;
    assert!(
        !listed(&app, &other, "/api/v1/payments").await.contains(&payment),
        "another agent lists the payment"
    );
}

/// A manager reads the failed rows of another user's bulk update only for the accounts
/// of their own portfolios, and an import made by someone else not at all: its rows are
/// the uploader's file, naming accounts of any portfolio.
#[tokio::test]
async fn managers_read_another_users_job_rows_only_within_their_portfolios() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let hidden = portfolio(&app, &admin, "Hidden Creditor").await;
    let theirs = portfolio(&app, &admin, "Their Creditor").await;
    let manager = app.user(Role::Manager).await;
    grant(&app, &admin, &theirs, &manager).await;
    let outsider = app.user(Role::Agent).await;
    let secret = id_of(
        &app.account(&admin.token, json!({"portfolio_id": hidden, "account_number": "HID-2"}))
            .await,
    );
    let visible = id_of(
        &app.account(&admin.token, json!({"portfolio_id": theirs, "account_number": "VIS-2"}))
            .await,
    );

    // The outsider is granted neither portfolio: both rows fail.
    let body = json!({"ids": [secret, visible], "patch": {"assigned_agent_id": outsider.id}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&admin.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = finished(&app, &admin, job["id"].as_str().unwrap()).await;
    assert_eq!(job["failed"], 2, "{job}");
    let failures = format!("/api/v1/jobs/{}/failures", id_of(&job));
    let (_, all) = status_json(app.get(&failures, &admin.token).await).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    let (status, seen) = status_json(app.get(&failures, &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let accounts: Vec<&str> = seen["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, [visible.as_str()], "{seen}");
    assert_eq!(seen["total"], 1, "{seen}");

    let csv = "account_number,debtor_name,original_balance,currency,due_date\nBAD-1,Secret Debtor,not money,USD,2026-01-01\n";
    let upload = crate::imports::upload(&app, &admin.token, "secret-creditor.csv", csv.as_bytes().to_vec(), &[]).await;
    let (status, import) = status_json(upload).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{import}");
    let import = finished(&app, &admin, import["id"].as_str().unwrap()).await;
    assert_eq!(import["failed"], 1, "{import}");
    let id = id_of(&import);
    for path in [
        format!("/api/v1/jobs/{id}/failures"),
        format!("/api/v1/imports/{id}/errors"),
        format!("/api/v1/imports/{id}/errors.xlsx"),
    ] {
        let refused = app.get(&path, &manager.token).await;
        assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }
}
