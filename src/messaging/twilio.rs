//! Text and WhatsApp messages through Twilio's Messages API: one
//! `POST {TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Messages.json` per message,
//! form-encoded, authenticated with the account SID and auth token (HTTP basic). A
//! WhatsApp message goes to `whatsapp:+<number>` from the configured WhatsApp sender.
//! The fields sent are the ones Twilio's published OpenAPI description (`CreateMessage`)
//! lists; tests/api/providers.rs sends through Prism serving that description.
//!
//! How an answer is read: 2xx with a message SID is sent; 429, 5xx, a timeout or a
//! dropped connection is worth another try; 401, 403 and 404 (the credentials or the
//! account SID are wrong, which is no fault of the message) are worth another try too,
//! so that fixing the configuration sends what waited; any other 4xx is Twilio refusing
//! this message (an unreachable number, a body it will not take), kept with Twilio's
//! code and reason (`messaging::api` bounds the wait and the answer).

use base64::Engine as _;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::{Accepted, Outgoing, Provider, Report, SendFailure, api, is_e164};
use crate::domain::message::{Delivery, MessageChannel};

/// Who a message is sent from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A Twilio phone number in E.164 (`+15005550006`).
    Number(String),
    /// A Messaging Service (`MG` and 32 hex digits) that picks the number.
    Service(String),
}

impl Sender {
    /// `TWILIO_SMS_FROM`: an E.164 number or a Messaging Service SID.
    pub fn parse(text: &str) -> Result<Self, String> {
        if is_sid(text, "MG") {
            Ok(Self::Service(text.to_owned()))
        } else if is_e164(text) {
            Ok(Self::Number(text.to_owned()))
        } else {
            Err("must be a phone number in E.164 (+15005550006) or a Messaging Service SID (MG and 32 hex digits)".to_owned())
        }
    }
}

/// What the Twilio provider needs to know.
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    /// `https://api.twilio.com`, or a stand-in's address in tests.
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub sms_from: Option<Sender>,
    /// The WhatsApp sender's number, E.164 (sent as `whatsapp:+<number>`).
    pub whatsapp_from: Option<String>,
    /// Where Twilio reports how each message's delivery went.
    pub status_callback: Option<String>,
}

impl TwilioConfig {
    /// Refuses what Twilio would refuse on every message: an account SID that is not
    /// `AC` and 32 hex digits, an empty auth token, a WhatsApp sender that is not E.164,
    /// URLs that are not http(s).
    pub fn check(&self) -> Result<(), String> {
        if !is_sid(&self.account_sid, "AC") {
            return Err("TWILIO_ACCOUNT_SID must be AC and 32 hex digits".to_owned());
        }
        if self.auth_token.trim().is_empty() {
            return Err("TWILIO_AUTH_TOKEN is required".to_owned());
        }
        if let Some(from) = &self.whatsapp_from
            && !is_e164(from)
        {
            return Err("TWILIO_WHATSAPP_FROM must be a phone number in E.164 (+15005550006)".to_owned());
        }
        if !is_url(&self.api_url) {
            return Err("TWILIO_API_URL must be an http(s) URL".to_owned());
        }
        if let Some(callback) = &self.status_callback
            && !is_url(callback)
        {
            return Err("TWILIO_WEBHOOK_URL must be an http(s) URL".to_owned());
        }
        Ok(())
    }
}

pub struct TwilioProvider {
    client: reqwest::Client,
    config: TwilioConfig,
}

impl TwilioProvider {
    pub fn new(config: TwilioConfig) -> anyhow::Result<Self> {
        config.check().map_err(anyhow::Error::msg)?;
        Ok(Self {
            client: api::client()?,
            config,
        })
    }

