//! The operator's view, `GET /api/v1/admin/system`: admins only; the process's figures
//! read when asked; and, in `arrears serve` as operators run it, every statement timed by
//! family (and turned off by `QUERY_TIMING=false`).

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Served, spawn_app, status_json};

#[tokio::test]
async fn only_admins_read_the_view_and_it_says_what_the_process_holds() {
    let app = spawn_app().await;
    for role in [Role::Manager, Role::Agent, Role::Viewer] {
        let user = app.user(role).await;
        let (status, _) = status_json(app.get("/api/v1/admin/system", &user.token).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
    }
    let anonymous = app
        .request(reqwest::Method::GET, "/api/v1/admin/system", None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    app.account(&manager.token, json!({})).await;
    let (status, view) = status_json(app.get("/api/v1/admin/system", &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["uptime_seconds"].as_f64().unwrap() > 0.0, "{view}");
    let process = &view["process"];
    let rss = process["rss_bytes"].as_u64().unwrap();
    assert!(rss > 1 << 20, "a process holds more than a MiB: {process}");
    assert!(process["peak_rss_bytes"].as_u64().unwrap() >= rss, "{process}");
    assert!(process["cpu_seconds"].as_f64().unwrap() > 0.0, "{process}");
    assert!(process["threads"].as_u64().unwrap() >= 1, "{process}");
    let pool = &view["pool"];
    assert_eq!(pool["max"], app.settings.database_max_connections, "{pool}");
    assert_eq!(
        pool["open"].as_u64().unwrap(),
        pool["idle"].as_u64().unwrap() + pool["in_use"].as_u64().unwrap(),
        "{pool}"
    );
    assert!(pool["open"].as_u64().unwrap() >= 1, "{pool}");
    let kinds: Vec<&str> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bulk_update", "import", "document_upload"]);
    assert!(view["sync"]["outbox_depth"].as_i64().unwrap() >= 0, "{view}");
    assert!(view["sync"]["search"].is_string(), "{view}");
    // Each entity's live index, as the sync left it: the account is in it.
    let indices = view["sync"]["indices"].as_array().unwrap();
    let entities: Vec<&str> = indices.iter().map(|i| i["entity"].as_str().unwrap()).collect();
    assert_eq!(entities, ["account", "payment"], "{view}");
    for index in indices {
        assert!(index["bytes"].as_u64().unwrap() > 0, "an index has files: {index}");
        assert!(index["index"].as_str().unwrap().starts_with('g'), "the live generation: {index}");
    }
    crate::helpers::eventually("the account is indexed", || async {
        let (_, view) = status_json(app.get("/api/v1/admin/system", &admin.token).await).await;
        let accounts = &view["sync"]["indices"][0];
        accounts["documents"].as_u64().unwrap() >= 1 && accounts["segments"].as_u64().unwrap() >= 1
    })
    .await;
    assert!(view["counted"]["http_requests"].as_u64().unwrap() >= 5, "{view}");
    assert!(view["queries"]["families"].is_array(), "{view}");
}

/// `arrears serve` with `env`, and an admin signed in to it.
async fn served(env: &[(&str, &str)]) -> (Served, String) {
    let served = Served::start(env).await;
    let token = served.signed_in(Role::Admin).await;
    (served, token)
}

async fn view(base: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/admin/system"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn family<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["queries"]["families"].as_array().unwrap().iter().find(|f| f["family"] == name)
}

#[tokio::test]
async fn the_server_times_every_statement_by_family_unless_told_not_to() {
    let (server, token) = served(&[]).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    for n in 0..5 {
        let created = client
            .post(format!("{base}/api/v1/accounts"))
            .bearer_auth(&token)
            .json(&json!({"debtor_name": format!("Timed {n}"), "original_balance": "10.00", "currency": "USD"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let seen = view(&base, &token).await;
    assert_eq!(seen["queries"]["timed"], true);
    let inserts = family(&seen, "insert accounts").unwrap_or_else(|| panic!("no `insert accounts` in {seen}"));
    assert_eq!(inserts["count"], 5, "{inserts}");
    assert_eq!(inserts["recent"], 5, "{inserts}");
    let (p50, p99, max) = (
        inserts["p50_ms"].as_f64().unwrap(),
        inserts["p99_ms"].as_f64().unwrap(),
        inserts["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max * 1.01, "{inserts}");
    assert!(inserts["total_seconds"].as_f64().unwrap() >= max / 1000.0 * 0.99, "{inserts}");
    // A transaction's COMMIT is a family of its own.
    assert!(family(&seen, "commit").is_some(), "transactions are timed: {seen}");
    let families = seen["queries"]["families"].as_array().unwrap();
    let totals: Vec<f64> = families.iter().map(|f| f["total_seconds"].as_f64().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "the most time first: {totals:?}");
    // Each statement outside a transaction, and each transaction, waited for a connection
    // from the pool first: at least one wait per account created.
    let waits = &seen["pool"]["waits"];
    assert!(waits["count"].as_u64().unwrap() >= 5, "{waits}");
    let (p50, p99, max) = (
        waits["p50_ms"].as_f64().unwrap(),
        waits["p99_ms"].as_f64().unwrap(),
        waits["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max * 1.01, "{waits}");

    let (quiet, token) = served(&[("QUERY_TIMING", "false")]).await;
    let unseen = view(&quiet.base, &token).await;
    assert_eq!(unseen["queries"]["timed"], false);
    assert_eq!(unseen["queries"]["families"], json!([]), "{unseen}");
    assert_eq!(unseen["pool"]["waits"]["count"], 0, "{unseen}");
}
