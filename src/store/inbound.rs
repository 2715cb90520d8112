//! Messages debtors send in (`inbound_messages`): matched to the accounts whose phone
//! number sent them, or kept unmatched for a manager.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::message::MessageChannel;
use crate::error::Result;
use crate::store::keyset::{self, NewestFirst};

#[derive(Clone, Debug, FromRow)]
pub struct InboundRow {
    pub id: Uuid,
    pub provider: String,
    pub provider_message_id: String,
    pub channel: MessageChannel,
    pub sender: String,
    pub body: String,
    pub opt_out: bool,
    pub account_ids: Vec<Uuid>,
    pub activity_ids: Vec<Uuid>,
    pub received_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, provider, provider_message_id, channel, sender, body, opt_out, account_ids, activity_ids, received_at";

/// The most accounts one inbound message lands on as an activity (a number shared by
/// many accounts lands on the most recently changed); an opt-out reaches them all
/// ([`opt_out`]).
pub const MAX_ACCOUNTS: i64 = 50;

/// An account a debtor's number belongs to.
#[derive(Clone, Debug, FromRow)]
pub struct Holder {
    pub id: Uuid,
    pub assigned_agent_id: Option<Uuid>,
    pub debtor_name: String,
}

/// The live accounts with phone number `phone` (E.164), locked until `tx` ends, most
/// recently changed first, at most [`MAX_ACCOUNTS`].
pub async fn holders(tx: &mut PgConnection, phone: &str) -> Result<Vec<Holder>> {
    Ok(sqlx::query_as::<_, Holder>(
        "SELECT id, assigned_agent_id, debtor_name FROM accounts
         WHERE phone = $1 AND deleted_at IS NULL
         ORDER BY updated_at DESC, id DESC LIMIT $2 FOR UPDATE",
    )
    .bind(phone)
    .bind(MAX_ACCOUNTS)
    .fetch_all(tx)
    .await?)
}

/// Sets `do_not_call` (which stops calls and texts) on every account with phone number
/// `phone` (E.164), however many, deleted ones included (a restored account stays opted
/// out), as the system. Returns how many it changed.
pub async fn opt_out(tx: &mut PgConnection, phone: &str) -> Result<u64> {
    let changed =
        sqlx::query("UPDATE accounts SET do_not_call = true, updated_at = now(), updated_by = NULL WHERE phone = $1 AND NOT do_not_call")
            .bind(phone)
            .execute(tx)
            .await?;
    Ok(changed.rows_affected())
}

/// Tells each holder's agent that their debtor wrote (`message_received`, leading to the
/// account).
pub async fn tell_agents(tx: &mut PgConnection, inbound: &InboundRow, holders: &[Holder]) -> Result<()> {
    let what = match inbound.channel {
        MessageChannel::Whatsapp => "A WhatsApp message",
        _ => "A text message",
    };
    for (holder, activity) in holders.iter().zip(&inbound.activity_ids) {
        let Some(agent) = holder.assigned_agent_id else {
            continue;
        };
        sqlx::query("SELECT notify_user($1, 'message_received', $2, jsonb_build_object('account_id', $3::uuid, 'activity_id', $4::uuid, 'opt_out', $5))")
            .bind(agent)
            .bind(format!("{what} from {}", holder.debtor_name))
            .bind(holder.id)
            .bind(activity)
            .bind(inbound.opt_out)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub async fn insert(tx: &mut PgConnection, row: &InboundRow) -> Result<InboundRow> {
    Ok(sqlx::query_as::<_, InboundRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO inbound_messages ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(row.id)
    .bind(&row.provider)
    .bind(&row.provider_message_id)
    .bind(row.channel)
    .bind(&row.sender)
    .bind(&row.body)
    .bind(row.opt_out)
    .bind(&row.account_ids)
    .bind(&row.activity_ids)
    .bind(row.received_at)
    .fetch_one(tx)
    .await?)
}

const NEWEST_FIRST: NewestFirst = NewestFirst::by("received_at", "id");

/// The inbound messages from numbers no account had, newest first, after a keyset
/// position.
pub async fn unmatched(pool: &PgPool, after: Option<(DateTime<Utc>, Uuid)>, limit: i64) -> Result<Vec<InboundRow>> {
    let select = format!("SELECT {COLUMNS} FROM inbound_messages");
    NEWEST_FIRST.page(pool, only_unmatched(&select), after, limit).await
}

pub async fn count_unmatched(pool: &PgPool) -> Result<i64> {
    keyset::count(pool, only_unmatched("SELECT count(*) FROM inbound_messages")).await
}

fn only_unmatched(select: &str) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut query = keyset::rows_where(select, "id", None);
    query.push(" AND cardinality(account_ids) = 0");
    query
}

/// When `sender` last wrote on WhatsApp: what opens WhatsApp's 24-hour window.
pub async fn last_whatsapp_from(conn: &mut PgConnection, sender: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT received_at FROM inbound_messages WHERE channel = 'whatsapp' AND sender = $1
         ORDER BY received_at DESC LIMIT 1",
    )
    .bind(sender)
    .fetch_optional(conn)
    .await?)
}
