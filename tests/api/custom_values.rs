//! Custom field values and portfolios on every write path: the API's create and change,
//! imports (columns mapped by key or label, cells read per type), bulk updates, and
//! exports that write each value typed. Each path refuses a bad value naming the field
//! (or the file's column) and stores the canonical form.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, eventually, id_of, spawn_app, status_json};

/// Defines the fields the tests below use: a number with bounds and a default, money, a
/// date, a boolean, a list, a multi_list, a text that is required, and one that exports
/// leave out.
async fn define_fields(app: &TestApp, admin: &TestUser) {
    for body in [
        json!({"key": "risk_score", "label": "Risk score", "type": "number", "rules": {"min": 0, "max": 999}, "default": 500}),
        json!({"key": "fee", "label": "Collection fee", "type": "money"}),
        json!({"key": "charge_off", "label": "Charge-off date", "type": "date"}),
        json!({"key": "secured", "label": "Secured", "type": "boolean"}),
        json!({"key": "product", "label": "Product", "type": "list", "rules": {"allowed": ["Card", "Loan"]}}),
        json!({"key": "channels", "label": "Channels", "type": "multi_list", "rules": {"allowed": ["Web", "Branch", "Phone"]}}),
        json!({"key": "branch", "label": "Branch office", "type": "text", "required": true}),
        json!({"key": "internal_note", "label": "Internal note", "type": "text", "exported": false}),
    ] {
        app.create(&admin.token, "/api/v1/fields", &body).await;
    }
}

async fn portfolio(app: &TestApp, admin: &TestUser, name: &str) -> String {
    id_of(&app.create(&admin.token, "/api/v1/portfolios", &json!({"name": name})).await)
}

async fn refused(response: reqwest::Response, fields: &[&str]) -> Value {
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), fields, "{problem}");
    problem
}

#[tokio::test]
async fn the_api_types_values_fills_defaults_and_names_each_bad_one() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    define_fields(&app, &admin).await;

    let created = app
        .account(
            &manager.token,
            json!({"custom_fields": {"branch": " North ", "fee": "12.5", "product": "card", "channels": ["phone", "Web"],
                   "legacy": {"free": ["json"]}}}),
        )
        .await;
    assert_eq!(
        created["custom_fields"],
        json!({"branch": "North", "fee": "12.50", "product": "Card", "channels": ["Web", "Phone"], "risk_score": 500,
               "legacy": {"free": ["json"]}}),
        "canonical values, the default filled in, keys without a definition kept as sent"
    );

    let bad = json!({"debtor_name": "Bad", "original_balance": "10", "currency": "JPY",
        "custom_fields": {"risk_score": 1000, "fee": "1.50", "charge_off": "31/12/2025", "secured": "yes", "product": "Boat"}});
    let problem = refused(
        app.post("/api/v1/accounts", Some(&manager.token), &bad).await,
        &[
            "custom_fields.risk_score",
            "custom_fields.fee",
            "custom_fields.charge_off",
            "custom_fields.secured",
            "custom_fields.product",
            "custom_fields.branch",
        ],
    )
    .await;
    let message = |field: &str| {
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(
        message("custom_fields.fee").contains("JPY"),
        "money is in the account's currency: {problem}"
    );
    assert!(message("custom_fields.branch").contains("required"), "{problem}");

    let id = id_of(&created);
    let path = format!("/api/v1/accounts/{id}");
    let changed = status_json(
        app.patch(
            &path,
            &manager.token,
            &json!({"custom_fields": {"branch": "South", "risk_score": 12.25}}),
        )
        .await,
    )
    .await;
    assert_eq!(changed.0, StatusCode::OK, "{}", changed.1);
    assert_eq!(
        changed.1["custom_fields"],
        json!({"branch": "South", "risk_score": 12.25}),
        "a change replaces the object and fills no default"
    );
    refused(
        app.patch(&path, &manager.token, &json!({"custom_fields": {"risk_score": 1}})).await,
        &["custom_fields.branch"],
    )
    .await;
    let to_jpy = json!({"currency": "JPY", "custom_fields": {"branch": "x", "fee": "3.10"}});
    refused(app.patch(&path, &manager.token, &to_jpy).await, &["custom_fields.fee"]).await;
    let untouched = status_json(app.patch(&path, &manager.token, &json!({"tags": ["vip"]})).await).await;
    assert_eq!(
        untouched.0,
        StatusCode::OK,
        "a change that leaves custom_fields alone is not checked against them"
    );
}

