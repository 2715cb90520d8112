//! Attacks replayed: each test is one hole an attacker found, kept closed.

use arrears::domain::role::Role;
use clap::Parser as _;
use futures_util::FutureExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, id_of, spawn_app, spawn_app_with};

/// Values that overflowed chrono or rust_decimal inside a handler (a reset connection
/// or a 500) are refused by name, each as one 400 problem.
#[tokio::test]
async fn out_of_range_parameters_are_problems_not_panics() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let huge = "79228162514264337593543950335";
    for (path, field) in [
        ("/api/v1/payments/stats?to=-262143-01-01".to_owned(), "to"),
        ("/api/v1/payments/stats?from=+262142-12-31&to=+262142-12-31".to_owned(), "from"),
        (format!("/api/v1/accounts?min_balance={huge}"), "min_balance"),
        (format!("/api/v1/accounts?max_balance={huge}"), "max_balance"),
        (format!("/api/v1/payments?min_amount={huge}"), "min_amount"),
        (format!("/api/v1/payments?max_amount={huge}"), "max_amount"),
        ("/api/v1/accounts?due_from=-262143-01-01".to_owned(), "due_from"),
        ("/api/v1/accounts?due_to=+262142-12-31".to_owned(), "due_to"),
        (
            "/api/v1/accounts?next_action_before=%2B262142-12-31T00:00:00Z".to_owned(),
            "next_action_before",
        ),
        ("/api/v1/payments?from=-262143-01-01".to_owned(), "from"),
        ("/api/v1/payments?to=%2B262142-12-31".to_owned(), "to"),
        ("/api/v1/activities?from=-262143-01-01".to_owned(), "from"),
    ] {
        let response = app.get(&path, &manager.token).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{path}: {problem}");
    }
}

/// A debtor name or reference holding markup comes back escaped in highlights:
/// `<em>` and `</em>` are the only markup a highlight may carry.
#[tokio::test]
async fn highlights_escape_everything_but_their_marks() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let body = json!({
        "debtor_name": "<img src=x onerror=alert(1)> Smith & Sons",
        "external_ref": "<script>x",
        "original_balance": "10.00",
        "currency": "USD"
    });
    let created = app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    for (query, field) in [("smith", "debtor_name"), ("%3Cscript%3E", "external_ref")] {
        let answer: Value = app
            .get(&format!("/api/v1/accounts?q={query}"), &manager.token)
            .await
            .json()
            .await
            .unwrap();
        let highlight = answer["data"][0]["highlight"][field].as_str().unwrap_or_else(|| panic!("{answer}"));
        let markup: String = highlight.replace("<em>", "").replace("</em>", "");
        assert!(!markup.contains('<') && !markup.contains('>'), "{field}: {highlight}");
        assert!(highlight.contains("<em>"), "{field}: {highlight}");
    }
}

/// Throws hostile values at every parameter of every list endpoint, alone and in random
/// combinations: each answer is a page or a 400 problem, never a 500 or a reset
/// connection.
#[tokio::test]
async fn every_list_parameter_survives_hostile_values() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let long = "x".repeat(5000);
    let values: Vec<&str> = vec![
        "",
        "-1",
        "0",
        "1e309",
        "NaN",
        "79228162514264337593543950335",
        "-79228162514264337593543950336",
        "18446744073709551616",
        "-9223372036854775808",
        "1.00000000000000000000000000001",
        "+262142-12-31",
        "-262143-01-01",
        "2026-02-30",
        "+262142-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999-23:59",
        "00000000-0000-0000-0000-000000000000",
        "me",
        "unassigned",
        ",,,",
        "-",
        "id,-id,-",
        "Pacific/Nowhere",
        "ℵ😀\u{0}",
        "%ZZ",
        "AAAA",
        "____",
        &long,
    ];
    let endpoints: [(&str, &[&str]); 7] = [
        (
            "/api/v1/accounts",
            &[
                "q",
                "status",
                "assigned_agent_id",
                "tags",
                "min_balance",
                "max_balance",
                "due_from",
                "due_to",
                "next_action_before",
                "next_action_after",
                "bucket",
                "do_not_call",
                "do_not_email",
                "cease_communication",
                "include_deleted",
                "has_open_promise",
                "has_plan",
                "plan_status",
                "plan_next_before",
                "sort",
                "page_size",
                "cursor",
                "facets",
            ],
        ),
        (
            "/api/v1/payments",
            &[
                "q",
                "status",
                "method",
                "min_amount",
                "max_amount",
                "from",
                "to",
                "account_id",
                "assigned_agent_id",
                "sort",
                "page_size",
                "cursor",
                "facets",
            ],
        ),
        ("/api/v1/payments/stats", &["tz", "from", "to", "interval"]),
        (
            "/api/v1/activities",
            &["account_id", "agent_id", "type", "outcome", "from", "to", "page_size", "cursor"],
        ),
        (
            "/api/v1/plans",
            &["status", "account_id", "assigned_agent_id", "page_size", "cursor"],
        ),
        ("/api/v1/users", &["page_size", "cursor"]),
        ("/api/v1/jobs", &["page_size", "cursor"]),
    ];
    let encode = |pairs: &[(&str, &str)]| -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().copied())
            .finish()
    };
    let mut queries = Vec::new();
    for (path, params) in endpoints {
        for param in params {
            for value in &values {
                queries.push(format!("{path}?{}", encode(&[(param, value)])));
            }
        }
    }
    // A fixed seed keeps a failure reproducible.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..300 {
        let (path, params) = endpoints[next(endpoints.len())];
        let pairs: Vec<(&str, &str)> = (0..1 + next(3))
            .map(|_| (params[next(params.len())], values[next(values.len())]))
            .collect();
        queries.push(format!("{path}?{}", encode(&pairs)));
    }
    for query in queries {
        let response = app.get(&query, &admin.token).await;
        let status = response.status();
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {}", response.text().await.unwrap());
            assert_eq!(response.headers()["content-type"], "application/problem+json", "{query}");
        }
    }
}

