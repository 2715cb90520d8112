//! Messages to debtors and their templates (`account_messages`, `message_templates`,
//! migrations/0043_messages.sql): the rows, and the sender's queue, which hands each due
//! message to one sender (`FOR UPDATE SKIP LOCKED`) and records how its try went.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use sqlx::types::Json;

use crate::domain::message::approval::{Approval, ApprovedMessage};
use crate::domain::message::{BlockedRule, Delivery, MessageChannel, MessageStatus, TemplateFields};
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

/// Wakes the senders when a message is queued.
pub const CHANNEL: &str = "arrears_messages";

#[derive(Clone, Debug, FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub channel: MessageChannel,
    pub subject: Option<String>,
    pub body: String,
    pub meta_name: Option<String>,
    pub meta_language: Option<String>,
    pub twilio_content_sid: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl TemplateRow {
    /// What WhatsApp's provider approved it as, when anything.
    pub fn approval(&self) -> Option<Approval> {
        Approval {
            meta_name: self.meta_name.clone(),
            meta_language: self.meta_language.clone(),
            twilio_content_sid: self.twilio_content_sid.clone(),
        }
        .named()
    }

    pub fn fields(&self) -> TemplateFields {
        TemplateFields {
            name: self.name.clone(),
            channel: self.channel,
            subject: self.subject.clone(),
            body: self.body.clone(),
            approval: self.approval(),
        }
    }
}

const TEMPLATE_COLUMNS: &str =
    "id, name, channel, subject, body, meta_name, meta_language, twilio_content_sid, created_by, created_at, updated_at, deleted_at";

/// The approval columns of `fields`: Meta's name and language, Twilio's Content SID.
fn approval_columns(fields: &TemplateFields) -> (Option<&str>, Option<&str>, Option<&str>) {
    let approval = fields.approval.as_ref();
    (
        approval.and_then(|a| a.meta_name.as_deref()),
        approval.and_then(|a| a.meta_language.as_deref()),
        approval.and_then(|a| a.twilio_content_sid.as_deref()),
    )
}

/// Whether `err` is the live-name unique index refusing a second template of one name.
pub fn is_name_taken(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some("message_templates_live_name"))
}

pub async fn insert_template(conn: &mut PgConnection, id: Uuid, fields: &TemplateFields, by: Uuid) -> sqlx::Result<TemplateRow> {
    sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO message_templates (id, name, channel, subject, body, created_by, updated_by,
             meta_name, meta_language, twilio_content_sid)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING {TEMPLATE_COLUMNS}"
    )))
    .bind(id)
    .bind(&fields.name)
    .bind(fields.channel)
    .bind(&fields.subject)
    .bind(&fields.body)
    .bind(by)
    .bind(approval_columns(fields).0)
    .bind(approval_columns(fields).1)
    .bind(approval_columns(fields).2)
    .fetch_one(conn)
    .await
}

/// The live template `id`, locked for a change when `conn` is a transaction.
pub async fn lock_template(conn: &mut PgConnection, id: Uuid) -> Result<Option<TemplateRow>> {
    Ok(sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM message_templates WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub async fn update_template(conn: &mut PgConnection, id: Uuid, fields: &TemplateFields, by: Uuid) -> sqlx::Result<TemplateRow> {
    sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE message_templates SET name = $2, subject = $3, body = $4, updated_by = $5, updated_at = now(),
             meta_name = $6, meta_language = $7, twilio_content_sid = $8
         WHERE id = $1 RETURNING {TEMPLATE_COLUMNS}"
    )))
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.subject)
    .bind(&fields.body)
    .bind(by)
    .bind(approval_columns(fields).0)
    .bind(approval_columns(fields).1)
    .bind(approval_columns(fields).2)
    .fetch_one(conn)
    .await
}

pub async fn delete_template(conn: &mut PgConnection, id: Uuid, by: Uuid) -> Result<TemplateRow> {
    Ok(sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE message_templates SET deleted_at = now(), updated_by = $2, updated_at = now()
         WHERE id = $1 RETURNING {TEMPLATE_COLUMNS}"
    )))
    .bind(id)
    .bind(by)
    .fetch_one(conn)
    .await?)
}

