use std::time::Duration;

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, assert_problem, error_fields, eventually, spawn_app, spawn_app_with, spawn_peer, status_json};

#[tokio::test]
async fn register_makes_a_pending_user_who_can_log_in_and_read_me() {
    let app = spawn_app_with(|s| s.allow_registration = true).await;
    let body = json!({"email": "New.Person@Example.com", "name": "New Person", "password": PASSWORD});
    let (status, user) = status_json(app.post("/api/v1/auth/register", None, &body).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(user["role"], "pending");
    assert_eq!(user["email"], "new.person@example.com");
    assert!(user.get("password_hash").is_none());

    let (status, tokens) = app.login("new.person@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["user"]["id"], user["id"]);
    let (status, me) = status_json(app.get("/api/v1/auth/me", tokens["access_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], user["id"]);
}

#[tokio::test]
async fn register_validates_and_is_off_unless_opened() {
    let app = spawn_app_with(|s| s.allow_registration = true).await;
    let bad = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "nope", "name": " ", "password": "short"}),
        )
        .await;
    let problem = assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["email", "name", "password"]);

    let role_smuggled = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "a@example.com", "name": "A", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    let problem = assert_problem(role_smuggled, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["role"]);

    let closed = spawn_app().await;
    let refused = closed
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "a@example.com", "name": "A", "password": PASSWORD}),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "registration_disabled").await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let user = app.user(Role::Agent).await;
    let (s1, b1) = app.login("nobody@example.com", PASSWORD).await;
    let (s2, b2) = app.login(&user.email, "wrong password here").await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, s1);
    assert_eq!(b1["code"], "invalid_credentials");
    assert_eq!(b1["code"], b2["code"]);
    assert_eq!(b1["detail"], b2["detail"]);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let user = app.user(Role::Agent).await;
    let (status, first) = status_json(
        app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": user.refresh_token}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rotated = first["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, user.refresh_token);
    let new_access = first["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", new_access).await.status(), StatusCode::OK);

    // The old token comes back: a thief or a replay. The whole family dies.
    let reuse = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": user.refresh_token}))
        .await;
    assert_problem(reuse, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let after = app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": rotated})).await;
    assert_problem(after, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    assert_problem(
        app.get("/api/v1/auth/me", new_access).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let unknown = app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": "made-up"})).await;
    assert_problem(unknown, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
}

#[tokio::test]
async fn logout_revokes_refresh_and_access_tokens() {
    let app = spawn_app().await;
    let user = app.user(Role::Viewer).await;
    let other_session = app.login(&user.email, PASSWORD).await.1;
    let response = app
        .post("/api/v1/auth/logout", None, &json!({"refresh_token": user.refresh_token}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get("/api/v1/auth/me", &user.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let refresh = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": user.refresh_token}))
        .await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    // Other sessions of the same user are untouched.
    assert_eq!(
        app.get("/api/v1/auth/me", other_session["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn five_failures_lock_the_email_for_that_address_until_the_lock_expires() {
    let app = spawn_app_with(|s| s.lockout_secs = 2).await;
    let user = app.user(Role::Agent).await;
    for _ in 0..5 {
        assert_eq!(app.login(&user.email, "wrong password!!").await.0, StatusCode::UNAUTHORIZED);
    }
    let locked = app
        .post("/api/v1/auth/login", None, &json!({"email": user.email, "password": PASSWORD}))
        .await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let started = std::time::Instant::now();
    crate::helpers::eventually("the lock expires and the right password signs in", || async {
        app.login(&user.email, PASSWORD).await.0 == StatusCode::OK
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the lock held: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn four_failures_then_success_resets_the_count() {
    let app = spawn_app().await;
    let user = app.user(Role::Agent).await;
    for _ in 0..4 {
        app.login(&user.email, "wrong password!!").await;
    }
    assert_eq!(app.login(&user.email, PASSWORD).await.0, StatusCode::OK);
    for _ in 0..4 {
        app.login(&user.email, "wrong password!!").await;
    }
    assert_eq!(
        app.login(&user.email, PASSWORD).await.0,
        StatusCode::OK,
        "the counter restarted after the success"
    );
}

#[tokio::test]
async fn failed_logins_are_limited_per_address_and_successes_are_free() {
    let app = spawn_app_with(|s| {
        s.login_rate_limit_per_ip = 8;
        s.lockout_threshold = 100;
        s.logins_per_account_per_minute = 100;
    })
    .await;
    let user = app.user(Role::Agent).await;
    for _ in 0..20 {
        assert_eq!(app.login(&user.email, PASSWORD).await.0, StatusCode::OK, "successes spend nothing");
    }
    for n in 0..8 {
        let (status, _) = app.login(&format!("x{n}@example.com"), PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let limited = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "x9@example.com", "password": PASSWORD}),
        )
        .await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 900);
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        app.login(&user.email, PASSWORD).await.0,
        StatusCode::OK,
        "a user who signed in from the address before still does"
    );
}

#[tokio::test]
async fn expired_access_tokens_are_refused() {
    let app = spawn_app_with(|s| s.access_token_ttl_secs = 1).await;
    let user = app.user(Role::Viewer).await;
    crate::helpers::eventually("the access token expires", || async {
        app.get("/api/v1/auth/me", &user.token).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_problem(
        app.get("/api/v1/auth/me", &user.token).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
    let refreshed = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": user.refresh_token}))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK, "a refresh brings a new access token");
}

#[tokio::test]
async fn another_instance_stops_accepting_a_logged_out_token_within_the_session_cache_ttl() {
    let app = spawn_app().await;
    let peer = spawn_peer(&app, |_| {}).await;
    let user = app.user(Role::Viewer).await;
    // The peer has read (and cached) the session.
    assert_eq!(peer.get("/api/v1/auth/me", &user.token).await.status(), StatusCode::OK);
    let response = app
        .post("/api/v1/auth/logout", None, &json!({"refresh_token": user.refresh_token}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let logged_out = std::time::Instant::now();
    eventually("the peer refuses the logged-out token", || async {
        peer.get("/api/v1/auth/me", &user.token).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    // The promise is the cache's TTL; the bound is generous for a loaded machine, and
    // the figure is printed.
    println!("the peer refused the logged-out token after {:?}", logged_out.elapsed());
    let bound = arrears::auth::session_cache::TTL + Duration::from_secs(5);
    assert!(logged_out.elapsed() < bound, "refused after {:?}", logged_out.elapsed());
}

/// schemathesis found it: PostgreSQL text cannot hold NUL, and a login whose email held
/// one answered 500.
#[tokio::test]
async fn text_with_a_nul_character_is_a_400_not_a_500() {
    let app = spawn_app().await;
    let response = app
        .post("/api/v1/auth/login", None, &json!({"email": "a\u{0}@example.com", "password": "x"}))
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert!(problem["detail"].as_str().unwrap().contains("NUL"), "{problem}");
    let admin = app.user(Role::Admin).await;
    let response = app
        .post("/api/v1/accounts", Some(&admin.token), &json!({"debtor_name": "Ann\u{0}"}))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
}

/// Issue 44, item 9: disabling a user ends every session they had, so re-enabling them
/// does not bring the old access or refresh tokens back to life.
#[tokio::test]
async fn disabling_a_user_ends_their_sessions_for_good() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    assert_eq!(app.get("/api/v1/auth/me", &agent.token).await.status(), StatusCode::OK);
    let path = format!("/api/v1/users/{}", agent.id);
    for disabled in [true, false] {
        let response = app.patch(&path, &admin.token, &json!({ "disabled": disabled })).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_problem(
        app.get("/api/v1/auth/me", &agent.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let refreshed = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": agent.refresh_token}))
        .await;
    assert_problem(refreshed, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    let (status, body) = app.login(&agent.email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", token).await.status(), StatusCode::OK);
}

/// Issue 44, item 14: with self-registration on, `409 email_taken` told anyone which
/// emails belong to staff. A taken email now gets the same answer as a new one (the
/// password is hashed either way, so the time is alike too) and its owner is told.
#[tokio::test]
async fn registering_a_taken_email_answers_like_a_new_one_and_tells_the_owner() {
    let app = spawn_app_with(|s| s.allow_registration = true).await;
    let staff = app.user(Role::Manager).await;
    let register = |email: String| {
        let app = &app;
        async move {
            let body = json!({"email": email, "name": "Probe", "password": "attacker's own password"});
            status_json(app.post("/api/v1/auth/register", None, &body).await).await
        }
    };
    let (new_status, new_user) = register("someone.new@example.com".to_owned()).await;
    let (taken_status, taken_user) = register(staff.email.to_uppercase()).await;
    assert_eq!(new_status, StatusCode::CREATED, "{new_user}");
    assert_eq!(taken_status, new_status, "{taken_user}");
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&taken_user), keys(&new_user));
    assert_eq!(taken_user["email"], staff.email);
    assert_eq!(taken_user["role"], "pending");
    assert_ne!(taken_user["id"], staff.id.to_string());

    // Nothing changed for the owner, who is told of the attempt.
    assert_eq!(app.login(&staff.email, "attacker's own password").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&staff.email, PASSWORD).await.0, StatusCode::OK);
    let (status, page) = status_json(app.get("/api/v1/notifications", &staff.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["registration_attempt"], "{page}");
}