#[tokio::test]
async fn accounts_join_live_portfolios_whose_own_fields_they_then_need() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let gone = portfolio(&app, &admin, "Closed placement").await;
    assert_eq!(
        app.delete(&format!("/api/v1/portfolios/{gone}"), &admin.token).await.status(),
        StatusCode::OK
    );
    app.create(
        &admin.token,
        "/api/v1/fields",
        &json!({"key": "placement_ref", "label": "Placement ref", "type": "text", "required": true,
                "default": "P-1", "portfolio_id": acme}),
    )
    .await;

    let outside = app.account(&manager.token, json!({})).await;
    assert_eq!(outside["portfolio_id"], Value::Null);
    assert_eq!(
        outside["custom_fields"],
        json!({}),
        "another portfolio's field neither defaults nor is required"
    );
    let inside = app.account(&manager.token, json!({"portfolio_id": acme})).await;
    assert_eq!(inside["portfolio_id"], json!(acme));
    assert_eq!(
        inside["custom_fields"],
        json!({"placement_ref": "P-1"}),
        "its own accounts take its default"
    );

    for (portfolio, message) in [(json!(gone), "deleted"), (json!(uuid::Uuid::now_v7()), "no such portfolio")] {
        let body = json!({"debtor_name": "X", "original_balance": "1.00", "currency": "USD", "portfolio_id": portfolio});
        let problem = refused(app.post("/api/v1/accounts", Some(&manager.token), &body).await, &["portfolio_id"]).await;
        assert!(problem.to_string().contains(message), "{problem}");
    }

    let path = format!("/api/v1/accounts/{}", id_of(&outside));
    refused(
        app.patch(&path, &manager.token, &json!({"portfolio_id": acme})).await,
        &["custom_fields.placement_ref"],
    )
    .await;
    let moved = status_json(
        app.patch(
            &path,
            &manager.token,
            &json!({"portfolio_id": acme, "custom_fields": {"placement_ref": "P-9"}}),
        )
        .await,
    )
    .await;
    assert_eq!((moved.0, &moved.1["portfolio_id"]), (StatusCode::OK, &json!(acme)), "{}", moved.1);

    // An agent works accounts; placing them is not theirs to do.
    let mine = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let response = app
        .patch(
            &format!("/api/v1/accounts/{}", id_of(&mine)),
            &agent.token,
            &json!({"portfolio_id": acme}),
        )
        .await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN, "field_forbidden").await;
    assert_eq!(error_fields(&problem), ["portfolio_id"]);
}

async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> Value {
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name(name.to_owned()))
        .text("mode", "upsert");
    let response = app
        .request(reqwest::Method::POST, "/api/v1/imports", Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let path = format!("/api/v1/imports/{}", body["id"].as_str().unwrap());
    eventually("the import ends", || async {
        status_json(app.get(&path, token).await).await.1["finished_at"].is_string()
    })
    .await;
    status_json(app.get(&path, token).await).await.1
}

