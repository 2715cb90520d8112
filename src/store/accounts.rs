//! Accounts. Every write goes through here; `search_version` is set by the trigger.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::account::{AccountFields, AccountStatus, Address, MAX_TAGS};
use crate::domain::bulk::BulkPatch;
use crate::domain::debtor_zone::{DebtorZone, ZoneSource};
use crate::domain::document::{AccountDoc, AccountSummary, OpenPromise, PlanSummary, WorkInputs};
use crate::domain::money::Currency;
use crate::domain::plan::PlanStatus;
use crate::error::{Error, Result};
use crate::store::{compliance, queue};

#[derive(Clone, Debug, FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub account_number: String,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[sqlx(flatten)]
    pub address: Address,
    pub timezone: String,
    pub timezone_source: ZoneSource,
    pub alternate_timezones: Vec<String>,
    pub status: AccountStatus,
    pub original_balance: Decimal,
    pub current_balance: Decimal,
    pub currency: Currency,
    pub due_date: Option<NaiveDate>,
    pub assigned_agent_id: Option<Uuid>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub custom_fields: Json<Map<String, Value>>,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub cease_communication: bool,
    pub portfolio_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub search_version: i64,
}

const COLUMNS: &str = "id, account_number, external_ref, debtor_name, email, phone, address_line1, address_line2, \
     address_city, address_region, address_postal_code, address_country, timezone, timezone_source, alternate_timezones, \
     status, original_balance, current_balance, currency, due_date, assigned_agent_id, next_action_at, tags, custom_fields, do_not_call, \
     do_not_email, cease_communication, portfolio_id, created_by, updated_by, created_at, updated_at, deleted_at, search_version";

impl AccountRow {
    /// The debtor's calendar day at `now`, in the account's zone (UTC when it names none
    /// chrono-tz knows).
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        let zone: chrono_tz::Tz = self.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
        now.with_timezone(&zone).date_naive()
    }

    /// The debtor's zone and where it came from.
    pub fn zone(&self) -> DebtorZone {
        DebtorZone {
            timezone: self.timezone.clone(),
            source: self.timezone_source,
            alternates: self.alternate_timezones.clone(),
        }
    }

    /// The writable state, as a patch starts from it.
    pub fn fields(&self) -> AccountFields {
        AccountFields {
            account_number: Some(self.account_number.clone()),
            external_ref: self.external_ref.clone(),
            debtor_name: self.debtor_name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
            zone: self.zone(),
            status: self.status,
            original_balance: self.original_balance,
            current_balance: self.current_balance,
            currency: self.currency,
            due_date: self.due_date,
            assigned_agent_id: self.assigned_agent_id,
            next_action_at: self.next_action_at,
            tags: self.tags.clone(),
            custom_fields: self.custom_fields.0.clone(),
            do_not_call: self.do_not_call,
            do_not_email: self.do_not_email,
            cease_communication: self.cease_communication,
            portfolio_id: self.portfolio_id,
        }
    }
}

/// Binds the writable columns in `WRITABLE` order.
fn push_fields(builder: &mut sqlx::query_builder::Separated<'_, Postgres, &'static str>, f: &AccountFields) {
    builder
        .push_bind(f.external_ref.as_deref())
        .push_bind(f.debtor_name.as_str())
        .push_bind(f.email.as_deref())
        .push_bind(f.phone.as_deref())
        .push_bind(f.address.line1.as_deref())
        .push_bind(f.address.line2.as_deref())
        .push_bind(f.address.city.as_deref())
        .push_bind(f.address.region.as_deref())
        .push_bind(f.address.postal_code.as_deref())
        .push_bind(f.address.country.as_deref())
        .push_bind(f.zone.timezone.as_str())
        .push_bind(f.zone.source)
        .push_bind(&f.zone.alternates)
        .push_bind(f.status)
        .push_bind(f.original_balance)
        .push_bind(f.current_balance)
        .push_bind(f.currency)
        .push_bind(f.due_date)
        .push_bind(f.assigned_agent_id)
        .push_bind(f.next_action_at)
        .push_bind(&f.tags)
        .push_bind(Json(&f.custom_fields))
        .push_bind(f.do_not_call)
        .push_bind(f.do_not_email)
        .push_bind(f.cease_communication)
        .push_bind(f.portfolio_id);
}

