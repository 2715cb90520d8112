//! Custom field definitions (`field_definitions`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::custom_field::{Definition, FieldType, Flags, Rules};
use crate::domain::money::Currency;
use crate::error::Result;

#[derive(FromRow)]
struct FieldRow {
    key: String,
    label: String,
    #[sqlx(rename = "type")]
    field_type: FieldType,
    required: bool,
    default_value: Option<Json<Value>>,
    rules: Json<Rules>,
    searchable: bool,
    filterable: bool,
    sortable: bool,
    exported: bool,
    shown: bool,
    #[sqlx(rename = "sort_position")]
    position: i32,
    portfolio_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

/// A definition as stored, with when it was made and last changed.
#[derive(Clone, Debug)]
pub struct StoredField {
    pub definition: Definition,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FieldRow> for StoredField {
    fn from(row: FieldRow) -> Self {
        Self {
            definition: Definition {
                key: row.key,
                label: row.label,
                field_type: row.field_type,
                required: row.required,
                default: row.default_value.map(|v| v.0),
                rules: row.rules.0,
                flags: Flags {
                    searchable: row.searchable,
                    filterable: row.filterable,
                    sortable: row.sortable,
                    exported: row.exported,
                    shown: row.shown,
                },
                position: row.position,
                portfolio_id: row.portfolio_id,
                deleted_at: row.deleted_at,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "key, label, type, required, default_value, rules, searchable, filterable, sortable, exported, shown, \
                       sort_position, portfolio_id, created_at, updated_at, deleted_at";

/// Serialises the changes that must see every definition at once (the cap on live
/// definitions, a key's reservation, labels told apart, a type or rule change and the
/// holders it converts or re-indexes) until the transaction ends; account writes hold
/// the same lock shared ([`hold_shared`]).
pub async fn lock_all(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('arrears field definitions'))")
        .execute(conn)
        .await?;
    Ok(())
}

/// Holds the definitions for an account write until its transaction ends: a definition
/// change ([`lock_all`]) waits for the writes validating against the definitions as
/// they were, and a write that starts during a change waits for it and validates
/// against the new ones. Taken before any account is locked, as a change takes
/// [`lock_all`] before locking the accounts that hold its key: one order, so a write
/// and a change never wait on each other in a cycle.
pub async fn hold_shared(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext('arrears field definitions'))")
        .execute(conn)
        .await?;
    Ok(())
}

/// The live definitions, by position then key: what account writes validate against.
#[tracing::instrument(skip_all)]
pub async fn live(conn: &mut PgConnection) -> Result<Vec<Definition>> {
    let rows = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM field_definitions WHERE deleted_at IS NULL ORDER BY sort_position, key"
    )))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| StoredField::from(r).definition).collect())
}

/// The definition `key`, live or deleted, locked for the rest of the transaction.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn lock(conn: &mut PgConnection, key: &str) -> Result<Option<StoredField>> {
    let row = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM field_definitions WHERE key = $1 FOR UPDATE"
    )))
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StoredField::from))
}

#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn by_key(pool: &PgPool, key: &str) -> Result<Option<StoredField>> {
    let row = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM field_definitions WHERE key = $1"
    )))
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(StoredField::from))
}

/// A page of definitions by position then key, after the `(position, key)` keyset
/// position: the live ones, and the deleted ones too when asked.
#[tracing::instrument(skip_all)]
pub async fn page(pool: &PgPool, include_deleted: bool, after: Option<(i32, String)>, limit: i64) -> Result<Vec<StoredField>> {
    let (position, key) = after.unzip();
    let rows = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM field_definitions
         WHERE ($1 OR deleted_at IS NULL) AND ($2::integer IS NULL OR (sort_position, key) > ($2, $3))
         ORDER BY sort_position, key LIMIT $4"
    )))
    .bind(include_deleted)
    .bind(position)
    .bind(key)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StoredField::from).collect())
}

/// How many definitions there are: the live ones, and the deleted ones too when asked.
pub async fn count(pool: &PgPool, include_deleted: bool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM field_definitions WHERE $1 OR deleted_at IS NULL")
            .bind(include_deleted)
            .fetch_one(pool)
            .await?,
    )
}

/// The position after every definition's, live or deleted.
pub async fn next_position(conn: &mut PgConnection) -> Result<i32> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(sort_position) + 1, 0) FROM field_definitions")
            .fetch_one(conn)
            .await?,
    )
}

