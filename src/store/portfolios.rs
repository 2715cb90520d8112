//! Portfolios and their grants (migrations/0037_portfolios.sql).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::portfolio::{Grantee, PortfolioFields};
use crate::error::Result;
use crate::store::keyset::{ByName, NewestFirst, rows_where};

#[derive(Clone, Debug, FromRow)]
pub struct PortfolioRow {
    pub id: Uuid,
    pub name: String,
    pub client: Option<String>,
    pub placement_date: Option<NaiveDate>,
    pub commission_rate: Option<Decimal>,
    pub delinquent_after_days: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The lowercased name the list is ordered by.
    pub sort_name: String,
}

impl PortfolioRow {
    pub fn fields(&self) -> PortfolioFields {
        PortfolioFields {
            name: self.name.clone(),
            client: self.client.clone(),
            placement_date: self.placement_date,
            commission_rate: self.commission_rate,
            delinquent_after_days: self.delinquent_after_days,
        }
    }
}

const COLUMNS: &str = "id, name, client, placement_date, commission_rate, delinquent_after_days, created_at, updated_at, deleted_at, lower(name) AS sort_name";

/// Whether `error` is the live-name uniqueness refusal.
pub fn is_name_taken(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.constraint() == Some("portfolios_live_name"))
}

pub async fn insert(conn: &mut PgConnection, id: Uuid, fields: &PortfolioFields, by: Uuid) -> sqlx::Result<PortfolioRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO portfolios (id, name, client, placement_date, commission_rate, created_by, updated_by, delinquent_after_days)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.client)
    .bind(fields.placement_date)
    .bind(fields.commission_rate)
    .bind(by)
    .bind(fields.delinquent_after_days)
    .fetch_one(conn)
    .await
}

/// The portfolio `id`, deleted or not, locked for an update when `lock`.
pub async fn get(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Option<PortfolioRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM portfolios WHERE id = $1{lock}")))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The portfolios granted to `user`: to them, to their team, and with `team_members`,
/// to any member of their team (what a manager oversees).
pub async fn granted_to(conn: &mut PgConnection, user: Uuid, team_members: bool) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT g.portfolio_id FROM portfolio_grants g, users me
         WHERE me.id = $1
           AND (g.user_id = me.id OR g.team = me.team
                OR ($2 AND g.user_id IN (SELECT u.id FROM users u WHERE u.team = me.team)))
         ORDER BY 1",
    )
    .bind(user)
    .bind(team_members)
    .fetch_all(conn)
    .await?)
}

/// Adds to `query` (a `SELECT` ending in its `WHERE` conditions) that the account
/// `account_id` (an SQL expression naming one) is within `scope`: in one of its
/// portfolios or in none. `None` is every account: nothing is added. The one place
/// lists of what belongs to an account (plans, activities, overrides, job rows) follow
/// the portfolio scope that reads by id follow.
pub fn push_scope(query: &mut QueryBuilder<Postgres>, account_id: &str, scope: Option<&[Uuid]>) {
    let Some(portfolios) = scope else { return };
    query
        .push(format_args!(
            " AND EXISTS (SELECT 1 FROM accounts scoped WHERE scoped.id = {account_id}
                          AND (scoped.portfolio_id IS NULL OR scoped.portfolio_id = ANY("
        ))
        .push_bind(portfolios.to_vec())
        .push(")))");
}

/// Queues every account of the portfolio `id` for the index (each draws a new search
/// version under its lock, as `fields::touch_holders` does).
pub async fn touch_accounts(conn: &mut PgConnection, id: Uuid) -> Result<u64> {
    Ok(sqlx::query("UPDATE accounts SET search_version = 0 WHERE portfolio_id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// The names of the portfolios `ids`, deleted ones too.
pub async fn names(conn: &mut PgConnection, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM portfolios WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The portfolios whose id is among `ids` or whose lowercased name is among `names`,
/// deleted ones too (live first, so a live name wins over a deleted one's).
pub async fn by_ids_or_names(conn: &mut PgConnection, ids: &[Uuid], names: &[String]) -> Result<Vec<PortfolioRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM portfolios WHERE id = ANY($1) OR lower(name) = ANY($2)
         ORDER BY deleted_at IS NOT NULL, deleted_at DESC"
    )))
    .bind(ids)
    .bind(names)
    .fetch_all(conn)
    .await?)
}

pub async fn update(conn: &mut PgConnection, id: Uuid, fields: &PortfolioFields, by: Uuid) -> sqlx::Result<PortfolioRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE portfolios SET name = $2, client = $3, placement_date = $4, commission_rate = $5, updated_by = $6, updated_at = now(),
             delinquent_after_days = $7
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.client)
    .bind(fields.placement_date)
    .bind(fields.commission_rate)
    .bind(by)
    .bind(fields.delinquent_after_days)
    .fetch_one(conn)
    .await
}