    /// The form fields of `message`'s request, in the order sent. A channel without a
    /// configured sender is final: no try would find one.
    pub fn form(&self, message: &Outgoing) -> Result<Vec<(&'static str, String)>, SendFailure> {
        if !message.attachments.is_empty() {
            return Err(SendFailure::Refused(
                "Twilio carries no attached documents here: they go by email".to_owned(),
            ));
        }
        let mut form = Vec::with_capacity(4);
        match message.channel {
            MessageChannel::Sms => {
                form.push(("To", message.recipient.clone()));
                match &self.config.sms_from {
                    Some(Sender::Number(number)) => form.push(("From", number.clone())),
                    Some(Sender::Service(sid)) => form.push(("MessagingServiceSid", sid.clone())),
                    None => {
                        return Err(SendFailure::Refused(
                            "no Twilio sender for text messages (TWILIO_SMS_FROM)".to_owned(),
                        ));
                    }
                }
            }
            MessageChannel::Whatsapp => {
                let Some(from) = &self.config.whatsapp_from else {
                    return Err(SendFailure::Refused(
                        "no Twilio sender for WhatsApp (TWILIO_WHATSAPP_FROM)".to_owned(),
                    ));
                };
                form.push(("To", format!("whatsapp:{}", message.recipient)));
                form.push(("From", format!("whatsapp:{from}")));
            }
            MessageChannel::Email => {
                return Err(SendFailure::Refused(
                    "Twilio carries text and WhatsApp messages, not email".to_owned(),
                ));
            }
        }
        match &message.approved_template {
            Some(approved) => {
                let Some(sid) = &approved.approval.twilio_content_sid else {
                    return Err(SendFailure::Refused("the template has no Content Template at Twilio".to_owned()));
                };
                let variables: serde_json::Map<String, serde_json::Value> = approved
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(n, value)| ((n + 1).to_string(), value.clone().into()))
                    .collect();
                form.push(("ContentSid", sid.clone()));
                form.push(("ContentVariables", serde_json::Value::Object(variables).to_string()));
            }
            None => form.push(("Body", message.body.clone())),
        }
        if let Some(callback) = &self.config.status_callback {
            form.push(("StatusCallback", callback.clone()));
        }
        Ok(form)
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.api_url.trim_end_matches('/'),
            self.config.account_sid
        )
    }

    async fn post(&self, message: &Outgoing) -> Result<Accepted, SendFailure> {
        let form = self.form(message)?;
        let request = self
            .client
            .post(self.endpoint())
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form);
        let (status, answer) = api::exchange("Twilio", request).await?;
        read_answer(status, &answer)
    }
}

impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>> {
        self.post(message).boxed()
    }
}

/// Twilio's answer: the message resource, or an error (`code`, `message`); a stand-in
/// may answer a problem (`title`, `detail`).
#[derive(Deserialize)]
struct Answer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

pub(crate) fn read_answer(status: reqwest::StatusCode, body: &[u8]) -> Result<Accepted, SendFailure> {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if status.is_success() {
        return match answer.and_then(|a| a.sid).filter(|sid| !sid.is_empty() && sid.len() <= 200) {
            Some(sid) => Ok(Accepted { provider_message_id: sid }),
            None => Err(SendFailure::Retry(format!("Twilio answered {status} without a message SID"))),
        };
    }
    let reason = answer
        .map(|a| {
            let text = a.message.or(a.detail).or(a.title).unwrap_or_default();
            match a.code {
                Some(code) => format!("{code}: {text}"),
                None => text,
            }
        })
        .unwrap_or_default();
    let reason = api::reason("Twilio", status, &reason);
    let retry = !status.is_client_error() || matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429);
    Err(if retry {
        SendFailure::Retry(reason)
    } else {
        SendFailure::Refused(reason)
    })
}

