//! An agent's day over HTTP: a debtor who calls about another agent's account is found
//! and served with no more of their data than the call needs, the read is recorded; one
//! timeline of everything that happened to an account; a call wrapped up in one request
//! that records all of it or none.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, id_of, spawn_app, spawn_guarded_app, status_json};

struct Floor {
    app: TestApp,
    manager: TestUser,
    owner: TestUser,
    other: TestUser,
    viewer: TestUser,
    /// Assigned to `owner`.
    account: String,
}

async fn floor(app: TestApp) -> Floor {
    let manager = app.user(Role::Manager).await;
    let owner = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let created = app
        .post(
            "/api/v1/accounts?wait_for=indexed",
            Some(&manager.token),
            &json!({
                "debtor_name": "Siobhan O'Callaghan",
                "email": "siobhan.ocallaghan617@mail.example.com",
                "phone": "+1 201 555 0187",
                "original_balance": "900.00",
                "currency": "USD",
                "timezone": "America/New_York",
                "external_ref": "CRED-7781",
                "tags": ["hardship"],
                "custom_fields": {"employer": "Acme"},
                "address": {"line1": "12 Elm St", "city": "Newark", "postal_code": "07102", "country": "US"},
                "assigned_agent_id": owner.id,
            }),
        )
        .await;
    let (status, account) = status_json(created).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    Floor {
        account: id_of(&account),
        app,
        manager,
        owner,
        other,
        viewer,
    }
}

fn timeline_path(account: &str) -> String {
    format!("/api/v1/accounts/{account}/timeline")
}

async fn accesses(app: &TestApp, account: &str) -> i64 {
    app.sql_value(
        "SELECT count(*) FROM audit_log WHERE account_id = $1::uuid AND action = 'account.read_summary'",
        account,
    )
    .await
}

/// The personal data a summary leaves out or masks is nowhere in `view`.
fn assert_summary(view: &Value) {
    assert_eq!(view["access"], "summary", "{view}");
    assert_eq!(view["email"], "s•••@mail.example.com");
    assert_eq!(view["phone"], "••• 0187");
    assert_eq!(view["external_ref"], Value::Null);
    assert_eq!(view["tags"], json!([]));
    assert_eq!(view["custom_fields"], json!({}));
    assert_eq!(view["address"]["line1"], Value::Null);
    assert_eq!(view["address"]["postal_code"], Value::Null);
    let text = view.to_string();
    for secret in ["ocallaghan617", "555 0187", "CRED-7781", "hardship", "Acme", "Elm St", "07102"] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
}

