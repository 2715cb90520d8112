//! The query shapes of the lists paged by a keyset: newest first behind a
//! `(timestamp, id)` cursor (an account's payments, promises, activities, plans and
//! contact overrides, jobs, portfolio grants), and by name behind a `(lowercased name,
//! id)` cursor (the agent directory, portfolios). Column names are constants of the
//! callers; values are always bound.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::Result;

/// What a list is ordered by, newest first: a timestamp column, then the id column that
/// breaks its ties (both as the list's `SELECT` names them).
#[derive(Clone, Copy, Debug)]
pub struct NewestFirst {
    at: &'static str,
    id: &'static str,
}

/// `select` (a `SELECT … FROM …`) over the rows whose `column` is `value`, every row
/// when `value` is `None`; more conditions follow as ` AND …`.
pub fn rows_where(select: &str, column: &'static str, value: Option<Uuid>) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(select);
    query.push(" WHERE true");
    if let Some(value) = value {
        query.push(format_args!(" AND {column} = ")).push_bind(value);
    }
    query
}

impl NewestFirst {
    pub const fn by(at: &'static str, id: &'static str) -> Self {
        Self { at, id }
    }

    /// At most `limit` rows of `query` (a `SELECT` ending in its `WHERE` conditions)
    /// after the position `after`, newest first.
    pub async fn page<R>(
        self,
        pool: &PgPool,
        mut query: QueryBuilder<Postgres>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let Self { at, id } = self;
        if let Some((after_at, after_id)) = after {
            query
                .push(format_args!(" AND ({at}, {id}) < ("))
                .push_bind(after_at)
                .push(", ")
                .push_bind(after_id)
                .push(")");
        }
        query.push(format_args!(" ORDER BY {at} DESC, {id} DESC LIMIT ")).push_bind(limit);
        Ok(query.build_query_as::<R>().fetch_all(pool).await?)
    }
}

/// How many rows `query` (a `SELECT count(*) …` ending in its `WHERE` conditions) counts.
pub async fn count(pool: &PgPool, mut query: QueryBuilder<Postgres>) -> Result<i64> {
    Ok(query.build_query_scalar::<i64>().fetch_one(pool).await?)
}

/// What a list is ordered by when it is ordered by name: the name column, lowercased and
/// compared bytewise (so the order does not move with the server's collation), then the
/// id column that breaks its ties.
#[derive(Clone, Copy, Debug)]
pub struct ByName {
    name: &'static str,
    id: &'static str,
}

impl ByName {
    pub const fn by(name: &'static str, id: &'static str) -> Self {
        Self { name, id }
    }

    /// At most `limit` rows of `query` (a `SELECT` ending in its `WHERE` conditions)
    /// after the position `after` (a lowercased name and an id), by name.
    pub async fn page<R>(
        self,
        pool: &PgPool,
        mut query: QueryBuilder<Postgres>,
        after: Option<(String, Uuid)>,
        limit: i64,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let Self { name, id } = self;
        if let Some((after_name, after_id)) = after {
            query
                .push(format_args!(" AND (lower({name}) COLLATE \"C\", {id}) > ("))
                .push_bind(after_name)
                .push(" COLLATE \"C\", ")
                .push_bind(after_id)
                .push(")");
        }
        query
            .push(format_args!(" ORDER BY lower({name}) COLLATE \"C\", {id} LIMIT "))
            .push_bind(limit);
        Ok(query.build_query_as::<R>().fetch_all(pool).await?)
    }
}
