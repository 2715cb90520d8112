//! Messages to debtors as operations: composing one from a template or a text, sending
//! it (the compliance guard first, exactly as for a logged contact; then the activity
//! and the queued message in one transaction), previewing it, the templates, and the
//! sender's pass over the queue, which asks the guard again before every try.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::domain::activity::{ActivityType, Direction, MAX_NOTES_LEN, NewActivity};
use crate::domain::attachment;
use crate::domain::compliance::Rule;
use crate::domain::message::approval::{self, Approval, ApprovedMessage};
use crate::domain::message::{
    self, BlockedRule, ChangeTemplate, ComposeMessage, CreateTemplate, Delivery, MAX_ATTEMPTS, MessageChannel, MessageStatus, Source,
    TemplateFields, Values,
};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::text;
use crate::error::{Code, Error, FieldError, Result};
use crate::messaging::{Outgoing, OutgoingFile, Providers, SendFailure};
use crate::service::Window;
use crate::service::accounts::{get_for, lock_for, readable, readable_as};
use crate::service::idempotency::{self, Replay};
use crate::service::{activities, compliance};
use crate::storage::ContentStore;
use crate::store::accounts::{self, AccountRow};
use crate::store::attachments;
use crate::store::inbound;
use crate::store::messages::{self as store, MessageRow, NewMessage, TemplateRow, Tried};
use crate::telemetry::metrics;

pub use crate::store::messages::CHANNEL;

const IDEMPOTENCY_SCOPE: &str = "message";

/// A message to a debtor, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The outbound contact attempt it was logged as, on the account's timeline.
    pub activity_id: Uuid,
    pub channel: MessageChannel,
    pub template_id: Option<Uuid>,
    /// The phone number (E.164) or email address it went to, as the account had it.
    pub recipient: String,
    pub subject: Option<String>,
    /// The text sent, placeholders filled; plain text.
    pub body: String,
    pub provider: String,
    pub status: MessageStatus,
    /// Tries so far.
    pub attempts: i32,
    /// When the sender tries a queued message next (the guard is asked again then).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    /// Why the last try failed, why a queued message waits (the debtor's contact
    /// hours), or why a blocked one was not sent; `null` once it is sent.
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// How delivery went after the provider took it, as the provider's reports say
    /// (`null` until one arrives; the local provider and SMTP send none).
    pub delivery: Option<Delivery>,
    /// The provider's reason when it was not delivered (Twilio's error code).
    pub delivery_error: Option<String>,
    pub delivery_at: Option<DateTime<Utc>>,
    /// The account's documents the email carried, in order.
    pub document_ids: Vec<Uuid>,
    /// A WhatsApp message sent outside WhatsApp's 24-hour window: the approved template
    /// it went as and the values of its placeholders (`null` for a message sent as its
    /// text).
    pub approved_template: Option<ApprovedMessage>,
    /// A blocked message: the guard's rule that refused it at a try (as
    /// `contact_blocked` names it), or `account_deleted`.
    pub blocked_rule: Option<BlockedRule>,
    /// When it was blocked.
    pub blocked_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            activity_id: row.activity_id,
            channel: row.channel,
            template_id: row.template_id,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            provider: row.provider,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            provider_message_id: row.provider_message_id,
            error: row.error,
            created_by: row.created_by,
            created_at: row.created_at,
            sent_at: row.sent_at,
            failed_at: row.failed_at,
            delivery: row.delivery,
            delivery_error: row.delivery_error,
            delivery_at: row.delivery_at,
            document_ids: row.document_ids,
            approved_template: row.approved_template.map(|t| t.0),
            blocked_rule: row.blocked_rule,
            blocked_at: row.blocked_at,
        }
    }
}

/// A message as it would be sent now: `POST /accounts/{id}/messages/preview`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub channel: MessageChannel,
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    /// The documents an email carries, in order (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attached>,
    /// For a WhatsApp template its provider approved: what goes instead of `body` when
    /// the debtor has not written on WhatsApp in the last 24 hours (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_template: Option<ApprovedMessage>,
}

/// A document an email carries.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Attached {
    pub id: Uuid,
    /// The name it goes under (the document's download name).
    pub name: String,
    pub size: i64,
}

