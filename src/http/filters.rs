//! Shared extraction filters: state, caller, JSON bodies, client address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::HeaderMap;

use crate::domain::dates;
use crate::domain::principal::Principal;
use crate::error::{Code, Error, FieldError};
use crate::http::recover::Rejected;
use crate::state::AppState;

/// Address of the TCP peer, put into request extensions by the server loop.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

pub fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The client's address: the connection's, or what a trusted proxy forwarded.
pub fn client_ip(state: AppState) -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().and(warp::header::headers_cloned()).map(
        move |addr: Option<ClientAddr>, headers: warp::http::HeaderMap| match addr {
            Some(addr) => client_of(&state, addr.0.ip(), &headers),
            None => "unknown".to_owned(),
        },
    )
}

/// The client behind a connection from `peer`: the peer, or what a trusted proxy forwarded.
pub fn client_of(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> String {
    // Every line: a proxy may append its own instead of extending the client's. A line
    // that is not text stops the walk there, like any entry that is not an address.
    let lines = headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap_or("not text"));
    state.auth().trusted_proxies().client(peer, lines).to_string()
}

/// The client's `User-Agent`, as text (bytes that are not UTF-8 replaced); `None` when
/// absent. Never refuses a request: it only names the device of a session.
pub fn user_agent() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| {
        headers
            .get(warp::http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    })
}

/// The authenticated caller, or a 401 rejection (403 for a user who must enrol a second
/// factor first).
pub fn principal(state: AppState) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    authenticated(state, false)
}

/// The authenticated caller, also one who must enrol a second factor before anything
/// else (their tokens reach only enrolment and `/auth/me`), or a 401 rejection.
pub fn enrolling_principal(state: AppState) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    authenticated(state, true)
}

fn authenticated(state: AppState, enrolling: bool) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and(with_state(state))
        .and_then(move |headers: HeaderMap, state: AppState| async move {
            let token = bearer_token(&headers).map_err(|e| warp::reject::custom(Rejected(e)))?;
            let gate = state.auth();
            let caller = if enrolling {
                gate.authenticate_enrolling(token).await
            } else {
                gate.authenticate(token).await
            };
            caller.map_err(|e| warp::reject::custom(Rejected(e)))
        })
}

pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let value = headers
        .get(warp::http::header::AUTHORIZATION)
        .ok_or_else(|| Error::new(Code::Unauthorized, "send an access token as `Authorization: Bearer <token>`"))?;
    let text = value
        .to_str()
        .map_err(|_| Error::new(Code::Unauthorized, "the Authorization header is not valid text"))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(Error::new(
            Code::Unauthorized,
            "the Authorization header must use the Bearer scheme",
        )),
    }
}

/// A JSON body of at most `limit` bytes, with `Content-Type: application/json`,
/// parsed strictly; errors name the offending field.
pub fn json_body<T: DeserializeOwned + Send>(limit: u64) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(|content_type: Option<String>| async move {
            let is_json = content_type.as_deref().and_then(|ct| ct.split(';').next()).is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
            if is_json {
                Ok(())
            } else {
                Err(warp::reject::custom(Rejected(Error::new(
                    Code::UnsupportedMediaType,
                    "send the body as `Content-Type: application/json`",
                ))))
            }
        })
        .untuple_one()
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(|body: Bytes| async move { parse_json(&body).map_err(|e| warp::reject::custom(Rejected(e))) })
}

/// Parses a JSON object body; every request body of this API is an object.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::new(Code::MalformedJson, "the body must be a JSON object"));
    }
    if escapes_nul(body) {
        // PostgreSQL text cannot hold NUL: refused here, for every body, rather than as
        // a 500 from whichever statement would store it.
        return Err(Error::new(Code::MalformedJson, "text may not contain the NUL character (\\u0000)"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return Error::new(Code::MalformedJson, format!("the body is not valid JSON: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        // serde_path_to_error already ends the path with the unknown field's name.
        if message.starts_with("unknown field `") {
            return Error::field(&path, "unknown field");
        }
        if let Some((field, _)) = message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')) {
            return Error::field(&join_path(&path, field), "is required");
        }
        if path == "." || path.is_empty() {
            Error::new(Code::MalformedJson, message)
        } else {
            Error::field(&path, message)
        }
    })?;
    deserializer
        .end()
        .map_err(|e| Error::new(Code::MalformedJson, format!("the body is not valid JSON: {e}")))?;
    let dates = unsupported_dates(body);
    if !dates.is_empty() {
        return Err(Error::validation(dates));
    }
    Ok(value)
}

/// Every string in the body that is a date or time outside the supported years, by path:
/// whichever field holds it (`occurred_at`, `received_at`, `due_date`, a patch), PostgreSQL
/// or date arithmetic would fail on it later.
fn unsupported_dates(body: &[u8]) -> Vec<FieldError> {
    fn walk(value: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
        match value {
            serde_json::Value::String(text) if !dates::supported(text) => {
                errors.push(FieldError::new(path, dates::OUT_OF_RANGE));
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{index}]"), errors);
                }
            }
            serde_json::Value::Object(fields) => {
                for (name, item) in fields {
                    walk(item, &join_path(path, name), errors);
                }
            }
            _ => {}
        }
    }
    let mut errors = Vec::new();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&value, "", &mut errors);
    }
    errors
}

/// Whether a JSON text holds the escape `\u0000` (a raw NUL byte is not valid JSON): an
/// escape is a `\u` after an even number of backslashes.
fn escapes_nul(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(at, window)| {
        window[0] == b'\\' && &window[1..] == b"u0000" && body[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        city: Option<String>,
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::Problem(p) => p.errors.first().map(|e| e.field.clone()).unwrap_or_default(),
            Error::Internal(_) => String::new(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(parse_json::<Body>(br#"{"name": "a", "role": "admin"}"#).unwrap_err()),
            "role"
        );
        assert_eq!(
            field_of(parse_json::<Body>(br#"{"name": "a", "inner": {"zip": 1}}"#).unwrap_err()),
            "inner.zip"
        );
        assert_eq!(field_of(parse_json::<Body>(br#"{"name": 5}"#).unwrap_err()), "name");
        assert_eq!(parse_json::<Body>(b"{").unwrap_err().code(), Code::MalformedJson);
        assert_eq!(parse_json::<Body>(br#"{"name": "a"} x"#).unwrap_err().code(), Code::MalformedJson);
        assert_eq!(parse_json::<Body>(br#"["a"]"#).unwrap_err().code(), Code::MalformedJson);
        assert_eq!(field_of(parse_json::<Body>(br#"{"inner": {}}"#).unwrap_err()), "name");
        assert_eq!(
            parse_json::<Body>(br#"{"name": "a\u0000b"}"#).unwrap_err().code(),
            Code::MalformedJson
        );
        assert!(
            parse_json::<Body>(br#"{"name": "a\\u0000"}"#).is_ok(),
            "an escaped backslash, then text"
        );
        assert_eq!(
            field_of(parse_json::<Body>(br#"{"name": "-262143-01-01T00:00:00Z"}"#).unwrap_err()),
            "name"
        );
        assert_eq!(
            field_of(parse_json::<Body>(br#"{"name": "a", "inner": {"city": "1899-12-31"}}"#).unwrap_err()),
            "inner.city"
        );
        assert!(parse_json::<Body>(br#"{"name": "2026-11-25"}"#).is_ok());
    }
}