const WRITABLE: &[&str] = &[
    "external_ref",
    "debtor_name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "address_city",
    "address_region",
    "address_postal_code",
    "address_country",
    "timezone",
    "timezone_source",
    "alternate_timezones",
    "status",
    "original_balance",
    "current_balance",
    "currency",
    "due_date",
    "assigned_agent_id",
    "next_action_at",
    "tags",
    "custom_fields",
    "do_not_call",
    "do_not_email",
    "cease_communication",
    "portfolio_id",
];

#[tracing::instrument(skip_all)]
pub async fn insert(conn: &mut sqlx::PgConnection, fields: &AccountFields, actor: Uuid) -> Result<AccountRow> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("INSERT INTO accounts (id, account_number, created_by, updated_by, ");
    qb.push(WRITABLE.join(", "));
    qb.push(") VALUES (");
    qb.push_bind(Uuid::now_v7());
    match &fields.account_number {
        Some(number) => qb.push(", ").push_bind(number.as_str()),
        None => qb.push(", 'ACC-' || nextval('account_number_seq')"),
    };
    qb.push(", ").push_bind(actor).push(", ").push_bind(actor).push(", ");
    push_fields(&mut qb.separated(", "), fields);
    qb.push(") RETURNING ").push(COLUMNS);
    let row = qb.build_query_as::<AccountRow>().fetch_one(conn).await.map_err(map_fk)?;
    Ok(row)
}

/// Many rows' fields as column arrays (`$1` ids, `$2` numbers, `$3` is the actor, `$4`…
/// the writable columns): one statement for a whole chunk, where a multi-row VALUES
/// list would cost a parse and plan per thousand rows.
const ROW_ARRAYS: &str = "unnest($1::uuid[], $2::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
         $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::numeric[],
         $17::numeric[], $18::text[], $19::date[], $20::uuid[], $21::timestamptz[], $22::jsonb[], $23::jsonb[],
         $24::bool[], $25::bool[], $26::bool[], $27::uuid[], $28::text[], $29::jsonb[])
     AS r(id, number, external_ref, debtor_name, email, phone, line1, line2, city, region, postal_code, country,
          timezone, status, original_balance, current_balance, currency, due_date, agent, next_action_at, tags,
          custom_fields, dnc, dne, cease, portfolio, timezone_source, alternate_timezones)";

/// The writable columns, read from `r` of [`ROW_ARRAYS`], in `WRITABLE` order.
const ROW_VALUES: &str = "r.external_ref, r.debtor_name, r.email, r.phone, r.line1, r.line2, r.city, r.region,
     r.postal_code, r.country, r.timezone, r.timezone_source,
     ARRAY(SELECT jsonb_array_elements_text(r.alternate_timezones)), r.status, r.original_balance, r.current_balance, r.currency, r.due_date,
     r.agent, r.next_action_at, ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.custom_fields, r.dnc, r.dne,
     r.cease, r.portfolio";

