//! The query string: read raw (empty when there is none) and parsed strictly, so that
//! unknown or malformed parameters are 400s naming the parameter.

use warp::Filter;

use crate::error::{Code, Error, Result};

/// The raw query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Parses a query string strictly: unknown or malformed parameters are 400s naming the parameter.
pub fn parse_query<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T> {
    serde_urlencoded::from_str::<T>(raw).map_err(|e| Error::new(Code::InvalidParameter, format!("query: {e}")))
}

/// Refuses, before any route reads it, a query string whose decoded names or values hold
/// the NUL character: PostgreSQL text cannot hold it, and every parameter that reaches a
/// statement would otherwise fail there as a 500.
pub fn nul_free() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    raw_query()
        .and_then(|raw: String| async move {
            match nul_parameter(&raw) {
                None => Ok(()),
                Some(name) => Err(warp::reject::custom(crate::http::recover::Rejected(Error::with_fields(
                    Code::InvalidParameter,
                    format!("query parameter `{name}` may not contain the NUL character (%00)"),
                    vec![crate::error::FieldError::new(&name, "may not contain the NUL character (%00)")],
                )))),
            }
        })
        .untuple_one()
}

/// The first parameter whose decoded name or value holds NUL (the name without its NULs).
fn nul_parameter(raw: &str) -> Option<String> {
    form_urlencoded::parse(raw.as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_names_and_values_however_it_is_written() {
        assert_eq!(nul_parameter("q=%00").as_deref(), Some("q"));
        assert_eq!(nul_parameter("page_size=2&q=a%00b").as_deref(), Some("q"));
        assert_eq!(nul_parameter("a%00=1").as_deref(), Some("a"));
        assert_eq!(nul_parameter("q=%2500&tags=x"), None, "an escaped percent sign is text");
        assert_eq!(nul_parameter(""), None);
    }
}
