//! Messages to debtors: the channels, the templates' placeholders and how a text is
//! rendered from them, and what a message may hold on each channel. A message is plain
//! text wherever it is shown; nothing here is markup.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::activity::ActivityType;
use crate::domain::compliance::{Channel, Rule};
use crate::domain::refusal::FieldError;

pub mod approval;

use approval::Approval;

/// How a message reaches the debtor. Stored as text (`account_messages.channel`,
/// `message_templates.channel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum MessageChannel {
    Sms,
    Whatsapp,
    Email,
}

impl MessageChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageChannel::Sms => "sms",
            MessageChannel::Whatsapp => "whatsapp",
            MessageChannel::Email => "email",
        }
    }

    /// The activity a message on this channel is logged as (the guard's channel follows
    /// from it: a WhatsApp message is judged as a text message).
    pub fn activity_type(self) -> ActivityType {
        match self {
            MessageChannel::Sms => ActivityType::Sms,
            MessageChannel::Whatsapp => ActivityType::Whatsapp,
            MessageChannel::Email => ActivityType::Email,
        }
    }

    /// The longest rendered body, in characters: Twilio's 1,600 for a text message,
    /// WhatsApp's 4,096, and a bound of our own for an email.
    pub fn max_body_chars(self) -> usize {
        match self {
            MessageChannel::Sms => 1600,
            MessageChannel::Whatsapp => 4096,
            MessageChannel::Email => 20_000,
        }
    }

    /// Whether it goes to the account's email address (else its phone number).
    pub fn is_email(self) -> bool {
        self == MessageChannel::Email
    }

    /// The channel the guard judges a message on this one as: its activity's, as an
    /// outbound attempt (a WhatsApp message as a text message).
    pub fn guard_channel(self) -> Channel {
        match self {
            MessageChannel::Sms | MessageChannel::Whatsapp => Channel::Sms,
            MessageChannel::Email => Channel::Email,
        }
    }

    /// What a sentence about such a message starts with: "A text message" ...
    pub fn described(self) -> &'static str {
        match self {
            MessageChannel::Sms => "A text message",
            MessageChannel::Whatsapp => "A WhatsApp message",
            MessageChannel::Email => "An email",
        }
    }
}

/// How the sending of a message stands. Stored as text (`account_messages.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for the sender (first try, or a retry after a failure).
    Queued,
    /// The provider accepted it.
    Sent,
    /// The provider refused it, or every try failed; `error` says why.
    Failed,
    /// Never handed to the provider again: the contact guard, asked again at a try,
    /// refused it (`blocked_rule`; `error` explains), or its account was deleted.
    Blocked,
}

/// Why the sender stopped a queued message at a try instead of handing it to its
/// provider: one of the contact guard's rules (its wire name, as `contact_blocked`
/// names it), or the account deleted since the message was queued. Stored as text
/// (`account_messages.blocked_rule`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum BlockedRule {
    CeaseCommunication,
    UnverifiedDispute,
    DoNotCall,
    DoNotEmail,
    CallAttempts,
    RecentConversation,
    OutsideWindow,
    /// The account was deleted after the message was queued.
    AccountDeleted,
}

impl From<Rule> for BlockedRule {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::CeaseCommunication => Self::CeaseCommunication,
            Rule::UnverifiedDispute => Self::UnverifiedDispute,
            Rule::DoNotCall => Self::DoNotCall,
            Rule::DoNotEmail => Self::DoNotEmail,
            Rule::CallAttempts => Self::CallAttempts,
            Rule::RecentConversation => Self::RecentConversation,
            Rule::OutsideWindow => Self::OutsideWindow,
        }
    }
}

impl BlockedRule {
    /// The guard's rule it is, if it is one.
    fn rule(self) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| Self::from(*r) == self)
    }

    pub fn as_str(self) -> &'static str {
        self.rule().map_or("account_deleted", Rule::as_str)
    }

    pub fn explain(self) -> &'static str {
        self.rule()
            .map_or("the account was deleted after the message was queued", Rule::explain)
    }
}

