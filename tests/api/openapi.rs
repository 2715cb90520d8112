//! The API description (`/api/v1/openapi.json`) and the Swagger UI (`/docs`). Every
//! other test checks its answers against the description (helpers::ApiRequest::send);
//! these check that the description covers every route and nothing else.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{PAGES, spawn_app, status_json};

/// Handler modules `http::routes` mounts at the root rather than under `/api/v1`.
const AT_ROOT: &[&str] = &["health.rs", "ws.rs", "openapi.rs", "console.rs"];

/// Handler modules served on a listener other than the API's (`/metrics`), so not part
/// of the API's description.
const OTHER_LISTENERS: &[&str] = &["metrics.rs"];

/// `"accounts" / Uuid / "payments"` as `/accounts/{}/payments`.
fn path_of(segments: &str) -> String {
    segments
        .split('/')
        .map(str::trim)
        .map(|s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(literal) => format!("/{literal}"),
            None => "/{}".to_owned(),
        })
        .collect()
}

/// Every `(METHOD, path)` the handlers declare with `warp::path!`, read from the source:
/// warp's filters cannot be asked what they match. The method is the first
/// `warp::get()` (post, patch, delete, put) after it in the same statement (before the
/// next route of a chain); a route without one
/// answers any method and is described by its GET.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if OTHER_LISTENERS.contains(&file.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("warp::path!(") {
            rest = &rest[at + "warp::path!(".len()..];
            let segments = &rest[..rest.find(')').unwrap()];
            // Up to the end of the statement, or the next route of a chain of them.
            let end = [rest.find(';'), rest.find("warp::path!(")].into_iter().flatten().min();
            let statement = &rest[..end.unwrap_or(rest.len())];
            let method = ["get", "post", "patch", "delete", "put"]
                .into_iter()
                .filter_map(|m| statement.find(&format!("warp::{m}()")).map(|at| (at, m)))
                .min()
                .map_or("GET".to_owned(), |(_, m)| m.to_uppercase());
            let mut route = path_of(segments);
            if !AT_ROOT.contains(&file.as_str()) {
                route = format!("/api/v1{route}");
            }
            routes.insert((method, route));
        }
    }
    routes
}

fn described_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let generic: String = path
                .split('/')
                .skip(1)
                .map(|s| if s.starts_with('{') { "/{}".to_owned() } else { format!("/{s}") })
                .collect();
            operations.insert((method.to_uppercase(), generic));
        }
    }
    operations
}

#[test]
fn every_declared_route_is_described_and_every_described_operation_is_declared() {
    let declared: BTreeSet<_> = declared_routes()
        .into_iter()
        .filter(|(_, path)| !PAGES.contains(&path.as_str()) && !path.starts_with("/console/"))
        .collect();
    let described = described_operations(arrears::http::openapi::document());
    let undescribed: Vec<_> = declared.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "routes without a #[utoipa::path] listed in their module's `Api`: {undescribed:?}"
    );
    let undeclared: Vec<_> = described.difference(&declared).collect();
    assert!(undeclared.is_empty(), "described operations no handler declares: {undeclared:?}");
    assert!(declared.len() > 40, "the source reader found only {} routes", declared.len());
}

/// The count docs/api.md gives ("all N operations") is the description's: a count in the
/// docs that no test holds goes stale (it said 52 while the API grew to 117).
#[test]
fn the_operation_count_in_the_docs_is_the_descriptions() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let words: Vec<&str> = page.split_whitespace().collect();
    let stated: Vec<usize> = words
        .windows(3)
        .filter(|w| w[0] == "all" && w[2].starts_with("operations"))
        .filter_map(|w| w[1].parse().ok())
        .collect();
    let [stated] = stated[..] else {
        panic!("docs/api.md should say \"all N operations\" once; found {stated:?}");
    };
    let described = described_operations(arrears::http::openapi::document()).len();
    assert_eq!(
        stated, described,
        "docs/api.md says all {stated} operations; the description has {described}"
    );
}

/// Every operation says what it does in a line (its summary), which Swagger UI and
/// generated clients show beside the path.
#[test]
fn every_operation_has_a_summary() {
    let document = arrears::http::openapi::document();
    let mut without = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let summary = operation["summary"].as_str().unwrap_or_default();
            if summary.trim().is_empty() {
                without.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        without.is_empty(),
        "operations without a summary (a `///` line on the handler): {without:?}"
    );
}

/// Every `$ref` string under `value`.
fn references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.insert(target.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[test]
fn every_reference_names_a_described_schema() {
    let document = arrears::http::openapi::document();
    let mut found = BTreeSet::new();
    references(document, &mut found);
    let dangling: Vec<_> = found
        .iter()
        .filter(|target| {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
            document["components"]["schemas"][name].is_null()
        })
        .collect();
    assert!(dangling.is_empty(), "references to no schema: {dangling:?}");
}

#[tokio::test]
async fn every_described_operation_is_served() {
    let app = spawn_app().await;
    let document = arrears::http::openapi::document();
    let mut refused = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .skip(1)
            .map(|s| {
                if s.starts_with('{') {
                    format!("/{}", uuid::Uuid::nil())
                } else {
                    format!("/{s}")
                }
            })
            .collect();
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Without a token or a body: the answer is checked against the description
            // like any other, and a route that matched says so by any answer but these.
            let response = app.request(method.clone(), &concrete, None).send().await.unwrap();
            let status = response.status();
            let (_, body) = status_json(response).await;
            if status == StatusCode::METHOD_NOT_ALLOWED || body["code"] == "route_not_found" {
                refused.push(format!("{method} {path}: {status}"));
            }
        }
    }
    assert!(refused.is_empty(), "described but not served: {refused:?}");
}

#[tokio::test]
async fn the_description_is_public_openapi_3_1_with_the_bearer_scheme() {
    let app = spawn_app().await;
    let response = app.request(Method::GET, "/api/v1/openapi.json", None).send().await.unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body, arrears::http::openapi::document());
    assert!(body["openapi"].as_str().unwrap().starts_with("3.1"), "{}", body["openapi"]);
    assert_eq!(body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(body["security"][0]["bearer"], serde_json::json!([]));
    let login = &body["paths"]["/api/v1/auth/login"]["post"];
    assert_eq!(login["security"], serde_json::json!([{}]), "login needs no token");
    let problem = &login["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"];
    assert_eq!(problem, "#/components/schemas/Problem");
}

#[tokio::test]
async fn the_swagger_ui_is_served_from_the_binary_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(moved.headers()["location"], "/docs/");
    let page = client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        policy.contains("script-src 'self';") && policy.contains("connect-src 'self';"),
        "{policy}"
    );
    assert!(!policy.contains("http"), "no other origin may be named: {policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    let init = client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let init = init.text().await.unwrap();
    assert!(init.contains("\"/api/v1/openapi.json\""), "{init}");
    assert!(!init.contains("petstore"), "{init}");
    let bundle = client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let missing = client.get(app.url("/docs/nothing-here.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