/// Runs `sql` (built on [`ROW_ARRAYS`], returning ids) over `rows`.
async fn write_rows(conn: &mut sqlx::PgConnection, sql: String, rows: &[(Uuid, &AccountFields)], actor: Uuid) -> Result<Vec<Uuid>> {
    use sqlx::Row;
    fn column<T>(rows: &[(Uuid, &AccountFields)], get: impl Fn(&AccountFields) -> T) -> Vec<T> {
        rows.iter().map(|(_, f)| get(f)).collect()
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let written = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(column(rows, |f| f.account_number.clone()))
        .bind(actor)
        .bind(column(rows, |f| f.external_ref.clone()))
        .bind(column(rows, |f| f.debtor_name.clone()))
        .bind(column(rows, |f| f.email.clone()))
        .bind(column(rows, |f| f.phone.clone()))
        .bind(column(rows, |f| f.address.line1.clone()))
        .bind(column(rows, |f| f.address.line2.clone()))
        .bind(column(rows, |f| f.address.city.clone()))
        .bind(column(rows, |f| f.address.region.clone()))
        .bind(column(rows, |f| f.address.postal_code.clone()))
        .bind(column(rows, |f| f.address.country.clone()))
        .bind(column(rows, |f| f.zone.timezone.clone()))
        .bind(column(rows, |f| f.status))
        .bind(column(rows, |f| f.original_balance))
        .bind(column(rows, |f| f.current_balance))
        .bind(column(rows, |f| f.currency))
        .bind(column(rows, |f| f.due_date))
        .bind(column(rows, |f| f.assigned_agent_id))
        .bind(column(rows, |f| f.next_action_at))
        .bind(column(rows, |f| Json(f.tags.clone())))
        .bind(column(rows, |f| Json(f.custom_fields.clone())))
        .bind(column(rows, |f| f.do_not_call))
        .bind(column(rows, |f| f.do_not_email))
        .bind(column(rows, |f| f.cease_communication))
        .bind(column(rows, |f| f.portfolio_id))
        .bind(column(rows, |f| f.zone.source))
        .bind(column(rows, |f| Json(f.zone.alternates.clone())))
        .fetch_all(conn)
        .await
        .map_err(map_fk)?;
    written.iter().map(|row| Ok(row.try_get::<Uuid, _>(0)?)).collect()
}

/// Inserts accounts with the ids given; an account number already taken skips its row.
/// Returns the ids inserted.
pub async fn insert_many(conn: &mut sqlx::PgConnection, rows: &[(Uuid, &AccountFields)], actor: Uuid) -> Result<Vec<Uuid>> {
    let sql = format!(
        "INSERT INTO accounts (id, account_number, created_by, updated_by, {})
         SELECT r.id, coalesce(r.number, 'ACC-' || nextval('account_number_seq')), $3, $3, {ROW_VALUES}
         FROM {ROW_ARRAYS}
         ON CONFLICT (account_number) DO NOTHING
         RETURNING id",
        WRITABLE.join(", ")
    );
    write_rows(conn, sql, rows, actor).await
}

/// Writes the full state of locked accounts (their numbers stay). Returns the ids updated.
pub async fn update_many(conn: &mut sqlx::PgConnection, rows: &[(Uuid, &AccountFields)], actor: Uuid) -> Result<Vec<Uuid>> {
    let sql = format!(
        "UPDATE accounts a SET (updated_by, updated_at, {}) = ($3, now(), {ROW_VALUES})
         FROM {ROW_ARRAYS}
         WHERE a.id = r.id
         RETURNING a.id",
        WRITABLE.join(", ")
    );
    write_rows(conn, sql, rows, actor).await
}

/// Locks the accounts with these numbers, deleted or not.
pub async fn lock_by_numbers(conn: &mut sqlx::PgConnection, numbers: &[String]) -> Result<Vec<AccountRow>> {
    let rows = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE account_number = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(numbers)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

#[tracing::instrument(skip_all, fields(account_id = %id))]
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<AccountRow>> {
    let row = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Locks a live account for the rest of `tx`.
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<AccountRow>> {
    let row = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row)
}

/// The account's current `search_version` (what a write waits for with `wait_for`).
pub async fn version(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT search_version FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Locks an account, soft-deleted or not (payments of closed files still settle).
/// Sets when the account is next to be worked (an activity asked for it).
pub async fn set_next_action(tx: &mut sqlx::PgConnection, id: Uuid, at: DateTime<Utc>, actor: Uuid) -> Result<()> {
    sqlx::query("UPDATE accounts SET next_action_at = $2, updated_at = now(), updated_by = $3 WHERE id = $1")
        .bind(id)
        .bind(at)
        .bind(actor)
        .execute(tx)
        .await?;
    Ok(())
}

/// A locked account: its id, assignee, status, balance and portfolio.
#[derive(sqlx::FromRow)]
pub struct Locked {
    pub id: Uuid,
    pub assigned_agent_id: Option<Uuid>,
    pub status: AccountStatus,
    pub current_balance: Decimal,
    pub portfolio_id: Option<Uuid>,
}

/// Locks the live accounts among `ids` in id order: each with its assignee, status,
/// balance and portfolio.
pub async fn lock_assignees(tx: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<Vec<Locked>> {
    Ok(sqlx::query_as(
        "SELECT id, assigned_agent_id, status, current_balance, portfolio_id FROM accounts
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(tx)
    .await?)
}

/// The statuses in which an account is still worked (not paid, settled or closed).
fn open_statuses() -> Vec<&'static str> {
    AccountStatus::ALL
        .into_iter()
        .filter(|s| !s.is_resolved())
        .map(AccountStatus::as_str)
        .collect()
}

/// The open (not deleted, not resolved) accounts assigned to `agent`, by id.
#[tracing::instrument(skip_all, fields(agent_id = %agent))]
pub async fn open_assigned(conn: &mut sqlx::PgConnection, agent: Uuid) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM accounts WHERE assigned_agent_id = $1 AND deleted_at IS NULL AND status = ANY($2) ORDER BY id")
            .bind(agent)
            .bind(open_statuses())
            .fetch_all(conn)
            .await?,
    )
}

/// Assigns every open account of `from` to `to` in one statement: how many moved.
#[tracing::instrument(skip_all, fields(from = %from, to = %to))]
pub async fn reassign_open(conn: &mut sqlx::PgConnection, from: Uuid, to: Uuid, actor: Uuid) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE accounts SET assigned_agent_id = $2, updated_at = now(), updated_by = $3
         WHERE assigned_agent_id = $1 AND deleted_at IS NULL AND status = ANY($4)",
    )
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(open_statuses())
    .execute(conn)
    .await?
    .rows_affected())
}