/// Reads a webhook request Twilio signed (its form parameters) as a [`Report`]: a status
/// callback (`MessageSid`, `MessageStatus`, `ErrorCode`) or an incoming message
/// (`MessageSid`, `From`, `Body`; `SmsStatus` `received`). `account_sid` must be ours.
pub fn read_report(params: &[(String, String)], account_sid: &str) -> Result<Report, String> {
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if param("AccountSid") != Some(account_sid) {
        return Err("AccountSid is not this service's Twilio account".to_owned());
    }
    let sid = param("MessageSid")
        .or_else(|| param("SmsSid"))
        .filter(|sid| (1..=200).contains(&sid.len()) && sid.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or("MessageSid is missing or is not a message SID")?
        .to_owned();
    let status = param("MessageStatus").or_else(|| param("SmsStatus"));
    if status == Some("received") || (status.is_none() && param("Body").is_some()) {
        let from = param("From").ok_or("From is missing")?;
        let (channel, number) = match from.strip_prefix("whatsapp:") {
            Some(number) => (MessageChannel::Whatsapp, number),
            None => (MessageChannel::Sms, from),
        };
        if !is_e164(number) {
            return Err("From is not a phone number in E.164".to_owned());
        }
        return Ok(Report::Inbound {
            provider_message_id: sid,
            channel,
            sender: number.to_owned(),
            body: param("Body").unwrap_or_default().to_owned(),
        });
    }
    let status = status
        .filter(|s| (1..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_'))
        .ok_or("MessageStatus is missing or not a status word")?;
    let delivery = Delivery::from_twilio(status);
    let error = param("ErrorCode")
        .filter(|code| !code.is_empty() && code.len() <= 20 && matches!(delivery, Some(Delivery::Undelivered | Delivery::Failed)))
        .map(|code| format!("Twilio error {code}"));
    Ok(Report::Delivery {
        provider_message_id: sid,
        status: status.to_owned(),
        delivery,
        error,
    })
}

/// Whether `signature` (the `X-Twilio-Signature` header) is Twilio's for a request to
/// `url` with the form `params`: base64 of HMAC-SHA1, keyed by the auth token, over the
/// URL followed by each parameter's name and value, names sorted (a name given more
/// than once: its distinct values sorted), the URL as [`url_variants`] gives it.
/// Compared in constant time.
pub fn signature_matches(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    let mut names: Vec<&str> = params.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut signed_params = String::new();
    for name in names {
        let mut values: Vec<&str> = params.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        values.sort_unstable();
        values.dedup();
        for value in values {
            signed_params.push_str(name);
            signed_params.push_str(value);
        }
    }
    url_variants(url)
        .iter()
        .any(|candidate| ring::hmac::verify(&key, format!("{candidate}{signed_params}").as_bytes(), &signature).is_ok())
}

/// The URLs a signature of a request to `url` may be over. Twilio signs the URL it
/// called, so a port `url` names that is not its scheme's default is part of it: only
/// `url` itself (a signature made for the same path on another port is another
/// endpoint's). Without a port, or with the default one, both forms
/// (`https://host/x`, `https://host:443/x`), as Twilio's own validator tries both.
fn url_variants(url: &str) -> Vec<String> {
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https://", 443)
    } else {
        ("http://", 80)
    };
    let Some(rest) = url.strip_prefix(scheme) else {
        return vec![url.to_owned()];
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority[colon + 1..].is_empty() && authority[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    match port {
        Some(port) if port.parse::<u32>().ok() != Some(default_port) => vec![url.to_owned()],
        _ => vec![format!("{scheme}{host}{path}"), format!("{scheme}{host}:{default_port}{path}")],
    }
}

pub(crate) fn is_url(text: &str) -> bool {
    (text.starts_with("https://") || text.starts_with("http://")) && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub(crate) fn is_sid(text: &str, prefix: &str) -> bool {
    text.len() == 34 && text.starts_with(prefix) && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(sms_from: Option<Sender>, whatsapp_from: Option<&str>) -> TwilioProvider {
        TwilioProvider::new(TwilioConfig {
            api_url: "https://api.twilio.com".to_owned(),
            account_sid: format!("AC{}", "0a".repeat(16)),
            auth_token: "token".to_owned(),
            sms_from,
            whatsapp_from: whatsapp_from.map(str::to_owned),
            status_callback: Some("https://arrears.example.com/api/v1/webhooks/twilio".to_owned()),
        })
        .unwrap()
    }

    fn message(channel: MessageChannel) -> Outgoing {
        Outgoing {
            id: uuid::Uuid::nil(),
            channel,
            recipient: "+12015550134".to_owned(),
            subject: None,
            body: "Hello".to_owned(),
            attachments: Vec::new(),
            approved_template: None,
        }
    }

    #[test]
    fn a_whatsapp_message_goes_between_whatsapp_addresses_and_a_service_replaces_the_number() {
        let twilio = provider(Some(Sender::parse(&format!("MG{}", "b".repeat(32))).unwrap()), Some("+15005550006"));
        let sms = twilio.form(&message(MessageChannel::Sms)).unwrap();
        assert_eq!(sms[0], ("To", "+12015550134".to_owned()));
        assert_eq!(sms[1].0, "MessagingServiceSid");
        let whatsapp = twilio.form(&message(MessageChannel::Whatsapp)).unwrap();
        assert_eq!(whatsapp[0], ("To", "whatsapp:+12015550134".to_owned()));
        assert_eq!(whatsapp[1], ("From", "whatsapp:+15005550006".to_owned()));
        assert!(matches!(
            provider(None, None).form(&message(MessageChannel::Whatsapp)),
            Err(SendFailure::Refused(_))
        ));
    }

    #[test]
    fn twilio_refusing_a_message_is_final_and_its_outages_and_credentials_are_retried() {
        let refused = read_answer(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}"#,
        );
        assert_eq!(
            refused,
            Err(SendFailure::Refused(
                "Twilio answered 400 Bad Request: 21211: The 'To' number is not a valid phone number.".to_owned()
            ))
        );
        for status in [401, 404, 429, 500, 503] {
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            assert!(matches!(read_answer(status, b"<html>"), Err(SendFailure::Retry(_))), "{status}");
        }
        assert!(matches!(
            read_answer(reqwest::StatusCode::CREATED, b"{}"),
            Err(SendFailure::Retry(_))
        ));
        assert_eq!(
            read_answer(reqwest::StatusCode::CREATED, br#"{"sid": "SM0123"}"#),
            Ok(Accepted {
                provider_message_id: "SM0123".to_owned()
            })
        );
    }

    #[test]
    fn a_signature_is_the_one_twilios_own_documentation_and_library_give() {
        // The example of Twilio's webhook security documentation; `twilio` on npm
        // (getExpectedTwilioSignature) gives the same signature.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .rev()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let signature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(signature_matches("12345", url, &params, signature));
        assert!(signature_matches(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            signature
        ));
        assert!(!signature_matches("12346", url, &params, signature));
        assert!(!signature_matches(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            signature
        ));
        // A port that is not the default one is part of the URL signed, and only it.
        let mut on_port = ring::hmac::Context::with_key(&ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"12345"));
        on_port.update(b"https://mycompany.com:8443/myapp.php?foo=1&bar=2");
        for (name, value) in params.iter().rev() {
            on_port.update(name.as_bytes());
            on_port.update(value.as_bytes());
        }
        let on_port = base64::engine::general_purpose::STANDARD.encode(on_port.sign().as_ref());
        let configured = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(signature_matches("12345", configured, &params, &on_port));
        assert!(!signature_matches("12345", configured, &params, signature), "signed for port 443");
        assert!(!signature_matches("12345", url, &params, &on_port));
        assert!(!signature_matches(
            "12345",
            "https://mycompany.com:9443/myapp.php?foo=1&bar=2",
            &params,
            &on_port
        ));
        assert_eq!(
            url_variants("http://localhost:80/hook"),
            ["http://localhost/hook", "http://localhost:80/hook"]
        );
        let mut changed = params.clone();
        changed[0].1 = "+18005551213".to_owned();
        assert!(!signature_matches("12345", url, &changed, signature));
        assert!(!signature_matches("12345", url, &params, "not base64!"));
        assert!(!signature_matches("12345", url, &params, ""));
    }

    #[test]
    fn a_webhook_is_a_status_or_an_incoming_message_of_our_account() {
        let ours = format!("AC{}", "0a".repeat(16));
        let form =
            |pairs: &[(&str, &str)]| -> Vec<(String, String)> { pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() };
        let status = form(&[
            ("AccountSid", &ours),
            ("MessageSid", "SM01"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        assert_eq!(
            read_report(&status, &ours),
            Ok(Report::Delivery {
                provider_message_id: "SM01".to_owned(),
                status: "undelivered".to_owned(),
                delivery: Some(Delivery::Undelivered),
                error: Some("Twilio error 30003".to_owned()),
            })
        );
        let inbound = form(&[
            ("AccountSid", &ours),
            ("MessageSid", "SM02"),
            ("SmsStatus", "received"),
            ("From", "whatsapp:+12015550134"),
            ("Body", "STOP"),
        ]);
        assert_eq!(
            read_report(&inbound, &ours),
            Ok(Report::Inbound {
                provider_message_id: "SM02".to_owned(),
                channel: MessageChannel::Whatsapp,
                sender: "+12015550134".to_owned(),
                body: "STOP".to_owned(),
            })
        );
        assert!(read_report(&status, &format!("AC{}", "0b".repeat(16))).is_err());
        assert!(read_report(&form(&[("AccountSid", &ours), ("MessageStatus", "sent")]), &ours).is_err());
    }

    #[test]
    fn senders_and_sids_are_checked_before_any_message() {
        assert!(Sender::parse("+15005550006").is_ok());
        assert!(Sender::parse("15005550006").is_err());
        assert!(Sender::parse("MG123").is_err());
        let mut config = provider(None, None).config;
        config.account_sid = "AC123".to_owned();
        assert!(config.check().unwrap_err().contains("TWILIO_ACCOUNT_SID"));
    }
}