/// Splits CSV with `delimiter` as a spreadsheet in that locale reads it: a quote opens a
/// quoted field only at the field's start, and is a plain character anywhere else.
fn read_csv_as(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            c if c == delimiter && !quoted => row.push(std::mem::take(&mut field)),
            '\r' if !quoted => {}
            '\n' if !quoted => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            c => field.push(c),
        }
    }
    rows
}

/// A spreadsheet in a semicolon locale splits fields at `;`: a value or a tag list
/// holding one must not become a cell that starts a formula.
#[tokio::test]
async fn csv_exports_start_no_formula_in_semicolon_locales() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let body = json!({
        "debtor_name": "Acme;=1+1",
        "external_ref": "x;@SUM(A1);\"=2\"",
        "original_balance": "10.00",
        "currency": "USD",
        "tags": ["0", "=1+1", "+cmd"]
    });
    let created = app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap());
    let export = app.get("/api/v1/accounts/export?format=csv", &manager.token).await;
    assert_eq!(export.status(), StatusCode::OK);
    let csv = export.text().await.unwrap();
    let rows = read_csv_as(&csv, ',');
    let crafted: Vec<&Vec<String>> = rows.iter().filter(|row| row.iter().any(|c| c.contains("Acme"))).collect();
    assert_eq!(crafted.len(), 1, "the crafted account is exported: {csv}");
    assert!(
        crafted[0].iter().any(|c| c == "Acme;'=1+1"),
        "its name is there, neutralised: {:?}",
        crafted[0]
    );
    for delimiter in [',', ';'] {
        for row in read_csv_as(&csv, delimiter) {
            for cell in row {
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?} read with {delimiter:?} in {csv}");
            }
        }
    }
}

