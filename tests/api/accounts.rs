use arrears::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, error_fields, spawn_app, status_json};

#[tokio::test]
async fn create_then_read_returns_the_wire_shape() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let body = json!({
        "account_number": "ac-1001",
        "external_ref": "CRM-77",
        "debtor_name": "  José Álvarez ",
        "email": "Jose@Example.COM",
        "phone": "(201) 555-0134",
        "address": {"line1": "1 Main St", "city": "Springfield", "region": "NJ", "postal_code": "07081", "country": "us"},
        "timezone": "America/New_York",
        "status": "delinquent",
        "original_balance": "1250",
        "current_balance": "1000.5",
        "currency": "usd",
        "due_date": "2026-01-15",
        "assigned_agent_id": agent.id,
        "next_action_at": "2026-12-01T15:00:00Z",
        "tags": ["VIP", "vip", "payroll"],
        "custom_fields": {"segment": "retail"},
        "do_not_call": true
    });
    let response = app.post("/api/v1/accounts", Some(&manager.token), &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["account_number"], "AC-1001");
    assert_eq!(created["debtor_name"], "José Álvarez");
    assert_eq!(created["email"], "jose@example.com");
    assert_eq!(created["phone"], "+12015550134");
    assert_eq!(created["address"]["country"], "US");
    assert_eq!(created["original_balance"], "1250.00");
    assert_eq!(created["current_balance"], "1000.50");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["tags"], json!(["payroll", "vip"]));
    assert_eq!(created["assigned_agent_id"], json!(agent.id));
    assert_eq!(created["created_by"], json!(manager.id));
    assert!(created["days_past_due"].as_i64().unwrap() > 0);
    assert!(created["bucket"].is_string());
    assert!(created["deleted_at"].is_null());
    assert_eq!(etag, format!("\"{}\"", created["search_version"]));

    let (status, mut read) = status_json(app.get(&location, &agent.token).await).await;
    assert_eq!(status, StatusCode::OK);
    // A read of one account names its owner; the rest is what the create answered.
    let owner: String = app.sql_value("SELECT name FROM users WHERE id = $1", &agent.id.to_string()).await;
    assert_eq!(read.as_object_mut().unwrap().remove("assigned_agent_name"), Some(json!(owner)));
    assert_eq!(read, created);
}

#[tokio::test]
async fn account_number_is_generated_when_absent_and_unique() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let a = app.account(&manager.token, json!({})).await;
    let b = app.account(&manager.token, json!({})).await;
    assert!(a["account_number"].as_str().unwrap().starts_with("ACC-"));
    assert_ne!(a["account_number"], b["account_number"]);
    let duplicate = app
        .post(
            "/api/v1/accounts",
            Some(&manager.token),
            &json!({
                "account_number": a["account_number"].as_str().unwrap().to_lowercase(),
                "debtor_name": "X", "original_balance": "1.00", "currency": "USD"
            }),
        )
        .await;
    assert_problem(duplicate, StatusCode::CONFLICT, "duplicate_account_number").await;
}

#[tokio::test]
async fn validation_errors_name_every_bad_field() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"email": "not-an-email"}), &["email"]),
        (json!({"phone": "12"}), &["phone"]),
        (json!({"currency": "XXY"}), &["currency"]),
        (json!({"original_balance": "-5.00"}), &["original_balance"]),
        (json!({"original_balance": "5.001"}), &["original_balance"]),
        (json!({"original_balance": 5.5}), &["original_balance"]),
        (json!({"timezone": "Mars/Olympus"}), &["timezone"]),
        (json!({"is_admin": true}), &["is_admin"]),
        (json!({"status": "happy"}), &["status"]),
        (json!({"due_date": "15/01/2026"}), &["due_date"]),
        (json!({"address": {"country": "Narnia"}}), &["address.country"]),
        (json!({"address": {"planet": "Earth"}}), &["address.planet"]),
        (
            json!({"email": "x@", "phone": "abc", "currency": "JPY", "original_balance": "1.5"}),
            &["email", "original_balance", "phone"],
        ),
    ];
    for (overrides, expected) in cases {
        let mut body = json!({"debtor_name": "Jane", "original_balance": "10.00", "currency": "USD"});
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = app.post("/api/v1/accounts", Some(&manager.token), &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        let mut fields = error_fields(&problem);
        fields.sort();
        assert_eq!(fields, expected, "for {overrides}: {problem}");
    }
    let missing = app
        .post(
            "/api/v1/accounts",
            Some(&manager.token),
            &json!({"original_balance": "1.00", "currency": "USD"}),
        )
        .await;
    let problem = assert_problem(missing, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["debtor_name"]);
}