/// Applies a bulk patch to `ids` in one statement: the ids it changed (an account it
/// would give more than `MAX_TAGS` tags is left alone). `custom` holds each account's
/// whole new `custom_fields` where the patch changes them (checked by the caller).
pub async fn apply_bulk_patch(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
    patch: &BulkPatch,
    custom: &[(Uuid, Map<String, Value>)],
    actor: Uuid,
) -> Result<Vec<Uuid>> {
    let custom_ids: Vec<Uuid> = custom.iter().map(|(id, _)| *id).collect();
    let custom_maps: Vec<Json<&Map<String, Value>>> = custom.iter().map(|(_, map)| Json(map)).collect();
    sqlx::query_scalar(
        "WITH target AS (
             SELECT a.id, ARRAY(SELECT DISTINCT t FROM unnest(a.tags || $6::text[]) AS t
                                WHERE NOT t = ANY($7::text[]) ORDER BY t) AS new_tags,
                    c.fields AS new_fields
             FROM accounts a LEFT JOIN unnest($11::uuid[], $12::jsonb[]) AS c(id, fields) ON c.id = a.id
             WHERE a.id = ANY($1)
         )
         UPDATE accounts a SET
             status = coalesce($2, a.status),
             assigned_agent_id = CASE WHEN $3 THEN $4 ELSE a.assigned_agent_id END,
             next_action_at = CASE WHEN $8 THEN $9 ELSE a.next_action_at END,
             due_date = CASE WHEN $13 THEN $14 ELSE a.due_date END,
             portfolio_id = CASE WHEN $15 THEN $16 ELSE a.portfolio_id END,
             do_not_call = coalesce($17, a.do_not_call),
             do_not_email = coalesce($18, a.do_not_email),
             cease_communication = coalesce($19, a.cease_communication),
             custom_fields = coalesce(t.new_fields, a.custom_fields),
             tags = t.new_tags,
             updated_at = now(),
             updated_by = $5
         FROM target t
         WHERE a.id = t.id AND cardinality(t.new_tags) <= $10
         RETURNING a.id",
    )
    .bind(ids)
    .bind(patch.status)
    .bind(patch.assign.is_some())
    .bind(patch.assign.flatten())
    .bind(actor)
    .bind(&patch.tags_add)
    .bind(&patch.tags_remove)
    .bind(patch.next_action.is_some())
    .bind(patch.next_action.flatten())
    .bind(MAX_TAGS as i32)
    .bind(custom_ids)
    .bind(custom_maps)
    .bind(patch.due_date.is_some())
    .bind(patch.due_date.flatten())
    .bind(patch.portfolio.is_some())
    .bind(patch.portfolio.flatten())
    .bind(patch.flags.do_not_call)
    .bind(patch.flags.do_not_email)
    .bind(patch.flags.cease_communication)
    .fetch_all(tx)
    .await
    .map_err(Into::into)
}

