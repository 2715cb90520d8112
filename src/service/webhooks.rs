//! What providers report back by webhook, taken once each: a delivery report moves a
//! sent message forward (live as `message.updated`; not delivered, a `message_failed`
//! notification to whoever sent it); a message a debtor sent in lands on the timeline
//! of each account with that phone number as an inbound activity, tells the account's
//! agent (`message_received`), and an opt-out word (STOP) sets `do_not_call` on every
//! account with that number (deleted ones included), which stops calls and texts. One from a number no account has waits for a
//! manager. The request's signature is checked by the caller (`http::webhooks`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::activity::{Direction, NewActivity};
use crate::domain::message::{self, MessageChannel};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::messaging::Report;
use crate::service::Window;
use crate::service::messages::MessageView;
use crate::store::inbound::{self, InboundRow};
use crate::store::{activities, messages};

/// The most characters of a debtor's message kept (Twilio's longest is WhatsApp's
/// 4,096); more is cut, never refused, so no message is lost.
const MAX_BODY_CHARS: usize = 5000;

/// What taking a report did.
#[derive(Debug)]
pub enum Taken {
    /// The message it moved forward; `None` when it moved nothing (a status that says
    /// nothing new, one older than what is known, or a message this service does not
    /// know, whose report is held for the sender).
    Delivery(Option<Box<MessageView>>),
    Inbound(Box<InboundView>),
}

/// A message a debtor sent in, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InboundView {
    pub id: Uuid,
    pub provider: String,
    pub provider_message_id: String,
    pub channel: MessageChannel,
    /// The sender's phone number, E.164.
    pub sender: String,
    /// What they wrote; plain text.
    pub body: String,
    /// It was an opt-out word (STOP ...): `do_not_call` was set on every account with the
    /// sender's number, deleted ones and those beyond `account_ids` included.
    pub opt_out: bool,
    /// The accounts with the sender's number it landed on (empty: none had it).
    pub account_ids: Vec<Uuid>,
    /// The inbound activity on each of those accounts, in the same order.
    pub activity_ids: Vec<Uuid>,
    pub received_at: DateTime<Utc>,
}

impl From<InboundRow> for InboundView {
    fn from(row: InboundRow) -> Self {
        Self {
            id: row.id,
            provider: row.provider,
            provider_message_id: row.provider_message_id,
            channel: row.channel,
            sender: row.sender,
            body: row.body,
            opt_out: row.opt_out,
            account_ids: row.account_ids,
            activity_ids: row.activity_ids,
            received_at: row.received_at,
        }
    }
}

/// Takes `report` from `provider` at `now`, once: a replay is a 409 `conflict` and
/// changes nothing.
pub async fn take(pool: &PgPool, provider: &str, report: Report, now: DateTime<Utc>) -> Result<Taken> {
    let mut tx = pool.begin().await?;
    let held = match &report {
        Report::Delivery {
            provider_message_id,
            delivery: Some(delivery),
            error,
            ..
        } => Some((provider_message_id.as_str(), *delivery, error.as_deref())),
        _ => None,
    };
    if !messages::take_receipt(&mut tx, provider, &report.key(), held, now).await? {
        return Err(Error::new(
            Code::Conflict,
            "this report was received before; a replay changes nothing",
        ));
    }
    let taken = match report {
        Report::Delivery { .. } => {
            let moved = match held {
                Some((id, delivery, error)) => messages::record_delivery(&mut tx, provider, id, delivery, error, now).await?,
                None => None,
            };
            Taken::Delivery(moved.map(|row| Box::new(MessageView::from(row))))
        }
        Report::Inbound {
            provider_message_id,
            channel,
            sender,
            body,
        } => {
            let body: String = body.replace('\0', "").chars().take(MAX_BODY_CHARS).collect();
            let holders = inbound::holders(&mut tx, &sender).await?;
            let opt_out = message::is_opt_out(&body);
            let mut activity_ids = Vec::with_capacity(holders.len());
            for holder in &holders {
                let written = NewActivity {
                    kind: channel.activity_type(),
                    direction: Some(Direction::Inbound),
                    outcome: None,
                    notes: Some(body.clone()).filter(|b| !b.is_empty()),
                    occurred_at: now,
                    next_action_at: None,
                };
                activity_ids.push(activities::insert(&mut tx, holder.id, &written, None, now).await?.id);
            }
            let account_ids: Vec<Uuid> = holders.iter().map(|h| h.id).collect();
            // The opt-out is the number's: every account with it, not only those the
            // message lands on.
            let opted_out = if opt_out { inbound::opt_out(&mut tx, &sender).await? } else { 0 };
            let row = inbound::insert(
                &mut tx,
                &InboundRow {
                    id: Uuid::now_v7(),
                    provider: provider.to_owned(),
                    provider_message_id,
                    channel,
                    sender,
                    body,
                    opt_out,
                    account_ids,
                    activity_ids,
                    received_at: now,
                },
            )
            .await?;
            inbound::tell_agents(&mut tx, &row, &holders).await?;
            tracing::info!(inbound_id = %row.id, accounts = row.account_ids.len(), opt_out, opted_out, "message received");
            Taken::Inbound(Box::new(InboundView::from(row)))
        }
    };
    tx.commit().await?;
    Ok(taken)
}

/// Takes each of `reports` (one webhook request may carry many, as Meta's do), each
/// once; how many were new. All of them replays (and at least one) is a 409
/// `conflict`: the request as a whole was taken before. A failure part way leaves the
/// ones taken taken, so the provider's retry of the request takes the rest.
pub async fn take_all(pool: &PgPool, provider: &str, reports: Vec<Report>, now: DateTime<Utc>) -> Result<usize> {
    let count = reports.len();
    let mut taken = 0;
    for report in reports {
        match take(pool, provider, report, now).await {
            Ok(_) => taken += 1,
            Err(e) if matches!(e.code(), Code::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    if count > 0 && taken == 0 {
        return Err(Error::new(
            Code::Conflict,
            "every report in this request was received before; a replay changes nothing",
        ));
    }
    Ok(taken)
}

/// The messages from numbers no account had, newest first, and how many there are: for
/// managers and admins, who find whose they are.
pub async fn unmatched(pool: &PgPool, caller: &Principal, window: Window) -> Result<(Vec<InboundRow>, i64)> {
    caller.require(Action::ReadUnmatchedMessages)?;
    let rows = inbound::unmatched(pool, window.after, window.limit).await?;
    Ok((rows, inbound::count_unmatched(pool).await?))
}
