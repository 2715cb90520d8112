//! WhatsApp's customer-service window and the templates that may cross it. WhatsApp
//! lets a business write freely to a user only within 24 hours of that user's last
//! message to it; outside that window it carries only a template the provider approved,
//! its variables (`{{1}}`, `{{2}}` ...) filled in order (Meta refuses anything else with
//! error 131047, Twilio with 63016). A WhatsApp template here says what it was approved
//! as ([`Approval`]); a message sent as one keeps that and the values it was sent with
//! ([`ApprovedMessage`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::refusal::FieldError;

/// How long after a user's last WhatsApp message a business may write to them freely.
pub const WINDOW_HOURS: i64 = 24;

/// When the window opened by a message received at `last` closes.
pub fn window_closes(last: DateTime<Utc>) -> DateTime<Utc> {
    last + Duration::hours(WINDOW_HOURS)
}

/// What a WhatsApp template was approved as, by provider. Stored in
/// `message_templates.meta_name`, `meta_language`, `twilio_content_sid`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The name Meta approved it under (lowercase letters, digits and underscores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_name: Option<String>,
    /// Its language at Meta, with `meta_name` (`en_US`, `es`, `pt_BR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_language: Option<String>,
    /// The SID of its Content Template at Twilio (`HX` and 32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio_content_sid: Option<String>,
}

/// The longest template name Meta takes.
const MAX_META_NAME: usize = 512;

impl Approval {
    /// `None` when it names no approval at all (`{}` clears a template's).
    pub fn named(self) -> Option<Self> {
        (self.meta_name.is_some() || self.meta_language.is_some() || self.twilio_content_sid.is_some()).then_some(self)
    }

    /// Refuses what the providers would: a Meta name that is not lowercase letters,
    /// digits and underscores, a name without its language (or the reverse), a language
    /// that is not a code, a Content SID that is not `HX` and 32 hex digits. Field names
    /// are `approval.<field>`.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut refuse = |field: &str, message: &str| errors.push(FieldError::new(format!("approval.{field}"), message));
        match (&self.meta_name, &self.meta_language) {
            (Some(name), Some(language)) => {
                if name.is_empty()
                    || name.len() > MAX_META_NAME
                    || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    refuse(
                        "meta_name",
                        "must be the name Meta approved: 1 to 512 lowercase letters, digits and underscores",
                    );
                }
                if !is_language(language) {
                    refuse("meta_language", "must be a language code as Meta gives it: en, en_US, pt_BR");
                }
            }
            (Some(_), None) => refuse("meta_language", "a Meta template is approved in a language: name it"),
            (None, Some(_)) => refuse("meta_name", "a language goes with the name Meta approved"),
            (None, None) => {}
        }
        if let Some(sid) = &self.twilio_content_sid
            && !(sid.len() == 34 && sid.starts_with("HX") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            refuse("twilio_content_sid", "must be a Content Template SID: HX and 32 hex digits");
        }
        errors
    }

    /// Whether the provider named `provider` (`meta`, `twilio`, `local`) can send a
    /// message by this approval: Meta by its name, Twilio by its Content SID; the local
    /// provider stands in for either.
    pub fn serves(&self, provider: &str) -> bool {
        match provider {
            "meta" => self.meta_name.is_some(),
            "twilio" => self.twilio_content_sid.is_some(),
            _ => self.meta_name.is_some() || self.twilio_content_sid.is_some(),
        }
    }
}

/// `en`, `fil`, `en_US`, `zh_CN`, `es_LA`: a language and an optional region.
fn is_language(code: &str) -> bool {
    let (language, region) = code.split_once('_').unwrap_or((code, ""));
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty() && !code.contains('_') || (2..=4).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// A WhatsApp message sent as an approved template: what it was approved as and the
/// values of its placeholders, in order (WhatsApp's `{{1}}`, `{{2}}` ...). Stored in
/// `account_messages.approved_template`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovedMessage {
    pub approval: Approval,
    pub parameters: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(name: Option<&str>, language: Option<&str>, sid: Option<&str>) -> Approval {
        Approval {
            meta_name: name.map(str::to_owned),
            meta_language: language.map(str::to_owned),
            twilio_content_sid: sid.map(str::to_owned),
        }
    }

    #[test]
    fn an_approval_names_what_each_provider_approved_and_nothing_else() {
        let sid = "HX0123456789abcdef0123456789ABCDEF";
        assert!(approval(Some("payment_reminder_2"), Some("en_US"), Some(sid)).check().is_empty());
        assert!(approval(Some("x"), Some("fil"), None).check().is_empty());
        assert_eq!(approval(None, None, None).named(), None);
        let fields = |a: Approval| a.check().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(
            fields(approval(Some("Payment Reminder"), Some("en_US"), None)),
            ["approval.meta_name"]
        );
        assert_eq!(fields(approval(Some("x"), None, None)), ["approval.meta_language"]);
        assert_eq!(fields(approval(None, Some("en"), None)), ["approval.meta_name"]);
        for language in ["EN", "english", "en-US", "en_", "e"] {
            assert_eq!(
                fields(approval(Some("x"), Some(language), None)),
                ["approval.meta_language"],
                "{language}"
            );
        }
        for sid in ["HX0123", "MG0123456789abcdef0123456789abcdef", "HX0123456789abcdef0123456789abcdeg"] {
            assert_eq!(fields(approval(None, None, Some(sid))), ["approval.twilio_content_sid"], "{sid}");
        }
    }

    #[test]
    fn each_provider_sends_by_its_own_approval() {
        let meta = approval(Some("x"), Some("en"), None);
        let twilio = approval(None, None, Some("HX0123456789abcdef0123456789abcdef"));
        assert!(meta.serves("meta") && !meta.serves("twilio") && meta.serves("local"));
        assert!(twilio.serves("twilio") && !twilio.serves("meta") && twilio.serves("local"));
    }
}
