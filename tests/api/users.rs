use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, assert_problem, spawn_app, status_json};

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