/// Changing the currency of an account that has payments would restate every payment
/// in another currency: refused, from the API and from a bulk update alike.
#[tokio::test]
async fn an_account_with_payments_keeps_its_currency() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({ "currency": "USD" })).await;
    let id = account["id"].as_str().unwrap();
    let unpaid = app.account(&manager.token, json!({ "currency": "USD" })).await;
    let paid = app
        .post(
            &format!("/api/v1/accounts/{id}/payments"),
            Some(&manager.token),
            &json!({ "amount": "10.00", "currency": "USD", "method": "card" }),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let response = app
        .patch(&format!("/api/v1/accounts/{id}"), &manager.token, &json!({ "currency": "EUR" }))
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "conflict").await;
    assert!(problem["detail"].as_str().unwrap().contains("currency"), "{problem}");
    let stored: String = sqlx::query_scalar("SELECT currency FROM accounts WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, "USD");
    let unpaid_id = unpaid["id"].as_str().unwrap();
    let changed = app
        .patch(
            &format!("/api/v1/accounts/{unpaid_id}"),
            &manager.token,
            &json!({ "currency": "EUR" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK, "an account without payments may change currency");
}

/// A soft-deleted account is hidden, and so are its payments and activities, whichever
/// way a reader asks for them; a manager may include them on purpose.
#[tokio::test]
async fn a_deleted_account_hides_its_payments_and_activities() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let account = app.account(&manager.token, json!({ "debtor_name": "Deleted Debtor" })).await;
    let id = account["id"].as_str().unwrap().to_owned();
    let paid = app
        .post(
            &format!("/api/v1/accounts/{id}/payments?wait_for=indexed"),
            Some(&manager.token),
            &json!({ "amount": "10.00", "currency": "USD", "method": "card" }),
        )
        .await;
    let payment: Value = paid.json().await.unwrap();
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let logged = app
        .post(
            &format!("/api/v1/accounts/{id}/activities"),
            Some(&manager.token),
            &json!({ "type": "note", "notes": "before deletion" }),
        )
        .await;
    assert_eq!(logged.status(), StatusCode::CREATED);
    let listed = |token: String, path: String| {
        let app = &app;
        async move {
            let answer: Value = app.get(&path, &token).await.json().await.unwrap();
            answer["data"].as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(listed(viewer.token.clone(), format!("/api/v1/payments?account_id={id}")).await, 1);

    let deleted = app.delete(&format!("/api/v1/accounts/{id}?wait_for=indexed"), &manager.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    crate::helpers::eventually("the payment leaves the payment list", || {
        listed(viewer.token.clone(), format!("/api/v1/payments?account_id={id}")).map(|n| n == 0)
    })
    .await;
    assert_eq!(listed(viewer.token.clone(), "/api/v1/payments?q=deleted".to_owned()).await, 0);
    let export = app
        .get(&format!("/api/v1/payments/export?account_id={id}"), &viewer.token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 1, "only the header: {export}");
    let single = app.get(&format!("/api/v1/payments/{payment_id}"), &viewer.token).await;
    assert_problem(single, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(listed(viewer.token.clone(), format!("/api/v1/activities?account_id={id}")).await, 0);
    assert_eq!(listed(viewer.token.clone(), "/api/v1/activities".to_owned()).await, 0);

    for path in [
        format!("/api/v1/payments?account_id={id}&include_deleted=true"),
        format!("/api/v1/activities?account_id={id}&include_deleted=true"),
    ] {
        assert_eq!(listed(manager.token.clone(), path.clone()).await, 1, "{path}");
        let refused = app.get(&path, &viewer.token).await;
        assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }
}

/// Registration is closed unless an operator opens it; a self-registered user reads no
/// debtor until an admin gives them a role.
#[tokio::test]
async fn self_registered_users_see_no_debtor_until_an_admin_gives_a_role() {
    let closed = spawn_app().await;
    let body = json!({ "email": "stranger@example.com", "name": "Stranger", "password": crate::helpers::PASSWORD });
    let refused = closed.post("/api/v1/auth/register", None, &body).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "registration_disabled").await;

    let app = crate::helpers::spawn_app_with(|s| s.allow_registration = true).await;
    let admin = app.user(Role::Admin).await;
    app.account(&admin.token, json!({ "debtor_name": "Private Debtor" })).await;
    let (status, user) = crate::helpers::status_json(app.post("/api/v1/auth/register", None, &body).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(user["role"], "pending");
    let (_, tokens) = app.login("stranger@example.com", crate::helpers::PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/accounts",
        "/api/v1/accounts/export",
        "/api/v1/payments",
        "/api/v1/payments/export",
        "/api/v1/payments/stats",
        "/api/v1/activities",
    ] {
        let response = app.get(path, &token).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let me = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(me.status(), StatusCode::OK);

    let id = user["id"].as_str().unwrap();
    let promoted = app
        .patch(&format!("/api/v1/users/{id}"), &admin.token, &json!({ "role": "viewer" }))
        .await;
    assert_eq!(promoted.status(), StatusCode::OK);
    let (_, tokens) = app.login("stranger@example.com", crate::helpers::PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/accounts", token).await.status(), StatusCode::OK);
}

/// A bulk update queued by a manager who is demoted (or disabled) before it runs
/// changes nothing: each chunk checks its submitter as they are now.
#[tokio::test]
async fn a_queued_bulk_update_runs_with_its_submitters_current_role() {
    use arrears::domain::account::AccountStatus;
    use arrears::domain::bulk::BulkParams;
    use arrears::domain::bulk::BulkPatch;

    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let account = app.account(&manager.token, json!({})).await;
        ids.push(uuid::Uuid::parse_str(account["id"].as_str().unwrap()).unwrap());
    }
    let demoted = app
        .patch(&format!("/api/v1/users/{}", manager.id), &admin.token, &json!({ "role": "viewer" }))
        .await;
    assert_eq!(demoted.status(), StatusCode::OK);
    // The job as the manager queued it, before the demotion.
    let params = BulkParams {
        patch: BulkPatch {
            status: Some(AccountStatus::Closed),
            ..BulkPatch::default()
        },
        actor: manager.id,
        role: Role::Manager,
        from_agent: None,
    };
    let mut tx = app.pool.begin().await.unwrap();
    let job = arrears::store::jobs::create(
        &mut tx,
        arrears::domain::job::JobKind::BulkUpdate,
        &serde_json::to_value(&params).unwrap(),
        manager.id,
        &ids,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let path = format!("/api/v1/jobs/{}", job.id);
    crate::helpers::eventually("the job finishes", || async {
        let answer: Value = app.get(&path, &admin.token).await.json().await.unwrap();
        answer["finished_at"].is_string()
    })
    .await;
    let answer: Value = app.get(&path, &admin.token).await.json().await.unwrap();
    assert_eq!(
        (answer["succeeded"].as_i64(), answer["failed"].as_i64()),
        (Some(0), Some(3)),
        "{answer}"
    );
    let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE status = 'closed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(closed, 0);
}

/// Every answer forbids sniffing, referrers, framing and caching; the served page runs
/// only its own inline script and style; HSTS is sent when configured.
#[tokio::test]
async fn answers_carry_the_security_headers() {
    let app = crate::helpers::spawn_app_with(|s| s.hsts_max_age_secs = 31_536_000).await;
    let manager = app.user(Role::Manager).await;
    for response in [
        app.get("/api/v1/accounts", &manager.token).await,
        app.request(reqwest::Method::GET, "/api/v1/nowhere", None).send().await.unwrap(),
    ] {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
    }
    let page = app.request(reqwest::Method::GET, "/", None).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "the console runs no inline script");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");

    let plain = spawn_app().await;
    let response = plain.request(reqwest::Method::GET, "/health/live", None).send().await.unwrap();
    assert!(
        response.headers().get("strict-transport-security").is_none(),
        "HSTS only when configured"
    );
}

/// CORS answers only the configured origins, and nobody when none is configured. A
/// browser sends the console's request only after a preflight answered 200 naming its
/// origin, the method and every header it asked for, and hands the page the answer
/// (and the headers it may read, the ETag among them) only when that names its origin
/// too. Anything else is a 403 problem: never a 500, which a preflight check that only
/// looked for "not a success" let through.
#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let console = "https://console.example";
    let preflight = |app: &crate::helpers::TestApp, origin: &str, method: &str, headers: &str| {
        app.request(reqwest::Method::OPTIONS, "/api/v1/accounts", None)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };
    // A header's comma-separated values, lowercased.
    let listed = |response: &reqwest::Response, name: &str| -> Vec<String> {
        let value = response.headers().get(name).unwrap_or_else(|| panic!("no {name}"));
        value.to_str().unwrap().split(',').map(|v| v.trim().to_ascii_lowercase()).collect()
    };
    let app = crate::helpers::spawn_app_with(|s| s.cors_origins = vec![console.to_owned()]).await;
    let manager = app.user(Role::Manager).await;
    for (method, headers) in [
        ("GET", "authorization"),
        ("PATCH", "authorization, content-type, if-match, idempotency-key"),
    ] {
        let allowed = preflight(&app, console, method, headers).await.unwrap();
        assert_eq!(allowed.status(), StatusCode::OK, "{method} {headers}");
        assert_eq!(allowed.headers()["access-control-allow-origin"], console);
        assert!(listed(&allowed, "access-control-allow-methods").contains(&method.to_ascii_lowercase()));
        let allowed_headers = listed(&allowed, "access-control-allow-headers");
        for header in headers.split(", ") {
            assert!(allowed_headers.iter().any(|h| h == header), "{header} not in {allowed_headers:?}");
        }
        assert_eq!(allowed.headers()["access-control-max-age"], "600");
    }
    let answered = app
        .request(reqwest::Method::GET, "/api/v1/accounts", Some(&manager.token))
        .header("origin", console)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert_eq!(answered.headers()["access-control-allow-origin"], console);
    let exposed = listed(&answered, "access-control-expose-headers");
    for header in ["etag", "x-request-id", "retry-after", "location"] {
        assert!(exposed.iter().any(|h| h == header), "{header} not in {exposed:?}");
    }

    // Another origin, or a method or header not allowed: refused, with nothing a browser
    // would take as leave to go on.
    for (origin, method, headers) in [
        ("https://evil.example", "GET", "authorization"),
        (console, "TRACE", "authorization"),
        (console, "GET", "authorization, x-debug"),
    ] {
        let refused = preflight(&app, origin, method, headers).await.unwrap();
        assert!(refused.headers().get("access-control-allow-origin").is_none());
        assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let from_elsewhere = app
        .request(reqwest::Method::GET, "/api/v1/accounts", Some(&manager.token))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(from_elsewhere.headers().get("access-control-allow-origin").is_none());
    assert_problem(from_elsewhere, StatusCode::FORBIDDEN, "forbidden").await;

    // No origin configured: no CORS layer, so the preflight is a method the path does not
    // take, and names no origin.
    let closed = spawn_app().await;
    let response = preflight(&closed, console, "GET", "authorization").await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
    assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

/// Thirty agents behind one office address start their shift with the default limits.
#[tokio::test]
async fn an_office_behind_one_address_can_all_sign_in() {
    let defaults = arrears::cli::Cli::try_parse_from(["arrears", "serve"]).unwrap().settings;
    let app = crate::helpers::spawn_app_with(|s| {
        s.login_rate_limit_per_ip = defaults.login_rate_limit_per_ip;
        s.lockout_threshold = defaults.lockout_threshold;
        s.logins_per_account_per_minute = defaults.logins_per_account_per_minute;
        s.logins_per_ip_per_minute = defaults.logins_per_ip_per_minute;
        s.hash_queue_share_per_ip_percent = defaults.hash_queue_share_per_ip_percent;
    })
    .await;
    for _ in 0..30 {
        // Each user signs in over HTTP from 127.0.0.1; a typo here and there.
        let agent = app.user(Role::Agent).await;
        assert_eq!(app.login(&agent.email, "typo in the password").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(app.login(&agent.email, crate::helpers::PASSWORD).await.0, StatusCode::OK);
    }
}

/// Unknown email, wrong password and a disabled user's right password get one answer;
/// a stranger's failures from elsewhere do not lock the user out; X-Forwarded-For is
/// believed only from a trusted proxy.
#[tokio::test]
async fn failed_logins_tell_nothing_and_lock_out_only_the_failing_address() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1".to_owned()];
        s.login_rate_limit_per_ip = 100;
        s.lockout_threshold = 5;
    })
    .await;
    let admin = app.user(Role::Admin).await;
    let disabled = app.user(Role::Agent).await;
    let off = app
        .patch(
            &format!("/api/v1/users/{}", disabled.id),
            &admin.token,
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(off.status(), StatusCode::OK);
    let from = |ip: &'static str, email: String, password: &'static str| {
        let app = &app;
        async move {
            let response = app
                .request(reqwest::Method::POST, "/api/v1/auth/login", None)
                .header("x-forwarded-for", ip)
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let unknown = from("203.0.113.1", "nobody@example.com".into(), crate::helpers::PASSWORD).await;
    let wrong = from("203.0.113.1", admin.email.clone(), "wrong password!!").await;
    let off = from("203.0.113.1", disabled.email.clone(), crate::helpers::PASSWORD).await;
    for (status, body) in [&wrong, &off] {
        assert_eq!(*status, unknown.0);
        assert_eq!((&body["code"], &body["detail"]), (&unknown.1["code"], &unknown.1["detail"]));
    }
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);

    // A stranger guesses the admin's password from 198.51.100.7 until refused.
    for _ in 0..5 {
        assert_eq!(from("198.51.100.7", admin.email.clone(), "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        from("198.51.100.7", admin.email.clone(), "guess").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("198.51.100.7", "nobody@example.com".into(), "guess").await.0,
        StatusCode::UNAUTHORIZED,
        "other emails from there are still judged"
    );
    assert_eq!(
        from("198.51.100.7", admin.email.clone(), crate::helpers::PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the stranger's address stays locked for that email"
    );
    assert_eq!(
        from("192.0.2.10", admin.email.clone(), crate::helpers::PASSWORD).await.0,
        StatusCode::OK,
        "the admin signs in from their own address"
    );

    // Without a trusted proxy, a client cannot choose its address.
    let direct = crate::helpers::spawn_app_with(|s| {
        s.login_rate_limit_per_ip = 3;
    })
    .await;
    for n in 0..3 {
        let response = direct
            .request(reqwest::Method::POST, "/api/v1/auth/login", None)
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&json!({ "email": "nobody@example.com", "password": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = direct
        .request(reqwest::Method::POST, "/api/v1/auth/login", None)
        .header("x-forwarded-for", "203.0.113.99")
        .json(&json!({ "email": "nobody@example.com", "password": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Each registration costs a password hash: one address gets ten an hour.
#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let app = crate::helpers::spawn_app_with(|s| s.allow_registration = true).await;
    for n in 0..10 {
        let body = json!({ "email": format!("r{n}@example.com"), "name": "R", "password": crate::helpers::PASSWORD });
        assert_eq!(app.post("/api/v1/auth/register", None, &body).await.status(), StatusCode::CREATED);
    }
    let body = json!({ "email": "r10@example.com", "name": "R", "password": crate::helpers::PASSWORD });
    let refused = app.post("/api/v1/auth/register", None, &body).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// Hundreds of sign-ins at once are answered (a failure, or turned away with Retry-After:
/// 503 when the hashing queue is full, 429 once the address holds its share of it),
/// while a search beside them still answers.
#[tokio::test]
async fn a_login_storm_is_turned_away_not_queued_without_bound() {
    // 300 connections from one address: above the per-address cap (256), which closes
    // the connections past it unanswered (its own test is in tests/attacks.rs) whenever
    // a loaded machine keeps more than 256 of the storm open at once.
    let app = spawn_app_with(|s| s.max_connections_per_address = 1000).await;
    let manager = app.user(Role::Manager).await;
    let storm = (0..300).map(|n| {
        let app = &app;
        async move {
            let response = app
                .post(
                    "/api/v1/auth/login",
                    None,
                    &json!({ "email": format!("nobody{n}@example.com"), "password": "wrong password!!" }),
                )
                .await;
            let status = response.status();
            if status != StatusCode::UNAUTHORIZED {
                assert!(response.headers().contains_key("retry-after"), "{status}");
            }
            status
        }
    });
    let (statuses, search) = tokio::join!(futures_util::future::join_all(storm), async {
        app.get("/api/v1/accounts?q=smith", &manager.token).await.status()
    });
    assert_eq!(search, StatusCode::OK);
    let turned_away = [StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS];
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED || turned_away.contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| turned_away.contains(s)), "300 at once overflow the queue");
}

async fn import_csv(app: &crate::helpers::TestApp, token: &str, csv: String) -> (Value, Vec<String>) {
    import_file(app, token, "accounts.csv", csv.into_bytes()).await
}

async fn import_file(app: &crate::helpers::TestApp, token: &str, name: &'static str, bytes: Vec<u8>) -> (Value, Vec<String>) {
    use reqwest::multipart::{Form, Part};
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name)).text("mode", "upsert");
    let response = app
        .request(reqwest::Method::POST, "/api/v1/imports", Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    crate::helpers::eventually("the import ends", || async {
        let job: Value = app.get(&format!("/api/v1/imports/{id}"), token).await.json().await.unwrap();
        !job["finished_at"].is_null()
    })
    .await;
    let job: Value = app.get(&format!("/api/v1/imports/{id}"), token).await.json().await.unwrap();
    let errors: Value = app
        .get(&format!("/api/v1/imports/{id}/errors?page_size=100"), token)
        .await
        .json()
        .await
        .unwrap();
    let messages = errors["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned())
        })
        .collect();
    (job, messages)
}

async fn balance_and_status(app: &crate::helpers::TestApp, id: &str) -> (String, String) {
    let row: (rust_decimal::Decimal, String) = sqlx::query_as("SELECT current_balance, status FROM accounts WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    (row.0.normalize().to_string(), row.1)
}

/// Export, pay in full, import the old export as an upsert: the row is refused and the
/// payment's effect stays. A file cannot set a balance the payments do not imply.
#[tokio::test]
async fn an_old_export_reimported_cannot_undo_a_payment() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let body = json!({ "account_number": "OLD-1", "debtor_name": "Old Export", "original_balance": "100.00", "currency": "USD", "status": "delinquent" });
    let created = app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await;
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let export = app
        .get("/api/v1/accounts/export?format=csv", &manager.token)
        .await
        .text()
        .await
        .unwrap();
    let paid = app
        .post(
            &format!("/api/v1/accounts/{id}/payments"),
            Some(&manager.token),
            &json!({ "amount": "100.00", "currency": "USD", "method": "card" }),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let after_payment = balance_and_status(&app, &id).await;
    assert_eq!(after_payment.0, "0");

    let (job, messages) = import_csv(&app, &manager.token, export).await;
    assert_eq!(job["failed"], 1, "{job}");
    assert!(messages.iter().any(|m| m.starts_with("changed_since_export")), "{messages:?}");
    assert_eq!(balance_and_status(&app, &id).await, after_payment, "the payment's effect stays");

    // A fresh export may be edited and imported, but not its balance.
    crate::helpers::eventually("the export shows the payment", || async {
        let csv = app
            .get("/api/v1/accounts/export?format=csv", &manager.token)
            .await
            .text()
            .await
            .unwrap();
        csv.contains(",0.00,")
    })
    .await;
    let fresh = app
        .get("/api/v1/accounts/export?format=csv", &manager.token)
        .await
        .text()
        .await
        .unwrap();
    let forged = fresh.replacen(",100.00,0.00,", ",100.00,100.00,", 1);
    assert_ne!(forged, fresh);
    let (job, messages) = import_csv(&app, &manager.token, forged).await;
    assert_eq!(job["failed"], 1, "{job}");
    assert!(
        messages.iter().any(|m| m.starts_with("current_balance_set_by_payments")),
        "{messages:?}"
    );
    let corrected = fresh.replacen(",100.00,0.00,", ",150.00,0.00,", 1);
    let (job, messages) = import_csv(&app, &manager.token, corrected).await;
    assert_eq!(
        job["failed"], 1,
        "the balance cell no longer matches once the debt moves: {messages:?}"
    );
    let corrected = fresh.replacen(",100.00,0.00,", ",150.00,50.00,", 1);
    let (job, messages) = import_csv(&app, &manager.token, corrected).await;
    assert_eq!(job["succeeded"], 1, "{job} {messages:?}");
    assert_eq!(
        balance_and_status(&app, &id).await.0,
        "50",
        "correcting the debt moves the balance by as much"
    );
}

/// Spreadsheets that would make a reader allocate gigabytes from a few kilobytes (or
/// abort the process) are refused as a 422 problem that says why; the memory each takes
/// is measured in `tests/bombs.rs`. The builders' small controls read, and are refused
/// only for the columns they lack.
#[tokio::test]
async fn spreadsheet_bombs_are_refused_with_a_clear_problem() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    for (name, bytes) in [
        ("control.xls", crate::bombs::xls_control()),
        ("control.ods", crate::bombs::ods_control()),
    ] {
        let response = crate::imports::upload(&app, &manager.token, name, bytes, &[]).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(problem.to_string().contains("debtor_name"), "{name}: {problem}");
    }
    for bomb in crate::bombs::all() {
        let (status, code) = match bomb.expect {
            "too_large" | "cell_too_long" => (StatusCode::UNPROCESSABLE_ENTITY, "workbook_too_large"),
            "sprawling" => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt_file"),
            "no_header" => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            _ => continue,
        };
        let response = crate::imports::upload(&app, &manager.token, "bomb", bomb.bytes, &[]).await;
        let problem = assert_problem(response, status, code).await;
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {problem}",
            bomb.name
        );
    }
}

/// Issue 44, item 11: behind HAProxy (`option forwardfor` appends its own
/// `X-Forwarded-For` line), an attacker rotating the value of the first line must not
/// escape the lockout or the per-address limit: the real client is the right-most address
/// of all the lines together that is not a trusted proxy.
#[tokio::test]
async fn a_forged_first_forwarded_for_line_does_not_escape_the_login_limits() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1".to_owned(), "10.0.0.0/8".to_owned()];
        s.login_rate_limit_per_ip = 8;
        s.lockout_threshold = 3;
    })
    .await;
    let admin = app.user(Role::Admin).await;
    let attempt = |n: u32, email: String| {
        let app = &app;
        async move {
            app.request(reqwest::Method::POST, "/api/v1/auth/login", None)
                // What the attacker sent, then what the proxies appended: the client's
                // address (the attacker's own) and an inner proxy's.
                .header("x-forwarded-for", format!("198.51.{}.{}", n / 250, n % 250 + 1))
                .header("x-forwarded-for", "203.0.113.9, 10.1.2.3")
                .json(&json!({ "email": email, "password": "wrong password!!" }))
                .send()
                .await
                .unwrap()
        }
    };
    for n in 0..3 {
        assert_eq!(attempt(n, admin.email.clone()).await.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = attempt(3, admin.email.clone()).await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    for n in 4..9 {
        let response = attempt(n, format!("nobody{n}@example.com")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "failure {n}");
    }
    let limited = attempt(9, "nobody9@example.com".to_owned()).await;
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Another client behind the same proxies is judged on its own.
    let response = app
        .request(reqwest::Method::POST, "/api/v1/auth/login", None)
        .header("x-forwarded-for", "192.0.2.44")
        .header("x-forwarded-for", "10.9.9.9")
        .json(&json!({ "email": admin.email, "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Issue 44, item 12: one device sending made-up emails from an office's address used
/// to lock the whole office out, the admin's right password included. Now the address's
/// failures turn away guesses (the protection against password spraying stays), but a
/// user who has signed in from that address before still gets in with the right
/// password; their own lockout still counts.
#[tokio::test]
async fn failures_from_one_address_do_not_lock_out_its_known_users() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.login_rate_limit_per_ip = 20;
        s.lockout_threshold = 5;
    })
    .await;
    // The admin has worked from this office before (the helper signs in over HTTP).
    let admin = app.user(Role::Admin).await;
    // A colleague who has never signed in from here.
    let hash = arrears::auth::password::hash(crate::helpers::PASSWORD.to_owned()).await.unwrap();
    let newcomer = arrears::store::users::insert(&app.pool, "newcomer@example.com", "New", Role::Agent, &hash)
        .await
        .unwrap();
    for n in 0..100 {
        let (status, _) = app.login(&format!("made-up-{n}@example.com"), "Summer2026!").await;
        let expected = if n < 20 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "attempt {n}");
    }
    let (status, body) = app.login(&admin.email, crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the admin signs in: {body}");

    // Spraying stays refused, whether the account exists or not, and tells nothing.
    let sprayed = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": newcomer.email, "password": crate::helpers::PASSWORD }),
        )
        .await;
    let sprayed = assert_problem(sprayed, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": "made-up@example.com", "password": "x" }),
        )
        .await;
    let unknown = assert_problem(unknown, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(sprayed["detail"], unknown["detail"]);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": admin.email, "password": "wrong password!!" }),
        )
        .await;
    let wrong = assert_problem(wrong, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(wrong["detail"], unknown["detail"]);

    // The admin's own lockout still holds: four more wrong passwords make five.
    for _ in 0..4 {
        assert_eq!(app.login(&admin.email, "wrong password!!").await.0, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        app.login(&admin.email, crate::helpers::PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "five failures lock the admin's email for this address"
    );
}

/// Issue 44, item 13: NUL in a query parameter and dates PostgreSQL cannot hold used to
/// be 500s; each is now refused by name at the edge.
#[tokio::test]
async fn nul_in_a_query_and_dates_out_of_range_are_refused_by_name() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    for path in ["/api/v1/agents?q=%00", "/api/v1/agents?q=a%00b", "/api/v1/accounts?q=%00"] {
        let problem = assert_problem(app.get(path, &admin.token).await, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        assert_eq!(crate::helpers::error_fields(&problem), ["q"], "{path}: {problem}");
    }

    let account = app.account(&admin.token, json!({})).await;
    let id = account["id"].as_str().unwrap();
    let cases = [
        (
            "activities",
            json!({ "type": "note", "notes": "x", "occurred_at": "-262143-01-01T00:00:00Z" }),
            "occurred_at",
        ),
        (
            "payments",
            json!({ "amount": "1.00", "currency": "USD", "method": "card", "received_at": "-262143-01-01T00:00:00Z" }),
            "received_at",
        ),
        (
            "payments",
            json!({ "amount": "1.00", "currency": "USD", "method": "card", "received_at": "+262142-12-31T00:00:00Z" }),
            "received_at",
        ),
        ("promises", json!({ "amount": "1.00", "due_date": "-262143-01-01" }), "due_date"),
        ("promises", json!({ "amount": "1.00", "due_date": "1899-12-31" }), "due_date"),
    ];
    for (resource, body, field) in cases {
        let response = app
            .post(&format!("/api/v1/accounts/{id}/{resource}"), Some(&admin.token), &body)
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(crate::helpers::error_fields(&problem), [field], "{resource}: {problem}");
    }
    let response = app
        .post(
            "/api/v1/accounts",
            Some(&admin.token),
            &json!({ "debtor_name": "Ann", "original_balance": "1.00", "currency": "USD", "due_date": "-262143-01-01" }),
        )
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(crate::helpers::error_fields(&problem), ["due_date"], "{problem}");
}

/// Issue 44, item 13: an import row holding a NUL character showed PostgreSQL's own
/// error text in the row's error; the row is now refused by column, in our words.
#[tokio::test]
async fn an_import_row_with_a_nul_is_refused_without_database_text() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let rows = [
        ["account_number", "debtor_name", "original_balance", "currency", "due_date"],
        ["NUL-1", "Ann\u{0}Smith", "10.00", "USD", "2026-01-01"],
        ["NUL-2", "Bob Smith", "10.00", "USD", "-262143-01-01"],
        ["NUL-3", "Cat Smith", "10.00", "USD", "2026-01-01"],
    ];
    // A spreadsheet cell may hold NUL (written `_x0000_`); a CSV with one is not text.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *cell).unwrap();
        }
    }
    let xlsx = workbook.save_to_buffer().unwrap();
    let (job, messages) = import_file(&app, &manager.token, "accounts.xlsx", xlsx).await;
    assert_eq!((job["succeeded"].as_i64(), job["failed"].as_i64()), (Some(1), Some(2)), "{job}");
    assert!(messages.len() >= 2, "{messages:?}");
    for message in &messages {
        for database_text in ["0x00", "database", "encoding", "UTF8", "error returned"] {
            assert!(!message.contains(database_text), "{message}");
        }
    }
    assert!(messages.iter().any(|m| m.contains("NUL")), "{messages:?}");
}

/// Issue 44, item 5: one valid low-privilege account signing in over and over from one
/// address filled the hashing queue, and an admin elsewhere got 503s. Successful logins
/// now have budgets too (per account and per address), and one address holds at most
/// its share of the queue, so another address always finds a place.
#[tokio::test]
async fn one_address_flooding_good_logins_does_not_keep_an_admin_out() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1".to_owned()];
        // The production defaults (the suite's settings lift the per-address ones).
        let defaults = arrears::cli::Cli::try_parse_from(["arrears", "serve"]).unwrap().settings;
        s.logins_per_account_per_minute = defaults.logins_per_account_per_minute;
        s.logins_per_ip_per_minute = defaults.logins_per_ip_per_minute;
        s.hash_queue_share_per_ip_percent = defaults.hash_queue_share_per_ip_percent;
    })
    .await;
    let flooder = app.user(Role::Agent).await;
    let admin = app.user(Role::Admin).await;
    // The queue's places on this machine (src/auth/password.rs: half the cores hash,
    // 64 waiting per thread, one running each); the flood keeps more than that in flight.
    let threads = (std::thread::available_parallelism().map_or(2, usize::from) / 2).max(1);
    let workers = threads * 65 + 32;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (0..workers)
        .map(|_| {
            let (api, email, stop, answered) = (app.api(), flooder.email.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = api
                        .request(reqwest::Method::POST, "/api/v1/auth/login", None)
                        .header("x-forwarded-for", "203.0.113.66")
                        .json(&json!({ "email": email, "password": crate::helpers::PASSWORD }))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(response.status());
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if response.status() != StatusCode::OK {
                        // Retry-After is ignored, but the flood does not spin.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                statuses
            })
        })
        .collect();
    // The flood is under way: every worker's first request has been answered, on average.
    crate::helpers::eventually("the flood is answered", || async {
        answered.load(std::sync::atomic::Ordering::Relaxed) >= workers
    })
    .await;
    let mut admin_statuses = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..8 {
        let started = std::time::Instant::now();
        let response = app
            .request(reqwest::Method::POST, "/api/v1/auth/login", None)
            .header("x-forwarded-for", "192.0.2.10")
            .json(&json!({ "email": admin.email, "password": crate::helpers::PASSWORD }))
            .send()
            .await
            .unwrap();
        latencies.push(started.elapsed());
        admin_statuses.push(response.status());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flood_statuses = Vec::new();
    for worker in flood {
        flood_statuses.extend(worker.await.unwrap());
    }
    let count = |statuses: &[StatusCode]| {
        let mut counts = std::collections::BTreeMap::<u16, usize>::new();
        for s in statuses {
            *counts.entry(s.as_u16()).or_default() += 1;
        }
        counts
    };
    latencies.sort();
    println!(
        "flooder (203.0.113.66, {workers} at once): {:?}; admin (192.0.2.10): {:?}; admin latency min {:?} median {:?} max {:?}",
        count(&flood_statuses),
        count(&admin_statuses),
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    assert!(
        admin_statuses.iter().all(|s| *s == StatusCode::OK),
        "every admin login succeeds: {:?}",
        count(&admin_statuses)
    );
    let flood_ok = flood_statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(
        flood_ok <= 9,
        "the account's budget of 10 a minute, one spent by the helper: {flood_ok}"
    );
    assert!(
        flood_statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the flood is budgeted: {:?}",
        count(&flood_statuses)
    );
}

/// Issue 75, item 13: a debtor's name holding CR LF reached a rendered email subject,
/// and U+202E reverses whatever follows it on a screen. A name that breaks or reorders a
/// line is refused by code point wherever a name comes in: a new account, a change,
/// an imported row.
#[tokio::test]
async fn debtor_names_that_break_or_reorder_a_line_are_refused_wherever_they_come_in() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({"debtor_name": "Jane Doe"})).await);
    for (name, code) in [
        ("Jane\r\nBcc: all@example.com", "U+000D"),
        ("Jane\u{202e}eoD", "U+202E"),
        ("Jane\u{2028}Doe", "U+2028"),
    ] {
        let body = json!({"debtor_name": name, "original_balance": "10.00", "currency": "USD", "due_date": "2026-01-15"});
        let created = app.post("/api/v1/accounts", Some(&manager.token), &body).await;
        let problem = assert_problem(created, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(crate::helpers::error_fields(&problem), ["debtor_name"], "{problem}");
        assert!(problem.to_string().contains(code), "{problem}");
        let changed = app
            .patch(
                &format!("/api/v1/accounts/{account}"),
                &manager.token,
                &json!({"debtor_name": name}),
            )
            .await;
        assert_problem(changed, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert_eq!(app.get_account(&manager.token, &account).await["debtor_name"], "Jane Doe");

    let csv = "account_number,debtor_name,original_balance,currency,due_date\n\
               CRLF-1,\"Ann\r\nBcc: x@example.com\",10.00,USD,2026-01-01\n\
               RLO-1,Bob\u{202e}htimS,10.00,USD,2026-01-01\n\
               FINE-1,Cat Smith,10.00,USD,2026-01-01\n";
    let (job, messages) = import_file(&app, &manager.token, "accounts.csv", csv.as_bytes().to_vec()).await;
    assert_eq!(
        (job["succeeded"].as_i64(), job["failed"].as_i64()),
        (Some(1), Some(2)),
        "{job} {messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("U+000D")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("U+202E")), "{messages:?}");
}