/// Stores a new definition made by `actor`.
#[tracing::instrument(skip_all, fields(key = %definition.key))]
pub async fn insert(conn: &mut PgConnection, definition: &Definition, actor: Uuid) -> Result<StoredField> {
    let row = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO field_definitions (key, label, type, required, default_value, rules, searchable, filterable, sortable,
                                        exported, shown, sort_position, portfolio_id, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         RETURNING {COLUMNS}"
    )))
    .bind(&definition.key)
    .bind(&definition.label)
    .bind(definition.field_type)
    .bind(definition.required)
    .bind(definition.default.clone().map(Json))
    .bind(Json(&definition.rules))
    .bind(definition.flags.searchable)
    .bind(definition.flags.filterable)
    .bind(definition.flags.sortable)
    .bind(definition.flags.exported)
    .bind(definition.flags.shown)
    .bind(definition.position)
    .bind(definition.portfolio_id)
    .bind(actor)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Writes what a change may alter of the definition `definition.key` (not its key or
/// portfolio), as `actor`.
#[tracing::instrument(skip_all, fields(key = %definition.key))]
pub async fn update(conn: &mut PgConnection, definition: &Definition, actor: Uuid) -> Result<StoredField> {
    let row = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE field_definitions SET label = $2, required = $3, default_value = $4, rules = $5, searchable = $6,
                filterable = $7, sortable = $8, exported = $9, shown = $10, sort_position = $11,
                updated_at = now(), updated_by = $12, type = $13
         WHERE key = $1 RETURNING {COLUMNS}"
    )))
    .bind(&definition.key)
    .bind(&definition.label)
    .bind(definition.required)
    .bind(definition.default.clone().map(Json))
    .bind(Json(&definition.rules))
    .bind(definition.flags.searchable)
    .bind(definition.flags.filterable)
    .bind(definition.flags.sortable)
    .bind(definition.flags.exported)
    .bind(definition.flags.shown)
    .bind(definition.position)
    .bind(actor)
    .bind(definition.field_type)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Deletes (`deleted: true`) or restores the definition `key` as `actor`; the row stays.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn set_deleted(conn: &mut PgConnection, key: &str, deleted: bool, actor: Uuid) -> Result<StoredField> {
    let row = sqlx::query_as::<_, FieldRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE field_definitions SET deleted_at = CASE WHEN $2 THEN now() END, updated_at = now(), updated_by = $3
         WHERE key = $1 RETURNING {COLUMNS}"
    )))
    .bind(key)
    .bind(deleted)
    .bind(actor)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Queues every account holding a value for `key` for the index: each row draws a new
/// search version under its lock and is queued by its triggers (as `touch_account`
/// does), so its next document types the value by the definition as it is then.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn touch_holders(conn: &mut PgConnection, key: &str) -> Result<u64> {
    Ok(sqlx::query("UPDATE accounts SET search_version = 0 WHERE custom_fields ? $1")
        .bind(key)
        .execute(conn)
        .await?
        .rows_affected())
}

/// An account holding a value for a field whose type changes.
#[derive(FromRow)]
pub struct Holder {
    pub id: Uuid,
    pub account_number: String,
    pub currency: Currency,
    pub value: Json<Value>,
}

/// Opens the cursor `field_holders` over the accounts holding a value for `key`
/// (deleted ones too), by id, each locked as it is fetched; it closes with the
/// transaction. A cursor reads the book once, however large, without holding it in memory.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn open_holders(conn: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query(
        "DECLARE field_holders NO SCROLL CURSOR FOR
         SELECT id, account_number, currency, custom_fields -> $1 AS value
         FROM accounts WHERE custom_fields ? $1 ORDER BY id FOR UPDATE",
    )
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// The next accounts (at most 1000) of the cursor [`open_holders`] opened; none at its end.
pub async fn next_holders(conn: &mut PgConnection) -> Result<Vec<Holder>> {
    Ok(sqlx::query_as("FETCH 1000 FROM field_holders").fetch_all(conn).await?)
}

/// Sets the value of `key` on each account of `values` (`None` removes the key), as
/// `actor`, in one statement; how many accounts changed.
#[tracing::instrument(skip_all, fields(key = %key, accounts = values.len()))]
pub async fn set_values(conn: &mut PgConnection, key: &str, values: &[(Uuid, Option<Value>)], actor: Uuid) -> Result<u64> {
    let ids: Vec<Uuid> = values.iter().map(|(id, _)| *id).collect();
    let held: Vec<Option<Json<&Value>>> = values.iter().map(|(_, value)| value.as_ref().map(Json)).collect();
    Ok(sqlx::query(
        "UPDATE accounts a SET
             custom_fields = CASE WHEN c.value IS NULL THEN a.custom_fields - $1
                                  ELSE jsonb_set(a.custom_fields, ARRAY[$1], c.value) END,
             updated_at = now(), updated_by = $4
         FROM unnest($2::uuid[], $3::jsonb[]) AS c(id, value)
         WHERE a.id = c.id",
    )
    .bind(key)
    .bind(ids)
    .bind(held)
    .bind(actor)
    .execute(conn)
    .await?
    .rows_affected())
}