async fn import_errors(app: &TestApp, token: &str, job: &Value) -> Vec<(i64, String, String)> {
    let path = format!("/api/v1/imports/{}/errors", job["id"].as_str().unwrap());
    let (status, page) = status_json(app.get(&path, token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut errors = Vec::new();
    for row in page["data"].as_array().unwrap() {
        for error in row["errors"].as_array().unwrap() {
            errors.push((
                row["row"].as_i64().unwrap(),
                error["column"].as_str().unwrap().to_owned(),
                error["message"].as_str().unwrap().to_owned(),
            ));
        }
    }
    errors
}

async fn custom_fields_of(app: &TestApp, number: &str) -> (Value, Option<uuid::Uuid>) {
    sqlx::query_as::<_, (sqlx::types::Json<Value>, Option<uuid::Uuid>)>(
        "SELECT custom_fields, portfolio_id FROM accounts WHERE account_number = $1",
    )
    .bind(number)
    .fetch_one(&app.pool)
    .await
    .map(|(fields, portfolio)| (fields.0, portfolio))
    .unwrap()
}

#[tokio::test]
async fn imports_map_columns_to_fields_by_key_or_label_and_report_the_rest() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    define_fields(&app, &admin).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;

    let csv = "account_number,debtor_name,original_balance,currency,Risk Score,fee,CHARGE-OFF DATE,secured,product,channels,Branch office,Portfolio,Favourite colour\n\
               IMP-001,Ada,100.00,USD,612.5,\"1,250.5\",2025-12-31,yes,loan,web; phone,North,acme bank,blue\n\
               IMP-002,Bob,100.00,USD,1000,abc,31/12/2025,maybe,Boat,Web;Fax,,Nowhere,red\n";
    let job = upload(&app, &manager.token, "accounts.csv", csv.as_bytes().to_vec()).await;
    assert_eq!(
        job["unknown_columns"],
        json!(["Favourite colour"]),
        "unmapped columns are reported: {job}"
    );
    let mapped: Vec<&Value> = job["columns"].as_array().unwrap().iter().map(|c| &c["field"]).collect();
    assert_eq!(mapped[4], "custom_fields.risk_score", "{job}");
    assert_eq!(mapped[6], "custom_fields.charge_off", "mapped by label: {job}");
    assert_eq!(mapped[11], "portfolio", "{job}");
    assert_eq!((&job["result"]["created"], &job["failed"]), (&json!(1), &json!(1)), "{job}");

    let (fields, placed) = custom_fields_of(&app, "IMP-001").await;
    assert_eq!(
        fields,
        json!({"risk_score": 612.5, "fee": "1250.50", "charge_off": "2025-12-31", "secured": true, "product": "Loan",
               "channels": ["Web", "Phone"], "branch": "North"})
    );
    assert_eq!(placed.map(|p| p.to_string()), Some(acme));

    let mut errors: Vec<(String, bool)> = import_errors(&app, &manager.token, &job)
        .await
        .into_iter()
        .map(|(row, column, message)| {
            assert_eq!(row, 3, "the second data row is line 3");
            let named = !message.is_empty();
            (column, named)
        })
        .collect();
    errors.sort();
    let columns: Vec<&str> = errors.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        columns,
        [
            "Branch office",
            "CHARGE-OFF DATE",
            "Portfolio",
            "Risk Score",
            "channels",
            "fee",
            "product",
            "secured"
        ],
        "each bad cell under its own column"
    );

    // Upsert: the row's custom cells replace those keys, the others stay.
    let update = "account_number,risk_score\nIMP-001,7\n";
    let job = upload(&app, &manager.token, "update.csv", update.as_bytes().to_vec()).await;
    assert_eq!(job["result"]["updated"], json!(1), "{job}");
    let (fields, _) = custom_fields_of(&app, "IMP-001").await;
    assert_eq!((&fields["risk_score"], &fields["branch"]), (&json!(7), &json!("North")));
}