/// The portfolio of the account `id`, deleted or not (none when there is no such account).
pub async fn portfolio_of(pool: &PgPool, id: Uuid) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar::<_, Option<Uuid>>("SELECT portfolio_id FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// The agent an account is assigned to and its portfolio (each `None`: none), deleted
/// or not; `None` when there is no such account.
pub async fn assignee_and_portfolio_including_deleted(pool: &PgPool, id: Uuid) -> Result<Option<(Option<Uuid>, Option<Uuid>)>> {
    Ok(sqlx::query_as("SELECT assigned_agent_id, portfolio_id FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub async fn lock_including_deleted(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<AccountRow>> {
    let row = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row)
}

/// Writes the full state of a locked account.
pub async fn update(tx: &mut sqlx::PgConnection, id: Uuid, fields: &AccountFields, actor: Uuid) -> Result<AccountRow> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE accounts SET (account_number, updated_by, updated_at, ");
    qb.push(WRITABLE.join(", "));
    qb.push(") = (");
    qb.push_bind(fields.account_number.as_deref())
        .push(", ")
        .push_bind(actor)
        .push(", now(), ");
    push_fields(&mut qb.separated(", "), fields);
    qb.push(") WHERE id = ").push_bind(id).push(" RETURNING ").push(COLUMNS);
    let row = qb.build_query_as::<AccountRow>().fetch_one(tx).await.map_err(map_fk)?;
    Ok(row)
}

/// Where an account's debtor may be, as its zone is derived from.
#[derive(Clone, Debug, FromRow)]
pub struct Whereabouts {
    pub id: Uuid,
    #[sqlx(flatten)]
    pub address: Address,
    pub phone: Option<String>,
}

/// How many accounts have no zone (`timezone_source = 'unknown'`).
pub async fn count_unknown_zones(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE timezone_source = 'unknown'")
            .fetch_one(pool)
            .await?,
    )
}

/// Up to `limit` accounts with no zone after `after`, in id order.
pub async fn unknown_zones(pool: &PgPool, after: Uuid, limit: i64) -> Result<Vec<Whereabouts>> {
    Ok(sqlx::query_as(
        "SELECT id, address_line1, address_line2, address_city, address_region, address_postal_code, address_country, phone
         FROM accounts WHERE timezone_source = 'unknown' AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Writes derived zones over accounts that still have none (a zone written meanwhile
/// stays); returns how many were written.
pub async fn set_derived_zones(pool: &PgPool, zones: &[(Uuid, DebtorZone)]) -> Result<u64> {
    let ids: Vec<Uuid> = zones.iter().map(|(id, _)| *id).collect();
    let names: Vec<&str> = zones.iter().map(|(_, z)| z.timezone.as_str()).collect();
    let sources: Vec<ZoneSource> = zones.iter().map(|(_, z)| z.source).collect();
    let alternates: Vec<Json<&Vec<String>>> = zones.iter().map(|(_, z)| Json(&z.alternates)).collect();
    let done = sqlx::query(
        "UPDATE accounts a
         SET timezone = r.timezone, timezone_source = r.source,
             alternate_timezones = ARRAY(SELECT jsonb_array_elements_text(r.alternates))
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[]) AS r(id, timezone, source, alternates)
         WHERE a.id = r.id AND a.timezone_source = 'unknown'",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&sources)
    .bind(&alternates)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sets or clears `deleted_at`. Returns `None` when no account is in the opposite state.
#[tracing::instrument(skip_all, fields(account_id = %id, deleted))]
pub async fn set_deleted(conn: &mut sqlx::PgConnection, id: Uuid, deleted: bool, actor: Uuid) -> Result<Option<AccountRow>> {
    let sql = if deleted {
        format!(
            "UPDATE accounts SET deleted_at = now(), updated_at = now(), updated_by = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        )
    } else {
        format!(
            "UPDATE accounts SET deleted_at = NULL, updated_at = now(), updated_by = $2 WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {COLUMNS}"
        )
    };
    let row = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(actor)
        .fetch_optional(conn)
        .await?;
    Ok(row)
}

/// An unknown `assigned_agent_id` is the client's mistake, not ours.
fn map_fk(err: sqlx::Error) -> Error {
    match err.as_database_error().and_then(|e| e.constraint()) {
        Some("accounts_assigned_agent_id_fkey") => Error::field("assigned_agent_id", "no such user"),
        Some("accounts_portfolio_id_fkey") => Error::field("portfolio_id", "no such portfolio"),
        _ => Error::from(err),
    }
}

/// Rows by id, soft-deleted ones included: what the sync worker indexes.
pub async fn by_ids(conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<Vec<AccountRow>> {
    let rows = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM accounts WHERE id = ANY($1)")))
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows)
}

/// The next `limit` rows after `after` and up to `last` in id order, soft-deleted
/// included (backfill).
pub async fn page_by_id(pool: &PgPool, after: Option<Uuid>, last: Uuid, limit: i64) -> Result<Vec<AccountRow>> {
    let rows = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE ($1::uuid IS NULL OR id > $1) AND id <= $2 ORDER BY id LIMIT $3"
    )))
    .bind(after)
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub async fn max_id(pool: &PgPool) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM accounts ORDER BY id DESC LIMIT 1")
        .fetch_optional(pool)
        .await?)
}

/// Whether an account has this number, deleted or not.
pub async fn number_taken(pool: &PgPool, number: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE account_number = $1)")
            .bind(number)
            .fetch_one(pool)
            .await?,
    )
}

/// The id of the live account numbered `number`.
pub async fn id_by_number(conn: &mut sqlx::PgConnection, number: &str) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM accounts WHERE account_number = $1 AND deleted_at IS NULL")
            .bind(number)
            .fetch_optional(conn)
            .await?,
    )
}