/// The documents `ids` of `account_id`, checked: each a live document of the account,
/// together at most [`message::MAX_ATTACHMENT_BYTES`].
async fn attached(conn: &mut PgConnection, account_id: Uuid, ids: &[Uuid]) -> Result<Vec<Attached>> {
    let found = attachments::by_ids(conn, ids).await?;
    let mut kept = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(document) = found
            .iter()
            .find(|d| d.id == *id && d.account_id == account_id && d.deleted_at.is_none())
        else {
            return Err(Error::field("document_ids", format!("{id} is not a live document of this account")));
        };
        kept.push(Attached {
            id: document.id,
            name: attachment::download_name(&document.name, document.kind),
            size: document.size,
        });
    }
    let total: i64 = kept.iter().map(|a| a.size).sum();
    if total > message::MAX_ATTACHMENT_BYTES {
        return Err(Error::field(
            "document_ids",
            format!(
                "the documents hold {total} bytes; one email carries at most {}",
                message::MAX_ATTACHMENT_BYTES
            ),
        ));
    }
    Ok(kept)
}

/// What sending answered: the queued message, or the first request's answer again.
pub enum Sent {
    Fresh(Box<MessageView>),
    Replayed(Replay),
}

/// Where the service finds what a message needs beyond the request.
pub struct Outbox<'a> {
    pub providers: &'a Providers,
    /// `PAYMENT_LINK_TEMPLATE`, when configured.
    pub payment_link: Option<&'a str>,
}

/// The text, subject and recipient of `compose` for `account`.
async fn render(conn: &mut PgConnection, account: &AccountRow, compose: &ComposeMessage, payment_link: Option<&str>) -> Result<Rendered> {
    let source = compose.validate().map_err(Error::validation)?;
    let (body, subject, approval) = match source {
        Source::Text { body, subject } => (body, subject, None),
        Source::Template(id) => {
            let template = store::lock_template(conn, id)
                .await?
                .filter(|t| t.channel == compose.channel)
                .ok_or_else(|| Error::field("template_id", format!("names no live {} template", compose.channel.as_str())))?;
            let approval = template.approval();
            (template.body, template.subject, approval)
        }
    };
    let values = Values {
        debtor_name: account.debtor_name.clone(),
        account_number: account.account_number.clone(),
        balance: format!("{} {}", account.currency.format(account.current_balance), account.currency.code()),
        due_date: account.due_date,
        payment_link: payment_link.map(|t| message::payment_link(t, &account.account_number)),
    };
    // A refusal names what the client sent: the template, or its own text and subject.
    let (field, subject_field) = if compose.template_id.is_some() {
        ("template_id", "template_id")
    } else {
        ("text", "subject")
    };
    let approved_template = approval
        .map(|approval| message::parameters(&body, &values).map(|parameters| ApprovedMessage { approval, parameters }))
        .transpose()
        .map_err(|m| Error::field(field, m))?;
    let body = message::render(&body, &values).map_err(|m| Error::field(field, m))?;
    let max = compose.channel.max_body_chars();
    if body.chars().count() > max {
        return Err(Error::field(
            field,
            format!(
                "renders to more than the {max} characters a {} message holds",
                compose.channel.as_str()
            ),
        ));
    }
    // A subject is one header line, whatever the values filled in hold (a debtor's name
    // written before names were checked may hold a CR, an LF or U+202E).
    let subject = subject
        .map(|s| message::render(&s, &values).map(|s| text::one_line(&s)))
        .transpose()
        .map_err(|m| Error::field(subject_field, m))?;
    if subject.as_ref().is_some_and(String::is_empty) {
        return Err(Error::field(subject_field, "the subject renders to nothing"));
    }
    if subject.as_ref().is_some_and(|s| s.chars().count() > message::MAX_SUBJECT_CHARS) {
        return Err(Error::field(
            subject_field,
            format!("the subject renders to more than {} characters", message::MAX_SUBJECT_CHARS),
        ));
    }
    let recipient = if compose.channel.is_email() {
        account.email.clone()
    } else {
        account.phone.clone()
    };
    let recipient = recipient.ok_or_else(|| {
        let what = if compose.channel.is_email() {
            "an email address"
        } else {
            "a phone number"
        };
        Error::new(
            Code::NoRecipient,
            format!("the account has no {what} to send a {} message to", compose.channel.as_str()),
        )
        .with_extension("channel", compose.channel.as_str().into())
    })?;
    let ids = compose.attachments().map_err(|e| Error::validation(vec![e]))?;
    let attachments = attached(conn, account.id, ids).await?;
    Ok(Rendered {
        channel: compose.channel,
        recipient,
        subject,
        body,
        attachments,
        approved_template,
    })
}

