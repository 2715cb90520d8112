//! The TOTP second factor over HTTP: enrolment, sign-in with a code at a known clock,
//! replay refusal, recovery codes, lockout, and roles that must enrol.

use arrears::auth::totp;
use arrears::cli::Cli;
use arrears::domain::role::Role;
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use data_encoding::BASE32_NOPAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, TestUser, assert_problem, error_fields, spawn_app, spawn_app_with, status_json};

const FACTOR: &str = "/api/v1/auth/second-factor";

/// 2026-03-01T12:00:00Z, the start of a 30-second step.
fn noon() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// The code an authenticator app holding `secret` shows at `at`.
fn code_at(secret: &[u8], at: DateTime<Utc>) -> String {
    totp::code_at_step(secret, totp::step_at(at))
}

async fn login_with(app: &TestApp, email: &str, proof: Value) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": PASSWORD});
    for (key, value) in proof.as_object().unwrap() {
        body[key] = value.clone();
    }
    status_json(app.post("/api/v1/auth/login", None, &body).await).await
}

async fn begin(app: &TestApp, token: &str) -> (StatusCode, Value) {
    status_json(app.request(Method::POST, FACTOR, Some(token)).send().await.unwrap()).await
}

async fn confirm(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.post(&format!("{FACTOR}/confirm"), Some(token), &json!({"code": code})).await
}

/// Turns the factor off with `password` and what `proof` adds (`code`, `recovery_code`).
async fn disable(app: &TestApp, token: &str, password: &str, proof: Value) -> reqwest::Response {
    let mut body = json!({"password": password});
    for (key, value) in proof.as_object().unwrap() {
        body[key] = value.clone();
    }
    app.request(Method::DELETE, FACTOR, Some(token)).json(&body).send().await.unwrap()
}

