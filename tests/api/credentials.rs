//! A user's credentials and sessions: changing one's password, seeing and ending one's
//! sessions, password resets, the lockout shared by instances and kept across restarts,
//! and the `user_activity` events.

use arrears::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws::{authed, expect};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/password",
        Some(token),
        &json!({"current_password": current, "new_password": new}),
    )
    .await
}

/// Signs `user` in once more, with `agent` as the User-Agent: the new session's tokens.
async fn login_from(app: &TestApp, email: &str, password: &str, agent: &str) -> Value {
    let response = app
        .request(Method::POST, "/api/v1/auth/login", None)
        .header("user-agent", agent)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn sessions(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = status_json(app.get(&format!("/api/v1/auth/sessions{query}"), token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(app: &TestApp, refresh_token: &str) -> StatusCode {
    app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": refresh_token}))
        .await
        .status()
}

#[tokio::test]
async fn changing_my_password_needs_the_current_one_and_ends_my_other_sessions() {
    let app = spawn_app().await;
    let me = app.user(Role::Agent).await;
    let other = login_from(&app, &me.email, PASSWORD, "Phone").await;
    let other_token = other["access_token"].as_str().unwrap();

    let wrong = change_password(&app, &me.token, "not my password", NEW_PASSWORD).await;
    let problem = assert_problem(wrong, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(error_fields(&problem), ["current_password"]);
    let short = change_password(&app, &me.token, PASSWORD, "short").await;
    let problem = assert_problem(short, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["new_password"]);
    assert_eq!(app.get("/api/v1/auth/me", other_token).await.status(), StatusCode::OK);

    let changed = change_password(&app, &me.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &me.token).await.status(),
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(refresh(&app, &me.refresh_token).await, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/auth/me", other_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "the other session's access token fails at once"
    );
    assert_eq!(
        refresh(&app, other["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login(&me.email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&me.email, NEW_PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_current_password_counts_toward_the_lockout() {
    let app = spawn_app().await;
    let me = app.user(Role::Agent).await;
    for _ in 0..5 {
        let wrong = change_password(&app, &me.token, "not my password", NEW_PASSWORD).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    }
    let locked = change_password(&app, &me.token, PASSWORD, NEW_PASSWORD).await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        app.login(&me.email, PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "logins are locked too"
    );
}

#[tokio::test]
async fn i_see_my_live_sessions_with_their_device_and_end_one() {
    let app = spawn_app().await;
    let me = app.user(Role::Viewer).await;
    let stranger = app.user(Role::Viewer).await;
    let device = format!("Browser/1.0 \u{202E}(evil)\t{}", "x".repeat(400));
    let phone = login_from(&app, &me.email, PASSWORD, &device).await;
    let phone_token = phone["access_token"].as_str().unwrap();
    assert_eq!(refresh(&app, phone["refresh_token"].as_str().unwrap()).await, StatusCode::OK);

    let list = sessions(&app, &me.token, "").await;
    assert_eq!(list["total"], 2, "{list}");
    let data = list["data"].as_array().unwrap();
    let newest = &data[0];
    assert_eq!(newest["current"], false);
    let shown = newest["device"].as_str().unwrap();
    assert!(shown.starts_with("Browser/1.0 (evil) xxx"), "sanitised: {shown}");
    assert_eq!(shown.chars().count(), 200, "bounded");
    assert_eq!(newest["address"], "127.0.0.1");
    assert!(newest["last_used_at"].is_string(), "refreshed: {newest}");
    assert_eq!(data[1]["current"], true);
    assert!(data[1]["last_used_at"].is_null());

    let first = sessions(&app, &me.token, "?page_size=1").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = sessions(&app, &me.token, &format!("?page_size=1&cursor={cursor}")).await;
    assert_eq!(second["data"][0]["id"], data[1]["id"]);
    assert!(second["next_cursor"].is_null());

    let phone_id = newest["id"].as_str().unwrap();
    let theirs = app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &stranger.token).await;
    assert_problem(theirs, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get("/api/v1/auth/me", phone_token).await.status(), StatusCode::OK);

    let ended = app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &me.token).await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", phone_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "its access token fails at once"
    );
    let again = app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &me.token).await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;
    let list = sessions(&app, &me.token, "").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["current"], true);
}

async fn issue_reset(app: &TestApp, admin: &str, user: &TestUser) -> Value {
    app.create(admin, &format!("/api/v1/users/{}/password-reset", user.id), &json!({}))
        .await
}

async fn reset(app: &TestApp, token: &str, new: &str) -> reqwest::Response {
    app.post("/api/v1/auth/password-reset", None, &json!({"token": token, "new_password": new}))
        .await
}

#[tokio::test]
async fn an_admin_reset_token_sets_a_password_once_and_ends_every_session() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let user = app.user(Role::Agent).await;

    let refused = app
        .post(
            &format!("/api/v1/users/{}/password-reset", user.id),
            Some(&manager.token),
            &json!({}),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let unknown = app
        .post(
            &format!("/api/v1/users/{}/password-reset", uuid::Uuid::new_v4()),
            Some(&admin.token),
            &json!({}),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;

    let first = issue_reset(&app, &admin.token, &user).await;
    let issued = issue_reset(&app, &admin.token, &user).await;
    let token = issued["token"].as_str().unwrap();
    let expires = instant(&issued["expires_at"]) - chrono::Utc::now();
    assert!(expires > chrono::Duration::minutes(59) && expires <= chrono::Duration::hours(1));
    let stored: Vec<u8> = app
        .sql_value(
            "SELECT token_hash FROM password_reset_tokens WHERE user_id = $1",
            &user.id.to_string(),
        )
        .await;
    assert_ne!(stored, token.as_bytes(), "only a hash is kept");

    let replaced = reset(&app, first["token"].as_str().unwrap(), NEW_PASSWORD).await;
    let problem = assert_problem(replaced, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["token"], "a new token replaces the old");
    let weak = reset(&app, token, "short").await;
    let problem = assert_problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["new_password"]);

    assert_eq!(reset(&app, token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/auth/me", &user.token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, &user.refresh_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.0, StatusCode::OK);
    let spent = reset(&app, token, "yet another passphrase").await;
    assert_problem(spent, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let user = app.user(Role::Agent).await;
    let issued = issue_reset(&app, &admin.token, &user).await;
    sqlx::query("UPDATE password_reset_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1")
        .bind(user.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let expired = reset(&app, issued["token"].as_str().unwrap(), NEW_PASSWORD).await;
    let problem = assert_problem(expired, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["token"]);
    assert_eq!(
        app.login(&user.email, PASSWORD).await.0,
        StatusCode::OK,
        "the password is unchanged"
    );
}

#[tokio::test]
async fn password_resets_are_limited_per_address() {
    let app = spawn_app().await;
    for _ in 0..10 {
        let made_up = reset(&app, "made-up", NEW_PASSWORD).await;
        assert_eq!(made_up.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = reset(&app, "made-up", NEW_PASSWORD).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn fail_logins(app: &TestApp, email: &str, times: usize) {
    for _ in 0..times {
        assert_eq!(app.login(email, "wrong password!!").await.0, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn two_instances_on_one_database_share_the_lockout() {
    let app = spawn_app().await;
    let peer = spawn_peer(&app, |_| {}).await;
    let user = app.user(Role::Agent).await;
    fail_logins(&app, &user.email, 3).await;
    fail_logins(&peer, &user.email, 2).await;
    for instance in [&app, &peer] {
        let locked = instance
            .post("/api/v1/auth/login", None, &json!({"email": user.email, "password": PASSWORD}))
            .await;
        assert!(locked.headers().contains_key("retry-after"));
        assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

#[tokio::test]
async fn the_lockout_and_the_address_budget_survive_a_restart() {
    let mut app = spawn_app_with(|s| {
        s.login_rate_limit_per_ip = 8;
        s.logins_per_account_per_minute = 100;
    })
    .await;
    let user = app.user(Role::Agent).await;
    fail_logins(&app, &user.email, 5).await;
    for n in 0..3 {
        assert_eq!(app.login(&format!("x{n}@example.com"), PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
    let restarted = spawn_peer(&app, |_| {}).await;
    let (status, _) = restarted.login(&user.email, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "still locked after the restart");
    let stranger = restarted
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "x9@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(stranger, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn sign_in_refresh_and_sign_out_reach_the_user_and_admins_only() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let me = app.user(Role::Manager).await;
    let bystander = app.user(Role::Manager).await;
    let mut admins = authed(&app, &admin.token, &[]).await;
    let mut mine = authed(&app, &me.token, &[]).await;
    let mut theirs = authed(&app, &bystander.token, &["accounts", "payments"]).await;

    let session = login_from(&app, &me.email, PASSWORD, "Laptop").await;
    let refresh_token = session["refresh_token"].as_str().unwrap();
    let (status, refreshed) = status_json(
        app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": refresh_token}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let logout = app
        .post("/api/v1/auth/logout", None, &json!({"refresh_token": refreshed["refresh_token"]}))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let user_id = me.id.to_string();
    for socket in [&mut admins, &mut mine] {
        let mut session_id = None;
        for action in ["login", "refresh", "logout"] {
            let event = expect(socket, "user_activity", |e| e["data"]["user_id"] == user_id.as_str()).await;
            let data = &event["data"];
            assert_eq!(data["action"], action, "{event}");
            assert_eq!(data["address"], "127.0.0.1");
            assert!(data["at"].is_string());
            let id = data["session_id"].as_str().unwrap().to_owned();
            assert_eq!(session_id.get_or_insert(id.clone()), &id, "one session throughout");
        }
    }
    // The bystander's socket sees its own sign-in only: a later event of its own proves
    // nothing of `me`'s came before it.
    app.login(&bystander.email, PASSWORD).await;
    let own = expect(&mut theirs, "user_activity", |_| true).await;
    assert_eq!(own["data"]["user_id"], bystander.id.to_string(), "{own}");
}

#[tokio::test]
async fn the_command_line_prints_a_reset_token_that_sets_a_password() {
    let app = spawn_app().await;
    let user = app.user(Role::Agent).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
        .args(["users", "reset-password", "--email", &user.email.to_uppercase()])
        .env("DATABASE_URL", &app.settings.database_url)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["user_id"], user.id.to_string());
    let token = printed["token"].as_str().unwrap();
    assert_eq!(reset(&app, token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.0, StatusCode::OK);
    assert_eq!(app.get("/api/v1/auth/me", &user.token).await.status(), StatusCode::UNAUTHORIZED);

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
        .args(["users", "reset-password", "--email", "nobody@example.com"])
        .env("DATABASE_URL", &app.settings.database_url)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!unknown.status.success(), "an unknown email fails");
}