#[tokio::test]
async fn bulk_updates_set_custom_fields_flags_due_dates_and_portfolios() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    define_fields(&app, &admin).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let usd = id_of(
        &app.account(&manager.token, json!({"custom_fields": {"branch": "North", "product": "Card"}}))
            .await,
    );
    let jpy = id_of(
        &app.account(
            &manager.token,
            json!({"currency": "JPY", "original_balance": "5000", "custom_fields": {"branch": "East"},
                   "assigned_agent_id": agent.id}),
        )
        .await,
    );
    let body = json!({"ids": [usd, jpy], "patch": {"custom_fields": {"fee": "2.50", "product": null, "secured": true},
        "do_not_call": true, "due_date": "2026-12-01", "portfolio_id": acme}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the job ends", || async {
        status_json(app.get(&path, &manager.token).await).await.1["finished_at"].is_string()
    })
    .await;
    let job = status_json(app.get(&path, &manager.token).await).await.1;
    assert_eq!((&job["succeeded"], &job["failed"]), (&json!(1), &json!(1)), "{job}");
    let failures = status_json(app.get(&format!("{path}/failures"), &manager.token).await).await.1;
    let reason = failures["data"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("custom_fields.fee"), "the JPY account cannot hold 2.50: {failures}");

    // (Read by the admin: the manager is not granted Acme, so its accounts are out of
    // their sight now.)
    let account = app.get_account(&admin.token, &usd).await;
    assert_eq!(
        account["custom_fields"],
        json!({"branch": "North", "fee": "2.50", "secured": true, "risk_score": 500})
    );
    assert_eq!(
        (&account["do_not_call"], &account["due_date"], &account["portfolio_id"]),
        (&json!(true), &json!("2026-12-01"), &json!(acme))
    );
    let untouched = app.get_account(&admin.token, &jpy).await;
    assert_eq!(
        (&untouched["do_not_call"], &untouched["portfolio_id"]),
        (&json!(false), &Value::Null),
        "a refused row is left whole"
    );

    // Agents set restrictions and fields on their own accounts; lifting a restriction,
    // moving due dates and placing accounts in portfolios are for managers.
    for patch in [
        json!({"do_not_call": false}),
        json!({"due_date": null}),
        json!({"portfolio_id": null}),
    ] {
        let body = json!({"ids": [jpy], "patch": patch});
        let response = app.post("/api/v1/accounts/bulk-update", Some(&agent.token), &body).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let body = json!({"ids": [usd], "patch": {"portfolio_id": uuid::Uuid::now_v7()}});
    refused(
        app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await,
        &["patch.portfolio_id"],
    )
    .await;
    let body = json!({"ids": [usd], "patch": {"due_date": "0999-01-01"}});
    refused(
        app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await,
        &["patch.due_date"],
    )
    .await;
}

