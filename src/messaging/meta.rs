//! WhatsApp messages through Meta's WhatsApp Cloud API: one
//! `POST {META_GRAPH_URL}/{META_PHONE_NUMBER_ID}/messages` per message, JSON, with the
//! access token as a bearer token. The body is the text message, or outside WhatsApp's
//! 24-hour window the template message (its body's parameters as text, in order), that
//! Meta's own Node SDK (`whatsapp` on npm) sends: tests/api/providers.rs type-checks
//! each body this builds against that SDK's published types with `tsc`, as the
//! Elasticsearch bodies are.
//!
//! How an answer is read: 2xx with a message id (`wamid…`) is sent; 5xx, a timeout, a
//! dropped connection, a rate limit (Meta's codes 4, 80007, 130429, 131048, 131056) and
//! the token or permissions refused (401, 403, code 190) are worth another try; any
//! other error is Meta refusing this message (outside the 24-hour window, 131047; an
//! unreachable number, 131026), kept with Meta's code and message.
//!
//! What Meta reports back arrives at `POST /webhooks/meta`, signed with
//! `X-Hub-Signature-256` ([`signature_matches`]) and read by [`read_reports`].

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Accepted, Outgoing, Provider, Report, SendFailure, api, is_e164};
use crate::domain::message::{Delivery, MessageChannel};

/// What the Meta provider needs to know.
#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// `https://graph.facebook.com/v23.0`, or a stand-in's address in tests.
    pub graph_url: String,
    /// The WhatsApp Business phone number's id (digits).
    pub phone_number_id: String,
    pub access_token: String,
}

impl MetaConfig {
    /// Refuses what Meta would refuse on every message.
    pub fn check(&self) -> Result<(), String> {
        if self.phone_number_id.is_empty() || self.phone_number_id.len() > 30 || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err("META_PHONE_NUMBER_ID must be the phone number's id, digits".to_owned());
        }
        if self.access_token.trim().is_empty() {
            return Err("META_ACCESS_TOKEN is required".to_owned());
        }
        if !(self.graph_url.starts_with("https://") || self.graph_url.starts_with("http://")) {
            return Err("META_GRAPH_URL must be an http(s) URL".to_owned());
        }
        Ok(())
    }
}

pub struct MetaProvider {
    client: reqwest::Client,
    config: MetaConfig,
}

impl MetaProvider {
    pub fn new(config: MetaConfig) -> anyhow::Result<Self> {
        config.check().map_err(anyhow::Error::msg)?;
        Ok(Self {
            client: api::client()?,
            config,
        })
    }

    /// The JSON body of `message`'s request.
    pub fn body(message: &Outgoing) -> Result<Value, SendFailure> {
        if message.channel != MessageChannel::Whatsapp {
            return Err(SendFailure::Refused("Meta's Cloud API carries WhatsApp messages only".to_owned()));
        }
        if !message.attachments.is_empty() {
            return Err(SendFailure::Refused(
                "WhatsApp carries no attached documents here: they go by email".to_owned(),
            ));
        }
        let Some(approved) = &message.approved_template else {
            return Ok(json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": message.recipient,
                "type": "text",
                "text": {"preview_url": false, "body": message.body},
            }));
        };
        let (Some(name), Some(language)) = (&approved.approval.meta_name, &approved.approval.meta_language) else {
            return Err(SendFailure::Refused("the template has no approval at Meta".to_owned()));
        };
        let mut template = json!({"name": name, "language": {"code": language}});
        if !approved.parameters.is_empty() {
            let parameters: Vec<Value> = approved
                .parameters
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect();
            template["components"] = json!([{"type": "body", "parameters": parameters}]);
        }
        Ok(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.recipient,
            "type": "template",
            "template": template,
        }))
    }

    async fn post(&self, message: &Outgoing) -> Result<Accepted, SendFailure> {
        let body = Self::body(message)?;
        let url = format!(
            "{}/{}/messages",
            self.config.graph_url.trim_end_matches('/'),
            self.config.phone_number_id
        );
        let request = self.client.post(url).bearer_auth(&self.config.access_token).json(&body);
        let (status, answer) = api::exchange("Meta", request).await?;
        read_answer(status, &answer)
    }
}

