//! Rate limits per user and per client address, per class, shared through Redis.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use arrears::domain::role::Role;

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_owned()
}

#[tokio::test]
async fn a_user_over_budget_gets_a_429_problem_with_retry_after_and_others_go_on() {
    let app = spawn_app_with(|s| s.rate_limit_per_user = 4).await;
    let agent = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let response = app.get("/api/v1/accounts", &agent.token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "4");
        assert_eq!(header(&response, "ratelimit-policy"), "4;w=60");
        remaining.push(header(&response, "ratelimit-remaining"));
    }
    assert_eq!(remaining, ["3", "2", "1", "0"]);
    let refused = app.get("/api/v1/accounts", &agent.token).await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    let problem = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("4 such requests every 60 s"),
        "{problem}"
    );
    let writes = app.post("/api/v1/accounts", Some(&agent.token), &json!({})).await;
    assert_eq!(
        writes.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "every route spends from the same budget"
    );
    let response = app.get("/api/v1/accounts", &other.token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "another user behind the same address is not limited"
    );
    let health = app.request(reqwest::Method::GET, "/health", None).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "health checks are not limited");
}

#[tokio::test]
async fn one_client_address_is_limited_across_users_and_without_a_token() {
    let app = spawn_app_with(|s| s.rate_limit_per_ip = 6).await;
    // Logging two users in spends two requests of the address's six.
    let first = app.user(Role::Agent).await;
    let second = app.user(Role::Agent).await;
    assert_eq!(app.get("/api/v1/accounts", &first.token).await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/accounts", &second.token).await.status(), StatusCode::OK);
    let anonymous = app.request(reqwest::Method::GET, "/api/v1/accounts", None).send().await.unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "a request without a token still counts"
    );
    let forged = app.get("/api/v1/accounts", "not-a-token").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let refused = app.get("/api/v1/accounts", &second.token).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn bulk_import_and_export_submissions_have_a_tighter_budget_of_their_own() {
    let app = spawn_app_with(|s| s.rate_limit_bulk_per_user = 2).await;
    let manager = app.user(Role::Manager).await;
    for _ in 0..2 {
        let response = app.get("/api/v1/accounts/export?format=csv", &manager.token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "2");
    }
    let bulk = app
        .post(
            "/api/v1/accounts/bulk-update",
            Some(&manager.token),
            &json!({"ids": [], "patch": {"status": "closed"}}),
        )
        .await;
    assert_problem(bulk, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let import = app
        .request(reqwest::Method::POST, "/api/v1/imports", Some(&manager.token))
        .send()
        .await
        .unwrap();
    assert_problem(import, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let list = app.get("/api/v1/accounts", &manager.token).await;
    assert_eq!(list.status(), StatusCode::OK, "ordinary requests have their own budget");
    assert_ne!(header(&list, "ratelimit-limit"), "2");
}

#[tokio::test]
async fn two_instances_sharing_redis_spend_one_budget() {
    let redis = Some("redis://127.0.0.1:6379/".to_owned());
    let first = spawn_app_with(|s| {
        s.redis_url = redis.clone();
        s.rate_limit_per_user = 6;
    })
    .await;
    let second = spawn_peer(&first, |_| {}).await;
    let agent = first.user(Role::Agent).await;
    for app in [&first, &second, &first, &second, &first, &second] {
        assert_eq!(app.get("/api/v1/accounts", &agent.token).await.status(), StatusCode::OK);
    }
    for app in [&first, &second] {
        let refused = app.get("/api/v1/accounts", &agent.token).await;
        assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

/// `RateLimit-Remaining` of an answer that must be 200.
fn remaining_of(response: &reqwest::Response) -> u32 {
    assert_eq!(response.status(), StatusCode::OK);
    header(response, "ratelimit-remaining").parse().unwrap()
}

async fn list(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/api/v1/accounts", token).await
}

/// The remaining budget of the first request `app` lets through, trying for up to 10 s.
async fn first_allowed(app: &TestApp, token: &str) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = list(app, token).await;
        if response.status() == StatusCode::OK {
            return remaining_of(&response);
        }
        assert!(std::time::Instant::now() < deadline, "no request let through within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn during_a_redis_outage_each_instance_counts_alone_and_shares_again_after() {
    let redis = crate::ws::RedisServer::start();
    let redis_socket = redis.socket();
    let first = spawn_app_with(|s| {
        s.redis_url = Some(redis.url());
        s.rate_limit_per_user = 4;
    })
    .await;
    let second = spawn_peer(&first, |_| {}).await;
    let token = first.user(Role::Agent).await.token;
    let shared = [
        remaining_of(&list(&first, &token).await),
        remaining_of(&list(&second, &token).await),
        remaining_of(&list(&first, &token).await),
    ];
    assert_eq!(shared, [3, 2, 1], "one budget while Redis answers");

    drop(redis);
    for app in [&first, &second] {
        let mut counted = Vec::new();
        for _ in 0..4 {
            counted.push(remaining_of(&list(app, &token).await));
        }
        assert_eq!(counted, [3, 2, 1, 0], "without Redis each instance counts the whole budget itself");
        assert_problem(list(app, &token).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }

    let _redis = crate::ws::RedisServer::start_at(redis_socket);
    // Both instances spent their own budgets: only a count in Redis (empty again) lets a
    // request through.
    let back = [
        first_allowed(&first, &token).await,
        first_allowed(&second, &token).await,
        remaining_of(&list(&first, &token).await),
        remaining_of(&list(&second, &token).await),
    ];
    assert_eq!(back, [3, 2, 1, 0], "one budget again once Redis is back");
    for app in [&first, &second] {
        assert_problem(list(app, &token).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}
