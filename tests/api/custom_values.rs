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

/// Grants the portfolio `id` to `user`.
async fn grant(app: &TestApp, admin: &TestUser, id: &str, user: &TestUser) {
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{id}/grants"),
        &json!({"user_id": user.id}),
    )
    .await;
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

    // A portfolio not granted to the manager is not theirs to place accounts in.
    let body = json!({"debtor_name": "X", "original_balance": "1.00", "currency": "USD", "portfolio_id": acme});
    let problem = refused(app.post("/api/v1/accounts", Some(&manager.token), &body).await, &["portfolio_id"]).await;
    assert!(problem.to_string().contains("not granted to you"), "{problem}");
    grant(&app, &admin, &acme, &manager).await;

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
    grant(&app, &admin, &acme, &manager).await;

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
    grant(&app, &admin, &acme, &manager).await;
    grant(&app, &admin, &acme, &agent).await;
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

    let account = app.get_account(&manager.token, &usd).await;
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
    grant(&app, &admin, &acme, &manager).await;
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
    let grants = format!("/api/v1/portfolios/{acme}/grants");
    // The agent was granted the portfolio when the account was assigned to them, and the
    // grant was revoked since.
    let grant = id_of(&app.create(&admin.token, &grants, &json!({"user_id": agent.id})).await);
    let placed = id_of(
        &app.account(&admin.token, json!({"portfolio_id": acme, "assigned_agent_id": agent.id}))
            .await,
    );
    let revoked = app.delete(&format!("{grants}/{grant}"), &admin.token).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
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
            format!("/api/v1/accounts/{id}/history"),
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

