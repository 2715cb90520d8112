use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app, status_json};

#[tokio::test]
async fn admin_creates_lists_changes_role_and_disables() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let body = json!({"email": "agent@example.com", "name": "Agent Smith", "role": "agent", "password": PASSWORD});
    let (status, created) = status_json(app.post("/api/v1/users", Some(&admin.token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["role"], "agent");
    let id = created["id"].as_str().unwrap();

    let (status, changed) = status_json(
        app.patch(&format!("/api/v1/users/{id}"), &admin.token, &json!({"role": "manager"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["role"], "manager");

    let (_, tokens) = app.login("agent@example.com", PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", token).await.status(), StatusCode::OK);
    let (status, disabled) = status_json(
        app.patch(&format!("/api/v1/users/{id}"), &admin.token, &json!({"disabled": true}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disabled["disabled"], true);
    assert_problem(app.get("/api/v1/auth/me", token).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refresh = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": tokens["refresh_token"]}))
        .await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    // A disabled user's right password gets the answer a wrong one gets: no enumeration.
    let (status, body) = app.login("agent@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_credentials");

    let own = app
        .patch(&format!("/api/v1/users/{}", admin.id), &admin.token, &json!({"disabled": true}))
        .await;
    assert_problem(own, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn user_list_is_paginated_with_a_cursor() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    for _ in 0..4 {
        app.user(Role::Agent).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?page_size=2&cursor={c}"),
            None => "/api/v1/users?page_size=2".to_owned(),
        };
        let (status, page) = status_json(app.get(&path, &admin.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 5);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen.len(), 5);
    assert_eq!(unique.len(), 5);

    assert_problem(
        app.get("/api/v1/users?page_size=0", &admin.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users?cursor=garbage", &admin.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users?sort=name", &admin.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test]
async fn only_admins_manage_users() {
    let app = spawn_app().await;
    for role in [Role::Manager, Role::Agent, Role::Viewer] {
        let user = app.user(role).await;
        assert_problem(app.get("/api/v1/users", &user.token).await, StatusCode::FORBIDDEN, "forbidden").await;
        let body = json!({"email": "x@example.com", "name": "X", "role": "admin", "password": PASSWORD});
        assert_problem(
            app.post("/api/v1/users", Some(&user.token), &body).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let patch = app
            .patch(&format!("/api/v1/users/{}", user.id), &user.token, &json!({"role": "admin"}))
            .await;
        assert_problem(patch, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let anonymous = app.request(reqwest::Method::GET, "/api/v1/users", None).send().await.unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn managers_page_through_the_people_who_work_accounts_by_name_without_their_emails() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let mut ids = std::collections::HashMap::new();
    for (name, role) in [
        ("zoë Adams", "agent"),
        ("Bob | Brown", "agent"),
        ("carol Chen", "manager"),
        ("Victor Viewer", "viewer"),
        ("Dan Disabled", "agent"),
    ] {
        let email = format!("{}@example.com", name.split_whitespace().next().unwrap().to_lowercase());
        let body = json!({"email": email, "name": name, "role": role, "password": PASSWORD});
        let created = app.create(&admin.token, "/api/v1/users", &body).await;
        ids.insert(name, created["id"].as_str().unwrap().to_owned());
    }
    let disabled = app
        .patch(
            &format!("/api/v1/users/{}", ids["Dan Disabled"]),
            &admin.token,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    // Admins, managers and agents who are enabled, by name in any case; never viewers.
    let (people, total) = directory(&app, &manager.token, "").await;
    let names: Vec<&str> = people.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(total as usize, names.len());
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted, "by name, case aside");
    for name in ["zoë Adams", "Bob | Brown", "carol Chen"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!names.contains(&"Victor Viewer") && !names.contains(&"Dan Disabled"), "{names:?}");
    assert_eq!(
        names.len(),
        5,
        "the admin and manager signed in, and three who work accounts: {names:?}"
    );
    let carol = people.iter().find(|p| p["name"] == "carol Chen").unwrap();
    assert_eq!(carol["role"], "manager");
    assert_eq!(carol["id"], ids["carol Chen"].as_str());

    let (found, _) = directory(&app, &manager.token, "q=ADAMS").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], ids["zoë Adams"].as_str());
    let (with_disabled, _) = directory(&app, &manager.token, "include_disabled=true&q=dan").await;
    assert_eq!(with_disabled.len(), 1);
    assert_eq!(with_disabled[0]["disabled"], true);

    let by_id = format!("/api/v1/agents?id={},{}", ids["Bob | Brown"], ids["Victor Viewer"]);
    let (status, page) = status_json(app.get(&by_id, &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1, "a viewer is not in the directory: {page}");
    assert_eq!(page["data"][0]["name"], "Bob | Brown");

    for bad in [
        format!("/api/v1/agents?q={}", "x".repeat(201)),
        "/api/v1/agents?id=nope".to_owned(),
        format!("/api/v1/agents?id={}", vec![ids["carol Chen"].as_str(); 201].join(",")),
        "/api/v1/agents?include_disabled=maybe".to_owned(),
        "/api/v1/agents?cursor=garbage".to_owned(),
        "/api/v1/agents?email=carol@example.com".to_owned(),
    ] {
        assert_problem(app.get(&bad, &manager.token).await, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    }
    for role in [Role::Agent, Role::Viewer] {
        let user = app.user(role).await;
        assert_problem(app.get("/api/v1/agents", &user.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(app.get("/api/v1/agents", &admin.token).await.status(), StatusCode::OK);
}

/// Every page of `/api/v1/agents?{query}` two at a time: the people, and the total.
async fn directory(app: &TestApp, token: &str, query: &str) -> (Vec<serde_json::Value>, u64) {
    let mut people = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/agents?{query}&page_size=2&cursor={c}"),
            None => format!("/api/v1/agents?{query}&page_size=2"),
        };
        let (status, page) = status_json(app.get(&path, token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for person in page["data"].as_array().unwrap() {
            assert!(person.get("email").is_none(), "the directory shows no email: {person}");
            people.push(person.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (people, page["total"].as_u64().unwrap()),
        }
    }
}