/// How delivery went after the provider took a message, as its delivery reports say.
/// Stored as text (`account_messages.delivery`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Delivery {
    /// On its way to the debtor's carrier or mail server.
    Sent,
    /// The debtor's phone or inbox has it.
    Delivered,
    /// The carrier could not deliver it (`delivery_error` says why).
    Undelivered,
    /// The provider could not send it on (`delivery_error` says why).
    Failed,
    /// The debtor read it (WhatsApp).
    Read,
}

impl Delivery {
    /// Twilio's `MessageStatus`, for the statuses that say something about delivery
    /// (`queued`, `sending`, `accepted`, `scheduled` and the like say nothing new).
    pub fn from_twilio(status: &str) -> Option<Self> {
        match status {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "undelivered" => Some(Self::Undelivered),
            "failed" => Some(Self::Failed),
            "read" => Some(Self::Read),
            _ => None,
        }
    }

    /// Reports move a message forward only: a report that arrives after a later one
    /// (Twilio does not promise their order) changes nothing.
    pub fn rank(self) -> i16 {
        match self {
            Self::Sent => 1,
            Self::Delivered | Self::Undelivered | Self::Failed => 2,
            Self::Read => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Read => "read",
        }
    }
}

/// Whether a debtor's message asks to stop texts: one of the opt-out words carriers and
/// Twilio honour (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE), alone,
/// in any case, with spaces or a full stop around it.
pub fn is_opt_out(body: &str) -> bool {
    let word = body.trim().trim_end_matches(['.', '!']).trim().to_ascii_uppercase();
    matches!(
        word.as_str(),
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE"
    )
}

/// Tries before a message whose sending keeps failing is marked failed.
pub const MAX_ATTEMPTS: i32 = 5;

/// How long the sender waits after the `attempts`-th failed try: 30 s, then four
/// times longer each time (2 min, 8 min, 32 min).
pub fn retry_delay(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(1, MAX_ATTEMPTS) - 1).unwrap_or_default();
    chrono::Duration::seconds(30 * 4_i64.pow(exponent))
}

/// The longest template body and text a request may send, in characters (before
/// rendering; the channel bounds what is rendered).
pub const MAX_TEMPLATE_CHARS: usize = 5000;
pub const MAX_TEMPLATE_NAME_CHARS: usize = 100;
pub const MAX_SUBJECT_CHARS: usize = 200;

/// What a template may name: `{{debtor_name}}` and the others, each filled from the
/// account when a message is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    DebtorName,
    AccountNumber,
    /// The current balance in the account's currency, with its code: `1250.00 USD`.
    Balance,
    /// The account's due date, `YYYY-MM-DD`.
    DueDate,
    /// `PAYMENT_LINK_TEMPLATE` with the account number in it.
    PaymentLink,
}

impl Placeholder {
    pub const ALL: [Placeholder; 5] = [
        Placeholder::DebtorName,
        Placeholder::AccountNumber,
        Placeholder::Balance,
        Placeholder::DueDate,
        Placeholder::PaymentLink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::DebtorName => "debtor_name",
            Placeholder::AccountNumber => "account_number",
            Placeholder::Balance => "balance",
            Placeholder::DueDate => "due_date",
            Placeholder::PaymentLink => "payment_link",
        }
    }

    fn parse(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A piece of a template: text as written, or a placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Slot(Placeholder),
}

/// Splits `text` into text and placeholders: `{{ name }}` (spaces inside allowed). An
/// unknown name or a `{{` without its `}}` is refused, naming it.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| "has a `{{` without its `}}`".to_owned())?;
        let name = after[..close].trim();
        let slot = Placeholder::parse(name).ok_or_else(|| {
            let known: Vec<_> = Placeholder::ALL.iter().map(|p| format!("{{{{{}}}}}", p.name())).collect();
            format!("names `{{{{{name}}}}}`, which is not a placeholder; use {}", known.join(", "))
        })?;
        out.push(Piece::Slot(slot));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Refuses text a message must not carry: control characters other than line feeds and
/// tabs (a CR, a NUL, an escape sequence).
fn plain(text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t') {
        Some(c) => Err(format!(
            "holds the control character U+{:04X}; only line feeds and tabs are kept",
            c as u32
        )),
        None => Ok(()),
    }
}

