//! Custom fields and portfolios in `GET /api/v1/accounts`: filters by value, range and
//! presence, sorts with cursors, facets and words, typed by the live definitions; bad
//! custom field parameters named in a 400; values held before their definition typed
//! once it exists.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, eventually, names, spawn_app, status_json};

async fn indexed(app: &TestApp, token: &str, name: &str, custom: Value) -> Value {
    let body = json!({"debtor_name": name, "original_balance": "100.00", "currency": "USD", "custom_fields": custom});
    let (status, account) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    account
}

async fn search(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}"), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

/// The debtor names a query finds, sorted.
async fn found(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    let mut found = names(&search(app, user, &format!("{query}&page_size=50")).await);
    found.sort();
    found
}

/// The `(value, count)` pairs of the facet `name` of a list page.
pub(crate) fn facet(page: &Value, name: &str) -> Vec<(String, u64)> {
    page["facets"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no facet {name}: {page}"))
        .iter()
        .map(|v| (v["value"].as_str().unwrap().to_owned(), v["count"].as_u64().unwrap()))
        .collect()
}

async fn define_all(app: &TestApp, admin: &TestUser) {
    for body in [
        json!({"key": "product", "label": "Product", "type": "list", "rules": {"allowed": ["Card", "Loan"]}, "filterable": true}),
        json!({"key": "channels", "label": "Channels", "type": "multi_list", "rules": {"allowed": ["mail", "phone"]}, "filterable": true}),
        json!({"key": "secured", "label": "Secured", "type": "boolean", "filterable": true}),
        json!({"key": "risk_score", "label": "Risk score", "type": "number", "filterable": true, "sortable": true}),
        json!({"key": "credit_limit", "label": "Credit limit", "type": "money", "filterable": true, "sortable": true}),
        json!({"key": "charged_off", "label": "Charged off", "type": "date", "filterable": true, "sortable": true}),
        json!({"key": "note", "label": "Note", "type": "text", "searchable": true}),
        json!({"key": "branch", "label": "Branch", "type": "text", "filterable": true}),
    ] {
        app.create(&admin.token, "/api/v1/fields", &body).await;
    }
}

#[tokio::test]
async fn custom_fields_filter_sort_facet_and_search_by_their_types() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    // A viewer reads every account in full; an agent filters, sorts, facets and matches
    // custom fields only in their own accounts (hidden_fields.rs).
    let reader = app.user(Role::Viewer).await;
    define_all(&app, &admin).await;
    let token = &admin.token;
    indexed(
        &app,
        token,
        "Ann",
        json!({"product": "Card", "channels": ["mail", "phone"], "secured": true, "risk_score": 612.5,
               "credit_limit": "1500.00", "charged_off": "2025-03-01", "note": "moved from Quixotic Lending",
               "branch": "North"}),
    )
    .await;
    indexed(
        &app,
        token,
        "Bob",
        json!({"product": "Loan", "channels": ["phone"], "secured": false, "risk_score": 580,
               "credit_limit": "250.50", "charged_off": "2024-11-15", "branch": "South"}),
    )
    .await;
    indexed(&app, token, "Cid", json!({"product": "Card", "risk_score": 700.0001})).await;
    indexed(&app, token, "Dee", json!({})).await;

    for (query, expected) in [
        ("cf.product=card", vec!["Ann", "Cid"]),
        ("cf.product=Loan,card", vec!["Ann", "Bob", "Cid"]),
        ("cf.channels=phone", vec!["Ann", "Bob"]),
        ("cf.channels=mail", vec!["Ann"]),
        ("cf.secured=true", vec!["Ann"]),
        ("cf.secured=false", vec!["Bob"]),
        ("cf.risk_score.gte=612.5", vec!["Ann", "Cid"]),
        ("cf.risk_score.gt=612.5", vec!["Cid"]),
        ("cf.risk_score.lt=612.5", vec!["Bob"]),
        ("cf.risk_score=700.0001", vec!["Cid"]),
        ("cf.risk_score.gte=600&cf.risk_score.lte=700", vec!["Ann"]),
        ("cf.credit_limit.lte=250.50", vec!["Bob"]),
        ("cf.credit_limit.gt=250.50", vec!["Ann"]),
        ("cf.charged_off.lt=2025-01-01", vec!["Bob"]),
        ("cf.charged_off=2025-03-01", vec!["Ann"]),
        ("cf.risk_score.exists=false", vec!["Dee"]),
        ("cf.channels.exists=true", vec!["Ann", "Bob"]),
        ("cf.branch=North", vec!["Ann"]),
        ("cf.product=card&cf.risk_score.gte=650", vec!["Cid"]),
        ("q=quixotic", vec!["Ann"]),
    ] {
        assert_eq!(found(&app, &reader, query).await, expected, "{query}");
    }

    // Sorted by a custom field, page by page: accounts without a value last both ways.
    for (sort, expected) in [
        ("cf.risk_score", ["Bob", "Ann", "Cid", "Dee"]),
        ("-cf.risk_score", ["Cid", "Ann", "Bob", "Dee"]),
        ("-cf.credit_limit", ["Ann", "Bob", "Cid", "Dee"]),
        ("cf.charged_off", ["Bob", "Ann", "Cid", "Dee"]),
    ] {
        let mut seen = Vec::new();
        let mut query = format!("sort={sort}&page_size=1");
        loop {
            let page = search(&app, &reader, &query).await;
            seen.extend(names(&page));
            match page["next_cursor"].as_str() {
                Some(cursor) => query = format!("sort={sort}&page_size=1&cursor={cursor}"),
                None => break,
            }
        }
        let (ordered, missing) = seen.split_at(if sort.contains("risk") { 3 } else { 2 });
        assert_eq!(ordered, &expected[..ordered.len()], "{sort}");
        let mut missing = missing.to_vec();
        missing.sort();
        let mut rest = expected[ordered.len()..].to_vec();
        rest.sort();
        assert_eq!(missing, rest, "{sort}: missing values last");
    }

    let page = search(&app, &reader, "facets=cf.product,cf.channels,cf.secured,cf.branch").await;
    assert_eq!(facet(&page, "cf.product"), [("Card".to_owned(), 2), ("Loan".to_owned(), 1)]);
    assert_eq!(facet(&page, "cf.channels"), [("phone".to_owned(), 2), ("mail".to_owned(), 1)]);
    assert_eq!(facet(&page, "cf.secured"), [("false".to_owned(), 1), ("true".to_owned(), 1)]);
    assert_eq!(facet(&page, "cf.branch"), [("North".to_owned(), 1), ("South".to_owned(), 1)]);
}