/// How a WhatsApp message goes at `now` through the provider named `provider`: as its
/// text (`None`) while the debtor's last WhatsApp message is under 24 hours old; after
/// that only as the approved template `rendered` brings, which that provider must have
/// approved; otherwise 409 `whatsapp_window_closed`, saying when the window closed (or
/// that the debtor never opened one) and what would go.
async fn whatsapp_form(
    conn: &mut PgConnection,
    rendered: &Rendered,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Option<ApprovedMessage>> {
    if rendered.channel != MessageChannel::Whatsapp {
        return Ok(None);
    }
    let last = inbound::last_whatsapp_from(conn, &rendered.recipient).await?;
    let closed_at = last.map(approval::window_closes);
    if closed_at.is_some_and(|at| at > now) {
        return Ok(None);
    }
    let since = match closed_at {
        Some(at) => format!(
            "the debtor's last WhatsApp message opened a window that closed at {}",
            at.to_rfc3339()
        ),
        None => "the debtor has never written on WhatsApp".to_owned(),
    };
    let refusal = match &rendered.approved_template {
        Some(approved) if approved.approval.serves(provider) => return Ok(Some(approved.clone())),
        Some(_) => format!("{since}, and this template has no approval for the {provider} provider"),
        None => format!("{since}: outside WhatsApp's 24-hour window only a template its provider approved goes"),
    };
    Err(Error::new(Code::WhatsappWindowClosed, refusal)
        .with_extension("channel", rendered.channel.as_str().into())
        .with_extension("window_closed_at", closed_at.map(|at| at.to_rfc3339()).into()))
}

/// The message `compose` would send on `account_id` now, without sending it.
pub async fn preview(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    compose: &ComposeMessage,
    outbox: &Outbox<'_>,
) -> Result<Rendered> {
    caller.require(Action::WorkAccount)?;
    let account = get_for(pool, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    let mut conn = pool.acquire().await?;
    render(&mut conn, &account, compose, outbox.payment_link).await
}

fn request_hash(account_id: Uuid, compose: &ComposeMessage) -> Result<Vec<u8>> {
    let canonical = serde_json::to_vec(&(account_id, compose)).map_err(anyhow::Error::from)?;
    Ok(Sha256::digest(canonical).to_vec())
}

/// Sends `compose` on `account_id` for `caller` at `now`: the guard judges the attempt
/// on the message's channel under the account's lock (a refusal is the 409 a logged
/// contact gets, and nothing is kept); the activity and the queued message are written
/// in one transaction, which wakes the sender.
pub async fn send(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    key: Option<&str>,
    compose: ComposeMessage,
    outbox: &Outbox<'_>,
    now: DateTime<Utc>,
) -> Result<Sent> {
    caller.require(Action::WorkAccount)?;
    idempotency::check_key(key)?;
    let hash = request_hash(account_id, &compose)?;
    let mut tx = crate::store::begin_as(pool, caller.user_id).await?;
    if let Some(first) = idempotency::claim(&mut tx, caller, IDEMPOTENCY_SCOPE, key, &hash).await? {
        return Ok(Sent::Replayed(first));
    }
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    caller.require_work_on(account.assigned_agent_id)?;
    let rendered = render(&mut tx, &account, &compose, outbox.payment_link).await?;
    let notes: String = match &rendered.subject {
        Some(subject) => format!("{subject}\n\n{}", rendered.body),
        None => rendered.body.clone(),
    }
    .chars()
    .take(MAX_NOTES_LEN)
    .collect();
    let attempt = NewActivity {
        kind: compose.channel.activity_type(),
        direction: Some(Direction::Outbound),
        outcome: None,
        notes: Some(notes),
        occurred_at: now,
        next_action_at: None,
    };
    let activity = activities::log_locked(&mut tx, caller, &account, &attempt, now).await?;
    let provider = outbox.providers.for_channel(compose.channel).name();
    let approved_template = whatsapp_form(&mut tx, &rendered, provider, now).await?;
    let row = store::queue(
        &mut tx,
        &NewMessage {
            id: Uuid::now_v7(),
            account_id,
            activity_id: activity.id,
            channel: compose.channel,
            template_id: compose.template_id,
            recipient: &rendered.recipient,
            subject: rendered.subject.as_deref(),
            body: &rendered.body,
            provider,
            document_ids: &compose.document_ids,
            approved_template: approved_template.as_ref(),
            created_by: caller.user_id,
            at: now,
        },
    )
    .await?;
    let view = MessageView::from(row);
    let body = serde_json::to_value(&view).map_err(anyhow::Error::from)?;
    idempotency::record(&mut tx, caller, IDEMPOTENCY_SCOPE, key, 202, &body).await?;
    tx.commit().await?;
    tracing::info!(message_id = %view.id, channel = view.channel.as_str(), "message queued");
    Ok(Sent::Fresh(Box::new(view)))
}

/// The messages of `account_id`, newest first, and how many it has: for those who read
/// the account in full.
pub async fn for_account(pool: &PgPool, caller: &Principal, account_id: Uuid, window: Window) -> Result<(Vec<MessageRow>, i64)> {
    readable(pool, caller, account_id).await?;
    let rows = store::page(pool, account_id, window.after, window.limit).await?;
    Ok((rows, store::count(pool, account_id).await?))
}

/// Message `id`, for those who read its account in full.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<MessageRow> {
    caller.require(Action::ReadAccounts)?;
    let row = store::get(pool, id).await?.ok_or_else(|| Error::not_found("message"))?;
    readable_as(pool, caller, row.account_id, "message").await?;
    Ok(row)
}

/// Messages the sender handles in one pass.
const BATCH: usize = 20;

/// One pass of the sender at `now`: takes up to [`BATCH`] due messages, one at a time,
/// asks the guard again about each ([`judge`]) and, when it allows the try, hands it
/// to its channel's provider (the one configured now, which is recorded with the try)
/// and records how it went (sent; failed and tried again after
/// [`message::retry_delay`]; or failed for good when the provider refused it or after
/// [`MAX_ATTEMPTS`] tries). A message the guard holds for the contact hours waits for
/// them; one it refuses for good is blocked ([`block`]). Returns how many it took.
/// Each message is claimed, judged, sent and recorded in a transaction of its own: it
/// and its account stay locked only while its provider is asked (no two senders send
/// it, and nothing that would refuse it commits between the guard's answer and the
/// provider's), and its outcome is committed before the next is taken, so a delivery
/// report rarely arrives before it (and one that does is held). A sender that dies
/// mid-try leaves it queued, and it is sent again (at least once).
pub async fn deliver_due(pool: &PgPool, providers: &Providers, content: &dyn ContentStore, now: DateTime<Utc>) -> Result<usize> {
    let mut taken = 0;
    while taken < BATCH {
        let mut tx = pool.begin().await?;
        let Some(row) = store::claim_next(&mut tx, now).await? else {
            break;
        };
        taken += 1;
        match judge(&mut tx, &row, now).await? {
            Verdict::Send => try_once(&mut tx, providers, content, &row, now).await?,
            Verdict::Hold { until, rule } => {
                let why = format!("waiting until {}: {}", until.to_rfc3339(), rule.explain());
                store::hold(&mut tx, row.id, until, &why).await?;
                tracing::info!(message_id = %row.id, rule = rule.as_str(), %until, "message held by the contact guard");
            }
            Verdict::Block(rule) => block(&mut tx, &row, rule, now).await?,
        }
        tx.commit().await?;
    }
    Ok(taken)
}

/// What the sender does with a claimed message, as the guard decided at the try.
enum Verdict {
    /// Hand it to the provider.
    Send,
    /// Wait, without a try, until the guard allows it (the debtor's contact hours).
    Hold { until: DateTime<Utc>, rule: Rule },
    /// Never hand it to the provider.
    Block(BlockedRule),
}

/// The guard's answer about trying `row` at `now`, asked under its account's lock,
/// which the claim's transaction holds until the outcome is recorded: a STOP, a cease
/// request or a deletion commits before this answer or after the provider's. A deleted
/// account blocks: every write path finds it gone, and the sender, which has no
/// caller to look it up for, locks it itself. A refusal that ends (the contact hours)
/// holds the message until then; under Regulation F §1006.6(b)(1) what must not happen
/// at an inconvenient time is the communication, which is the try, so the message waits
/// for the hours rather than being dropped. Any other refusal blocks it. A manager's
/// override used when it was queued covers its retries ([`compliance::decide_again`]).
async fn judge(tx: &mut PgConnection, row: &MessageRow, now: DateTime<Utc>) -> Result<Verdict> {
    if accounts::lock(tx, row.account_id).await?.is_none() {
        return Ok(Verdict::Block(BlockedRule::AccountDeleted));
    }
    let channel = row.channel.guard_channel();
    Ok(
        match compliance::decide_again(tx, row.account_id, channel, row.activity_id, now).await? {
            Ok(()) => Verdict::Send,
            Err(refusal) => match refusal.next_allowed_at {
                Some(until) => Verdict::Hold { until, rule: refusal.rule },
                None => Verdict::Block(refusal.rule.into()),
            },
        },
    )
}

/// Blocks `row` for `rule` at `now`: the message records the rule and why, its sender is
/// told (`message_failed`), and the account's timeline gets a note, written by no one,
/// saying that the message logged as an outbound attempt when it was queued was not
/// sent, and why.
async fn block(tx: &mut PgConnection, row: &MessageRow, rule: BlockedRule, now: DateTime<Utc>) -> Result<()> {
    let what = row.channel.described();
    let why = format!("not sent: {} ({})", rule.explain(), rule.as_str());
    let title = format!("{what} was not sent: {}", rule.explain());
    store::block(tx, row.id, rule, &why, &title, now).await?;
    let note = NewActivity {
        kind: ActivityType::Note,
        direction: None,
        outcome: None,
        notes: Some(format!(
            "{what} queued at {} was not sent: {} ({}). The sender stopped it at its next try.",
            row.created_at.to_rfc3339(),
            rule.explain(),
            rule.as_str()
        )),
        occurred_at: now,
        next_action_at: None,
    };
    crate::store::activities::insert(tx, row.account_id, &note, None, now).await?;
    tracing::info!(message_id = %row.id, rule = rule.as_str(), "message blocked at a try");
    Ok(())
}

/// Hands `row` to its channel's provider at `now` and records how the try went.
async fn try_once(
    tx: &mut PgConnection,
    providers: &Providers,
    content: &dyn ContentStore,
    row: &MessageRow,
    now: DateTime<Utc>,
) -> Result<()> {
    let provider = providers.for_channel(row.channel);
    let answer = match files(tx, content, &row.document_ids).await? {
        Ok(attachments) => {
            let outgoing = Outgoing {
                id: row.id,
                channel: row.channel,
                recipient: row.recipient.clone(),
                // Queued before subjects were made one line, a row may still hold a break.
                subject: row.subject.as_deref().map(text::one_line),
                body: row.body.clone(),
                attachments,
                approved_template: row.approved_template.as_ref().map(|t| t.0.clone()),
            };
            provider.send(&outgoing).await
        }
        Err(failure) => Err(failure),
    };
    let attempt = match &answer {
        Ok(accepted) => Tried::Sent {
            provider_message_id: &accepted.provider_message_id,
        },
        Err(SendFailure::Refused(error)) => Tried::Failed { error, retry_at: None },
        Err(SendFailure::Retry(error)) => Tried::Failed {
            error,
            retry_at: (row.attempts + 1 < MAX_ATTEMPTS).then(|| now + message::retry_delay(row.attempts + 1)),
        },
    };
    let outcome = match &attempt {
        Tried::Sent { .. } => "sent",
        Tried::Failed { retry_at: Some(_), .. } => "retry",
        Tried::Failed { retry_at: None, .. } => "failed",
    };
    let done = store::record_try(tx, row.id, provider.name(), attempt, now).await?;
    metrics::message_tried(row.channel.as_str(), provider.name(), outcome);
    match answer {
        Ok(_) => tracing::info!(message_id = %row.id, "message sent"),
        Err(failure) => {
            tracing::warn!(message_id = %row.id, attempts = done.attempts, status = ?done.status, ?failure, "sending a message failed")
        }
    }
    Ok(())
}

/// The documents `ids` an email carries, read whole from `content`. A document deleted
/// since the email was queued is not sent: the email fails (the sender chose that file,
/// and someone since removed it); a file that cannot be read now is worth another try.
async fn files(conn: &mut PgConnection, content: &dyn ContentStore, ids: &[Uuid]) -> Result<Result<Vec<OutgoingFile>, SendFailure>> {
    if ids.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let documents = attachments::by_ids(conn, ids).await?;
    let mut files = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(document) = documents.iter().find(|d| d.id == *id && d.deleted_at.is_none()) else {
            return Ok(Err(SendFailure::Refused(format!(
                "document {id} was deleted before the email was sent"
            ))));
        };
        let size = u64::try_from(document.size).unwrap_or_default();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
        let read = match content.read(&document.storage_key, 0..size).await {
            Ok(reader) => reader.take(size).read_to_end(&mut bytes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            return Ok(Err(SendFailure::Retry(format!("reading document {id}: {e}"))));
        }
        files.push(OutgoingFile {
            name: attachment::download_name(&document.name, document.kind),
            content_type: document.kind.content_type(),
            bytes,
        });
    }
    Ok(Ok(files))
}

/// A template, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub id: Uuid,
    pub name: String,
    pub channel: MessageChannel,
    pub subject: Option<String>,
    /// Plain text with placeholders: `{{debtor_name}}`, `{{account_number}}`,
    /// `{{balance}}`, `{{due_date}}`, `{{payment_link}}`.
    pub body: String,
    /// What WhatsApp's provider approved it as (WhatsApp only; `null` when nothing).
    pub approval: Option<Approval>,
    /// A WhatsApp template's body as it is submitted for approval: each placeholder as
    /// WhatsApp's `{{1}}`, `{{2}}` ... in order (`null` for other channels).
    pub approval_body: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<TemplateRow> for TemplateView {
    fn from(row: TemplateRow) -> Self {
        let approval_body = (row.channel == MessageChannel::Whatsapp)
            .then(|| message::numbered(&row.body).ok())
            .flatten();
        Self {
            id: row.id,
            approval: row.approval(),
            approval_body,
            name: row.name,
            channel: row.channel,
            subject: row.subject,
            body: row.body,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }
}

fn name_taken(err: sqlx::Error) -> Error {
    if store::is_name_taken(&err) {
        Error::with_fields(
            Code::Conflict,
            "a live template already has this name",
            vec![FieldError::new("name", "taken by another template")],
        )
    } else {
        err.into()
    }
}

pub async fn create_template(pool: &PgPool, caller: &Principal, body: CreateTemplate) -> Result<TemplateRow> {
    caller.require(Action::ManageTemplates)?;
    let fields = TemplateFields::new(body).map_err(Error::validation)?;
    let mut tx = crate::store::begin_as(pool, caller.user_id).await?;
    let row = store::insert_template(&mut tx, Uuid::now_v7(), &fields, caller.user_id)
        .await
        .map_err(name_taken)?;
    tx.commit().await?;
    tracing::info!(template_id = %row.id, "message template created");
    Ok(row)
}

pub async fn change_template(pool: &PgPool, caller: &Principal, id: Uuid, change: ChangeTemplate) -> Result<TemplateRow> {
    caller.require(Action::ManageTemplates)?;
    let mut tx = crate::store::begin_as(pool, caller.user_id).await?;
    let current = store::lock_template(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("template"))?;
    let fields = current.fields().changed(change).map_err(Error::validation)?;
    let row = store::update_template(&mut tx, id, &fields, caller.user_id)
        .await
        .map_err(name_taken)?;
    tx.commit().await?;
    Ok(row)
}

/// Soft-deletes the template: no new message uses it; those sent keep naming it.
pub async fn delete_template(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<TemplateRow> {
    caller.require(Action::ManageTemplates)?;
    let mut tx = crate::store::begin_as(pool, caller.user_id).await?;
    store::lock_template(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("template"))?;
    let row = store::delete_template(&mut tx, id, caller.user_id).await?;
    tx.commit().await?;
    Ok(row)
}

/// The live template `id`, for everyone who works accounts.
pub async fn template(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<TemplateRow> {
    caller.require(Action::WorkAccount)?;
    store::template(pool, id).await?.ok_or_else(|| Error::not_found("template"))
}

/// The live templates (of `channel`), newest first, and how many there are.
pub async fn templates(
    pool: &PgPool,
    caller: &Principal,
    channel: Option<MessageChannel>,
    window: Window,
) -> Result<(Vec<TemplateRow>, i64)> {
    caller.require(Action::WorkAccount)?;
    let rows = store::templates(pool, channel, window.after, window.limit).await?;
    Ok((rows, store::count_templates(pool, channel).await?))
}