/// Every list keeps to the portfolios a user sees, as reads by id do: the account
/// search, the payments list, its statistics and both exports, bulk updates (by filter
/// and by id) and the account's history. An account goes only to an agent granted its
/// portfolio.
#[tokio::test]
async fn lists_exports_and_bulk_updates_keep_to_the_callers_portfolios() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let outsider = app.user(Role::Agent).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let zenith = portfolio(&app, &admin, "Zenith Loans").await;
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{acme}/grants"),
        &json!({"user_id": agent.id}),
    )
    .await;
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{acme}/grants"),
        &json!({"user_id": manager.id}),
    )
    .await;
    let mut ids = Vec::new();
    for (name, portfolio) in [
        ("Acme Person", Some(&acme)),
        ("Zenith Person", Some(&zenith)),
        ("Free Person", None),
    ] {
        let id = id_of(
            &app.account(&admin.token, json!({"debtor_name": name, "portfolio_id": portfolio}))
                .await,
        );
        app.create_payment(&admin.token, &id, &json!({"amount": "10.00", "currency": "USD", "method": "card"}))
            .await;
        ids.push(id);
    }
    let (in_acme, in_zenith, in_none) = (&ids[0], &ids[1], &ids[2]);
    let listed = |token: String, path: &'static str| {
        let app = &app;
        async move {
            let (status, page) = status_json(app.get(path, &token).await).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let mut ids: Vec<String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row.get("account_id").unwrap_or(&row["id"]).as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    eventually("the accounts and payments are indexed", || async {
        listed(admin.token.clone(), "/api/v1/accounts").await.len() == 3 && listed(admin.token.clone(), "/api/v1/payments").await.len() == 3
    })
    .await;
    let sorted = |picked: &[&String]| {
        let mut ids: Vec<String> = picked.iter().map(|s| (*s).clone()).collect();
        ids.sort();
        ids
    };
    for (user, seen) in [
        (&agent, sorted(&[in_acme, in_none])),
        (&manager, sorted(&[in_acme, in_none])),
        (&outsider, sorted(&[in_none])),
    ] {
        assert_eq!(listed(user.token.clone(), "/api/v1/accounts").await, seen);
    }
    // Payments: a manager those of their portfolios; an agent only those of the accounts
    // assigned to them, and none of these is (list_scope.rs).
    assert_eq!(listed(manager.token.clone(), "/api/v1/payments").await, sorted(&[in_acme, in_none]));
    for user in [&agent, &outsider] {
        assert_eq!(listed(user.token.clone(), "/api/v1/payments").await, Vec::<String>::new());
    }
    let (_, stats) = status_json(app.get("/api/v1/payments/stats", &outsider.token).await).await;
    assert_eq!(stats["currencies"][0]["today"]["count"], 1, "{stats}");

    let csv = app
        .get("/api/v1/accounts/export?format=csv", &manager.token)
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("Acme Person") && csv.contains("Free Person"), "{csv}");
    assert!(!csv.contains("Zenith Person"), "{csv}");
    let csv = app.get("/api/v1/payments/export", &manager.token).await.text().await.unwrap();
    assert!(csv.contains("Free Person") && csv.contains("Acme Person"), "{csv}");
    assert!(!csv.contains("Zenith Person"), "{csv}");

    // A bulk update by filter selects what the submitter sees; by id, the others are
    // refused as not found.
    let tagged = json!({"filter": {}, "patch": {"tags_add": ["scoped"]}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &tagged).await).await;
    assert_eq!((status, job["total"].as_i64()), (StatusCode::ACCEPTED, Some(2)), "{job}");
    let by_id = json!({"ids": [in_zenith, in_none], "patch": {"tags_add": ["by-id"]}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &by_id).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the bulk update finishes", || async {
        status_json(app.get(&path, &manager.token).await).await.1["finished_at"].is_string()
    })
    .await;
    let (_, failures) = status_json(app.get(&format!("{path}/failures"), &manager.token).await).await;
    assert_eq!(failures["total"], 1, "{failures}");
    assert_eq!(failures["data"][0]["error"], "account not found");
    let tags: Vec<String> = sqlx::query_scalar("SELECT tags FROM accounts WHERE id = $1")
        .bind(uuid::Uuid::parse_str(in_zenith).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(tags.is_empty(), "the account outside the scope is untouched: {tags:?}");

    let history = app.get(&format!("/api/v1/accounts/{in_zenith}/history"), &manager.token).await;
    assert_problem(history, StatusCode::NOT_FOUND, "not_found").await;
    let history = app.get(&format!("/api/v1/accounts/{in_acme}/history"), &manager.token).await;
    assert_eq!(history.status(), StatusCode::OK);

    // An account goes only to an agent granted its portfolio: on a change, and per
    // account in a bulk update.
    let refused_assignment = app
        .patch(
            &format!("/api/v1/accounts/{in_acme}"),
            &admin.token,
            &json!({"assigned_agent_id": outsider.id}),
        )
        .await;
    refused(refused_assignment, &["assigned_agent_id"]).await;
    let moved = app
        .patch(
            &format!("/api/v1/accounts/{in_none}"),
            &admin.token,
            &json!({"assigned_agent_id": outsider.id}),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let into_acme = app
        .patch(&format!("/api/v1/accounts/{in_none}"), &admin.token, &json!({"portfolio_id": acme}))
        .await;
    refused(into_acme, &["assigned_agent_id"]).await;
    let assign = json!({"ids": [in_acme, in_zenith], "patch": {"assigned_agent_id": agent.id}});
    let (_, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&admin.token), &assign).await).await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the assignment finishes", || async {
        status_json(app.get(&path, &admin.token).await).await.1["finished_at"].is_string()
    })
    .await;
    let (_, failures) = status_json(app.get(&format!("{path}/failures"), &admin.token).await).await;
    assert_eq!(failures["total"], 1, "{failures}");
    assert!(
        failures["data"][0]["error"].as_str().unwrap().starts_with("assigned_agent_id: "),
        "{failures}"
    );
    let owners: Vec<(uuid::Uuid, Option<uuid::Uuid>)> =
        sqlx::query_as("SELECT id, assigned_agent_id FROM accounts WHERE portfolio_id IS NOT NULL ORDER BY debtor_name")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(owners[0].1, Some(agent.id), "Acme's account went to the agent granted it");
    assert_eq!(owners[1].1, None, "Zenith's did not");
}

