//! Keyset pages over SQL lists ordered by `(time, id)`: page size, opaque cursor, and
//! the `{data, total, next_cursor, facets}` answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Code, Error, Result};
use crate::http::ListPage;
use crate::lists::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

pub type Keyset = (DateTime<Utc>, Uuid);

pub fn encode_cursor((at, id): Keyset) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_micros()))
}

pub fn decode_cursor(cursor: &str) -> Result<Keyset> {
    let invalid = || {
        Error::with_fields(
            Code::InvalidParameter,
            "cursor is not valid; pass next_cursor from the previous page",
            vec![crate::error::FieldError::new("cursor", "not a cursor from this list")],
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub size: u32,
    pub after: Option<Keyset>,
}

/// `?page_size=&cursor=` and nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    page_size: Option<u32>,
    cursor: Option<String>,
}

impl PageRequest {
    /// Parses a query string that holds only `page_size` and `cursor`.
    pub fn from_query(raw: &str) -> Result<Self> {
        let query: PageQuery = crate::http::query::parse_query(raw)?;
        Self::new(query.page_size, query.cursor.as_deref())
    }

    pub fn new(size: Option<u32>, cursor: Option<&str>) -> Result<Self> {
        let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(Error::with_fields(
                Code::InvalidParameter,
                format!("page_size must be between 1 and {MAX_PAGE_SIZE}"),
                vec![crate::error::FieldError::new(
                    "page_size",
                    format!("a number from 1 to {MAX_PAGE_SIZE}"),
                )],
            ));
        }
        Ok(Self {
            size,
            after: cursor.map(decode_cursor).transpose()?,
        })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// The answer for `rows` fetched with [`Self::fetch`].
    pub fn finish<R, T: Serialize>(
        &self,
        mut rows: Vec<R>,
        total: i64,
        key: impl Fn(&R) -> Keyset,
        view: impl Fn(R) -> Result<T>,
    ) -> Result<ListPage<T>> {
        let next_cursor = if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            rows.last().map(|last| encode_cursor(key(last)))
        } else {
            None
        };
        Ok(ListPage {
            data: rows.into_iter().map(view).collect::<Result<_>>()?,
            total: u64::try_from(total).unwrap_or_default(),
            next_cursor,
            facets: Default::default(),
            more: (),
        })
    }
}