/// How many accounts not deleted each of `agents` is assigned (those with none are absent).
pub async fn assigned_counts(pool: &PgPool, agents: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT assigned_agent_id, count(*) FROM accounts
         WHERE assigned_agent_id = ANY($1) AND deleted_at IS NULL GROUP BY assigned_agent_id",
    )
    .bind(agents)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn count_all(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(pool).await?)
}

/// Every account's id and version, soft-deleted included (verify).
pub async fn versions(pool: &PgPool) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as("SELECT id, search_version FROM accounts").fetch_all(pool).await?)
}

pub async fn versions_of(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as("SELECT id, search_version FROM accounts WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?)
}

#[derive(FromRow)]
struct SummaryRow {
    id: Uuid,
    total_paid: Decimal,
    payment_count: i64,
    last_payment_at: Option<DateTime<Utc>>,
    last_payment_amount: Option<Decimal>,
    last_contact_at: Option<DateTime<Utc>>,
    last_outcome: Option<String>,
    promise_id: Option<Uuid>,
    promise_amount: Option<Decimal>,
    promise_due_date: Option<NaiveDate>,
    plan_id: Option<Uuid>,
    plan_status: Option<PlanStatus>,
    plan_next_due_date: Option<NaiveDate>,
    plan_next_amount: Option<Decimal>,
    plan_missed_count: Option<i64>,
    plan_last_missed_on: Option<NaiveDate>,
}

/// What payments, activities, promises and plans add to each account's document.
pub async fn summaries(conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, AccountSummary>> {
    let rows = sqlx::query_as::<_, SummaryRow>(
        "SELECT a.id, coalesce(paid.total, 0) AS total_paid, coalesce(paid.n, 0) AS payment_count,
                lp.received_at AS last_payment_at, lp.amount AS last_payment_amount,
                la.occurred_at AS last_contact_at, la.outcome AS last_outcome,
                pr.id AS promise_id, pr.amount AS promise_amount, pr.due_date AS promise_due_date,
                pl.id AS plan_id, pl.status AS plan_status, pn.due_date AS plan_next_due_date,
                pn.owed AS plan_next_amount, pm.n AS plan_missed_count, pm.last AS plan_last_missed_on
         FROM unnest($1::uuid[]) AS a(id)
         LEFT JOIN LATERAL (SELECT sum(amount) AS total, count(*) AS n FROM payments
                            WHERE account_id = a.id AND status = 'completed') paid ON true
         LEFT JOIN LATERAL (SELECT received_at, amount FROM payments
                            WHERE account_id = a.id AND status = 'completed'
                            ORDER BY received_at DESC, id DESC LIMIT 1) lp ON true
         LEFT JOIN LATERAL (SELECT occurred_at, outcome FROM activities
                            WHERE account_id = a.id ORDER BY occurred_at DESC, id DESC LIMIT 1) la ON true
         LEFT JOIN promises pr ON pr.account_id = a.id AND pr.status = 'open'
         LEFT JOIN LATERAL (SELECT id, status FROM plans WHERE account_id = a.id
                            ORDER BY created_at DESC, id DESC LIMIT 1) pl ON true
         LEFT JOIN LATERAL (SELECT due_date, amount - paid_amount AS owed FROM plan_instalments
                            WHERE plan_id = pl.id AND pl.status = 'active' AND paid_amount < amount
                            ORDER BY seq LIMIT 1) pn ON true
         LEFT JOIN LATERAL (SELECT count(*) AS n, max(due_date) AS last FROM plan_instalments
                            WHERE plan_id = pl.id AND missed_at IS NOT NULL) pm ON true",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let open_promise = match (r.promise_id, r.promise_amount, r.promise_due_date) {
                (Some(id), Some(amount), Some(due_date)) => Some(OpenPromise { id, amount, due_date }),
                _ => None,
            };
            let plan = match (r.plan_id, r.plan_status) {
                (Some(id), Some(status)) => Some(PlanSummary {
                    id,
                    status,
                    next_due_date: r.plan_next_due_date,
                    next_amount: r.plan_next_amount,
                    missed_count: r.plan_missed_count.unwrap_or_default(),
                    last_missed_on: r.plan_last_missed_on,
                }),
                _ => None,
            };
            let summary = AccountSummary {
                total_paid: r.total_paid,
                payment_count: r.payment_count,
                last_payment_at: r.last_payment_at,
                last_payment_amount: r.last_payment_amount,
                last_contact_at: r.last_contact_at,
                last_outcome: r.last_outcome,
                open_promise,
                plan,
            };
            (r.id, summary)
        })
        .collect())
}