#[tokio::test]
async fn an_agent_finds_any_caller_and_reads_only_a_summary_of_accounts_not_theirs() {
    let f = floor(spawn_app().await).await;
    let app = &f.app;

    // Found by each thing a caller says, by an agent who does not own the account.
    for q in ["callaghan", "2015550187", "0187", "siobhan.ocallaghan617@mail.example.com"] {
        let (status, page) = status_json(app.get(&format!("/api/v1/accounts?q={q}"), &f.other.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 1, "{q}: {page}");
        assert_summary(&page["data"][0]);
        assert_eq!(page["data"][0]["assigned_agent_id"], f.owner.id.to_string(), "the owner is named");
    }
    assert_eq!(accesses(app, &f.account).await, 0, "a search result is not an opened account");

    // Opening it: a summary naming its owner, and the read is recorded.
    let summary = app.get_account(&f.other.token, &f.account).await;
    assert_summary(&summary);
    assert_eq!(summary["assigned_agent_name"], name_of(app, &f.owner).await);
    assert_eq!(summary["current_balance"], "900.00", "what a payment needs is there");
    assert_eq!(summary["timezone"], "America/New_York");
    let recorded: (uuid::Uuid, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT actor, at FROM audit_log WHERE account_id = $1::uuid AND action = 'account.read_summary'")
            .bind(&f.account)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(recorded.0, f.other.id, "who");
    assert!((chrono::Utc::now() - recorded.1).num_seconds().abs() < 60, "when");

    // Its owner, a manager and a viewer read it whole, and their reads are not recorded.
    for user in [&f.owner, &f.manager, &f.viewer] {
        let whole = app.get_account(&user.token, &f.account).await;
        assert_eq!(whole["access"], "full");
        assert_eq!(whole["email"], "siobhan.ocallaghan617@mail.example.com");
        assert_eq!(whole["address"]["line1"], "12 Elm St");
    }
    assert_eq!(accesses(app, &f.account).await, 1);

    // The children of the account are not the other agent's to read.
    for child in ["activities", "payments", "promises", "plans", "timeline"] {
        let path = format!("/api/v1/accounts/{}/{child}", f.account);
        let problem = assert_problem(app.get(&path, &f.other.token).await, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(problem["detail"].as_str().unwrap().contains("summary"), "{child}: {problem}");
    }
    // Nor are the notes of its contacts through the list across accounts, nor its data in an export.
    app.log_activity(
        &f.owner.token,
        &f.account,
        &json!({"type": "note", "notes": "lives with her sister"}),
    )
    .await;
    let (_, others) = status_json(app.get("/api/v1/activities", &f.other.token).await).await;
    assert_eq!(others["total"], 0, "{others}");
    let (_, owners) = status_json(app.get("/api/v1/activities", &f.owner.token).await).await;
    assert_eq!(owners["total"], 1, "{owners}");
    let export = app.get("/api/v1/accounts/export?format=csv", &f.other.token).await;
    assert_eq!(export.status(), StatusCode::OK);
    let csv = export.text().await.unwrap();
    assert!(
        !csv.contains("ocallaghan617"),
        "another agent's account in an agent's export: {csv}"
    );
    let theirs = app
        .get(
            &format!("/api/v1/accounts/export?format=csv&assigned_agent_id={}", f.owner.id),
            &f.other.token,
        )
        .await;
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_agent_takes_an_inbound_call_and_a_payment_on_an_account_not_theirs_and_nothing_more() {
    let f = floor(spawn_app().await).await;
    let app = &f.app;
    let account = &f.account;

    let inbound = json!({"type": "call", "direction": "inbound", "outcome": "right_party", "notes": "called about her balance"});
    app.log_activity(&f.other.token, account, &inbound).await;
    let payment = app
        .create_payment(
            &f.other.token,
            account,
            &json!({"amount": "50.00", "currency": "USD", "method": "card"}),
        )
        .await;
    assert_eq!(payment["created_by"], f.other.id.to_string());

    let outbound = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let path = format!("/api/v1/accounts/{account}/activities");
    assert_problem(
        app.post(&path, Some(&f.other.token), &outbound).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let note = json!({"type": "note", "direction": "inbound", "notes": "a note is not a contact"});
    assert_problem(
        app.post(&path, Some(&f.other.token), &note).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let scheduled = json!({"type": "call", "direction": "inbound", "next_action_at": "2030-01-01T15:00:00Z"});
    let problem = assert_problem(
        app.post(&path, Some(&f.other.token), &scheduled).await,
        StatusCode::FORBIDDEN,
        "field_forbidden",
    )
    .await;
    assert_eq!(error_fields(&problem), ["next_action_at"]);
    let promise = json!({"amount": "10.00", "due_date": "2030-01-01"});
    let promises = format!("/api/v1/accounts/{account}/promises");
    assert_problem(
        app.post(&promises, Some(&f.other.token), &promise).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let reassign = json!({"assigned_agent_id": f.other.id});
    let problem = assert_problem(
        app.patch(&format!("/api/v1/accounts/{account}"), &f.other.token, &reassign).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("not assigned to you"), "{problem}");
    // A viewer stays read-only.
    assert_problem(
        app.post(&path, Some(&f.viewer.token), &inbound).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let pay = format!("/api/v1/accounts/{account}/payments");
    let cash = json!({"amount": "1.00", "currency": "USD", "method": "cash"});
    assert_problem(
        app.post(&pay, Some(&f.viewer.token), &cash).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let recorded: i64 = app
        .sql_value("SELECT count(*) FROM activities WHERE account_id = $1", account)
        .await;
    assert_eq!(recorded, 1, "only the inbound call");
    let owner: uuid::Uuid = app.sql_value("SELECT assigned_agent_id FROM accounts WHERE id = $1", account).await;
    assert_eq!(owner, f.owner.id, "still the owner's");
}

#[tokio::test]
async fn the_timeline_holds_everything_newest_first_with_who_and_pages_by_a_cursor() {
    let f = floor(spawn_app().await).await;
    let app = &f.app;
    let account = &f.account;
    let (manager, owner) = (&f.manager, &f.owner);

    app.log_activity(
        &owner.token,
        account,
        &json!({"type": "call", "direction": "outbound", "outcome": "no_answer"}),
    )
    .await;
    app.create_promise(&owner.token, account, &json!({"amount": "100.00", "due_date": "2030-01-01"}))
        .await;
    app.create_payment(
        &owner.token,
        account,
        &json!({"amount": "100.00", "currency": "USD", "method": "card"}),
    )
    .await;
    let patch = json!({"debtor_name": "Siobhan O'Callaghan-Reyes", "do_not_email": true});
    let (status, _) = status_json(app.patch(&format!("/api/v1/accounts/{account}"), &manager.token, &patch).await).await;
    assert_eq!(status, StatusCode::OK);
    let reassign = json!({"assigned_agent_id": f.other.id});
    let (status, _) = status_json(app.patch(&format!("/api/v1/accounts/{account}"), &manager.token, &reassign).await).await;
    assert_eq!(status, StatusCode::OK);
    // Now the first owner opens it: no longer theirs, so the read shows on the timeline.
    app.get_account(&owner.token, account).await;
    // A change made outside the API is there too, by the database user that made it.
    sqlx::query("UPDATE accounts SET due_date = '2031-02-03' WHERE id = $1::uuid")
        .bind(account)
        .execute(&app.pool)
        .await
        .unwrap();

    let (status, page) = status_json(app.get(&timeline_path(account), &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "edit",
            "access",
            "assignment",
            "edit",
            "edit",
            "promise_resolved",
            "payment",
            "edit",
            "promise",
            "contact",
            "created"
        ],
        "{page:#}"
    );
    let entry = |n: usize| page["data"][n].clone();
    assert_eq!(page["total"], 11);
    assert_eq!(entry(0)["actor_id"], Value::Null, "a psql edit has no user");
    assert_eq!(entry(0)["data"]["changes"]["due_date"]["after"], "2031-02-03");
    assert_eq!(entry(0)["data"]["db_user"], "postgres");
    assert_eq!(entry(1)["actor_id"], owner.id.to_string());
    assert_eq!(entry(2)["actor_id"], manager.id.to_string());
    assert_eq!(entry(2)["data"]["changes"]["assigned_agent_id"]["before"], owner.id.to_string());
    assert_eq!(entry(2)["data"]["changes"]["assigned_agent_id"]["after"], f.other.id.to_string());
    let edit = entry(3);
    assert_eq!(edit["actor_name"], name_of(app, manager).await);
    assert_eq!(edit["data"]["changes"]["debtor_name"]["before"], "Siobhan O'Callaghan");
    assert_eq!(edit["data"]["changes"]["do_not_email"]["after"], true);
    // The payment kept the promise and moved the status: the rule did it, no user.
    assert_eq!(entry(4)["data"]["by_rule"], true, "{}", entry(4));
    assert_eq!(entry(4)["actor_id"], Value::Null);
    assert_eq!(entry(4)["data"]["changes"]["status"]["before"], "promise_to_pay");
    assert_eq!(entry(5)["data"]["status"], "kept");
    assert_eq!(entry(6)["amount"], "100.00");
    assert_eq!(entry(6)["currency"], "USD");
    assert_eq!(entry(6)["data"]["status"], "completed");
    assert_eq!(entry(6)["actor_id"], owner.id.to_string());
    // Making the promise moved the status, as the owner's change.
    assert_eq!(entry(7)["data"]["changes"]["status"]["after"], "promise_to_pay");
    assert_eq!(entry(7)["actor_id"], owner.id.to_string());
    assert_eq!(entry(8)["amount"], "100.00");
    assert_eq!(entry(9)["data"]["outcome"], "no_answer");
    assert_eq!(entry(9)["actor_id"], owner.id.to_string());

    // Pages follow the cursor without gaps or repeats, and kinds filter.
    let mut seen = Vec::new();
    let mut url = format!("{}?page_size=4", timeline_path(account));
    loop {
        let (status, page) = status_json(app.get(&url, &manager.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{}?page_size=4&cursor={cursor}", timeline_path(account)),
            None => break,
        }
    }
    assert_eq!(seen, kinds);
    let (_, payments) = status_json(
        app.get(&format!("{}?kind=payment,contact", timeline_path(account)), &manager.token)
            .await,
    )
    .await;
    assert_eq!(payments["total"], 2, "{payments}");
    app.assert_refused_parameter(&manager.token, &format!("{}?kind=score", timeline_path(account)), "kind")
        .await;
    app.assert_refused_parameter(&manager.token, &format!("{}?cursor=nonsense", timeline_path(account)), "cursor")
        .await;
}

async fn name_of(app: &TestApp, user: &TestUser) -> String {
    app.sql_value("SELECT name FROM users WHERE id = $1", &user.id.to_string()).await
}

#[tokio::test]
async fn a_wrap_up_records_the_call_its_promise_and_next_action_in_one_step() {
    let f = floor(spawn_app().await).await;
    let app = &f.app;
    let account = &f.account;
    let path = format!("/api/v1/accounts/{account}/wrap-up");
    // A promise's own refusal names its field by its part, in the detail too.
    let tiny = json!({"contact": {"type": "call", "direction": "outbound", "outcome": "promise_to_pay"},
                      "promise": {"amount": "1.2345", "due_date": "2030-01-04"}});
    let problem = assert_problem(
        app.post(&path, Some(&f.owner.token), &tiny).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["promise.amount"]);
    assert_eq!(problem["detail"], "promise.amount: USD allows at most 2 decimal places");
    let body = json!({
        "contact": {"type": "call", "direction": "outbound", "outcome": "promise_to_pay", "notes": "pays Friday",
                    "next_action_at": "2030-01-03T15:00:00Z"},
        "promise": {"amount": "120.00", "due_date": "2030-01-03"},
    });
    let done = app.create(&f.owner.token, &format!("{path}?wait_for=indexed"), &body).await;
    assert_eq!(done["activity"]["outcome"], "promise_to_pay");
    assert_eq!(done["promise"]["amount"], "120.00");
    assert_eq!(done["payment"], Value::Null);
    let read = app.get_account(&f.owner.token, account).await;
    assert_eq!(read["status"], "promise_to_pay");
    assert_eq!(read["next_action_at"], "2030-01-03T15:00:00Z");
    assert_eq!(read["open_promise"]["amount"], "120.00");

    // A second promise is refused, and the call that came with it is not recorded either.
    let again = json!({"contact": {"type": "call", "direction": "outbound", "outcome": "right_party"},
                       "promise": {"amount": "5.00", "due_date": "2030-01-04"}});
    assert_problem(
        app.post(&path, Some(&f.owner.token), &again).await,
        StatusCode::CONFLICT,
        "promise_already_open",
    )
    .await;
    // So is an overpayment, named by its part.
    let over = json!({"contact": {"type": "call", "direction": "outbound", "outcome": "paid"},
                      "payment": {"amount": "5000.00", "currency": "USD", "method": "card"}});
    let problem = assert_problem(
        app.post(&path, Some(&f.owner.token), &over).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "overpayment",
    )
    .await;
    assert_eq!(error_fields(&problem), ["payment.amount"]);
    // Every invalid part is named at once, before anything is tried.
    let bad = json!({"contact": {"type": "call", "notes": "x".repeat(20_000)},
                     "payment": {"amount": "-1", "currency": "USD", "method": "card"}});
    let problem = assert_problem(
        app.post(&path, Some(&f.owner.token), &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let fields = error_fields(&problem);
    assert!(
        fields.contains(&"contact.notes".to_owned()) && fields.contains(&"payment.amount".to_owned()),
        "{fields:?}"
    );
    let contacts: i64 = app
        .sql_value("SELECT count(*) FROM activities WHERE account_id = $1", account)
        .await;
    assert_eq!(contacts, 1, "only the first wrap-up's call");

    // A payment in the wrap-up, sent twice with one key, is taken once.
    let paid = json!({"contact": {"type": "call", "direction": "outbound", "outcome": "paid"},
                      "payment": {"amount": "120.00", "currency": "USD", "method": "card"}});
    let keyed = || {
        app.api()
            .request(reqwest::Method::POST, &path, Some(&f.owner.token))
            .header("idempotency-key", "wrap-1")
            .json(&paid)
    };
    let first = keyed().send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = keyed().send().await.unwrap();
    assert_eq!(second.headers()["idempotency-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    let payments: i64 = app.sql_value("SELECT count(*) FROM payments WHERE account_id = $1", account).await;
    assert_eq!(payments, 1);
    let status: String = app.sql_value("SELECT status FROM promises WHERE account_id = $1", account).await;
    assert_eq!(status, "kept", "the payment kept the promise in the same step");

    // On an account that is not theirs an agent wraps up an inbound call and a payment, not a promise.
    let inbound = json!({"contact": {"type": "call", "direction": "inbound", "outcome": "paid"},
                         "payment": {"amount": "10.00", "currency": "USD", "method": "cash"}});
    app.create(&f.other.token, &path, &inbound).await;
    let promise = json!({"contact": {"type": "call", "direction": "inbound", "outcome": "promise_to_pay"},
                         "promise": {"amount": "10.00", "due_date": "2030-02-01"}});
    assert_problem(
        app.post(&path, Some(&f.other.token), &promise).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn a_call_the_guard_refuses_wraps_up_nothing() {
    let f = floor(spawn_guarded_app().await).await;
    let app = &f.app;
    let patch = json!({"cease_communication": true});
    let (status, _) = status_json(
        app.patch(&format!("/api/v1/accounts/{}", f.account), &f.manager.token, &patch)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"contact": {"type": "call", "direction": "outbound", "outcome": "right_party"},
                      "payment": {"amount": "10.00", "currency": "USD", "method": "card"}});
    let path = format!("/api/v1/accounts/{}/wrap-up", f.account);
    assert_problem(
        app.post(&path, Some(&f.owner.token), &body).await,
        StatusCode::CONFLICT,
        "contact_blocked",
    )
    .await;
    let payments: i64 = app
        .sql_value("SELECT count(*) FROM payments WHERE account_id = $1", &f.account)
        .await;
    assert_eq!(payments, 0, "the payment did not go through without its call");
}
