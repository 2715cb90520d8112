//! Rate limits at the door: every request but a health check spends from its client
//! address's budget and, with a valid access token, its user's, before it is routed or
//! its body read. Answers carry `RateLimit-*`; a refusal is a 429 problem with
//! `Retry-After`.

use std::net::IpAddr;

use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;

use crate::error::{Code, Error};
use crate::http::filters::{bearer_token, client_of};
use crate::quota::{Class, Verdict};
use crate::state::AppState;
use crate::telemetry::metrics;

/// Which budget a request spends from; `None` for health checks, which load balancers
/// call on their own schedule.
pub fn class_of(method: &Method, path: &str) -> Option<Class> {
    if path == "/health" || path.starts_with("/health/") {
        return None;
    }
    let submits_work = matches!(
        (method.as_str(), path),
        ("POST", "/api/v1/accounts/bulk-update" | "/api/v1/imports") | ("GET", "/api/v1/accounts/export" | "/api/v1/payments/export")
    );
    Some(if submits_work { Class::Bulk } else { Class::Standard })
}

/// Counts the request; `None` when it is not rate limited at all.
pub async fn spend(state: &AppState, method: &Method, path: &str, headers: &HeaderMap, peer: IpAddr) -> Option<Verdict> {
    let class = class_of(method, path)?;
    let client = client_of(state, peer, headers);
    // Only a token this server signed names a user; anything else is just the address.
    let user = bearer_token(headers)
        .ok()
        .and_then(|token| state.auth().keys().verify(token).ok())
        .map(|claims| claims.sub);
    let verdict = state.quotas().spend(class, &client, user).await;
    if !verdict.allowed {
        metrics::rate_limited(class.as_str());
    }
    Some(verdict)
}

/// The 429 problem for a request over its budget.
pub fn refusal(verdict: &Verdict) -> Response {
    Error::new(
        Code::RateLimited,
        format!(
            "this client may make {} such requests every {} s; try again when the window closes",
            verdict.budget.limit,
            verdict.budget.window.as_secs()
        ),
    )
    .with_retry_after(verdict.reset)
    .into_response()
}

/// `RateLimit-Limit`, `-Remaining`, `-Reset` (seconds) and `-Policy` (`limit;w=window`),
/// as the IETF httpapi draft names them.
pub fn report(response: &mut Response, verdict: &Verdict) {
    let headers = response.headers_mut();
    let reset = verdict.reset.as_secs_f64().ceil() as u64;
    headers.insert("ratelimit-limit", HeaderValue::from(verdict.budget.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={}", verdict.budget.limit, verdict.budget.window.as_secs())) {
        headers.insert("ratelimit-policy", policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_of_heavy_work_have_their_own_class_and_health_checks_none() {
        assert_eq!(class_of(&Method::POST, "/api/v1/imports"), Some(Class::Bulk));
        assert_eq!(class_of(&Method::POST, "/api/v1/accounts/bulk-update"), Some(Class::Bulk));
        assert_eq!(class_of(&Method::GET, "/api/v1/accounts/export"), Some(Class::Bulk));
        assert_eq!(class_of(&Method::GET, "/api/v1/payments/export"), Some(Class::Bulk));
        assert_eq!(class_of(&Method::GET, "/api/v1/imports"), Some(Class::Standard));
        assert_eq!(class_of(&Method::GET, "/api/v1/accounts"), Some(Class::Standard));
        assert_eq!(class_of(&Method::GET, "/health"), None);
        assert_eq!(class_of(&Method::GET, "/health/ready"), None);
        assert_eq!(class_of(&Method::GET, "/healthz"), Some(Class::Standard));
    }
}