/// Full documents as the index holds them (account row, summary and the work queue's
/// and contact filter's inputs), soft-deleted included.
pub async fn documents(conn: &mut sqlx::PgConnection, rows: Vec<AccountRow>) -> Result<Vec<AccountDoc>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut contact = compliance::contact_inputs(conn, &ids, Utc::now()).await?;
    let reasons = queue::reason_dates(conn, &ids).await?;
    // The definitions as they are now: a document built after a definition changed
    // types its values by the new one (service::fields re-queues the accounts holding it).
    let catalog = crate::domain::custom_field::Catalog::new(super::fields::live(conn).await?);
    let placed: Vec<Uuid> = rows.iter().filter_map(|r| r.portfolio_id).collect();
    let portfolio_names = super::portfolios::names(conn, &placed).await?;
    let mut files = super::attachments::search_facts(conn, &ids).await?;
    let mut docs = summarised(conn, rows).await?;
    for doc in &mut docs {
        let dates = reasons.get(&doc.id).copied().unwrap_or_default();
        let custom = match Currency::parse(&doc.currency) {
            Ok(currency) => catalog
                .checked(&doc.custom_fields, currency)
                .into_iter()
                .filter_map(|(definition, value)| crate::domain::document::CustomValue::of(definition, &value))
                .collect(),
            Err(_) => Vec::new(),
        };
        doc.work = WorkInputs {
            contact: contact.remove(&doc.id).unwrap_or_default(),
            broken_promise_due: dates.broken_promise_due,
            plan_missed_due: dates.plan_missed_due,
            custom,
            portfolio_name: doc.portfolio_id.and_then(|p| portfolio_names.get(&p).cloned()),
            files: files.remove(&doc.id).unwrap_or_default(),
        };
    }
    Ok(docs)
}

/// Documents with their summaries only: what a reader is shown.
async fn summarised(conn: &mut sqlx::PgConnection, rows: Vec<AccountRow>) -> Result<Vec<AccountDoc>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut summaries = summaries(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| AccountDoc {
            summary: summaries.remove(&row.id).unwrap_or_default(),
            ..AccountDoc::from(row)
        })
        .collect())
}