/// Exports and bulk updates select accounts with the account list's whole grammar,
/// custom fields included, and name a bad custom parameter as the list does.
#[tokio::test]
async fn exports_and_bulk_updates_filter_on_custom_fields() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    app.create(
        &admin.token,
        "/api/v1/fields",
        &json!({"key": "risk_score", "label": "Risk score", "type": "number", "filterable": true}),
    )
    .await;
    let mut ids = Vec::new();
    for (name, score) in [("Low Risk", 300), ("High Risk", 700)] {
        let account = app
            .account(&manager.token, json!({"debtor_name": name, "custom_fields": {"risk_score": score}}))
            .await;
        ids.push(id_of(&account));
    }
    eventually("the accounts are indexed", || async {
        let (_, page) = status_json(app.get("/api/v1/accounts?cf.risk_score.gte=600", &manager.token).await).await;
        page["total"] == 1
    })
    .await;
    let csv = app
        .get("/api/v1/accounts/export?format=csv&cf.risk_score.gte=600", &manager.token)
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("High Risk") && !csv.contains("Low Risk"), "{csv}");
    let refused_export = app.get("/api/v1/accounts/export?cf.nothing=1", &manager.token).await;
    let problem = assert_problem(refused_export, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(error_fields(&problem), ["cf.nothing"], "{problem}");

    let body = json!({"filter": {"cf.risk_score.gte": "600"}, "patch": {"tags_add": ["risky"]}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await).await;
    assert_eq!((status, job["total"].as_i64()), (StatusCode::ACCEPTED, Some(1)), "{job}");
    let body = json!({"filter": {"cf.risk_score.between": "1"}, "patch": {"tags_add": ["risky"]}});
    let response = app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(error_fields(&problem), ["filter.cf.risk_score.between"], "{problem}");
}

/// An import keeps to the importer's portfolios, as the API does: an upsert over an
/// account of a portfolio not granted to them fails that row, and a row giving an
/// account to an agent not granted its portfolio fails under the agent's column.
#[tokio::test]
async fn imports_keep_to_the_importers_portfolios_and_the_agents_grants() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let zenith = portfolio(&app, &admin, "Zenith Loans").await;
    app.create(
        &admin.token,
        &format!("/api/v1/portfolios/{acme}/grants"),
        &json!({"user_id": manager.id}),
    )
    .await;
    app.account(&admin.token, json!({"account_number": "ZEN-1", "portfolio_id": zenith}))
        .await;

    let csv = format!(
        "account_number,debtor_name,original_balance,currency,portfolio,assigned_agent_id\n\
         ZEN-1,Taken Over,100.00,USD,,\n\
         ACME-1,Ada,100.00,USD,Acme Bank,{agent}\n\
         ACME-2,Bob,100.00,USD,Acme Bank,\n",
        agent = agent.email
    );
    let job = upload(&app, &manager.token, "accounts.csv", csv.into_bytes()).await;
    assert_eq!((&job["result"]["created"], &job["failed"]), (&json!(1), &json!(2)), "{job}");
    let errors = import_errors(&app, &manager.token, &job).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1.as_str()), (2, "account_number"), "{errors:?}");
    assert!(errors[0].2.contains("not granted to you"), "{errors:?}");
    assert_eq!((errors[1].0, errors[1].1.as_str()), (3, "assigned_agent_id"), "{errors:?}");
    let (_, placed) = custom_fields_of(&app, "ZEN-1").await;
    assert_eq!(
        placed.map(|p| p.to_string()),
        Some(zenith),
        "the other portfolio's account is untouched"
    );
    let name: String = sqlx::query_scalar("SELECT debtor_name FROM accounts WHERE account_number = 'ZEN-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(name, "Jane Doe");
}

/// Account documents carry their portfolio's name for reports (Kibana splits by it):
/// renaming the portfolio queues its accounts for the index, and the next document has
/// the new name.
#[tokio::test]
async fn renaming_a_portfolio_indexes_its_accounts_again_with_the_name() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let acme = portfolio(&app, &admin, "Acme Bank").await;
    let placed = id_of(&app.account(&admin.token, json!({"portfolio_id": acme})).await);
    let elsewhere = id_of(&app.account(&admin.token, json!({})).await);
    let version = |id: String| {
        let app = &app;
        async move { app.sql_value::<i64>("SELECT search_version FROM accounts WHERE id = $1", &id).await }
    };
    let (before, other_before) = (version(placed.clone()).await, version(elsewhere.clone()).await);
    let renamed = app
        .patch(&format!("/api/v1/portfolios/{acme}"), &admin.token, &json!({"name": "Acme Credit"}))
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert!(version(placed.clone()).await > before, "the portfolio's account is queued again");
    assert_eq!(version(elsewhere).await, other_before, "others are not");
    let row = arrears::store::accounts::get(&app.pool, uuid::Uuid::parse_str(&placed).unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let docs = arrears::store::accounts::documents(&mut conn, vec![row]).await.unwrap();
    assert_eq!(docs[0].work.portfolio_name.as_deref(), Some("Acme Credit"));
}
