//! Prometheus metrics on their own listener.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use arrears::domain::role::Role;

/// The value of the sample of `name` whose labels include `labels` (0 when absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let held: HashMap<&str, &str> = rest
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|(k, v)| held.get(k) == Some(v))
                .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

/// The metrics listener is not the API, so it is not in the API's description: its
/// answers are read with a plain client.
fn metrics_url(app: &TestApp) -> String {
    format!("{}/metrics", app.metrics_address.as_deref().expect("metrics are on"))
}

async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(metrics_url(app)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.unwrap()
}

const PAYMENTS: [(&str, &str); 3] = [("method", "POST"), ("route", "/api/v1/accounts/{id}/payments"), ("status", "201")];

#[tokio::test]
async fn a_payment_moves_the_request_counter_and_the_sync_lag_histogram() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let before = scrape(&app).await;
    let path = format!("/api/v1/accounts/{}/payments?wait_for=indexed", id_of(&account));
    app.create(
        &manager.token,
        &path,
        &json!({"amount": "10.00", "currency": "USD", "method": "card"}),
    )
    .await;
    let after = scrape(&app).await;
    // The recorder is the process's, shared by the tests running beside this one:
    // everything here is "moved by at least", never "equals".
    assert!(sample(&after, "arrears_http_requests_total", &PAYMENTS) >= sample(&before, "arrears_http_requests_total", &PAYMENTS) + 1.0);
    assert!(
        sample(&after, "arrears_http_request_duration_seconds_count", &PAYMENTS)
            >= sample(&before, "arrears_http_request_duration_seconds_count", &PAYMENTS) + 1.0
    );
    // The sync records a batch's lag once it has settled the outbox, just after the
    // documents became searchable (which is what `wait_for=indexed` waits for).
    let lag_before = sample(&before, "arrears_sync_lag_seconds_count", &[]);
    eventually("the lag histogram counts the payment", || async {
        sample(&scrape(&app).await, "arrears_sync_lag_seconds_count", &[]) > lag_before
    })
    .await;
    assert!(sample(&after, "arrears_sync_documents_total", &[("outcome", "indexed")]) > 0.0);
    assert!(
        after.contains("# TYPE arrears_sync_lag_seconds histogram"),
        "lag is a histogram, with buckets"
    );
    assert!(sample(&after, "arrears_db_pool_max_connections", &[]) > 0.0);
    assert!(after.contains("arrears_jobs_queued{kind=\"import\"}"));
}

#[tokio::test]
async fn paths_no_route_takes_are_one_label_and_metrics_are_not_on_the_api() {
    let app = spawn_app().await;
    let made_up = format!("/api/v1/made-up-{}", uuid::Uuid::new_v4().simple());
    let response = app.request(reqwest::Method::GET, &made_up, None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let api = app.request(reqwest::Method::GET, "/metrics", None).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND, "the API's address does not serve metrics");
    let text = scrape(&app).await;
    assert!(!text.contains("made-up-"), "a client's path never becomes a label");
    assert!(sample(&text, "arrears_http_requests_total", &[("route", "unmatched"), ("status", "404")]) >= 2.0);
}

#[tokio::test]
async fn a_metrics_token_is_required_when_one_is_set() {
    let app = spawn_app_with(|s| s.metrics_token = Some("scrape-secret".to_owned())).await;
    let (url, client) = (metrics_url(&app), reqwest::Client::new());
    for refused in [client.get(&url), client.get(&url).bearer_auth("scrape-secreT")] {
        let response = refused.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let right = client.get(&url).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.unwrap().contains("arrears_http_requests_total"));
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(|s| s.metrics = false).await;
    assert!(app.metrics_address.is_none());
    let user = app.user(Role::Agent).await;
    assert_eq!(app.get("/api/v1/accounts", &user.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_sent_message_moves_the_message_tries_counter() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let zone = crate::compliance::zone_where_it_is(chrono::Utc::now(), 10, 19);
    let account = app.account(&manager.token, json!({"timezone": zone})).await;
    const SENT: [(&str, &str); 3] = [("channel", "sms"), ("provider", "local"), ("outcome", "sent")];
    let before = sample(&scrape(&app).await, "arrears_message_tries_total", &SENT);
    let path = format!("/api/v1/accounts/{}/messages", id_of(&account));
    let response = app
        .post(&path, Some(&manager.token), &json!({"channel": "sms", "text": "Hello"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    eventually("the counter counts the message", || async {
        sample(&scrape(&app).await, "arrears_message_tries_total", &SENT) >= before + 1.0
    })
    .await;
}