/// One account's document, as reads by id and write responses show it (without the
/// index's work inputs, which no reader sees).
pub async fn document(conn: &mut sqlx::PgConnection, row: AccountRow) -> Result<AccountDoc> {
    let mut docs = summarised(conn, vec![row]).await?;
    docs.pop()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("account document vanished")))
}

impl From<AccountRow> for AccountDoc {
    fn from(row: AccountRow) -> Self {
        Self {
            summary: AccountSummary::default(),
            work: WorkInputs::default(),
            address: row.address,
            status: row.status,
            id: row.id,
            account_number: row.account_number,
            external_ref: row.external_ref,
            debtor_name: row.debtor_name,
            email: row.email,
            phone: row.phone,
            zone: Some(DebtorZone {
                timezone: row.timezone.clone(),
                source: row.timezone_source,
                alternates: row.alternate_timezones,
            }),
            timezone: row.timezone,
            original_balance: row.original_balance,
            current_balance: row.current_balance,
            currency: row.currency.code().to_owned(),
            due_date: row.due_date,
            assigned_agent_id: row.assigned_agent_id,
            next_action_at: row.next_action_at,
            tags: row.tags,
            custom_fields: row.custom_fields.0,
            do_not_call: row.do_not_call,
            do_not_email: row.do_not_email,
            cease_communication: row.cease_communication,
            portfolio_id: row.portfolio_id,
            created_by: row.created_by,
            updated_by: row.updated_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
            search_version: row.search_version,
        }
    }
}

/// An account the overdue scheduler made delinquent.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Overdue {
    pub id: Uuid,
    pub assigned_agent_id: Option<Uuid>,
}

/// Makes delinquent up to `limit` active accounts whose due date plus their portfolio's
/// `delinquent_after_days` (or `default_days`) is before the date of `now` in the
/// debtor's time zone, with a balance still owed, and tells each one's agent
/// (`account_overdue`, merged into one notification per agent for the run `batch`
/// names). One transaction, recorded as the `scheduler:overdue` job. Accounts another
/// transaction holds are skipped (`SKIP LOCKED`) and found by a later pass, so two
/// schedulers at once split the work and neither moves (or tells of) an account twice.
pub async fn mark_overdue(pool: &PgPool, now: DateTime<Utc>, default_days: i32, limit: i64, batch: &str) -> Result<Vec<Overdue>> {
    let mut tx = super::begin_for_job(pool, "scheduler:overdue", None).await?;
    sqlx::query("SELECT set_config('arrears.batch', $1, true)")
        .bind(batch)
        .execute(&mut *tx)
        .await?;
    // The date in any zone is at most the day after the date in UTC: the first date
    // condition is the index's range, the second the exact one.
    let moved: Vec<Overdue> = sqlx::query_as(
        "WITH due AS (
             SELECT a.id FROM accounts a LEFT JOIN portfolios p ON p.id = a.portfolio_id
             WHERE a.status = 'active' AND a.due_date IS NOT NULL AND a.deleted_at IS NULL
               AND a.due_date < ($1 AT TIME ZONE 'UTC')::date + 1
               AND a.due_date + coalesce(p.delinquent_after_days, $2) < ($1 AT TIME ZONE a.timezone)::date
               AND a.current_balance > 0
             ORDER BY a.id LIMIT $3
             FOR NO KEY UPDATE OF a SKIP LOCKED
         ), moved AS (
             UPDATE accounts a SET status = 'delinquent', updated_at = now()
             FROM due WHERE a.id = due.id
             RETURNING a.id, a.assigned_agent_id, a.account_number, a.debtor_name, a.due_date
         )
         SELECT m.id, m.assigned_agent_id FROM moved m,
             LATERAL (SELECT notify_user(m.assigned_agent_id, 'account_overdue',
                 'Account ' || m.account_number || ' (' || m.debtor_name || ') is past due',
                 jsonb_build_object('account_id', m.id, 'account_number', m.account_number,
                     'debtor_name', m.debtor_name, 'due_date', m.due_date))) AS told",
    )
    .bind(now)
    .bind(default_days)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(moved)
}