/// A template's or a request's body: 1 to [`MAX_TEMPLATE_CHARS`] characters of plain
/// text whose placeholders are all known (CRLF line ends become LF).
pub fn body(text: &str) -> Result<String, String> {
    let text = text.replace("\r\n", "\n");
    if text.trim().is_empty() || text.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(format!("must be 1 to {MAX_TEMPLATE_CHARS} characters"));
    }
    plain(&text)?;
    pieces(&text)?;
    Ok(text)
}

/// An email's subject: one line of 1 to [`MAX_SUBJECT_CHARS`] characters; it may hold
/// placeholders.
pub fn subject(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_SUBJECT_CHARS {
        return Err(format!("must be 1 to {MAX_SUBJECT_CHARS} characters"));
    }
    if text.contains(['\n', '\t']) {
        return Err("must be one line".to_owned());
    }
    plain(text)?;
    pieces(text)?;
    Ok(text.to_owned())
}

/// A template's name: 1 to [`MAX_TEMPLATE_NAME_CHARS`] characters, one line.
pub fn template_name(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEMPLATE_NAME_CHARS || text.chars().any(char::is_control) {
        return Err(format!("must be 1 to {MAX_TEMPLATE_NAME_CHARS} characters on one line"));
    }
    Ok(text.to_owned())
}

/// What the placeholders are filled with, from the account.
#[derive(Clone, Debug)]
pub struct Values {
    pub debtor_name: String,
    pub account_number: String,
    /// Formatted in the account's currency, with its code.
    pub balance: String,
    pub due_date: Option<NaiveDate>,
    /// `None` when no `PAYMENT_LINK_TEMPLATE` is configured.
    pub payment_link: Option<String>,
}

/// The payment link of `account_number` from `template` (`PAYMENT_LINK_TEMPLATE`): its
/// `{account_number}` replaced by the number, percent-encoded.
pub fn payment_link(template: &str, account_number: &str) -> String {
    let encoded: String = account_number
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    template.replace("{account_number}", &encoded)
}

/// What `slot` is filled with from `values`; one the account cannot fill (no due date,
/// no payment link configured) is refused, naming it.
fn fill(slot: Placeholder, values: &Values) -> Result<String, String> {
    Ok(match slot {
        Placeholder::DebtorName => values.debtor_name.clone(),
        Placeholder::AccountNumber => values.account_number.clone(),
        Placeholder::Balance => values.balance.clone(),
        Placeholder::DueDate => values
            .due_date
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| "uses {{due_date}}, but the account has no due date".to_owned())?,
        Placeholder::PaymentLink => values
            .payment_link
            .clone()
            .ok_or_else(|| "uses {{payment_link}}, but no PAYMENT_LINK_TEMPLATE is configured".to_owned())?,
    })
}

/// `text` with its placeholders filled from `values`.
pub fn render(text: &str, values: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot(slot) => out.push_str(&fill(slot, values)?),
        }
    }
    Ok(out)
}

/// `text` as it is registered with WhatsApp's provider for approval: each placeholder
/// as WhatsApp's `{{1}}`, `{{2}}` ... in the order they appear.
pub fn numbered(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot(_) => {
                n += 1;
                out.push_str(&format!("{{{{{n}}}}}"));
            }
        }
    }
    Ok(out)
}

/// The values of `text`'s placeholders from `values`, in order: the parameters of an
/// approved WhatsApp template. Each is one line, its runs of white space one space
/// (WhatsApp refuses a parameter with a line break, a tab or more than four spaces in a
/// row), and never empty (nor does it take an empty one).
pub fn parameters(text: &str, values: &Values) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for piece in pieces(text)? {
        if let Piece::Slot(slot) = piece {
            let value = fill(slot, values)?.split_whitespace().collect::<Vec<_>>().join(" ");
            if value.is_empty() {
                return Err(format!("fills {{{{{}}}}} with nothing, which WhatsApp refuses", slot.name()));
            }
            out.push(value);
        }
    }
    Ok(out)
}

/// Body of `POST /accounts/{id}/messages` and of its preview: a template, or a text of
/// one's own (with a subject for an email).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeMessage {
    pub channel: MessageChannel,
    /// A live template of the same channel.
    pub template_id: Option<Uuid>,
    /// The text, when no template is named; it may hold placeholders.
    pub text: Option<String>,
    /// An email's subject, when no template is named.
    pub subject: Option<String>,
    /// Documents of the account to attach (email only; at most
    /// [`MAX_ATTACHMENTS`], [`MAX_ATTACHMENT_BYTES`] together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub document_ids: Vec<Uuid>,
}