#[tokio::test]
async fn patch_applies_nulls_and_revalidates() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({"next_action_at": "2026-12-01T10:00:00Z"})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    let (status, patched) = status_json(
        app.patch(
            &path,
            &manager.token,
            &json!({"next_action_at": null, "current_balance": "99.90", "debtor_name": "Janet Doe"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(patched["next_action_at"].is_null());
    assert_eq!(patched["current_balance"], "99.90");
    assert_eq!(patched["debtor_name"], "Janet Doe");
    assert_eq!(patched["email"], account["email"], "absent fields are kept");
    assert!(patched["search_version"].as_i64() > account["search_version"].as_i64());

    let to_jpy = app.patch(&path, &manager.token, &json!({"currency": "JPY"})).await;
    let problem = assert_problem(to_jpy, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["current_balance"]);
}

/// PostgreSQL keeps a JSON number as an exact decimal and writes it back in full
/// digits (`1.7976931348623157e308` comes back as 309 of them): every number a request
/// may store must read back as the same number, or the account cannot be read again.
#[tokio::test]
async fn custom_field_numbers_at_the_edges_of_a_double_read_back_unchanged() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    // The largest doubles, the smallest (subnormal) ones, a spread of magnitudes between,
    // and doubles whose full digits a fast parse reads back one unit off.
    let doubles: Vec<f64> = [1.0715660391465826e-75, -1.81996730402717e-179, 1.5860846119992697e-265]
        .into_iter()
        .chain(
            (0..40_u64)
                .map(|k| f64::from_bits(f64::MAX.to_bits() - k))
                .chain((1..40_u64).map(f64::from_bits)),
        )
        .chain((-323..=308).step_by(9).map(|e| 1.2345678901234567 * 10_f64.powi(e)))
        .filter(|x| x.is_finite())
        .flat_map(|x| [x, -x])
        .collect();
    let edges = json!({"doubles": doubles, "u64": u64::MAX, "i64": i64::MIN});
    let (status, patched) = status_json(app.patch(&path, &manager.token, &json!({"custom_fields": edges})).await).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, read) = status_json(app.get(&path, &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    for body in [&patched, &read] {
        let back: Vec<f64> = body["custom_fields"]["doubles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect();
        assert_eq!(back, doubles, "every double reads back as itself");
        assert_eq!(body["custom_fields"]["u64"], u64::MAX);
        assert_eq!(body["custom_fields"]["i64"], i64::MIN);
    }
}

#[tokio::test]
async fn stale_if_match_gives_412_and_fresh_one_succeeds() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    let first_etag = format!("\"{}\"", account["search_version"]);
    let ok = app
        .request(Method::PATCH, &path, Some(&manager.token))
        .header("if-match", &first_etag)
        .json(&json!({"status": "disputed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let new_etag = ok.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, first_etag);
    let stale = app
        .request(Method::PATCH, &path, Some(&manager.token))
        .header("if-match", &first_etag)
        .json(&json!({"status": "paid"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    let (_, current) = status_json(app.get(&path, &manager.token).await).await;
    assert_eq!(current["status"], "disputed", "the stale write changed nothing");
}

#[tokio::test]
async fn soft_delete_hides_and_restore_brings_back() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let id = account["id"].as_str().unwrap();
    let path = format!("/api/v1/accounts/{id}");
    assert_eq!(app.delete(&path, &manager.token).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path, &manager.token).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.delete(&path, &manager.token).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(
        app.patch(&path, &manager.token, &json!({"status": "paid"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar("SELECT deleted_at FROM accounts WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(deleted_at.is_some(), "the row is kept");

    let (status, restored) = status_json(app.post(&format!("{path}/restore"), Some(&manager.token), &json!({})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(restored["deleted_at"].is_null());
    assert_eq!(app.get(&path, &manager.token).await.status(), StatusCode::OK);
    assert_problem(
        app.post(&format!("{path}/restore"), Some(&manager.token), &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

/// Status of each account route for a caller; the account is assigned to `assigned_to`.
async fn route_statuses(app: &TestApp, token: &str, owner_token: &str, assigned_to: Option<uuid::Uuid>) -> Vec<(&'static str, StatusCode)> {
    let account = app.account(owner_token, json!({"assigned_agent_id": assigned_to})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    let create = app
        .post(
            "/api/v1/accounts",
            Some(token),
            &json!({"debtor_name": "N", "original_balance": "1.00", "currency": "USD"}),
        )
        .await
        .status();
    let read = app.get(&path, token).await.status();
    let workflow = app
        .patch(
            &path,
            token,
            &json!({"status": "promise_to_pay", "next_action_at": "2026-12-24T09:00:00Z", "do_not_call": true}),
        )
        .await
        .status();
    let balance = app.patch(&path, token, &json!({"current_balance": "1.00"})).await.status();
    let assign = app.patch(&path, token, &json!({"assigned_agent_id": null})).await.status();
    let delete = app.delete(&path, token).await.status();
    if delete != StatusCode::NO_CONTENT {
        app.delete(&path, owner_token).await;
    }
    let restore = app.post(&format!("{path}/restore"), Some(token), &json!({})).await.status();
    vec![
        ("create", create),
        ("read", read),
        ("workflow", workflow),
        ("balance", balance),
        ("assign", assign),
        ("delete", delete),
        ("restore", restore),
    ]
}

#[tokio::test]
async fn every_role_against_every_account_route() {
    use StatusCode as S;
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let full = [S::CREATED, S::OK, S::OK, S::OK, S::OK, S::NO_CONTENT, S::OK];
    for user in [&admin, &manager] {
        let got: Vec<_> = route_statuses(&app, &user.token, &manager.token, Some(agent.id))
            .await
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got, full, "{}", user.email);
    }
    let agent_on_own = route_statuses(&app, &agent.token, &manager.token, Some(agent.id)).await;
    assert_eq!(
        agent_on_own.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [S::FORBIDDEN, S::OK, S::OK, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN],
        "{agent_on_own:?}"
    );
    let agent_on_other = route_statuses(&app, &agent.token, &manager.token, None).await;
    assert_eq!(
        agent_on_other.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [
            S::FORBIDDEN,
            S::OK,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN
        ],
        "{agent_on_other:?}"
    );
    let viewer_sees = route_statuses(&app, &viewer.token, &manager.token, Some(agent.id)).await;
    assert_eq!(
        viewer_sees.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [
            S::FORBIDDEN,
            S::OK,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN,
            S::FORBIDDEN
        ],
        "{viewer_sees:?}"
    );
}

#[tokio::test]
async fn agent_field_refusal_names_the_fields() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let path = format!("/api/v1/accounts/{}", account["id"].as_str().unwrap());
    let response = app
        .patch(
            &path,
            &agent.token,
            &json!({"status": "paid", "current_balance": "0.00", "assigned_agent_id": null}),
        )
        .await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN, "field_forbidden").await;
    let mut fields = error_fields(&problem);
    fields.sort();
    // `paid` with a balance owed is a manager's decision too (issue 75, item 8).
    assert_eq!(fields, ["assigned_agent_id", "current_balance", "status"]);
    let (_, unchanged) = status_json(app.get(&path, &agent.token).await).await;
    assert_eq!(unchanged["status"], "active");
}

#[tokio::test]
async fn accounts_cannot_be_assigned_to_viewers_or_unknown_users() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    for assignee in [json!(viewer.id), json!(uuid::Uuid::new_v4())] {
        let response = app
            .post(
                "/api/v1/accounts",
                Some(&manager.token),
                &json!({
                    "debtor_name": "N", "original_balance": "1.00", "currency": "USD", "assigned_agent_id": assignee
                }),
            )
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["assigned_agent_id"]);
    }
}

/// `custom_fields` whose objects nest `depth` deep, counting `custom_fields` itself as
/// Elasticsearch's `flattened` type counts: the innermost object sits in an array of
/// arrays, which adds no level.
fn nested_custom_fields(depth: usize) -> Value {
    let mut value = json!({"leaf": "x"});
    for level in 1..depth {
        value = if level == 1 {
            json!({"in_arrays": [[value]], "beside": level})
        } else {
            json!({ format!("level{level}"): value })
        };
    }
    value
}

/// Elasticsearch maps `custom_fields` as `flattened`, whose `depth_limit` (20) refuses a
/// deeper document: refused on every backend when written, as a field error, rather than
/// dead-lettered by the Elasticsearch sync alone.
#[tokio::test]
async fn custom_fields_nested_deeper_than_elasticsearch_indexes_are_refused() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let deepest = app
        .account(&manager.token, json!({"custom_fields": nested_custom_fields(20)}))
        .await;
    assert_eq!(deepest["custom_fields"], nested_custom_fields(20), "20 levels are kept");

    let body = json!({"debtor_name": "Jane", "original_balance": "10.00", "currency": "USD", "custom_fields": nested_custom_fields(21)});
    let refused = app.post("/api/v1/accounts", Some(&manager.token), &body).await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["custom_fields"], "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("20"), "{problem}");

    let path = format!("/api/v1/accounts/{}", deepest["id"].as_str().unwrap());
    let patched = app
        .patch(&path, &manager.token, &json!({"custom_fields": nested_custom_fields(21)}))
        .await;
    let problem = assert_problem(patched, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["custom_fields"], "{problem}");
    let (status, patched) = status_json(app.patch(&path, &manager.token, &json!({"custom_fields": {"flat": 1}})).await).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, patched) = status_json(
        app.patch(&path, &manager.token, &json!({"custom_fields": nested_custom_fields(20)}))
            .await,
    )
    .await;
    assert_eq!((status, &patched["custom_fields"]), (StatusCode::OK, &nested_custom_fields(20)));

    // Nesting past serde_json's recursion limit (128) is refused by the parser before any
    // check walks it.
    let deep = format!("{{\"custom_fields\": {}1{}}}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let response = app
        .request(reqwest::Method::PATCH, &path, Some(&manager.token))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
}