/// Enrols `user` at the clock's now: the secret (decoded from the answer) and the
/// recovery codes.
async fn enrol(app: &TestApp, user: &TestUser) -> (Vec<u8>, Vec<String>) {
    let (status, enrolment) = begin(app, &user.token).await;
    assert_eq!(status, StatusCode::CREATED, "{enrolment}");
    let secret = BASE32_NOPAD.decode(enrolment["secret"].as_str().unwrap().as_bytes()).unwrap();
    let (status, body) = status_json(confirm(app, &user.token, &code_at(&secret, app.clock.now())).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

#[tokio::test]
async fn a_known_secret_at_a_known_clock_signs_in_with_its_rfc_6238_code() {
    let app = spawn_app().await;
    let agent = app.user(Role::Agent).await;
    // RFC 6238 Appendix B: the SHA-1 seed at T = 1111111109 gives 07081804 (8 digits), so
    // an app showing 6 digits shows 081804.
    let secret = b"12345678901234567890";
    let sealed = app.state.auth().seal().seal(agent.id, secret);
    sqlx::query("INSERT INTO second_factors (user_id, secret_sealed, confirmed_at) VALUES ($1, $2, now())")
        .bind(agent.id)
        .bind(sealed)
        .execute(&app.pool)
        .await
        .unwrap();
    app.clock.set(DateTime::from_timestamp(1_111_111_109, 0).unwrap());
    let (status, body) = login_with(&app, &agent.email, json!({"code": "081804"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    let (status, body) = login_with(&app, &agent.email, json!({"code": "081804"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_invalid")),
        "replayed"
    );
}

#[tokio::test]
async fn enrolment_then_sign_in_takes_a_fresh_code_within_one_step_and_never_the_same_twice() {
    let app = spawn_app().await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (status, before) = status_json(app.get(FACTOR, &agent.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        before,
        json!({"enabled": false, "pending": false, "required": false, "recovery_codes_left": 0})
    );

    let (status, enrolment) = begin(&app, &agent.token).await;
    assert_eq!(status, StatusCode::CREATED, "{enrolment}");
    let secret_text = enrolment["secret"].as_str().unwrap();
    let secret = BASE32_NOPAD.decode(secret_text.as_bytes()).unwrap();
    assert_eq!(secret.len(), 20);
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Arrears:"), "{uri}");
    assert!(
        uri.contains(&format!("secret={secret_text}")) && uri.contains("period=30") && uri.contains("digits=6"),
        "{uri}"
    );
    // Stored sealed, never as the secret.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM second_factors WHERE user_id = $1")
        .bind(agent.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    assert!(!String::from_utf8_lossy(&stored).contains(secret_text));
    // Not in force until confirmed.
    assert_eq!(login_with(&app, &agent.email, json!({})).await.0, StatusCode::OK);

    let wrong = format!("{:06}", (code_at(&secret, noon()).parse::<u32>().unwrap() + 1) % 1_000_000);
    let problem = assert_problem(
        confirm(&app, &agent.token, &wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["code"]);
    let (status, body) = status_json(confirm(&app, &agent.token, &code_at(&secret, noon())).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT code_hash FROM recovery_codes WHERE user_id = $1")
        .bind(agent.id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 10);
    for code in codes {
        let code = code.as_str().unwrap();
        assert!(
            hashes.iter().all(|h| !h.windows(code.len()).any(|w| w == code.as_bytes())),
            "only hashes are kept"
        );
    }
    let (_, after) = status_json(app.get(FACTOR, &agent.token).await).await;
    assert_eq!(
        after,
        json!({"enabled": true, "pending": false, "required": false, "recovery_codes_left": 10})
    );
    assert_problem(
        confirm(&app, &agent.token, &code_at(&secret, noon())).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let (status, _) = begin(&app, &agent.token).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second enrolment while one is on");

    // The password alone: no tokens.
    let (status, body) = login_with(&app, &agent.email, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_required"))
    );
    assert!(body.get("access_token").is_none());
    // The code that confirmed the enrolment is spent.
    let (status, body) = login_with(&app, &agent.email, json!({"code": code_at(&secret, noon())})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_invalid"))
    );

    // One step later, the new code, typed as the app shows it.
    app.clock.set(noon() + Duration::seconds(31));
    let code = code_at(&secret, app.clock.now());
    let (status, body) = login_with(&app, &agent.email, json!({"code": format!("{} {}", &code[..3], &code[3..])})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], agent.id.to_string());
    let (status, body) = login_with(&app, &agent.email, json!({"code": code})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_invalid")),
        "replayed"
    );

    // A phone one step ahead is accepted; after that, the current step's code is older
    // than the last used and refused. Two steps off is refused.
    let now = app.clock.now();
    let two_ahead = code_at(&secret, now + Duration::seconds(60));
    assert_eq!(
        login_with(&app, &agent.email, json!({"code": two_ahead})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let ahead = code_at(&secret, now + Duration::seconds(30));
    assert_eq!(login_with(&app, &agent.email, json!({"code": ahead})).await.0, StatusCode::OK);
    let current = code_at(&secret, now);
    assert_eq!(
        login_with(&app, &agent.email, json!({"code": current})).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn recovery_codes_sign_in_once_each() {
    let app = spawn_app().await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (_, codes) = enrol(&app, &agent).await;
    let (status, body) = login_with(&app, &agent.email, json!({"recovery_code": codes[0]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = login_with(&app, &agent.email, json!({"recovery_code": codes[0]})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_invalid")),
        "used"
    );
    // As typed: any case, without dashes.
    let typed = codes[1].replace('-', "").to_uppercase();
    assert_eq!(
        login_with(&app, &agent.email, json!({"recovery_code": typed})).await.0,
        StatusCode::OK
    );
    let (_, status) = status_json(app.get(FACTOR, &agent.token).await).await;
    assert_eq!(status["recovery_codes_left"], 8);
    // Another user's code is not this user's.
    let other = app.user(Role::Agent).await;
    let (_, other_codes) = enrol(&app, &other).await;
    assert_eq!(
        login_with(&app, &agent.email, json!({"recovery_code": other_codes[0]})).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout_and_a_missing_one_does_not() {
    let app = spawn_app_with(|s| s.lockout_threshold = 3).await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (secret, _) = enrol(&app, &agent).await;
    app.clock.set(noon() + Duration::seconds(120));
    for _ in 0..4 {
        let (status, body) = login_with(&app, &agent.email, json!({})).await;
        assert_eq!(body["code"], "second_factor_required", "{status}");
    }
    let wrong = format!("{:06}", (code_at(&secret, app.clock.now()).parse::<u32>().unwrap() + 7) % 1_000_000);
    for _ in 0..3 {
        let (status, body) = login_with(&app, &agent.email, json!({"code": wrong})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("second_factor_invalid"))
        );
    }
    let right = code_at(&secret, app.clock.now());
    let (status, body) = login_with(&app, &agent.email, json!({"code": right})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "locked out"
    );
}

#[tokio::test]
async fn a_wrong_password_with_a_right_code_is_the_one_wrong_credentials_answer() {
    let app = spawn_app().await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (secret, _) = enrol(&app, &agent).await;
    app.clock.set(noon() + Duration::seconds(60));
    let body = json!({"email": agent.email, "password": "not the password", "code": code_at(&secret, app.clock.now())});
    assert_problem(
        app.post("/api/v1/auth/login", None, &body).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // The code was not spent by the refused login.
    let (status, body) = login_with(&app, &agent.email, json!({"code": code_at(&secret, app.clock.now())})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_login_body_names_a_malformed_code() {
    let app = spawn_app().await;
    let agent = app.user(Role::Agent).await;
    for (proof, field) in [
        (json!({"code": "12ab56"}), "code"),
        (json!({"code": "1234567"}), "code"),
        (json!({"code": "1".repeat(5000)}), "code"),
        (json!({"recovery_code": "x".repeat(65)}), "recovery_code"),
        (json!({"code": "123456", "recovery_code": "abcd"}), "recovery_code"),
    ] {
        let mut body = json!({"email": agent.email, "password": PASSWORD});
        for (key, value) in proof.as_object().unwrap() {
            body[key] = value.clone();
        }
        let problem = assert_problem(
            app.post("/api/v1/auth/login", None, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), [field], "{proof}");
    }
}

/// Turning it off takes the password and a code from the app (or a recovery code): a
/// stolen session with the password alone cannot remove the factor (issue 75, item 10).
#[tokio::test]
async fn turning_it_off_takes_the_password_and_a_code() {
    let app = spawn_app().await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (secret, recovery) = enrol(&app, &agent).await;
    app.clock.set(noon() + Duration::seconds(30));
    let fresh = code_at(&secret, app.clock.now());
    let problem = assert_problem(
        disable(&app, &agent.token, "not the password", json!({"code": fresh})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["password"]);
    for (proof, why) in [
        (json!({}), "the password alone"),
        (json!({"code": "000000"}), "a wrong code"),
        (json!({"recovery_code": "not-a-code"}), "a wrong recovery code"),
    ] {
        let refused = disable(&app, &agent.token, PASSWORD, proof).await;
        let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["code"], "{why}: {problem}");
    }
    assert_eq!(
        login_with(&app, &agent.email, json!({})).await.0,
        StatusCode::UNAUTHORIZED,
        "still on"
    );
    let off = disable(&app, &agent.token, PASSWORD, json!({"recovery_code": recovery[0]})).await;
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(login_with(&app, &agent.email, json!({})).await.0, StatusCode::OK, "off");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes WHERE user_id = $1")
        .bind(agent.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the recovery codes go with it");
}

/// Sessions opened with the password alone end when the factor is turned on: their
/// access tokens and refresh tokens are refused; the session that proved the code goes
/// on (issue 75, item 10).
#[tokio::test]
async fn turning_it_on_ends_the_sessions_opened_before_it() {
    let app = spawn_app().await;
    app.clock.set(noon());
    let agent = app.user(Role::Agent).await;
    let (status, earlier) = login_with(&app, &agent.email, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{earlier}");
    let earlier_token = earlier["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", earlier_token).await.status(), StatusCode::OK);
    enrol(&app, &agent).await;

    let stale = app.get("/api/v1/auth/me", earlier_token).await;
    assert_problem(stale, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refreshed = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": earlier["refresh_token"]}))
        .await;
    assert_problem(refreshed, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    assert_eq!(
        app.get("/api/v1/auth/me", &agent.token).await.status(),
        StatusCode::OK,
        "the session that proved the code goes on"
    );
}

#[tokio::test]
async fn a_role_that_requires_it_gets_tokens_only_for_enrolling_until_it_is_on() {
    let app = spawn_app_with(|s| s.second_factor_required_for = Some("admin,manager".to_owned())).await;
    app.clock.set(noon());
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    assert_eq!(
        app.get("/api/v1/accounts", &agent.token).await.status(),
        StatusCode::OK,
        "agents are not required"
    );

    assert_problem(
        app.get("/api/v1/accounts", &manager.token).await,
        StatusCode::FORBIDDEN,
        "second_factor_enrollment_required",
    )
    .await;
    assert_problem(
        app.post("/api/v1/accounts", Some(&manager.token), &json!({})).await,
        StatusCode::FORBIDDEN,
        "second_factor_enrollment_required",
    )
    .await;
    let (status, me) = status_json(app.get("/api/v1/auth/me", &manager.token).await).await;
    assert_eq!((status, me["role"].as_str()), (StatusCode::OK, Some("manager")));
    let (_, status) = status_json(app.get(FACTOR, &manager.token).await).await;
    assert_eq!(status["required"], true);
    let (status, refreshed) = status_json(
        app.post("/api/v1/auth/refresh", None, &json!({"refresh_token": manager.refresh_token}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let token = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/accounts", &token).await.status(), StatusCode::FORBIDDEN);

    let enrolling = TestUser {
        id: manager.id,
        email: manager.email.clone(),
        token: token.clone(),
        refresh_token: String::new(),
    };
    let (secret, _) = enrol(&app, &enrolling).await;
    assert_eq!(
        app.get("/api/v1/accounts", &token).await.status(),
        StatusCode::OK,
        "the same token, now in full"
    );
    assert_problem(disable(&app, &token, PASSWORD, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;

    app.clock.set(noon() + Duration::seconds(30));
    let (status, body) = login_with(&app, &manager.email, json!({"code": code_at(&secret, app.clock.now())})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/accounts", fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn production_requires_it_of_admins_and_managers_unless_configured_and_unknown_roles_stop_the_start() {
    let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().settings;
    let production = parse(&["arrears", "serve", "--production"]);
    if production.second_factor_required_for.is_none() {
        assert_eq!(production.second_factor_role_names(), ["admin", "manager"]);
    }
    let mut development = parse(&["arrears", "serve"]);
    if development.second_factor_required_for.is_none() {
        assert!(development.second_factor_role_names().is_empty());
    }
    development.second_factor_required_for = Some("none".to_owned());
    assert!(development.second_factor_role_names().is_empty());
    let mut settings = crate::helpers::test_settings();
    settings.second_factor_required_for = Some("admin, supervisor".to_owned());
    let data_dir = settings.data_dir.clone();
    let Err(err) = arrears::app::Application::build(settings).await else {
        panic!("an unknown role was accepted");
    };
    let _ = std::fs::remove_dir_all(data_dir);
    assert!(format!("{err:#}").contains("\"supervisor\""), "{err:#}");
}

#[tokio::test]
async fn an_admin_resets_a_lost_factor_and_a_required_role_must_enrol_again() {
    let app = spawn_app_with(|s| s.second_factor_required_for = Some("manager".to_owned())).await;
    app.clock.set(noon());
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let (_, _) = enrol(&app, &manager).await;
    let path = format!("/api/v1/users/{}/second-factor", manager.id);

    assert_problem(app.delete(&path, &manager.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    let missing = format!("/api/v1/users/{}/second-factor", uuid::Uuid::now_v7());
    assert_problem(app.delete(&missing, &admin.token).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.delete(&path, &admin.token).await.status(), StatusCode::NO_CONTENT);

    let (status, body) = login_with(&app, &manager.email, json!({})).await;
    assert_eq!(status, StatusCode::OK, "the password alone again: {body}");
    let token = body["access_token"].as_str().unwrap();
    assert_problem(
        app.get("/api/v1/accounts", token).await,
        StatusCode::FORBIDDEN,
        "second_factor_enrollment_required",
    )
    .await;
    assert_problem(
        app.get("/api/v1/accounts", &manager.token).await,
        StatusCode::FORBIDDEN,
        "second_factor_enrollment_required",
    )
    .await;
}
