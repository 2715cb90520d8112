//! The agent console at `/`: the page with its strict policy, its files with their
//! types and long caching, and the API's own 404s left alone.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_console_page_and_its_files_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().no_gzip().no_brotli().build().unwrap();
    let page = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(policy.contains("connect-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(
        headers["cache-control"], "no-cache",
        "the page is revalidated so it names the current files"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    let script = html
        .split_once("<script type=\"module\" src=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(src, _)| src.to_owned())
        .expect("the page loads its entry module");
    assert!(script.starts_with("/console/") && script.ends_with("/main.js"), "{script}");
    assert!(!html.contains("<script>"), "no inline script");

    let module = client.get(app.url(&script)).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(module.status(), StatusCode::OK);
    assert_eq!(module.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(module.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(
        module.headers()["content-encoding"],
        "br",
        "the console is compressed like the lists"
    );

    let stylesheet = script.replace("main.js", "console.css");
    let css = client.get(app.url(&stylesheet)).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let stale = client.get(app.url("/console/0000000000000000/main.js")).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND, "another version's file is not this one");
    let missing = client.get(app.url(&script.replace("main.js", "nothing.js"))).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn an_unknown_api_path_is_still_a_problem_not_the_console() {
    let app = spawn_app().await;
    let response = app.request(Method::GET, "/api/v1/no-such-thing", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
    let post = app.request(Method::POST, "/", None).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED, "the page is only read");
}

/// The console's one list of account statuses (`ACCOUNT_STATUSES` in console/api.js)
/// is the API's: a status added to one is added to the other.
#[test]
fn the_console_lists_the_account_statuses_of_the_api() {
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/console/api.js")).unwrap();
    let declared = api
        .lines()
        .find_map(|line| line.strip_prefix("export const ACCOUNT_STATUSES = "))
        .expect("console/api.js declares ACCOUNT_STATUSES");
    let listed: Vec<String> = serde_json::from_str(declared.trim_end_matches(';')).unwrap();
    let api_statuses: Vec<&str> = arrears::domain::account::AccountStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(listed, api_statuses);
}