#[tokio::test]
async fn bad_custom_field_parameters_are_named() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    define_all(&app, &admin).await;
    app.create(
        &admin.token,
        "/api/v1/fields",
        &json!({"key": "gone", "label": "Gone", "type": "text", "filterable": true}),
    )
    .await;
    let deleted = app.delete("/api/v1/fields/gone", &admin.token).await;
    assert_eq!(deleted.status(), StatusCode::OK);
    for (query, field) in [
        ("cf.nothing=1", "cf.nothing"),
        ("cf.gone=x", "cf.gone"),
        ("cf.note=x", "cf.note"),
        ("cf.product=bike", "cf.product"),
        ("cf.product.gte=1", "cf.product.gte"),
        ("cf.risk_score=high", "cf.risk_score"),
        ("cf.risk_score=1,2", "cf.risk_score"),
        ("cf.risk_score=1.00001", "cf.risk_score"),
        ("cf.risk_score.gte=100000000000", "cf.risk_score.gte"),
        ("cf.risk_score.between=1", "cf.risk_score.between"),
        ("cf.charged_off.lt=yesterday", "cf.charged_off.lt"),
        ("cf.secured=maybe", "cf.secured"),
        ("cf.secured.exists=perhaps", "cf.secured.exists"),
        ("sort=cf.product", "sort"),
        ("sort=-cf.nothing", "sort"),
        ("facets=cf.risk_score", "facets"),
        ("facets=cf.note", "facets"),
        ("facets=status,cf.gone", "facets"),
    ] {
        app.assert_refused_parameter(&manager.token, &format!("/api/v1/accounts?{query}"), field)
            .await;
    }
    let problem = assert_problem(
        app.get("/api/v1/accounts?cf.nothing=1&cf.note=x&sort=cf.product", &manager.token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_eq!(
        error_fields(&problem),
        ["cf.nothing", "cf.note", "sort"],
        "every bad one named: {problem}"
    );
}

#[tokio::test]
async fn values_held_before_their_definition_are_typed_once_it_exists_or_changes() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    indexed(&app, token, "Early Bird", json!({"territory": "north", "memo": "kumquat harvest"})).await;
    indexed(&app, token, "Late Owl", json!({"territory": "south"})).await;
    app.assert_refused_parameter(token, "/api/v1/accounts?cf.territory=north", "cf.territory")
        .await;

    app.create(
        token,
        "/api/v1/fields",
        &json!({"key": "territory", "label": "Territory", "type": "list", "rules": {"allowed": ["North", "South"]}, "filterable": true}),
    )
    .await;
    eventually("the accounts holding territory are indexed again", || async {
        found(&app, &admin, "cf.territory=north").await == ["Early Bird"]
    })
    .await;

    app.create(token, "/api/v1/fields", &json!({"key": "memo", "label": "Memo", "type": "text"}))
        .await;
    assert!(found(&app, &admin, "q=kumquat").await.is_empty(), "not searchable yet");
    let changed = app.patch("/api/v1/fields/memo", token, &json!({"searchable": true})).await;
    assert_eq!(changed.status(), StatusCode::OK);
    eventually("a field made searchable finds the words accounts hold", || async {
        found(&app, &admin, "q=kumquat").await == ["Early Bird"]
    })
    .await;

    let deleted = app.delete("/api/v1/fields/territory", token).await;
    assert_eq!(deleted.status(), StatusCode::OK);
    app.assert_refused_parameter(token, "/api/v1/accounts?cf.territory=north", "cf.territory")
        .await;
}