/// The most documents one email carries.
pub const MAX_ATTACHMENTS: usize = 5;

/// The most bytes the documents one email carries may hold together (mail servers
/// commonly take 20-25 MiB once encoded; base64 adds a third).
pub const MAX_ATTACHMENT_BYTES: i64 = 10 * 1024 * 1024;

/// What a message is made from, checked.
#[derive(Debug, Clone)]
pub enum Source {
    Template(Uuid),
    Text { body: String, subject: Option<String> },
}

impl ComposeMessage {
    /// The documents to attach, checked for what the request alone shows: email only,
    /// at most [`MAX_ATTACHMENTS`], none twice.
    pub fn attachments(&self) -> Result<&[Uuid], FieldError> {
        let ids = self.document_ids.as_slice();
        let refuse = |message: &str| Err(FieldError::new("document_ids", message));
        if ids.is_empty() {
            return Ok(ids);
        }
        if !self.channel.is_email() {
            return refuse("documents go by email only: a text or WhatsApp message would need a public link to each file");
        }
        if ids.len() > MAX_ATTACHMENTS {
            return refuse(&format!("at most {MAX_ATTACHMENTS} documents go with one email"));
        }
        if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
            return refuse("a document is named twice");
        }
        Ok(ids)
    }

    pub fn validate(&self) -> Result<Source, Vec<FieldError>> {
        let field = |name: &str, message: String| vec![FieldError::new(name, message)];
        match (self.template_id, &self.text) {
            (Some(_), Some(_)) => Err(field("text", "send a template_id or a text, not both".to_owned())),
            (None, None) => Err(field("text", "send a template_id or a text".to_owned())),
            (Some(_), None) if self.subject.is_some() => Err(field("subject", "a template brings its own subject".to_owned())),
            (Some(id), None) => Ok(Source::Template(id)),
            (None, Some(text)) => {
                let mut errors = Vec::new();
                let body = body(text).map_err(|m| errors.push(FieldError::new("text", m))).ok();
                let subject = match (&self.subject, self.channel.is_email()) {
                    (Some(s), true) => subject(s).map_err(|m| errors.push(FieldError::new("subject", m))).ok(),
                    (None, true) => {
                        errors.push(FieldError::new("subject", "an email needs a subject"));
                        None
                    }
                    (Some(_), false) => {
                        errors.push(FieldError::new("subject", "only an email has a subject"));
                        None
                    }
                    (None, false) => None,
                };
                match body {
                    Some(body) if errors.is_empty() => Ok(Source::Text { body, subject }),
                    _ => Err(errors),
                }
            }
        }
    }
}

/// Body of `POST /message-templates`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    pub name: String,
    pub channel: MessageChannel,
    /// Required for email, refused for the others.
    pub subject: Option<String>,
    pub body: String,
    /// What WhatsApp's provider approved it as (WhatsApp only): what lets it go
    /// outside WhatsApp's 24-hour window.
    pub approval: Option<Approval>,
}

/// Body of `PATCH /message-templates/{id}`: the fields to change (the channel stays).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeTemplate {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Replaces the approval; `{}` removes it.
    pub approval: Option<Approval>,
}

/// A template's fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFields {
    pub name: String,
    pub channel: MessageChannel,
    pub subject: Option<String>,
    pub body: String,
    pub approval: Option<Approval>,
}

impl TemplateFields {
    /// The fields of a new template, or every field that is wrong.
    pub fn new(body: CreateTemplate) -> Result<Self, Vec<FieldError>> {
        Self::check(body.name, body.channel, body.subject, body.body, body.approval)
    }

    /// These fields with `change` applied, checked again whole.
    pub fn changed(&self, change: ChangeTemplate) -> Result<Self, Vec<FieldError>> {
        Self::check(
            change.name.unwrap_or_else(|| self.name.clone()),
            self.channel,
            change.subject.or_else(|| self.subject.clone()),
            change.body.unwrap_or_else(|| self.body.clone()),
            match change.approval {
                Some(approval) => Some(approval),
                None => self.approval.clone(),
            },
        )
    }

