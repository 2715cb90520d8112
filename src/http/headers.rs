//! Response headers every answer carries: no content sniffing, no referrer, no framing,
//! no caching of debtor data, and HSTS when the operator turns it on.

use warp::http::HeaderValue;
use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};
use warp::reply::Response;

/// What a JSON answer may load or be framed by: nothing.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the Swagger UI at `/docs` may load: its own scripts, styles and images from this
/// origin (none from elsewhere), the description by `fetch` to this origin, never framed.
/// Its inline styles (React style attributes, markdown it renders) need
/// `'unsafe-inline'` for styles only, and its stylesheet's icons are `data:` images;
/// scripts stay limited to the vendored files.
pub const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Sets the headers an answer has not set itself (a page sets its own policy).
pub fn secure(response: &mut Response, hsts_max_age: u64) {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_POLICY));
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if hsts_max_age > 0
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={hsts_max_age}; includeSubDomains"))
    {
        headers.insert(STRICT_TRANSPORT_SECURITY, value);
    }
}
