//! Who carries a message to the debtor: a provider behind one interface. The sender
//! (`jobs::messages`) hands each queued message to the provider configured for its
//! channel and records what it answered. A provider says whether a failure is worth
//! trying again (a connection dropped, a 5xx) or final (the provider refused the
//! message: a number it cannot reach, a body it will not take).

pub mod local;

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::domain::message::MessageChannel;

/// One message, as the provider is asked to send it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: Uuid,
    pub channel: MessageChannel,
    /// E.164 for a phone, an address for email.
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
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

/// Carries messages to debtors.
pub trait Provider: Send + Sync + 'static {
    /// The name recorded with each message it sends (`local`, `twilio` ...).
    fn name(&self) -> &'static str;

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>>;
}