/// The live template `id`.
pub async fn template(pool: &PgPool, id: Uuid) -> Result<Option<TemplateRow>> {
    Ok(sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM message_templates WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

const NEWEST_FIRST: NewestFirst = NewestFirst::by("created_at", "id");

/// The live templates (of `channel`, when named), newest first, after a keyset position.
pub async fn templates(
    pool: &PgPool,
    channel: Option<MessageChannel>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TemplateRow>> {
    let select = format!("SELECT {TEMPLATE_COLUMNS} FROM message_templates");
    NEWEST_FIRST.page(pool, live_templates(&select, channel), after, limit).await
}

pub async fn count_templates(pool: &PgPool, channel: Option<MessageChannel>) -> Result<i64> {
    keyset::count(pool, live_templates("SELECT count(*) FROM message_templates", channel)).await
}

fn live_templates(select: &str, channel: Option<MessageChannel>) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut query = keyset::rows_where(select, "id", None);
    query.push(" AND deleted_at IS NULL");
    if let Some(channel) = channel {
        query.push(" AND channel = ").push_bind(channel);
    }
    query
}

#[derive(Clone, Debug, FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub activity_id: Uuid,
    pub channel: MessageChannel,
    pub template_id: Option<Uuid>,
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    pub provider: String,
    pub status: MessageStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub delivery: Option<Delivery>,
    pub delivery_error: Option<String>,
    pub delivery_at: Option<DateTime<Utc>>,
    pub document_ids: Vec<Uuid>,
    /// Sent as an approved WhatsApp template, with these values.
    pub approved_template: Option<Json<ApprovedMessage>>,
    pub blocked_rule: Option<BlockedRule>,
    pub blocked_at: Option<DateTime<Utc>>,
}

const MESSAGE_COLUMNS: &str = "id, account_id, activity_id, channel, template_id, recipient, subject, body, provider, status, \
     attempts, next_attempt_at, provider_message_id, error, created_by, created_at, sent_at, failed_at, \
     delivery, delivery_error, delivery_at, document_ids, approved_template, blocked_rule, blocked_at";

/// A delivery's rank in SQL (`Delivery::rank`): reports only move a message forward.
const DELIVERY_RANK: &str = "CASE WHEN delivery IS NULL THEN 0 WHEN delivery = 'sent' THEN 1 WHEN delivery = 'read' THEN 3 ELSE 2 END";

/// A message to queue.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub activity_id: Uuid,
    pub channel: MessageChannel,
    pub template_id: Option<Uuid>,
    pub recipient: &'a str,
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub provider: &'a str,
    pub document_ids: &'a [Uuid],
    pub approved_template: Option<&'a ApprovedMessage>,
    pub created_by: Uuid,
    pub at: DateTime<Utc>,
}