    fn check(
        name: String,
        channel: MessageChannel,
        subject_text: Option<String>,
        body_text: String,
        approval: Option<Approval>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let approval = approval.and_then(Approval::named);
        if let Some(approval) = &approval {
            if channel == MessageChannel::Whatsapp {
                errors.extend(approval.check());
            } else {
                errors.push(FieldError::new("approval", "only a WhatsApp template is approved by its provider"));
            }
        }
        let name = template_name(&name).map_err(|m| errors.push(FieldError::new("name", m))).ok();
        let body = body(&body_text).map_err(|m| errors.push(FieldError::new("body", m))).ok();
        let subject = match (subject_text, channel.is_email()) {
            (Some(s), true) => subject(&s).map_err(|m| errors.push(FieldError::new("subject", m))).ok(),
            (None, true) => {
                errors.push(FieldError::new("subject", "an email template needs a subject"));
                None
            }
            (Some(_), false) => {
                errors.push(FieldError::new("subject", "only an email template has a subject"));
                None
            }
            (None, false) => None,
        };
        match (name, body) {
            (Some(name), Some(body)) if errors.is_empty() => Ok(Self {
                name,
                channel,
                subject,
                body,
                approval,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opt_out_is_one_of_the_words_alone_in_any_case() {
        for body in ["STOP", "stop", " Stop. ", "unsubscribe", "StopAll", "quit!"] {
            assert!(is_opt_out(body), "{body:?}");
        }
        for body in ["please stop calling me", "STOPPED", "", "don't stop"] {
            assert!(!is_opt_out(body), "{body:?}");
        }
    }

    #[test]
    fn delivery_reports_only_move_forward() {
        assert!(Delivery::Delivered.rank() > Delivery::Sent.rank());
        assert!(Delivery::Read.rank() > Delivery::Delivered.rank());
        assert_eq!(Delivery::Undelivered.rank(), Delivery::Delivered.rank());
        assert_eq!(Delivery::from_twilio("sending"), None);
        assert_eq!(Delivery::from_twilio("undelivered"), Some(Delivery::Undelivered));
    }

    #[test]
    fn the_guard_judges_a_message_as_the_attempt_it_is_logged_as() {
        use crate::domain::activity::Direction;
        for channel in [MessageChannel::Sms, MessageChannel::Whatsapp, MessageChannel::Email] {
            assert_eq!(
                Some(channel.guard_channel()),
                Channel::of_attempt(channel.activity_type(), Some(Direction::Outbound))
            );
        }
    }

    #[test]
    fn a_blocked_rule_is_named_as_the_guard_names_its_rule() {
        for rule in Rule::ALL {
            let blocked = BlockedRule::from(rule);
            assert_eq!(blocked.as_str(), rule.as_str());
            assert_eq!(serde_json::to_value(blocked).unwrap(), rule.as_str());
            assert_eq!(blocked.explain(), rule.explain());
        }
        assert_eq!(BlockedRule::AccountDeleted.as_str(), "account_deleted");
        assert_eq!(serde_json::to_value(BlockedRule::AccountDeleted).unwrap(), "account_deleted");
    }

    fn values() -> Values {
        Values {
            debtor_name: "Zoë O'Brien".to_owned(),
            account_number: "ACC 7/1".to_owned(),
            balance: "1250.00 USD".to_owned(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1),
            payment_link: Some(payment_link("https://pay.example.com/a/{account_number}", "ACC 7/1")),
        }
    }

    #[test]
    fn placeholders_are_filled_and_spaces_inside_them_allowed() {
        let text = "Hi {{debtor_name}}, {{ balance }} on {{account_number}} was due {{due_date}}: {{payment_link}}";
        assert_eq!(
            render(text, &values()).unwrap(),
            "Hi Zoë O'Brien, 1250.00 USD on ACC 7/1 was due 2026-12-01: https://pay.example.com/a/ACC%207%2F1"
        );
        assert_eq!(render("no placeholders", &values()).unwrap(), "no placeholders");
    }

    #[test]
    fn an_approved_template_is_numbered_and_its_values_are_one_line_each() {
        let text = "Hi {{debtor_name}},\n{{balance}} is due {{ due_date }}. {{debtor_name}}";
        assert_eq!(numbered(text).unwrap(), "Hi {{1}},\n{{2}} is due {{3}}. {{4}}");
        let mut v = values();
        v.debtor_name = "Zoë\n  O'Brien\t".to_owned();
        assert_eq!(
            parameters(text, &v).unwrap(),
            ["Zoë O'Brien", "1250.00 USD", "2026-12-01", "Zoë O'Brien"]
        );
        assert!(parameters("no placeholders", &v).unwrap().is_empty());
        v.debtor_name = " ".to_owned();
        assert!(parameters(text, &v).unwrap_err().contains("{{debtor_name}}"));
        v.due_date = None;
        assert!(parameters("{{due_date}}", &v).unwrap_err().contains("no due date"));
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused_by_name() {
        let err = body("Hi {{first_name}}").unwrap_err();
        assert!(err.contains("{{first_name}}") && err.contains("{{debtor_name}}"), "{err}");
        assert!(body("Hi {{debtor_name").unwrap_err().contains("without its `}}`"));
    }

    #[test]
    fn what_the_account_cannot_fill_is_refused() {
        let mut v = values();
        v.due_date = None;
        v.payment_link = None;
        assert!(render("{{due_date}}", &v).unwrap_err().contains("no due date"));
        assert!(render("{{payment_link}}", &v).unwrap_err().contains("PAYMENT_LINK_TEMPLATE"));
    }

    #[test]
    fn bodies_are_plain_text_and_bounded() {
        assert_eq!(body("a\r\nb").unwrap(), "a\nb");
        assert!(body("bell\u{7}").unwrap_err().contains("U+0007"));
        assert!(body("  ").is_err());
        assert!(body(&"x".repeat(MAX_TEMPLATE_CHARS + 1)).is_err());
        assert!(subject("two\nlines").is_err());
        assert!(subject("  Your balance  ").is_ok_and(|s| s == "Your balance"));
    }

    #[test]
    fn a_request_names_a_template_or_a_text_and_an_email_a_subject() {
        let compose = |channel, template_id, text: Option<&str>, subject: Option<&str>| ComposeMessage {
            channel,
            template_id,
            text: text.map(str::to_owned),
            subject: subject.map(str::to_owned),
            document_ids: Vec::new(),
        };
        let id = Uuid::new_v4();
        assert!(matches!(compose(MessageChannel::Sms, Some(id), None, None).validate(), Ok(Source::Template(t)) if t == id));
        assert!(compose(MessageChannel::Sms, Some(id), Some("x"), None).validate().is_err());
        assert!(compose(MessageChannel::Sms, None, None, None).validate().is_err());
        let errors = compose(MessageChannel::Email, None, Some("x"), None).validate().unwrap_err();
        assert_eq!(errors[0].field, "subject");
        let errors = compose(MessageChannel::Whatsapp, None, Some("x"), Some("s"))
            .validate()
            .unwrap_err();
        assert_eq!(errors[0].field, "subject");
        assert!(compose(MessageChannel::Email, None, Some("x"), Some("s")).validate().is_ok());
    }

    #[test]
    fn documents_go_by_email_at_most_five_and_each_once() {
        let compose = |channel, document_ids: Vec<Uuid>| ComposeMessage {
            channel,
            template_id: None,
            text: Some("x".to_owned()),
            subject: None,
            document_ids,
        };
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(compose(MessageChannel::Email, vec![a, b]).attachments().unwrap(), [a, b]);
        assert!(compose(MessageChannel::Sms, vec![]).attachments().unwrap().is_empty());
        for refused in [
            compose(MessageChannel::Sms, vec![a]),
            compose(MessageChannel::Email, vec![a, a]),
            compose(MessageChannel::Email, (0..6).map(|_| Uuid::new_v4()).collect()),
        ] {
            assert_eq!(refused.attachments().unwrap_err().field, "document_ids");
        }
    }

    #[test]
    fn retries_wait_longer_each_time() {
        let secs: Vec<_> = (1..MAX_ATTEMPTS).map(|n| retry_delay(n).num_seconds()).collect();
        assert_eq!(secs, [30, 120, 480, 1920]);
    }
}
