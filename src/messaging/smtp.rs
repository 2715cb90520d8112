//! Email through an SMTP server (`lettre`). `SMTP_URL` names the server the way lettre
//! reads it: `smtps://user:password@host:465` (TLS from the start),
//! `smtp://user:password@host:587?tls=required` (STARTTLS), or `smtp://host:25` (plain,
//! for a relay on the same machine). Each message is plain text in UTF-8 from
//! `SMTP_FROM` (a display name may hold any letters: lettre encodes it as RFC 2047
//! asks), with a `Message-ID` made from the message's id, which is what is kept as the
//! provider's id. One with documents is `multipart/mixed`: the text, then each file
//! under its download name (a non-ASCII name encoded as RFC 2231 asks) with the type
//! its content was recognised as. tests/api/providers.rs sends to a real SMTP server (aiosmtpd) and
//! reads what arrived with Python's own email parser.
//!
//! How an answer is read: the server's 5xx is final (it refused this message); a 4xx, a
//! timeout or a dropped connection is worth another try.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Accepted, Outgoing, Provider, SendFailure};
use crate::domain::message::MessageChannel;

/// The most of a reason kept with a failed message.
const MAX_REASON: usize = 500;

pub struct SmtpProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of each `Message-ID` (the sender's domain).
    domain: String,
}

impl SmtpProvider {
    /// A transport for `url` sending from `from` (`Name <address>` or an address).
    /// Nothing is sent until the first message.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("SMTP_FROM: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let domain = from.email.domain().to_owned();
        Ok(Self { transport, from, domain })
    }

    /// The email `message` becomes.
    pub fn email(&self, message: &Outgoing) -> Result<Message, SendFailure> {
        if message.channel != MessageChannel::Email {
            return Err(SendFailure::Refused("SMTP carries email, not text or WhatsApp messages".to_owned()));
        }
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|e| SendFailure::Refused(format!("the address {:?} cannot be sent to: {e}", message.recipient)))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone().unwrap_or_default())
            .message_id(Some(self.message_id(message)));
        let built = if message.attachments.is_empty() {
            builder.header(ContentType::TEXT_PLAIN).body(message.body.clone())
        } else {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(message.body.clone()));
            for file in &message.attachments {
                let content_type = ContentType::parse(file.content_type)
                    .map_err(|e| SendFailure::Refused(format!("{} cannot be attached: {e}", file.name)))?;
                parts = parts.singlepart(Attachment::new(file.name.clone()).body(file.bytes.clone(), content_type));
            }
            builder.multipart(parts)
        };
        built.map_err(|e| SendFailure::Refused(format!("the email could not be built: {e}")))
    }

    fn message_id(&self, message: &Outgoing) -> String {
        format!("<{}@{}>", message.id.simple(), self.domain)
    }

    async fn deliver(&self, message: &Outgoing) -> Result<Accepted, SendFailure> {
        let email = self.email(message)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(Accepted {
                provider_message_id: self.message_id(message),
            }),
            Err(error) => {
                let reason: String = format!("SMTP: {error}").chars().take(MAX_REASON).collect();
                Err(if error.is_permanent() {
                    SendFailure::Refused(reason)
                } else {
                    SendFailure::Retry(reason)
                })
            }
        }
    }
}

impl Provider for SmtpProvider {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>> {
        self.deliver(message).boxed()
    }
}
