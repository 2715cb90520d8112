//! The agent console at `/`: plain ES modules and one stylesheet from `console/`,
//! compiled into the binary (no build step, nothing fetched from elsewhere).
//!
//! Assets live under `/console/{version}/`, where the version is a digest of every
//! asset, so they can be cached for good; `index.html` names the current version and
//! is revalidated on every load. Modules import each other by relative paths, which
//! resolve inside the same version.

use std::sync::LazyLock;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::error::{Code, Error};

/// What the console may load: its own scripts, styles and images, requests (and the
/// WebSocket) to its own origin; nothing inline, never framed. `blob:` images only: an
/// account's PNG and JPEG documents are fetched with the session's token (never put in
/// a URL) and previewed from a blob URL the console made of them. A PDF opened from a
/// blob URL in a new tab needs nothing more: Chromium's viewer shows it under this
/// policy, which the blob's document keeps.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

macro_rules! assets {
    ($($name:literal => $kind:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
            content_type: $kind,
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `console/` but `index.html` (a unit test holds the list to the directory).
const ASSETS: &[Asset] = assets![
    "console.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "main.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "keys.js" => JS,
    "live.js" => JS,
    "jobs.js" => JS,
    "search.js" => JS,
    "account.js" => JS,
    "account-edit.js" => JS,
    "calls.js" => JS,
    "history.js" => JS,
    "documents.js" => JS,
    "overrides.js" => JS,
    "queue.js" => JS,
    "imports.js" => JS,
    "dashboard.js" => JS,
    "report.js" => JS,
    "payments.js" => JS,
    "admin.js" => JS,
    "fields.js" => JS,
    "portfolios.js" => JS,
    "system.js" => JS,
    "contact-policy.js" => JS,
    "messages.js" => JS,
    "custom-fields.js" => JS,
    "second-factor.js" => JS,
    "me.js" => JS,
];

const INDEX: &str = include_str!("../../console/index.html");

/// A digest of every asset: it changes whenever one does.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for asset in ASSETS {
        digest.update(asset.name.as_bytes());
        digest.update((asset.bytes.len() as u64).to_le_bytes());
        digest.update(asset.bytes);
    }
    digest.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
});

static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("{{version}}", &VERSION));

fn page() -> Response {
    let mut response = warp::reply::html(PAGE.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset(version: &str, name: &str) -> Response {
    let found = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .filter(|_| version == VERSION.as_str());
    let Some(asset) = found else {
        return Error::new(Code::RouteNotFound, "no console asset has this path").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

/// `GET /` (the page; the console routes by the URL's fragment) and `GET /console/{version}/{file}`.
pub fn routes() -> BoxedFilter<(Response,)> {
    let index = warp::path::end().and(warp::get()).map(page);
    let assets = warp::path!("console" / String / String)
        .and(warp::get())
        .map(|version: String, name: String| asset(&version, &name));
    index.or(assets).unify().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_console_directory_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/console");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "index.html")
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|asset| asset.name.to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "list every file of console/ in ASSETS");
    }

    #[test]
    fn the_page_names_the_current_version_and_no_inline_script() {
        assert!(PAGE.contains(&format!("/console/{}/main.js", *VERSION)));
        assert!(!PAGE.contains("{{version}}"));
        assert!(!PAGE.contains("<script>"), "inline scripts are refused by the policy");
        assert!(!PAGE.contains("style="), "inline styles are refused by the policy");
    }
}