/// Queues `new`, due at once, and wakes the senders when the transaction commits.
pub async fn queue(conn: &mut PgConnection, new: &NewMessage<'_>) -> Result<MessageRow> {
    let row = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO account_messages (id, account_id, activity_id, channel, template_id, recipient, subject, body,
             provider, status, next_attempt_at, created_by, created_at, document_ids, approved_template)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11, $10, $12, $13) RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(new.id)
    .bind(new.account_id)
    .bind(new.activity_id)
    .bind(new.channel)
    .bind(new.template_id)
    .bind(new.recipient)
    .bind(new.subject)
    .bind(new.body)
    .bind(new.provider)
    .bind(new.at)
    .bind(new.created_by)
    .bind(new.document_ids)
    .bind(new.approved_template.map(Json))
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(conn).await?;
    Ok(row)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<MessageRow>> {
    Ok(sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM account_messages WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The messages of `account_id`, newest first, after a keyset position.
pub async fn page(pool: &PgPool, account_id: Uuid, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<MessageRow>> {
    let select = format!("SELECT {MESSAGE_COLUMNS} FROM account_messages");
    NEWEST_FIRST
        .page(pool, keyset::rows_where(&select, "account_id", Some(account_id)), after, limit)
        .await
}

pub async fn count(pool: &PgPool, account_id: Uuid) -> Result<i64> {
    keyset::count(
        pool,
        keyset::rows_where("SELECT count(*) FROM account_messages", "account_id", Some(account_id)),
    )
    .await
}

/// The queued message due first at `now`, locked for this sender (others skip it)
/// until `tx` ends.
pub async fn claim_next(tx: &mut PgConnection, now: DateTime<Utc>) -> Result<Option<MessageRow>> {
    Ok(sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM account_messages
         WHERE status = 'queued' AND next_attempt_at <= $1
         ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .fetch_optional(tx)
    .await?)
}

/// How one try of a message went.
pub enum Tried<'a> {
    Sent {
        provider_message_id: &'a str,
    },
    /// Failed; tried again at `retry_at`, or never (`None`: the message failed).
    Failed {
        error: &'a str,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Records a try of message `id` through `provider` at `now`. A sent message takes the
/// furthest delivery report that arrived before this was recorded ([`hold_delivery`]).
pub async fn record_try(tx: &mut PgConnection, id: Uuid, provider: &str, tried: Tried<'_>, now: DateTime<Utc>) -> Result<MessageRow> {
    let query = match tried {
        Tried::Sent { provider_message_id } => sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE account_messages SET status = 'sent', attempts = attempts + 1, next_attempt_at = NULL,
                 provider_message_id = $2, sent_at = $3, provider = $4, error = NULL
             WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(provider_message_id)
        .bind(now)
        .bind(provider),
        Tried::Failed { error, retry_at } => sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE account_messages SET attempts = attempts + 1, error = left($2, 2000),
                 status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'queued' END,
                 next_attempt_at = $3, failed_at = CASE WHEN $3::timestamptz IS NULL THEN $4 END, provider = $5
             WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .bind(now)
        .bind(provider),
    };
    let row = query.fetch_one(&mut *tx).await?;
    let Some(provider_message_id) = row.provider_message_id.as_deref().filter(|_| row.status == MessageStatus::Sent) else {
        return Ok(row);
    };
    let held = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE account_messages m SET delivery = r.delivery, delivery_error = r.delivery_error, delivery_at = r.received_at
         FROM (SELECT delivery, delivery_error, received_at FROM webhook_receipts
               WHERE provider = $2 AND provider_message_id = $3 AND delivery IS NOT NULL
               ORDER BY {DELIVERY_RANK} DESC, received_at DESC LIMIT 1) r
         WHERE m.id = $1 RETURNING {}",
        MESSAGE_COLUMNS
            .split(", ")
            .map(|c| format!("m.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .bind(id)
    .bind(provider)
    .bind(provider_message_id)
    .fetch_optional(tx)
    .await?;
    Ok(held.unwrap_or(row))
}

/// Holds queued message `id` until `until` without counting a try: the guard allows it
/// only then (the debtor's contact hours). `why` is kept as its error.
pub async fn hold(tx: &mut PgConnection, id: Uuid, until: DateTime<Utc>, why: &str) -> Result<MessageRow> {
    Ok(sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE account_messages SET next_attempt_at = $2, error = left($3, 2000) WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(id)
    .bind(until)
    .bind(why)
    .fetch_one(tx)
    .await?)
}

/// Blocks queued message `id` at `now` for `rule` (`why` kept as its error) without
/// counting a try, and tells whoever sent it (`message_failed`, titled `title`, its
/// data saying `status: blocked` and the rule).
pub async fn block(tx: &mut PgConnection, id: Uuid, rule: BlockedRule, why: &str, title: &str, now: DateTime<Utc>) -> Result<MessageRow> {
    let row = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE account_messages SET status = 'blocked', blocked_rule = $2, blocked_at = $3, error = left($4, 2000),
             next_attempt_at = NULL
         WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(id)
    .bind(rule)
    .bind(now)
    .bind(why)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT notify_user($1, 'message_failed', $2, jsonb_build_object('id', $3::uuid, 'account_id', $4::uuid,
             'channel', $5::text, 'status', 'blocked', 'blocked_rule', $6::text, 'error', $7::text, 'blocked_at', $8::timestamptz,
             'attempts', $9::int))",
    )
    .bind(row.created_by)
    .bind(title)
    .bind(row.id)
    .bind(row.account_id)
    .bind(row.channel.as_str())
    .bind(rule.as_str())
    .bind(&row.error)
    .bind(now)
    .bind(row.attempts)
    .execute(tx)
    .await?;
    Ok(row)
}

/// Takes webhook report `key` of `provider` at `now`; false when it was taken before
/// (a replay). A delivery report keeps what it says, for [`record_try`] to apply when
/// it outran the sender.
pub async fn take_receipt(
    tx: &mut PgConnection,
    provider: &str,
    key: &str,
    delivery: Option<(&str, Delivery, Option<&str>)>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let taken = sqlx::query(
        "INSERT INTO webhook_receipts (provider, key, received_at, provider_message_id, delivery, delivery_error)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(key)
    .bind(now)
    .bind(delivery.map(|(id, _, _)| id))
    .bind(delivery.map(|(_, delivery, _)| delivery))
    .bind(delivery.and_then(|(_, _, error)| error))
    .execute(tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Records a delivery report on the message `provider` knows as `provider_message_id`,
/// when it moves the message forward; `None` when it does not, or when no sent message
/// has that id yet (the report is held by [`take_receipt`]).
pub async fn record_delivery(
    tx: &mut PgConnection,
    provider: &str,
    provider_message_id: &str,
    delivery: Delivery,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<MessageRow>> {
    Ok(sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE account_messages SET delivery = $3, delivery_error = $4, delivery_at = $5
         WHERE provider = $1 AND provider_message_id = $2 AND status = 'sent' AND {DELIVERY_RANK} < $6
         RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(provider)
    .bind(provider_message_id)
    .bind(delivery)
    .bind(error)
    .bind(now)
    .bind(delivery.rank())
    .fetch_optional(tx)
    .await?)
}
