//! Custom field definitions over HTTP: admins define, change, delete and restore them;
//! every role that reads accounts reads the live ones; bad definitions are refused
//! naming the field; a deleted key stays reserved; the audit trail names who did what;
//! at most 200 are live.

use arrears::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, error_fields, spawn_app, status_json};

fn keys(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect()
}

async fn define(app: &TestApp, token: &str, body: Value) -> Value {
    app.create(token, "/api/v1/fields", &body).await
}

/// POSTs `body` and asserts 422 naming exactly `fields`; returns the problem.
async fn refused(app: &TestApp, token: &str, body: Value, fields: &[&str]) -> Value {
    let response = app.post("/api/v1/fields", Some(token), &body).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), fields, "{body}: {problem}");
    problem
}

async fn restore(app: &TestApp, token: &str, key: &str) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, &format!("/api/v1/fields/{key}/restore"), Some(token))
        .send()
        .await
        .unwrap();
    status_json(response).await
}

#[tokio::test]
async fn admins_define_and_change_fields_that_every_role_reading_accounts_reads() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;

    let score = define(
        &app,
        &admin.token,
        json!({"key": "risk_score", "label": "Risk score", "type": "number", "rules": {"min": 0, "max": 999},
               "filterable": true, "sortable": true, "default": 500}),
    )
    .await;
    assert_eq!(score["type"], "number");
    assert_eq!(score["rules"], json!({"min": 0, "max": 999}));
    assert_eq!(score["default"], 500);
    assert_eq!(
        (
            &score["filterable"],
            &score["sortable"],
            &score["searchable"],
            &score["exported"],
            &score["shown"]
        ),
        (&json!(true), &json!(true), &json!(false), &json!(true), &json!(true)),
        "flags as given, the others at their defaults"
    );
    assert_eq!(
        (&score["required"], &score["deleted_at"], &score["portfolio_id"]),
        (&json!(false), &Value::Null, &Value::Null)
    );
    let product = define(
        &app,
        &admin.token,
        json!({"key": "product", "label": "Product", "type": "list", "rules": {"allowed": ["Card", " Loan "]}, "default": "card"}),
    )
    .await;
    assert_eq!(product["rules"]["allowed"], json!(["Card", "Loan"]), "stored trimmed");
    assert_eq!(product["default"], "Card", "the default in the allowed spelling");
    assert!(
        product["position"].as_i64() > score["position"].as_i64(),
        "a field without a position goes last"
    );
    define(
        &app,
        &admin.token,
        json!({"key": "branch", "label": "Branch", "type": "text", "position": 0}),
    )
    .await;

    for reader in [&admin, &manager, &agent, &viewer] {
        let (status, page) = status_json(app.get("/api/v1/fields", &reader.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(keys(&page), ["branch", "risk_score", "product"], "by position then key");
        assert_eq!(page["total"], 3);
    }
    let (status, one) = status_json(app.get("/api/v1/fields/product", &agent.token).await).await;
    assert_eq!((status, &one["label"]), (StatusCode::OK, &json!("Product")));
    assert_problem(
        app.get("/api/v1/fields/nothing", &agent.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let (_, first) = status_json(app.get("/api/v1/fields?page_size=2", &agent.token).await).await;
    assert_eq!(keys(&first), ["branch", "risk_score"]);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, second) = status_json(app.get(&format!("/api/v1/fields?page_size=2&cursor={cursor}"), &agent.token).await).await;
    assert_eq!((keys(&second), &second["next_cursor"]), (vec!["product"], &Value::Null));

    let response = app
        .patch(
            "/api/v1/fields/risk_score",
            &admin.token,
            &json!({"label": "Risk", "rules": {"min": 100}, "default": null, "required": true, "type": "number", "position": 7}),
        )
        .await;
    let (status, changed) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            &changed["label"],
            &changed["rules"],
            &changed["default"],
            &changed["required"],
            &changed["position"]
        ),
        (&json!("Risk"), &json!({"min": 100}), &Value::Null, &json!(true), &json!(7)),
        "rules replaced whole, default removed, restating the type allowed"
    );
    assert_eq!(changed["filterable"], true, "absent fields stay");
    let (_, read) = status_json(app.get("/api/v1/fields/risk_score", &viewer.token).await).await;
    assert_eq!(read["label"], "Risk");

    let problem = assert_problem(
        app.patch("/api/v1/fields/risk_score", &admin.token, &json!({"type": "text"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        error_fields(&problem),
        ["sortable", "rules.min"],
        "a new type takes only the rules and flags it allows"
    );
    let problem = assert_problem(
        app.patch("/api/v1/fields/product", &admin.token, &json!({"default": "Mortgage"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["default"]);
    assert_problem(
        app.patch("/api/v1/fields/nothing", &admin.token, &json!({"label": "X"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    for writer in [&manager, &agent, &viewer] {
        let body = json!({"key": "other", "label": "Other", "type": "boolean"});
        assert_problem(
            app.post("/api/v1/fields", Some(&writer.token), &body).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_problem(
            app.patch("/api/v1/fields/product", &writer.token, &json!({"label": "Mine"})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_problem(
            app.delete("/api/v1/fields/product", &writer.token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let (status, _) = restore(&app, &writer.token, "product").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let pending = app.user(Role::Pending).await;
    assert_problem(app.get("/api/v1/fields", &pending.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    let (_, page) = status_json(app.get("/api/v1/fields", &admin.token).await).await;
    assert_eq!(page["total"], 3, "no refused write left a trace");
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_each_field() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    refused(
        &app,
        &admin.token,
        json!({"key": "Risk Score", "label": "Risk", "type": "number"}),
        &["key"],
    )
    .await;
    refused(&app, &admin.token, json!({"key": "note", "label": "", "type": "text"}), &["label"]).await;
    refused(
        &app,
        &admin.token,
        json!({"key": "score", "label": "Score", "type": "number", "rules": {"pattern": "[0-9]+"}}),
        &["rules.pattern"],
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "code", "label": "Code", "type": "text", "rules": {"pattern": "(a"}}),
        &["rules.pattern"],
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "product", "label": "Product", "type": "list"}),
        &["rules.allowed"],
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "score", "label": "Score", "type": "number", "rules": {"min": 10, "max": 1}, "searchable": true}),
        &["searchable", "rules.min"],
    )
    .await;
    let problem = refused(
        &app,
        &admin.token,
        json!({"key": "score", "label": "Score", "type": "number", "rules": {"max": 10}, "default": 11}),
        &["default"],
    )
    .await;
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("at most 10"),
        "{problem}"
    );
    refused(
        &app,
        &admin.token,
        json!({"key": "fee", "label": "Fee", "type": "money", "default": 5}),
        &["default"],
    )
    .await;

    // Imports must keep telling built-in columns from custom ones.
    let problem = refused(
        &app,
        &admin.token,
        json!({"key": "balance", "label": "Balance owed", "type": "money"}),
        &["key"],
    )
    .await;
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("current_balance"),
        "{problem}"
    );
    refused(
        &app,
        &admin.token,
        json!({"key": "mobile_no", "label": "Phone Number", "type": "text"}),
        &["label"],
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "bucket", "label": "Bucket", "type": "text"}),
        &["key", "label"],
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "marks", "label": "???", "type": "text"}),
        &["label"],
    )
    .await;

    define(
        &app,
        &admin.token,
        json!({"key": "segment", "label": "Segment", "type": "list", "rules": {"allowed": ["retail"]}}),
    )
    .await;
    refused(
        &app,
        &admin.token,
        json!({"key": "segment_two", "label": "SEGMENT", "type": "text"}),
        &["label"],
    )
    .await;
    let problem = assert_problem(
        app.patch("/api/v1/fields/segment", &admin.token, &json!({"label": "Postcode"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["label"]);
    let malformed = app
        .post(
            "/api/v1/fields",
            Some(&admin.token),
            &json!({"key": "x", "label": "X", "type": "colour"}),
        )
        .await;
    assert_problem(malformed, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let (_, page) = status_json(app.get("/api/v1/fields", &admin.token).await).await;
    assert_eq!(keys(&page), ["segment"]);
}

#[tokio::test]
async fn a_deleted_field_keeps_its_key_reserved_until_it_is_restored() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    define(&app, &admin.token, json!({"key": "branch", "label": "Branch", "type": "text"})).await;
    define(&app, &admin.token, json!({"key": "vip", "label": "VIP", "type": "boolean"})).await;

    let (status, deleted) = status_json(app.delete("/api/v1/fields/branch", &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted["deleted_at"].is_string());
    let (_, live) = status_json(app.get("/api/v1/fields", &agent.token).await).await;
    assert_eq!((keys(&live), &live["total"]), (vec!["vip"], &json!(1)));
    assert_problem(
        app.get("/api/v1/fields/branch", &agent.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Gone for the admin who deleted it too (as after any `DELETE`), unless asked for as
    // the list asks for deleted ones; only admins may ask.
    assert_problem(
        app.get("/api/v1/fields/branch", &admin.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (status, seen) = status_json(app.get("/api/v1/fields/branch?include_deleted=true", &admin.token).await).await;
    assert_eq!((status, seen["deleted_at"].is_string()), (StatusCode::OK, true));
    assert_problem(
        app.get("/api/v1/fields/branch?include_deleted=true", &agent.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (_, all) = status_json(app.get("/api/v1/fields?include_deleted=true", &admin.token).await).await;
    assert_eq!((keys(&all), &all["total"]), (vec!["branch", "vip"], &json!(2)));
    assert_problem(
        app.get("/api/v1/fields?include_deleted=true", &agent.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let again = app
        .post(
            "/api/v1/fields",
            Some(&admin.token),
            &json!({"key": "branch", "label": "Branch office", "type": "list", "rules": {"allowed": ["North"]}}),
        )
        .await;
    let problem = assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`branch`") && detail.contains("restore"), "{detail}");
    for response in [
        app.patch("/api/v1/fields/branch", &admin.token, &json!({"label": "Office"})).await,
        app.delete("/api/v1/fields/branch", &admin.token).await,
    ] {
        assert_problem(response, StatusCode::CONFLICT, "conflict").await;
    }

    let (status, restored) = restore(&app, &admin.token, "branch").await;
    assert_eq!(
        (status, &restored["deleted_at"], &restored["label"]),
        (StatusCode::OK, &Value::Null, &json!("Branch"))
    );
    let (status, _) = restore(&app, &admin.token, "branch").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = restore(&app, &admin.token, "nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, live) = status_json(app.get("/api/v1/fields", &agent.token).await).await;
    assert_eq!(keys(&live), ["branch", "vip"]);
}

#[tokio::test]
async fn the_audit_trail_names_who_defined_changed_deleted_and_restored_a_field() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    define(&app, &admin.token, json!({"key": "branch", "label": "Branch", "type": "text"})).await;
    let changed = app
        .patch(
            "/api/v1/fields/branch",
            &admin.token,
            &json!({"label": "Office", "filterable": true}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(app.delete("/api/v1/fields/branch", &admin.token).await.status(), StatusCode::OK);
    assert_eq!(restore(&app, &admin.token, "branch").await.0, StatusCode::OK);

    let (status, trail) = status_json(app.get("/api/v1/audit?entity=field&entity_id=branch", &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let entries = trail["data"].as_array().unwrap();
    let mut actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["field.create", "field.update", "field.update", "field.update"], "{trail}");
    for entry in entries {
        assert_eq!(entry["actor_id"], json!(admin.id), "{entry}");
        assert_eq!(entry["entity_id"], "branch");
    }
    let created = entries.iter().find(|e| e["action"] == "field.create").unwrap();
    assert_eq!(created["details"]["row"]["label"], "Branch");
    assert!(
        created["details"]["row"].get("created_by").is_none(),
        "who made it is the actor, not a detail"
    );
    let changes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "field.update")
        .map(|e| &e["details"]["changes"])
        .collect();
    assert!(
        changes.contains(&&json!({"label": {"before": "Branch", "after": "Office"}, "filterable": {"before": false, "after": true}})),
        "{changes:?}"
    );
    let deletion = changes
        .iter()
        .find(|c| c["deleted_at"]["before"].is_null() && c["deleted_at"]["after"].is_string());
    let restoring = changes
        .iter()
        .find(|c| c["deleted_at"]["before"].is_string() && c["deleted_at"]["after"].is_null());
    assert!(deletion.is_some() && restoring.is_some(), "{changes:?}");
    assert_eq!(
        deletion.unwrap().as_object().unwrap().len(),
        1,
        "a deletion changes deleted_at only"
    );
}

#[tokio::test]
async fn at_most_two_hundred_fields_are_live() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    sqlx::query("INSERT INTO field_definitions (key, label, type) SELECT 'f' || i, 'Field ' || i, 'number' FROM generate_series(1, 199) i")
        .execute(&app.pool)
        .await
        .unwrap();
    let last = define(&app, &admin.token, json!({"key": "last", "label": "Last", "type": "boolean"})).await;
    assert_eq!(last["position"], 1, "after every field (the inserted ones are at 0)");
    let over = app
        .post(
            "/api/v1/fields",
            Some(&admin.token),
            &json!({"key": "one_more", "label": "One more", "type": "boolean"}),
        )
        .await;
    let problem = assert_problem(over, StatusCode::CONFLICT, "conflict").await;
    assert!(problem["detail"].as_str().unwrap().contains("200"), "{problem}");

    assert_eq!(app.delete("/api/v1/fields/f1", &admin.token).await.status(), StatusCode::OK);
    define(
        &app,
        &admin.token,
        json!({"key": "one_more", "label": "One more", "type": "boolean"}),
    )
    .await;
    let (status, problem) = restore(&app, &admin.token, "f1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (_, page) = status_json(app.get("/api/v1/fields?page_size=1", &admin.token).await).await;
    assert_eq!(page["total"], 200);
}
