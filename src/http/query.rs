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
