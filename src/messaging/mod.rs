//! Who carries a message to the debtor: a provider behind one interface. The sender
//! (`jobs::messages`) hands each queued message to the provider configured for its
//! channel and records what it answered. A provider says whether a failure is worth
//! trying again (a connection dropped, a 5xx) or final (the provider refused the
//! message: a number it cannot reach, a body it will not take).

pub mod api;
pub mod local;
pub mod meta;
pub mod smtp;
pub mod twilio;

use std::sync::Arc;

use anyhow::Context;
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::config::{EmailProvider, Settings, SmsProvider, WhatsappProvider};
use crate::domain::message::approval::ApprovedMessage;
use crate::domain::message::{Delivery, MessageChannel};
use local::LocalProvider;
use meta::{MetaConfig, MetaProvider};
use smtp::SmtpProvider;
use twilio::{Sender, TwilioConfig, TwilioProvider};

/// One message, as the provider is asked to send it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: Uuid,
    pub channel: MessageChannel,
    /// E.164 for a phone, an address for email.
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    /// The files an email carries, in order.
    pub attachments: Vec<OutgoingFile>,
    /// A WhatsApp message that goes as the template its provider approved, with these
    /// values, instead of `body` (outside WhatsApp's 24-hour window).
    pub approved_template: Option<ApprovedMessage>,
}

/// A file an email carries: a document of the account, read whole (an email's files
/// are bounded together by `domain::message::MAX_ATTACHMENT_BYTES`).
#[derive(Clone, Debug)]
pub struct OutgoingFile {
    /// The name it goes under: the document's download name.
    pub name: String,
    /// Decided from the content when it was uploaded.
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// What a provider answered when it took the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id of the message (a Twilio SID, a WhatsApp message id ...).
    pub provider_message_id: String,
}

/// Why a provider did not take a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// Worth another try later (a timeout, a dropped connection, the provider's 5xx).
    Retry(String),
    /// Final: the provider refused this message; trying again would not help.
    Refused(String),
}

/// What a provider reported by webhook, in its own words read into ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// How the delivery of a message it took is going.
    Delivery {
        provider_message_id: String,
        /// The provider's own status word: with the id, what makes a report one of a
        /// kind (a replay repeats both).
        status: String,
        /// `None` for a status that says nothing new about delivery (queued, sending).
        delivery: Option<Delivery>,
        /// The provider's reason, when it was not delivered.
        error: Option<String>,
    },
    /// A message the debtor sent in.
    Inbound {
        provider_message_id: String,
        channel: MessageChannel,
        /// The sender's phone number, E.164.
        sender: String,
        body: String,
    },
}

impl Report {
    /// What makes this report one of a kind, for refusing a replay.
    pub fn key(&self) -> String {
        match self {
            Report::Delivery {
                provider_message_id,
                status,
                ..
            } => format!("status:{provider_message_id}:{status}"),
            Report::Inbound { provider_message_id, .. } => format!("inbound:{provider_message_id}"),
        }
    }
}

/// Whether `text` is a phone number in E.164 as providers give and take them (`+`, then
/// 8 to 15 digits, no leading zero).
pub fn is_e164(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// Carries messages to debtors.
pub trait Provider: Send + Sync + 'static {
    /// The name recorded with each message it sends (`local`, `twilio` ...).
    fn name(&self) -> &'static str;

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>>;
}

/// The Twilio provider `settings` describe, for text messages (`sms`) and WhatsApp
/// (`whatsapp`) as chosen.
fn twilio_from(settings: &Settings, sms: bool, whatsapp: bool) -> anyhow::Result<TwilioProvider> {
    let sms_from = settings
        .twilio_sms_from
        .as_deref()
        .map(Sender::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("TWILIO_SMS_FROM {e}"))?;
    if sms && sms_from.is_none() {
        anyhow::bail!("SMS_PROVIDER=twilio needs TWILIO_SMS_FROM");
    }
    if whatsapp && settings.twilio_whatsapp_from.is_none() {
        anyhow::bail!("WHATSAPP_PROVIDER=twilio needs TWILIO_WHATSAPP_FROM");
    }
    TwilioProvider::new(TwilioConfig {
        api_url: settings.twilio_api_url.clone(),
        account_sid: settings.twilio_account_sid.clone().context("twilio needs TWILIO_ACCOUNT_SID")?,
        auth_token: settings.twilio_auth_token.clone().context("twilio needs TWILIO_AUTH_TOKEN")?,
        sms_from,
        whatsapp_from: settings.twilio_whatsapp_from.clone(),
        status_callback: settings.twilio_webhook_url.clone(),
    })
}

/// The provider of each channel, as configured (`SMS_PROVIDER`: local or twilio;
/// `WHATSAPP_PROVIDER`: local, twilio or meta; `EMAIL_PROVIDER`: local or smtp; all
/// `local` by default).
#[derive(Clone)]
pub struct Providers {
    sms: Arc<dyn Provider>,
    whatsapp: Arc<dyn Provider>,
    email: Arc<dyn Provider>,
}

impl Providers {
    /// The providers `settings` choose; a chosen provider missing what it needs stops
    /// the start with the setting named.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let local: Arc<dyn Provider> = Arc::new(LocalProvider::new(&settings.data_dir));
        let sms_by_twilio = settings.sms_provider == SmsProvider::Twilio;
        let whatsapp_by_twilio = settings.whatsapp_provider == WhatsappProvider::Twilio;
        let twilio: Option<Arc<dyn Provider>> = if sms_by_twilio || whatsapp_by_twilio {
            Some(Arc::new(twilio_from(settings, sms_by_twilio, whatsapp_by_twilio)?))
        } else {
            None
        };
        let sms = match (&twilio, sms_by_twilio) {
            (Some(twilio), true) => twilio.clone(),
            _ => local.clone(),
        };
        let whatsapp = match settings.whatsapp_provider {
            WhatsappProvider::Local => local.clone(),
            WhatsappProvider::Twilio => twilio.clone().unwrap_or_else(|| local.clone()),
            WhatsappProvider::Meta => Arc::new(MetaProvider::new(MetaConfig {
                graph_url: settings.meta_graph_url.clone(),
                phone_number_id: settings
                    .meta_phone_number_id
                    .clone()
                    .context("WHATSAPP_PROVIDER=meta needs META_PHONE_NUMBER_ID")?,
                access_token: settings
                    .meta_access_token
                    .clone()
                    .context("WHATSAPP_PROVIDER=meta needs META_ACCESS_TOKEN")?,
            })?),
        };
        let email: Arc<dyn Provider> = match settings.email_provider {
            EmailProvider::Local => local.clone(),
            EmailProvider::Smtp => Arc::new(SmtpProvider::new(
                settings.smtp_url.as_deref().context("EMAIL_PROVIDER=smtp needs SMTP_URL")?,
                settings.smtp_from.as_deref().context("EMAIL_PROVIDER=smtp needs SMTP_FROM")?,
            )?),
        };
        Ok(Self { sms, whatsapp, email })
    }

    /// Who carries messages on `channel`.
    pub fn for_channel(&self, channel: MessageChannel) -> &dyn Provider {
        match channel {
            MessageChannel::Sms => self.sms.as_ref(),
            MessageChannel::Whatsapp => self.whatsapp.as_ref(),
            MessageChannel::Email => self.email.as_ref(),
        }
    }
}
