//! Lists and exports are compressed when the client accepts it, and only then.

use arrears::domain::role::Role;
use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::helpers::{TestApp, eventually, id_of, spawn_app};

/// The status, headers and decoded body of a GET sent with `Accept-Encoding: accept`,
/// by a client that neither asks for compression itself nor decodes it behind our back.
async fn fetch(app: &TestApp, token: &str, path: &str, accept: Option<&str>) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder().no_gzip().no_brotli().no_deflate().build().unwrap();
    let mut request = client.request(Method::GET, app.url(path)).bearer_auth(token);
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.bytes().await.unwrap();
    let mut body = Vec::new();
    match headers.get("content-encoding").map(|v| v.to_str().unwrap()) {
        None => body.extend_from_slice(&bytes),
        Some("gzip") => drop(GzipDecoder::new(&bytes[..]).read_to_end(&mut body).await.unwrap()),
        Some("br") => drop(BrotliDecoder::new(&bytes[..]).read_to_end(&mut body).await.unwrap()),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    (status, headers, body)
}

#[tokio::test]
async fn lists_and_exports_are_compressed_as_the_client_asks() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let mut id = String::new();
    for n in 0..6 {
        let account = app
            .account(
                &manager.token,
                json!({"debtor_name": format!("Compressed Debtor {n}"), "original_balance": "10.00"}),
            )
            .await;
        id = id_of(&account);
    }
    let list = "/api/v1/accounts?sort=name";
    eventually("the six accounts are listed", || async {
        let (_, _, body) = fetch(&app, &manager.token, list, None).await;
        serde_json::from_slice::<Value>(&body).unwrap()["total"] == 6
    })
    .await;
    let (_, plain_headers, plain) = fetch(&app, &manager.token, list, None).await;
    assert!(plain_headers.get("content-encoding").is_none(), "nothing asked, nothing compressed");
    assert_eq!(plain_headers["vary"], "accept-encoding");
    for (accept, expected) in [("gzip", "gzip"), ("gzip, deflate, br", "br"), ("br;q=0.1, gzip", "gzip")] {
        let (status, headers, body) = fetch(&app, &manager.token, list, Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-encoding"], expected, "{accept}");
        let (got, want): (Value, Value) = (serde_json::from_slice(&body).unwrap(), serde_json::from_slice(&plain).unwrap());
        assert_eq!(got, want, "{accept}: the same list once decoded");
    }
    // One account carries the ETag that If-Match compares: it is sent as it is.
    let (_, headers, _) = fetch(&app, &manager.token, &format!("/api/v1/accounts/{id}"), Some("gzip")).await;
    assert!(headers.get("content-encoding").is_none() && headers.contains_key("etag"));
    // Exports are compressed as they stream; the decoded file is the plain one.
    let export = "/api/v1/accounts/export?format=csv&sort=name";
    let (_, _, plain_csv) = fetch(&app, &manager.token, export, None).await;
    for accept in ["gzip", "br"] {
        let (status, headers, csv) = fetch(&app, &manager.token, export, Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-encoding"], accept);
        assert_eq!(String::from_utf8(csv).unwrap(), String::from_utf8(plain_csv.clone()).unwrap());
    }
    // A refusal stays readable by anyone.
    let (status, headers, _) = fetch(&app, &manager.token, "/api/v1/accounts?page_size=201", Some("gzip")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get("content-encoding").is_none());
}