impl Provider for MetaProvider {
    fn name(&self) -> &'static str {
        "meta"
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Accepted, SendFailure>> {
        self.post(message).boxed()
    }
}

#[derive(Deserialize)]
struct Answer {
    messages: Option<Vec<SentId>>,
    error: Option<GraphError>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
}

/// Meta's codes for "too many, too fast": worth another try later.
const RATE_LIMITS: [i64; 5] = [4, 80007, 130429, 131048, 131056];

fn read_answer(status: reqwest::StatusCode, body: &[u8]) -> Result<Accepted, SendFailure> {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if status.is_success() {
        let id = answer
            .and_then(|a| a.messages)
            .and_then(|m| m.into_iter().next())
            .map(|m| m.id)
            .filter(|id| !id.is_empty() && id.len() <= 200);
        return match id {
            Some(id) => Ok(Accepted { provider_message_id: id }),
            None => Err(SendFailure::Retry(format!("Meta answered {status} without a message id"))),
        };
    }
    let error = answer.and_then(|a| a.error);
    let code = error.as_ref().and_then(|e| e.code);
    let text = match (&error, code) {
        (Some(e), Some(code)) => format!("{code}: {}", e.message.as_deref().unwrap_or_default()),
        (Some(e), None) => e.message.clone().unwrap_or_default(),
        (None, _) => String::new(),
    };
    let reason = api::reason("Meta", status, &text);
    let retry = !status.is_client_error()
        || matches!(status.as_u16(), 401 | 403 | 408 | 429)
        || code.is_some_and(|c| c == 190 || RATE_LIMITS.contains(&c));
    Err(if retry {
        SendFailure::Retry(reason)
    } else {
        SendFailure::Refused(reason)
    })
}

/// Whether `header` (`X-Hub-Signature-256`) is Meta's signature of `body`:
/// `sha256=` and the hex HMAC-SHA256 of the raw body keyed by the app secret, compared
/// in constant time.
pub fn signature_matches(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(signature) = header.trim().strip_prefix("sha256=").and_then(|hex| hex::decode(hex).ok()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, app_secret.as_bytes());
    ring::hmac::verify(&key, body, &signature).is_ok()
}

#[derive(Deserialize)]
struct Webhook {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: ChangeValue,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    messages: Vec<Incoming>,
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Incoming {
    from: String,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    code: Option<i64>,
}

/// The most reports one webhook request is read for.
pub const MAX_REPORTS: usize = 200;

/// Reads a webhook body Meta signed as [`Report`]s: the messages debtors sent to
/// `phone_number_id` (text as its body; other kinds as `[<kind>]`) and the statuses of
/// messages sent from it (`sent`, `delivered`, `read`, `failed` with Meta's error
/// code). Changes for another phone number of the same app, and fields other than
/// `messages`, are left out.
pub fn read_reports(body: &[u8], phone_number_id: &str) -> Result<Vec<Report>, String> {
    let webhook: Webhook = serde_json::from_slice(body).map_err(|e| format!("not a WhatsApp webhook: {e}"))?;
    if webhook.object != "whatsapp_business_account" {
        return Err("object is not whatsapp_business_account".to_owned());
    }
    let mut reports = Vec::new();
    let ours = webhook
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .filter(|c| c.field == "messages" && c.value.metadata.as_ref().is_some_and(|m| m.phone_number_id == phone_number_id));
    for change in ours {
        for incoming in change.value.messages {
            let sender = format!("+{}", incoming.from);
            if !is_e164(&sender) || !is_message_id(&incoming.id) {
                return Err("a message's from or id is not one Meta gives".to_owned());
            }
            let body = match incoming.text {
                Some(text) if incoming.kind == "text" => text.body,
                _ => format!(
                    "[{}]",
                    incoming
                        .kind
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(20)
                        .collect::<String>()
                ),
            };
            reports.push(Report::Inbound {
                provider_message_id: incoming.id,
                channel: MessageChannel::Whatsapp,
                sender,
                body,
            });
        }
        for status in change.value.statuses {
            if !is_message_id(&status.id)
                || status.status.is_empty()
                || status.status.len() > 40
                || !status.status.bytes().all(|b| b.is_ascii_lowercase())
            {
                return Err("a status's id or status is not one Meta gives".to_owned());
            }
            let delivery = match status.status.as_str() {
                "sent" => Some(Delivery::Sent),
                "delivered" => Some(Delivery::Delivered),
                "read" => Some(Delivery::Read),
                "failed" => Some(Delivery::Failed),
                _ => None,
            };
            let error = status
                .errors
                .first()
                .and_then(|e| e.code)
                .filter(|_| delivery == Some(Delivery::Failed))
                .map(|code| format!("Meta error {code}"));
            reports.push(Report::Delivery {
                provider_message_id: status.id,
                status: status.status,
                delivery,
                error,
            });
        }
        if reports.len() > MAX_REPORTS {
            return Err(format!("more than {MAX_REPORTS} reports in one request"));
        }
    }
    Ok(reports)
}

fn is_message_id(id: &str) -> bool {
    (1..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_refusing_a_message_is_final_and_its_limits_and_token_are_retried() {
        let refused = read_answer(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047, "fbtrace_id": "A"}}"#,
        );
        assert_eq!(
            refused,
            Err(SendFailure::Refused(
                "Meta answered 400 Bad Request: 131047: Re-engagement message".to_owned()
            ))
        );
        let limited = read_answer(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error": {"message": "slow down", "code": 130429}}"#,
        );
        assert!(matches!(limited, Err(SendFailure::Retry(_))));
        let expired = read_answer(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error": {"message": "token expired", "code": 190}}"#,
        );
        assert!(matches!(expired, Err(SendFailure::Retry(_))));
        assert!(matches!(
            read_answer(reqwest::StatusCode::BAD_GATEWAY, b""),
            Err(SendFailure::Retry(_))
        ));
        assert_eq!(
            read_answer(
                reqwest::StatusCode::OK,
                br#"{"messaging_product": "whatsapp", "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}], "messages": [{"id": "wamid.X"}]}"#
            ),
            Ok(Accepted {
                provider_message_id: "wamid.X".to_owned()
            })
        );
    }

