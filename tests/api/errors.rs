use arrears::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_route_and_wrong_method_are_problems() {
    let app = spawn_app().await;
    let user = app.user(Role::Viewer).await;
    let unknown = app
        .request(Method::GET, "/api/v1/nothing-here", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "route_not_found").await;
    let wrong = app.request(Method::PUT, "/api/v1/auth/login", None).send().await.unwrap();
    // A 405 says which methods the path takes (RFC 9110, 15.5.6).
    assert_eq!(wrong.headers()["allow"], "POST");
    assert_problem(wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let account = format!("/api/v1/accounts/{}", uuid::Uuid::new_v4());
    let wrong = app.request(Method::PUT, &account, Some(&user.token)).send().await.unwrap();
    let allowed = wrong.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allowed.contains("GET") && allowed.contains("PATCH") && !allowed.contains("PUT"),
        "{allowed}"
    );
    assert_problem(wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // The WebSocket's path takes GET only (an upgrade); any other method is a 405, not
    // the 426 that tells a GET without an upgrade to use a WebSocket client.
    let socket = app.request(Method::POST, "/api/v1/ws", None).send().await.unwrap();
    assert_eq!(socket.headers()["allow"], "GET");
    assert_problem(socket, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let malformed_id = app
        .request(Method::GET, "/api/v1/accounts/not-a-uuid", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_problem(malformed_id, StatusCode::NOT_FOUND, "route_not_found").await;
    let missing = app.get(&format!("/api/v1/accounts/{}", uuid::Uuid::new_v4()), &user.token).await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn malformed_json_wrong_type_and_oversized_bodies_are_problems() {
    let app = spawn_app_with(|s| s.max_json_body_bytes = 4096).await;
    let manager = app.user(Role::Manager).await;
    let malformed = app
        .request(Method::POST, "/api/v1/accounts", Some(&manager.token))
        .header("content-type", "application/json")
        .body("{\"debtor_name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;
    let not_an_object = app
        .request(Method::POST, "/api/v1/accounts", Some(&manager.token))
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_problem(not_an_object, StatusCode::BAD_REQUEST, "malformed_json").await;
    let text = app
        .request(Method::POST, "/api/v1/accounts", Some(&manager.token))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_problem(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let none = app
        .request(Method::POST, "/api/v1/auth/login", None)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(none, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let big = json!({"debtor_name": "x".repeat(5000), "original_balance": "1.00", "currency": "USD"});
    let oversized = app
        .request(Method::POST, "/api/v1/accounts", Some(&manager.token))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_problem(oversized, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let app = spawn_app().await;
    let none = app.request(Method::GET, "/api/v1/auth/me", None).send().await.unwrap();
    assert_problem(none, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let garbage = app.request(Method::GET, "/api/v1/auth/me", Some("not.a.jwt")).send().await.unwrap();
    assert_problem(garbage, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let basic = app
        .request(Method::GET, "/api/v1/auth/me", None)
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// The request id is always the server's own, new for every request; a client's id is
/// echoed apart, as `x-client-request-id`, when it is safe to log (issue 75, item 11).
#[tokio::test]
async fn request_ids_are_the_servers_own_and_a_clients_is_echoed_apart() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .request(reqwest::Method::GET, "/health/live", None)
            .header("x-request-id", "trace-abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-client-request-id"], "trace-abc-123");
        let own = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&own).is_ok(), "{own}");
        ids.push(own);
    }
    assert_ne!(ids[0], ids[1], "two requests with one client id keep ids of their own");
    let response = app
        .request(reqwest::Method::GET, "/health/live", None)
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-client-request-id").is_none());
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok());
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let live = app.request(reqwest::Method::GET, "/health/live", None).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app.request(reqwest::Method::GET, "/health/ready", None).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    // `/health` is readiness, and readiness includes the search backend.
    let health = app.request(reqwest::Method::GET, "/health", None).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["checks"]["database"], "ok");
    assert!(
        health["checks"]["search"].is_object() || health["checks"]["search"].is_string(),
        "{health}"
    );
    // Closing waits for connections the sync worker holds; the pool refuses new ones at once.
    let pool = app.pool.clone();
    tokio::spawn(async move { pool.close().await });
    crate::helpers::eventually("the pool is closed", || async { app.pool.is_closed() }).await;
    for path in ["/health/ready", "/health"] {
        let down = app.request(reqwest::Method::GET, path, None).send().await.unwrap();
        assert_problem(down, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    }
}