#[tokio::test]
async fn exports_write_custom_fields_typed_and_import_back() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    define_fields(&app, &admin).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let id = id_of(
        &app.account(
            &manager.token,
            json!({"account_number": "EXP-001", "portfolio_id": acme, "custom_fields": {"branch": "North", "fee": "12.5", "internal_note": "x",
                   "charge_off": "2025-12-31", "secured": false, "channels": ["Web", "Phone"], "risk_score": 612.25}}),
        )
        .await,
    );
    eventually("the account is indexed", || async {
        let (_, page) = status_json(app.get("/api/v1/accounts?q=EXP-001", &manager.token).await).await;
        page["total"] == 1
    })
    .await;

    let response = app.get("/api/v1/accounts/export?format=xlsx&q=EXP-001", &manager.token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap().to_vec();
    let rows = crate::export::read_xlsx(&bytes);
    let row = &rows[0];
    use calamine::Data;
    assert_eq!(row["risk_score"], Data::Float(612.25), "numbers are numbers");
    assert_eq!(row["fee"], Data::Float(12.5), "money is a number");
    assert!(
        matches!(row["charge_off"], Data::DateTime(_)),
        "dates are dates: {:?}",
        row["charge_off"]
    );
    assert_eq!(row["secured"], Data::Bool(false));
    assert_eq!(row["channels"], Data::String("Web;Phone".into()));
    assert_eq!(row["portfolio"], Data::String("Acme Bank".into()));
    assert_eq!(row["branch"], Data::String("North".into()));
    assert!(!row.contains_key("internal_note"), "a field not marked for export is left out");

    // The file comes back as it went out: under a number of its own again, the account
    // it makes holds every value the same.
    sqlx::query("UPDATE accounts SET account_number = 'EXP-OLD' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let job = upload(&app, &manager.token, "export.xlsx", bytes).await;
    assert_eq!((&job["failed"], &job["result"]["created"]), (&json!(0), &json!(1)), "{job}");
    let (fields, _) = custom_fields_of(&app, "EXP-001").await;
    assert_eq!(
        fields,
        json!({"branch": "North", "fee": "12.50", "charge_off": "2025-12-31", "secured": false, "channels": ["Web", "Phone"],
               "risk_score": 612.25}),
        "everything but the field exports leave out"
    );
}

/// Users see and work the accounts of the portfolios granted to them (directly or
/// through their team; managers also those of their team's members) and the accounts
/// in no portfolio; any other account answers 404 on every read and write, as if it
/// did not exist. Admins see every account.
#[tokio::test]
async fn accounts_of_a_portfolio_are_seen_and_worked_by_its_grantees_only() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let teammate = app.user(Role::Agent).await;
    for user in [&manager, &teammate] {
        sqlx::query("UPDATE users SET team = 'East' WHERE id = $1")
            .bind(user.id)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let placed = id_of(
        &app.account(&admin.token, json!({"portfolio_id": acme, "assigned_agent_id": agent.id}))
            .await,
    );
    let free = id_of(&app.account(&admin.token, json!({"assigned_agent_id": agent.id})).await);

    let reads = |id: &str| {
        [
            format!("/api/v1/accounts/{id}"),
            format!("/api/v1/accounts/{id}/timeline"),
            format!("/api/v1/accounts/{id}/payments"),
            format!("/api/v1/accounts/{id}/activities"),
            format!("/api/v1/accounts/{id}/promises"),
            format!("/api/v1/accounts/{id}/plans"),
            format!("/api/v1/accounts/{id}/contact"),
        ]
    };
    let status_of = |user: &TestUser, path: String| {
        let app = &app;
        let token = user.token.clone();
        async move { app.get(&path, &token).await.status() }
    };
    for path in reads(&placed) {
        assert_eq!(
            status_of(&admin, path.clone()).await,
            StatusCode::OK,
            "admins see every account: {path}"
        );
        assert_eq!(status_of(&agent, path.clone()).await, StatusCode::NOT_FOUND, "not granted: {path}");
        assert_eq!(
            status_of(&manager, path.clone()).await,
            StatusCode::NOT_FOUND,
            "not granted: {path}"
        );
    }
    for path in reads(&free) {
        assert_eq!(
            status_of(&agent, path.clone()).await,
            StatusCode::OK,
            "an account in no portfolio: {path}"
        );
    }
    let contact = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let logged = app
        .post(&format!("/api/v1/accounts/{placed}/activities"), Some(&agent.token), &contact)
        .await;
    assert_problem(logged, StatusCode::NOT_FOUND, "not_found").await;
    let payment = json!({"amount": "10.00", "currency": "USD", "method": "card"});
    let paid = app
        .post(&format!("/api/v1/accounts/{placed}/payments"), Some(&agent.token), &payment)
        .await;
    assert_problem(paid, StatusCode::NOT_FOUND, "not_found").await;
    let changed = app
        .patch(&format!("/api/v1/accounts/{placed}"), &agent.token, &json!({"tags": ["x"]}))
        .await;
    assert_problem(changed, StatusCode::NOT_FOUND, "not_found").await;

    // Granted to the agent: they work it; granted to a member of the manager's team: the
    // manager sees it too.
    let grants = format!("/api/v1/portfolios/{acme}/grants");
    app.create(&admin.token, &grants, &json!({"user_id": agent.id})).await;
    assert_eq!(status_of(&agent, format!("/api/v1/accounts/{placed}")).await, StatusCode::OK);
    let logged = app
        .post(&format!("/api/v1/accounts/{placed}/activities"), Some(&agent.token), &contact)
        .await;
    assert_eq!(logged.status(), StatusCode::CREATED);
    assert_eq!(
        status_of(&manager, format!("/api/v1/accounts/{placed}")).await,
        StatusCode::NOT_FOUND
    );
    app.create(&admin.token, &grants, &json!({"user_id": teammate.id})).await;
    assert_eq!(
        status_of(&manager, format!("/api/v1/accounts/{placed}")).await,
        StatusCode::OK,
        "a manager sees what their team's members are granted"
    );
    // A grant to the team reaches its members.
    let other = portfolio(&app, &admin, "Other Bank").await;
    let elsewhere = id_of(&app.account(&admin.token, json!({"portfolio_id": other})).await);
    assert_eq!(
        status_of(&teammate, format!("/api/v1/accounts/{elsewhere}")).await,
        StatusCode::NOT_FOUND
    );
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{other}/grants"),
        &json!({"team": "East"}),
    )
    .await;
    assert_eq!(status_of(&teammate, format!("/api/v1/accounts/{elsewhere}")).await, StatusCode::OK);
}
