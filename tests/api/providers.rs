//! The message providers against what others wrote, not against what the code expects:
//! - Twilio: Prism's validating mock serves Twilio's own OpenAPI description (shipped in
//!   `@twilio/cli-core` on npm, pinned in tests/providers/package-lock.json). A request
//!   off the description (a missing or malformed field, the wrong content type, no basic
//!   auth) is answered 401/415/422 and the test fails. Prism lets fields the description
//!   does not list through; this test is stricter and refuses them.
//! - Meta's WhatsApp Cloud API: each body the provider builds is type-checked with `tsc`
//!   against the types of Meta's own Node SDK (`whatsapp` on npm), as the Elasticsearch
//!   bodies are against Elastic's; a misspelt, unknown or missing field is refused.
//! - Email: a real SMTP server (aiosmtpd, tests/providers/smtp_sink.py) takes each
//!   message, and Python's own email parser reads it back: headers, the encoding of a
//!   non-ASCII name and subject, the body's charset.
//!
//! Both also run through the API: a message sent with `POST /accounts/{id}/messages`
//! reaches the stand-in through the sender and is recorded as sent by its provider.
//! `bin/test` installs the pinned packages (`ensure_provider_mocks` in bin/_lib.sh).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrears::config::{EmailProvider, SmsProvider, TelephonyProvider, WhatsappProvider};
use arrears::domain::message::MessageChannel;
use arrears::domain::message::approval::{Approval, ApprovedMessage};
use arrears::domain::role::Role;
use arrears::messaging::meta::MetaProvider;
use arrears::messaging::smtp::SmtpProvider;
use arrears::messaging::twilio::{Sender, TwilioConfig, TwilioProvider};
use arrears::messaging::{Outgoing, OutgoingFile, Provider, SendFailure};
use arrears::telephony::twilio::{TwilioDialer, VoiceConfig};
use arrears::telephony::{Dialer, Placing};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::announced::port_after;
use crate::compliance::{hold_clock, zone_where_it_is};
use crate::documents::uploaded;
use crate::helpers::{TestApp, eventually, id_of, spawn_guarded_app_with, status_json};
use crate::ws::refusing_address;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const CALLBACK: &str = "https://arrears.example.com/api/v1/webhooks/twilio";

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers")
}

fn twilio_description() -> PathBuf {
    providers_dir().join("node_modules/@twilio/cli-core/src/services/twilio-api/twilio_api_v2010.json")
}

/// A process a test started, stopped when dropped (a failing test too).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prism serving Twilio's description on a port of its own; stopped when dropped.
struct Prism {
    _process: Running,
    url: String,
}

impl Prism {
    async fn start() -> Self {
        let prism = providers_dir().join("node_modules/.bin/prism");
        assert!(
            prism.exists() && twilio_description().exists(),
            "Prism or Twilio's description is missing: run bin/test, or `npm ci` in tests/providers"
        );
        let mut child = Command::new(prism)
            .args(["mock", "--host", "127.0.0.1", "--port", "0", "--errors"])
            .arg(twilio_description())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Prism");
        let stdout = child.stdout.take().unwrap();
        let child = Running(child);
        let (port, _) = port_after(stdout, "Prism is listening on http://127.0.0.1:", "Prism");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while client.get(format!("{url}/2010-04-01/Accounts.json")).send().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "Prism did not start within 120 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { _process: child, url }
    }
}

fn twilio(url: &str, sms_from: &str) -> TwilioConfig {
    TwilioConfig {
        api_url: url.to_owned(),
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: "not-a-real-token".to_owned(),
        sms_from: Some(Sender::parse(sms_from).unwrap()),
        whatsapp_from: Some("+14155238886".to_owned()),
        status_callback: Some(CALLBACK.to_owned()),
    }
}

fn outgoing(channel: MessageChannel, recipient: &str, subject: Option<&str>, body: &str) -> Outgoing {
    Outgoing {
        id: uuid::Uuid::now_v7(),
        channel,
        recipient: recipient.to_owned(),
        subject: subject.map(str::to_owned),
        body: body.to_owned(),
        attachments: Vec::new(),
        approved_template: None,
    }
}

