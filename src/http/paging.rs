//! Keyset pages over SQL lists: page size, opaque cursor, and the
//! `{data, total, next_cursor, facets}` answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Code, Error, FieldError, Result};
use crate::http::{ListPage, NoMore};
use crate::lists::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::service::Window;

/// Where a keyset page of an SQL list ends: the list's sort key, carried between pages
/// in an opaque cursor. One codec for every such list, so a cursor from one list is
/// refused by another with the same problem.
pub trait Position: Sized {
    /// The key as text, `|`-separated.
    fn to_text(&self) -> String;
    /// The key back from [`Self::to_text`], if `text` is one.
    fn from_text(text: &str) -> Option<Self>;
}

/// Newest first: `(time, id)`.
pub type Keyset = (DateTime<Utc>, Uuid);

impl Position for Keyset {
    fn to_text(&self) -> String {
        format!("{}|{}", self.0.timestamp_micros(), self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('|')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some((at, Uuid::parse_str(id).ok()?))
    }
}

/// Newest first by a numbered row: `(time, serial)` (the audit trail).
impl Position for (DateTime<Utc>, i64) {
    fn to_text(&self) -> String {
        format!("{}|{}", self.0.timestamp_micros(), self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('|')?;
        Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, id.parse().ok()?))
    }
}

/// Unread first, then newest first: `(read, time, id)`.
impl Position for (bool, DateTime<Utc>, Uuid) {
    fn to_text(&self) -> String {
        format!("{}|{}", u8::from(self.0), (self.1, self.2).to_text())
    }

    fn from_text(text: &str) -> Option<Self> {
        let (read, rest) = text.split_once('|')?;
        let read = match read {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let (at, id) = Keyset::from_text(rest)?;
        Some((read, at, id))
    }
}

/// By name: `(sort name, id)`. The id comes last, so a name may hold `|`.
impl Position for (String, Uuid) {
    fn to_text(&self) -> String {
        format!("{}|{}", self.0, self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (name, id) = text.rsplit_once('|')?;
        Some((name.to_owned(), Uuid::parse_str(id).ok()?))
    }
}

/// Newest first by a text key: `(time, key)`, the timeline's entries.
impl Position for (DateTime<Utc>, String) {
    fn to_text(&self) -> String {
        format!("{}|{}", self.0.timestamp_micros(), self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (micros, key) = text.split_once('|')?;
        Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, key.to_owned()))
    }
}

/// By position, then key: `(position, key)`, the custom field definitions.
impl Position for (i32, String) {
    fn to_text(&self) -> String {
        format!("{}|{}", self.0, self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (position, key) = text.split_once('|')?;
        Some((position.parse().ok()?, key.to_owned()))
    }
}

/// A row's sequence number in a job's own order.
impl Position for i32 {
    fn to_text(&self) -> String {
        self.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

pub fn encode_cursor(position: &impl Position) -> String {
    URL_SAFE_NO_PAD.encode(position.to_text())
}

pub fn decode_cursor<P: Position>(cursor: &str) -> Result<P> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| P::from_text(&text))
        .ok_or_else(|| {
            Error::with_fields(
                Code::InvalidParameter,
                "cursor is not valid; pass next_cursor from the previous page",
                vec![FieldError::new("cursor", "not a cursor from this list")],
            )
        })
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest<P = Keyset> {
    pub size: u32,
    pub after: Option<P>,
}

/// `?page_size=&cursor=` and nothing else.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page.
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl<P: Position> PageRequest<P> {
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
                vec![FieldError::new("page_size", format!("a number from 1 to {MAX_PAGE_SIZE}"))],
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
        rows: Vec<R>,
        total: i64,
        key: impl Fn(&R) -> P,
        view: impl Fn(R) -> Result<T>,
    ) -> Result<ListPage<T>> {
        self.finish_with(rows, total, key, view, NoMore {})
    }

    /// [`Self::finish`] for a list that adds its own fields (`more`) to the page.
    pub fn finish_with<R, T: Serialize, M: Serialize>(
        &self,
        mut rows: Vec<R>,
        total: i64,
        key: impl Fn(&R) -> P,
        view: impl Fn(R) -> Result<T>,
        more: M,
    ) -> Result<ListPage<T, M>> {
        let next_cursor = if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            rows.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Ok(ListPage {
            data: rows.into_iter().map(view).collect::<Result<_>>()?,
            total: u64::try_from(total).unwrap_or_default(),
            next_cursor,
            facets: Default::default(),
            more,
        })
    }
}

impl<P: Position + Clone> PageRequest<P> {
    /// The rows to read for this page: [`Self::fetch`] of them after the cursor's.
    pub fn window(&self) -> Window<P> {
        Window {
            after: self.after.clone(),
            limit: self.fetch(),
        }
    }
}