/// Marks the portfolio deleted (`deleted = true`) or live again.
pub async fn set_deleted(conn: &mut PgConnection, id: Uuid, deleted: bool, by: Uuid) -> sqlx::Result<PortfolioRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE portfolios SET deleted_at = CASE WHEN $2 THEN now() END, updated_by = $3, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(deleted)
    .bind(by)
    .fetch_one(conn)
    .await
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, include_deleted: bool) {
    qb.push(" WHERE true");
    if !include_deleted {
        qb.push(" AND deleted_at IS NULL");
    }
}

/// A page of portfolios by lowercased name then id, after the `(sort_name, id)` position.
pub async fn page(pool: &PgPool, include_deleted: bool, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<PortfolioRow>> {
    let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM portfolios"));
    push_filter(&mut qb, include_deleted);
    ByName::by("name", "id").page(pool, qb, after, limit).await
}

pub async fn count(pool: &PgPool, include_deleted: bool) -> Result<i64> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM portfolios");
    push_filter(&mut qb, include_deleted);
    Ok(qb.build_query_scalar().fetch_one(pool).await?)
}

#[derive(Clone, Debug, FromRow)]
pub struct GrantRow {
    pub id: Uuid,
    pub portfolio_id: Uuid,
    pub user_id: Option<Uuid>,
    pub user_name: Option<String>,
    pub team: Option<String>,
    pub granted_at: DateTime<Utc>,
}

const GRANT_COLUMNS: &str = "g.id, g.portfolio_id, g.user_id, u.name AS user_name, g.team, g.granted_at";

/// Grants `grantee` the portfolio; `None` when it already has it.
pub async fn grant(conn: &mut PgConnection, id: Uuid, portfolio: Uuid, grantee: &Grantee, by: Uuid) -> Result<Option<GrantRow>> {
    let (user, team) = match grantee {
        Grantee::User(user) => (Some(*user), None),
        Grantee::Team(team) => (None, Some(team.as_str())),
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH g AS (
             INSERT INTO portfolio_grants (id, portfolio_id, user_id, team, granted_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING RETURNING *
         )
         SELECT {GRANT_COLUMNS} FROM g LEFT JOIN users u ON u.id = g.user_id"
    )))
    .bind(id)
    .bind(portfolio)
    .bind(user)
    .bind(team)
    .bind(by)
    .fetch_optional(conn)
    .await?)
}

/// Removes grant `id` of `portfolio`; whether there was one.
pub async fn revoke(conn: &mut PgConnection, portfolio: Uuid, id: Uuid) -> Result<bool> {
    let removed = sqlx::query("DELETE FROM portfolio_grants WHERE id = $1 AND portfolio_id = $2")
        .bind(id)
        .bind(portfolio)
        .execute(conn)
        .await?;
    Ok(removed.rows_affected() == 1)
}

/// A page of `portfolio`'s grants, newest first, after the `(granted_at, id)` position.
pub async fn grants(pool: &PgPool, portfolio: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<GrantRow>> {
    let select = format!("SELECT {GRANT_COLUMNS} FROM portfolio_grants g LEFT JOIN users u ON u.id = g.user_id");
    let query = rows_where(&select, "g.portfolio_id", Some(portfolio));
    NewestFirst::by("g.granted_at", "g.id").page(pool, query, after, limit).await
}

pub async fn grant_count(pool: &PgPool, portfolio: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM portfolio_grants WHERE portfolio_id = $1")
        .bind(portfolio)
        .fetch_one(pool)
        .await?)
}