/// A WhatsApp message that goes as the template approved as `approval`, with `parameters`.
fn approved(approval: Approval, parameters: &[&str]) -> Outgoing {
    Outgoing {
        approved_template: Some(ApprovedMessage {
            approval,
            parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..outgoing(MessageChannel::Whatsapp, "+12015550134", None, "unused: the template goes")
    }
}

fn twilio_content_sid() -> Approval {
    Approval {
        twilio_content_sid: Some("HX0123456789abcdef0123456789abcdef".to_owned()),
        ..Approval::default()
    }
}

fn meta_approval(name: &str, language: &str) -> Approval {
    Approval {
        meta_name: Some(name.to_owned()),
        meta_language: Some(language.to_owned()),
        ..Approval::default()
    }
}

/// The fields Twilio's description lists for creating a message.
pub(crate) fn create_message_fields() -> BTreeSet<String> {
    create_fields("Messages.json", "CreateMessage")
}

/// The fields Twilio's description lists for `operation`, a `POST` to `resource` of an account.
fn create_fields(resource: &str, operation_id: &str) -> BTreeSet<String> {
    let description: Value = serde_json::from_slice(&std::fs::read(twilio_description()).unwrap()).unwrap();
    let operation = &description["paths"][format!("/2010-04-01/Accounts/{{AccountSid}}/{resource}")]["post"];
    assert_eq!(operation["operationId"], operation_id);
    let schema = &operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    schema["properties"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn twilio_calls_are_placed_as_twilios_own_description_accepts() {
    let prism = Prism::start().await;
    let known = create_fields("Calls.json", "CreateCall");
    let dialer = TwilioDialer::new(VoiceConfig {
        api_url: prism.url.clone(),
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: "not-a-real-token".to_owned(),
        from: "+15005550006".to_owned(),
        webhook_url: CALLBACK.to_owned(),
    })
    .unwrap();
    let call = Placing {
        call_id: uuid::Uuid::now_v7(),
        agent_number: "+12015550199".to_owned(),
        debtor_number: "+12015550134".to_owned(),
    };
    let form = dialer.form(&call);
    let unknown: Vec<_> = form.iter().filter(|(name, _)| !known.contains(*name)).collect();
    assert!(unknown.is_empty(), "fields Twilio's description does not list: {unknown:?}");
    assert!(
        !form.iter().any(|(_, value)| value == &call.debtor_number),
        "the debtor is dialled only once the agent answers and the guard allows"
    );
    let placed = dialer.place(&call).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(placed.provider_call_id.starts_with("CA"), "{placed:?}");

    // Through the API: an agent's call is placed through Twilio and kept with its SID.
    let url = prism.url.clone();
    let app = spawn_guarded_app_with(move |s| {
        s.telephony_provider = TelephonyProvider::Twilio;
        s.twilio_api_url = url;
        s.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        s.twilio_auth_token = Some("not-a-real-token".to_owned());
        s.twilio_voice_from = Some("+15005550006".to_owned());
        s.twilio_webhook_url = Some(CALLBACK.to_owned());
    })
    .await;
    hold_clock(&app);
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app
        .account(
            &manager.token,
            json!({"phone": "+12015550134", "assigned_agent_id": agent.id, "timezone": zone_where_it_is(app.clock.now(), 10, 19)}),
        )
        .await;
    let (status, _) = status_json(app.put("/api/v1/me/phone", &agent.token, &json!({"phone": "+12015550199"})).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, placed) = status_json(
        app.post(
            &format!("/api/v1/accounts/{}/calls", account["id"].as_str().unwrap()),
            Some(&agent.token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["provider"], "twilio");
}

#[tokio::test]
async fn twilio_requests_are_the_ones_twilios_own_description_accepts() {
    let prism = Prism::start().await;

    // The stand-in is not lenient: a request off the description is refused.
    let endpoint = format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", prism.url);
    let client = reqwest::Client::new();
    let without_to = client
        .post(&endpoint)
        .basic_auth(ACCOUNT_SID, Some("token"))
        .form(&[("Body", "hi")])
        .send()
        .await
        .unwrap();
    assert_eq!(without_to.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let without_auth = client.post(&endpoint).form(&[("To", "+12015550134")]).send().await.unwrap();
    assert_eq!(without_auth.status(), StatusCode::UNAUTHORIZED);

    let known = create_message_fields();
    let by_number = TwilioProvider::new(twilio(&prism.url, "+15005550006")).unwrap();
    let by_service = TwilioProvider::new(twilio(&prism.url, "MG0123456789abcdef0123456789abcdef")).unwrap();
    let messages = [
        (
            &by_number,
            outgoing(MessageChannel::Sms, "+12015550134", None, "Hi Zoë, 310.00 USD is due.\nCall us."),
        ),
        (&by_service, outgoing(MessageChannel::Sms, "+447700900123", None, "Reminder")),
        (
            &by_number,
            outgoing(MessageChannel::Whatsapp, "+12015550134", None, "Hello on WhatsApp"),
        ),
        (&by_number, approved(twilio_content_sid(), &["Zoë O'Brien", "310.00 USD"])),
    ];
    for (provider, message) in messages {
        let form = provider.form(&message).unwrap();
        if message.approved_template.is_some() {
            assert_eq!(
                form.iter()
                    .filter(|(name, _)| name.starts_with("Content"))
                    .cloned()
                    .collect::<Vec<_>>(),
                [
                    ("ContentSid", "HX0123456789abcdef0123456789abcdef".to_owned()),
                    ("ContentVariables", r#"{"1":"Zoë O'Brien","2":"310.00 USD"}"#.to_owned())
                ]
            );
        }
        let unknown: Vec<_> = form.iter().filter(|(name, _)| !known.contains(*name)).collect();
        assert!(unknown.is_empty(), "fields Twilio's description does not list: {unknown:?}");
        let accepted = provider
            .send(&message)
            .await
            .unwrap_or_else(|e| panic!("{:?} to {}: {e:?}", message.channel, message.recipient));
        assert!(accepted.provider_message_id.starts_with("SM"), "{accepted:?}");
    }

    // A request Twilio's description refuses (a callback URL with a placeholder left in
    // it is not a URI) is refused, and the provider keeps that as final, with its reason.
    let mut broken = twilio(&prism.url, "+15005550006");
    broken.status_callback = Some("https://arrears.example.com/hooks/{sid}".to_owned());
    let refused = TwilioProvider::new(broken)
        .unwrap()
        .send(&outgoing(MessageChannel::Sms, "+12015550134", None, "x"))
        .await;
    assert!(
        matches!(&refused, Err(SendFailure::Refused(reason)) if reason.contains("422")),
        "{refused:?}"
    );

    // Through the API: the sender hands an allowed text message to Twilio.
    let url = prism.url.clone();
    let app = spawn_guarded_app_with(move |s| {
        s.sms_provider = SmsProvider::Twilio;
        s.whatsapp_provider = WhatsappProvider::Twilio;
        s.twilio_api_url = url;
        s.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        s.twilio_auth_token = Some("not-a-real-token".to_owned());
        s.twilio_sms_from = Some("+15005550006".to_owned());
        s.twilio_whatsapp_from = Some("+14155238886".to_owned());
        s.twilio_webhook_url = Some(CALLBACK.to_owned());
    })
    .await;
    // A WhatsApp message to a debtor who has not written goes as its Content Template.
    let manager = app.user(Role::Manager).await;
    let (status, template) = status_json(
        app.post(
            "/api/v1/message-templates",
            Some(&manager.token),
            &json!({"name": "Call back", "channel": "whatsapp", "body": "{{debtor_name}}, please call us back.",
                "approval": {"twilio_content_sid": "HX0123456789abcdef0123456789abcdef"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    for compose in [
        json!({"channel": "sms", "text": "Please call us back."}),
        json!({"channel": "whatsapp", "template_id": template["id"]}),
    ] {
        let sent = send_through_the_api(&app, compose, None).await;
        assert_eq!(sent["provider"], "twilio");
        assert!(sent["provider_message_id"].as_str().unwrap().starts_with("SM"), "{sent}");
    }
}

/// aiosmtpd on a port of its own, printing each message it takes as a JSON line.
struct SmtpSink {
    _process: Running,
    lines: mpsc::UnboundedReceiver<String>,
    port: u16,
}

impl SmtpSink {
    async fn start() -> Self {
        let python = providers_dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "aiosmtpd is missing: run bin/test (it installs tests/providers/.venv)"
        );
        let mut child = Command::new(python)
            .arg(providers_dir().join("smtp_sink.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let process = Running(child);
        let (port, received) = port_after(stdout, "ready ", "the SMTP server");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in received {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            _process: process,
            lines,
            port,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message the server took, as Python's parser read it.
    async fn received(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.recv())
            .await
            .expect("the SMTP server received a message")
            .expect("the SMTP server is running");
        serde_json::from_str(&line).unwrap()
    }
}

const FROM: &str = "Zoë Ångström Collections <collections@arrears.example.com>";

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_its_non_ascii_name_subject_and_text_encoded() {
    let mut sink = SmtpSink::start().await;
    let smtp = SmtpProvider::new(&sink.url(), FROM).unwrap();
    let text = "Dear Zoë O'Brien,\nyour balance of 310,00 € is due.\nA line that runs on for quite a while, longer than the seventy-eight characters a line of mail should hold.";
    let message = outgoing(
        MessageChannel::Email,
        "zoe@example.com",
        Some("Ihr Saldo: 310,00 € — bitte zahlen"),
        text,
    );
    let accepted = smtp.send(&message).await.unwrap();
    assert_eq!(
        accepted.provider_message_id,
        format!("<{}@arrears.example.com>", message.id.simple())
    );

    let got = sink.received().await;
    assert_eq!(got["defects"], json!([]), "{got}");
    assert_eq!(
        got["head_is_ascii"], true,
        "non-ASCII must be encoded in the header: {}",
        got["head"]
    );
    assert!(
        got["head"].as_str().unwrap().contains("=?utf-8?"),
        "RFC 2047 encoded words: {}",
        got["head"]
    );
    assert_eq!(got["mail_from"], "collections@arrears.example.com");
    assert_eq!(got["rcpt_tos"], json!(["zoe@example.com"]));
    assert_eq!(got["from"], FROM);
    assert_eq!(got["to"], "zoe@example.com");
    assert_eq!(got["subject"], "Ihr Saldo: 310,00 € — bitte zahlen");
    assert_eq!(got["message_id"], accepted.provider_message_id);
    assert_eq!(got["content_type"], "text/plain");
    assert_eq!(got["charset"], "utf-8");
    assert_eq!(got["text"].as_str().unwrap().replace("\r\n", "\n").trim_end(), text);
    assert_eq!(got["attachments"], json!([]));

    // Documents go as attachments under their names, non-ASCII ones encoded (RFC 2231).
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let mut with_files = outgoing(MessageChannel::Email, "zoe@example.com", Some("Ihr Zahlungsplan"), "Anbei.");
    with_files.attachments = vec![
        OutgoingFile {
            name: "Zahlungsplan – Zoë.pdf".to_owned(),
            content_type: "application/pdf",
            bytes: pdf.clone(),
        },
        OutgoingFile {
            name: "notes.txt".to_owned(),
            content_type: "text/plain; charset=utf-8",
            bytes: "Grüße\n".as_bytes().to_vec(),
        },
    ];
    smtp.send(&with_files).await.unwrap();
    let got = sink.received().await;
    assert_eq!(got["defects"], json!([]), "{got}");
    assert_eq!(got["head_is_ascii"], true);
    assert_eq!(got["content_type"], "multipart/mixed");
    assert_eq!(got["text"].as_str().unwrap().trim_end(), "Anbei.");
    assert_eq!(
        got["attachments"],
        json!([
            {"filename": "Zahlungsplan – Zoë.pdf", "content_type": "application/pdf", "size": pdf.len(), "sha256": hex_sha256(&pdf)},
            {"filename": "notes.txt", "content_type": "text/plain", "size": "Grüße\n".len(), "sha256": hex_sha256("Grüße\n".as_bytes())},
        ])
    );

    // The server's 5xx is final; its 4xx, and a server that is not there, are retried.
    let refused = smtp
        .send(&outgoing(MessageChannel::Email, "refused@example.com", Some("x"), "x"))
        .await;
    assert!(
        matches!(&refused, Err(SendFailure::Refused(reason)) if reason.contains("550")),
        "{refused:?}"
    );
    let later = smtp
        .send(&outgoing(MessageChannel::Email, "later@example.com", Some("x"), "x"))
        .await;
    assert!(
        matches!(&later, Err(SendFailure::Retry(reason)) if reason.contains("451")),
        "{later:?}"
    );
    let (_closed, refusing) = refusing_address();
    let nowhere = SmtpProvider::new(&format!("smtp://{refusing}"), FROM).unwrap();
    let down = nowhere
        .send(&outgoing(MessageChannel::Email, "zoe@example.com", Some("x"), "x"))
        .await;
    assert!(matches!(down, Err(SendFailure::Retry(_))), "{down:?}");

    // Through the API: the sender hands an allowed email to the SMTP server.
    let url = sink.url();
    let app = spawn_guarded_app_with(move |s| {
        s.email_provider = EmailProvider::Smtp;
        s.smtp_url = Some(url);
        s.smtp_from = Some(FROM.to_owned());
    })
    .await;
    let sent = send_through_the_api(
        &app,
        json!({"channel": "email", "subject": "Your balance", "text": "Dear {{debtor_name}}, please call us."}),
        Some(("Plan für Zoë.pdf", pdf.clone())),
    )
    .await;
    assert_eq!(sent["provider"], "smtp");
    assert_eq!(sent["document_ids"].as_array().unwrap().len(), 1);
    let got = sink.received().await;
    assert_eq!(got["subject"], "Your balance");
    assert_eq!(got["text"].as_str().unwrap().trim_end(), "Dear Zoë O'Brien, please call us.");
    assert_eq!(got["message_id"], sent["provider_message_id"]);
    assert_eq!(
        got["attachments"],
        json!([{"filename": "Plan für Zoë.pdf", "content_type": "application/pdf", "size": pdf.len(), "sha256": hex_sha256(&pdf)}])
    );
}

/// Sends `compose` on a new account of an agent's, in a zone where it is daytime (with
/// `document` uploaded to it and attached, when given), and answers the message once
/// its sending is done.
async fn send_through_the_api(app: &TestApp, mut compose: Value, document: Option<(&str, Vec<u8>)>) -> Value {
    hold_clock(app);
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app
        .account(
            &manager.token,
            json!({"debtor_name": "Zoë O'Brien", "assigned_agent_id": agent.id,
                "timezone": zone_where_it_is(app.clock.now(), 10, 19)}),
        )
        .await;
    if let Some((name, bytes)) = document {
        let document = uploaded(app, &agent.token, &id_of(&account), name, bytes).await;
        compose["document_ids"] = json!([document["id"]]);
    }
    let path = format!("/api/v1/accounts/{}/messages", id_of(&account));
    let (status, queued) = status_json(app.post(&path, Some(&agent.token), &compose).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let message = format!("/api/v1/messages/{}", queued["id"].as_str().unwrap());
    let read = || async { status_json(app.get(&message, &agent.token).await).await.1 };
    eventually("the message's sending is done", || async { read().await["status"] != "queued" }).await;
    let done = read().await;
    assert_eq!(done["status"], "sent", "{done}");
    done
}

/// The types the bodies are checked against: the envelope Meta's SDK declares for a
/// message request (`MessageRequestBody`, its `Record<string, any>` base left out so that
/// an unknown field is an error), `type` as the string its enum stands for, and
/// - `TextBody`: `text` as the `TextObject` its `messages.text()` sends;
/// - `TemplateBody`: `template` as the `MessageTemplateObject` its `messages.template()`
///   sends, with body components, each enum-typed field as the string its members stand
///   for (as JSON carries them). One field is left out: the SDK's `LanguageObject`
///   requires `policystring: 'deterministic'`, which Meta's reference for the template
///   object does not have (its language is `{code}`, an optional `policy` whose only
///   value is deterministic): a misspelling in the SDK's types that no request needs.
const META_TYPES: &str = r#"import type { MessageRequestBody, MessageTemplateObject, TextObject } from "whatsapp/build/types/messages";
import type { ComponentTypesEnum, MessageTypesEnum } from "whatsapp/build/types/enums";
type Declared<T> = { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };
type Wire<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Wire<U>[] : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;
type TextBody = Omit<Declared<MessageRequestBody<MessageTypesEnum.Text>>, "type"> & { type: `${MessageTypesEnum.Text}`; text: TextObject };
type Template = MessageTemplateObject<ComponentTypesEnum.Body>;
type TemplateBody = Omit<Declared<MessageRequestBody<MessageTypesEnum.Template>>, "type"> & {
    type: `${MessageTypesEnum.Template}`;
    template: Wire<Omit<Template, "language"> & { language: Omit<Template["language"], "policystring"> }>;
};
"#;

/// Runs tsc over `bodies`, each typed as the named type of [`META_TYPES`]; tsc's output
/// when it refuses them.
fn tsc_on_meta_bodies(file: &str, bodies: &[(&str, Value)]) -> Result<(), String> {
    let generated = providers_dir().join("generated");
    std::fs::create_dir_all(&generated).unwrap();
    let mut source = META_TYPES.to_owned();
    for (n, (kind, body)) in bodies.iter().enumerate() {
        source.push_str(&format!("export const body{n}: {kind} = {body};\n"));
    }
    std::fs::write(generated.join(file), source).unwrap();
    let tsc = providers_dir().join("node_modules/.bin/tsc");
    assert!(tsc.exists(), "tsc is missing: run bin/test, or `npm ci` in tests/providers");
    let out = Command::new(tsc)
        .current_dir(providers_dir())
        .args(["--noEmit", "--strict", "--target", "es2022", "--module", "commonjs"])
        .args(["--moduleResolution", "node10", "--skipLibCheck", "--noErrorTruncation"])
        .arg(format!("generated/{file}"))
        .output()
        .expect("run tsc");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn whatsapp_cloud_api_bodies_are_the_ones_metas_own_sdk_types_accept() {
    let texts = [
        "Hi Zoë, 310.00 USD is due.\nCall us.",
        "Quotes \" and \\ and </script> and 👍",
        "Pay here: https://pay.example.com/a/ACC-1",
    ];
    let mut bodies: Vec<(&str, Value)> = texts
        .iter()
        .map(|text| {
            let body = MetaProvider::body(&outgoing(MessageChannel::Whatsapp, "+12015550134", None, text)).unwrap();
            ("TextBody", body)
        })
        .collect();
    let templates = [
        approved(
            meta_approval("payment_reminder", "en_US"),
            &["Zoë O'Brien", "310.00 USD", "2026-12-01"],
        ),
        approved(meta_approval("call_us", "es"), &[]),
    ];
    for message in &templates {
        bodies.push(("TemplateBody", MetaProvider::body(message).unwrap()));
    }
    if let Err(refused) = tsc_on_meta_bodies("meta.ts", &bodies) {
        panic!("Meta's SDK types refuse a body the provider builds:\n{refused}");
    }

    // The check is not lenient: a misspelt option, an unknown field, a missing recipient,
    // a template's language that is not one of WhatsApp's, and a parameter of a kind the
    // SDK does not declare are each refused.
    let text = bodies[0].1.clone();
    let mut misspelt = text.clone();
    misspelt["text"] = json!({"previewUrl": false, "body": "x"});
    let mut unknown = text.clone();
    unknown["priority"] = json!("high");
    let mut no_recipient = text.clone();
    no_recipient.as_object_mut().unwrap().remove("to");
    let template = bodies[texts.len()].1.clone();
    let mut language = template.clone();
    language["template"]["language"]["code"] = json!("english");
    let mut parameter = template.clone();
    parameter["template"]["components"][0]["parameters"][0] = json!({"type": "txt", "text": "x"});
    let refused = tsc_on_meta_bodies(
        "meta_refused.ts",
        &[
            ("TextBody", misspelt),
            ("TextBody", unknown),
            ("TextBody", no_recipient),
            ("TemplateBody", language),
            ("TemplateBody", parameter),
        ],
    )
    .unwrap_err();
    for what in ["previewUrl", "priority", "Property 'to' is missing", "\"english\"", "\"txt\""] {
        assert!(refused.contains(what), "tsc should refuse {what}:\n{refused}");
    }
    assert!(MetaProvider::body(&outgoing(MessageChannel::Sms, "+12015550134", None, "x")).is_err());
    assert!(
        MetaProvider::body(&approved(twilio_content_sid(), &[])).is_err(),
        "no Meta approval"
    );
}