    #[test]
    fn a_signature_is_the_hex_hmac_sha256_of_the_raw_body() {
        // HMAC-SHA256 keyed "secret" of `{}`, as `openssl dgst -sha256 -hmac secret` gives it.
        let body = b"{}";
        let signature = "sha256=77325902caca812dc259733aacd046b73817372c777b8d95b402647474516e13";
        assert!(signature_matches("secret", body, signature));
        assert!(!signature_matches("other", body, signature));
        assert!(!signature_matches("secret", b"{ }", signature));
        assert!(!signature_matches("secret", body, signature.trim_start_matches("sha256=")));
        assert!(!signature_matches("secret", body, "sha256=zz"));
    }

    #[test]
    fn a_webhook_of_our_number_is_read_into_reports_and_others_are_left_out() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "messages": [{"from": "16505551234", "id": "wamid.A", "timestamp": "1749416383", "type": "text", "text": {"body": "STOP"}},
                             {"from": "16505551234", "id": "wamid.B", "timestamp": "1749416384", "type": "image", "image": {"id": "1"}}],
                "statuses": [{"id": "wamid.C", "status": "failed", "timestamp": "1749416385", "recipient_id": "16505551234",
                              "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}},
            {"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": "999"},
                "messages": [{"from": "16505551234", "id": "wamid.D", "timestamp": "1", "type": "text", "text": {"body": "not ours"}}]}}
        ]}]});
        let reports = read_reports(body.to_string().as_bytes(), "106540352242922").unwrap();
        assert_eq!(
            reports,
            vec![
                Report::Inbound {
                    provider_message_id: "wamid.A".to_owned(),
                    channel: MessageChannel::Whatsapp,
                    sender: "+16505551234".to_owned(),
                    body: "STOP".to_owned(),
                },
                Report::Inbound {
                    provider_message_id: "wamid.B".to_owned(),
                    channel: MessageChannel::Whatsapp,
                    sender: "+16505551234".to_owned(),
                    body: "[image]".to_owned(),
                },
                Report::Delivery {
                    provider_message_id: "wamid.C".to_owned(),
                    status: "failed".to_owned(),
                    delivery: Some(Delivery::Failed),
                    error: Some("Meta error 131026".to_owned()),
                },
            ]
        );
        assert!(read_reports(br#"{"object": "page", "entry": []}"#, "1").is_err());
        assert!(read_reports(b"not json", "1").is_err());
    }
}
