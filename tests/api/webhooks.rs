//! Twilio's and Meta's webhooks over HTTP against the real database. Twilio's requests are signed by
//! Twilio's own Node library (`getExpectedTwilioSignature` of the `twilio` package,
//! tests/providers/sign.js), so the service's check is held to Twilio's algorithm, not
//! to a copy of it. Delivery reports move a sent message forward once (a replay is
//! refused, an older report changes nothing, one that outruns the sender is held);
//! incoming messages land on the accounts with the sender's number and tell their
//! agent; STOP sets `do_not_call` and the guard then refuses texts; a message from an
//! unknown number waits for a manager; unsigned, mis-signed, foreign and oversized
//! requests are refused, and an unconfigured service has no such route. Meta's are
//! signed with Python's own hmac module (`X-Hub-Signature-256`); its subscription
//! answers only the verify token.
//!
//! Messages are sent through the Twilio provider to a stand-in that hands out a new
//! SID per message (Prism answers every message with the same example SID); it
//! refuses what Twilio's description refuses on the fields it reads (the request
//! contract itself is checked against the description in providers.rs).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arrears::config::{Settings, SmsProvider, WhatsappProvider};
use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use warp::Filter;

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::helpers::{TestApp, TestUser, eventually, id_of, spawn_guarded_app, spawn_guarded_app_with, status_json};
use crate::providers::create_message_fields;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const TOKEN: &str = "twilio-auth-token-for-tests";
const HOOK: &str = "https://arrears.example.com/api/v1/webhooks/twilio";
const DEBTOR: &str = "+12015550134";

/// The SID the stand-in gives its `n`-th message (from 1).
fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

/// A Twilio stand-in for sending: answers each message 201 with a new SID. Like Twilio's
/// description it refuses a request without basic auth, not form-encoded, without `To`,
/// or with a field the description does not list.
async fn twilio_stand_in() -> String {
    let sent = Arc::new(AtomicU32::new(0));
    let known = create_message_fields();
    let route = warp::post()
        .and(warp::path!("2010-04-01" / "Accounts" / String / "Messages.json"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .map(
            move |account: String, auth: Option<String>, content_type: Option<String>, body: bytes::Bytes| {
                let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
                let refusal = if account != ACCOUNT_SID || !auth.is_some_and(|a| a.starts_with("Basic ")) {
                    Some((401, "authenticate"))
                } else if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
                    Some((415, "form-encoded only"))
                } else if !form.contains_key("To") || form.keys().any(|k| !known.contains(k)) {
                    Some((422, "off the description"))
                } else {
                    None
                };
                let (status, body) = match refusal {
                    Some((status, why)) => (status, json!({"code": 20001, "message": why, "status": status})),
                    None => (
                        201,
                        json!({"sid": sid(sent.fetch_add(1, Ordering::SeqCst) + 1), "status": "queued"}),
                    ),
                };
                warp::reply::with_status(warp::reply::json(&body), warp::http::StatusCode::from_u16(status).unwrap())
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    url
}

struct Hook {
    app: TestApp,
    manager: TestUser,
    agent: TestUser,
}

/// An app `configure`d, its clock held, with a manager and an agent.
async fn hook_with(configure: impl FnOnce(&mut Settings)) -> Hook {
    let app = spawn_guarded_app_with(configure).await;
    hold_clock(&app);
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    Hook { app, manager, agent }
}

/// Texts and WhatsApp messages through Twilio (a stand-in), its webhook open.
async fn hook() -> Hook {
    let stand_in = twilio_stand_in().await;
    hook_with(move |s| {
        s.sms_provider = SmsProvider::Twilio;
        s.whatsapp_provider = WhatsappProvider::Twilio;
        s.twilio_api_url = stand_in;
        s.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        s.twilio_auth_token = Some(TOKEN.to_owned());
        s.twilio_sms_from = Some("+15005550006".to_owned());
        s.twilio_whatsapp_from = Some("+14155238886".to_owned());
        s.twilio_webhook_url = Some(HOOK.to_owned());
    })
    .await
}

/// `X-Twilio-Signature` for `params` posted to `url`, as Twilio's own library makes it
/// (tests/providers/sign.js) with the tests' auth token.
pub(crate) fn twilio_signs(url: &str, params: &[(&str, &str)]) -> String {
    let params: serde_json::Map<String, Value> = params.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers/sign.js");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(json!({"token": TOKEN, "url": url, "params": params}).to_string())
        .output()
        .expect("node runs tests/providers/sign.js (bin/test installs its packages)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

impl Hook {
    async fn account(&self, overrides: Value) -> Value {
        let mut body = json!({
            "debtor_name": "Zoë O'Brien",
            "phone": DEBTOR,
            "timezone": zone_where_it_is(self.app.clock.now(), 10, 19),
            "assigned_agent_id": self.agent.id,
        });
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.app.account(&self.manager.token, body).await
    }

    /// Posts `params` to the webhook with `signature`.
    async fn post_signed(&self, params: &[(&str, &str)], signature: Option<&str>) -> (StatusCode, String) {
        let mut request = self
            .app
            .request(reqwest::Method::POST, "/api/v1/webhooks/twilio", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(params));
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Posts `params` signed as Twilio signs them.
    async fn post(&self, params: &[(&str, &str)]) -> (StatusCode, String) {
        self.post_signed(params, Some(&twilio_signs(HOOK, params))).await
    }

    async fn status(&self, sid: &str, status: &str) -> (StatusCode, String) {
        self.post(&[
            ("AccountSid", ACCOUNT_SID),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("From", "+15005550006"),
            ("To", DEBTOR),
            ("ApiVersion", "2010-04-01"),
        ])
        .await
    }

    async fn inbound(&self, sid: &str, from: &str, body: &str) -> (StatusCode, String) {
        self.post(&[
            ("AccountSid", ACCOUNT_SID),
            ("MessageSid", sid),
            ("SmsMessageSid", sid),
            ("SmsStatus", "received"),
            ("From", from),
            ("To", "+15005550006"),
            ("Body", body),
            ("NumMedia", "0"),
            ("ApiVersion", "2010-04-01"),
        ])
        .await
    }

    /// Sends a text message on `account` as the agent and answers it once it is sent.
    async fn send(&self, account: &str) -> Value {
        let path = format!("/api/v1/accounts/{account}/messages");
        let (status, queued) = status_json(
            self.app
                .post(
                    &path,
                    Some(&self.agent.token),
                    &json!({"channel": "sms", "text": "Please call us."}),
                )
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let id = queued["id"].as_str().unwrap().to_owned();
        eventually("the message is sent", || async { self.message(&id).await["status"] == "sent" }).await;
        self.message(&id).await
    }

    async fn message(&self, id: &str) -> Value {
        status_json(self.app.get(&format!("/api/v1/messages/{id}"), &self.agent.token).await)
            .await
            .1
    }

    async fn activities(&self, account: &str) -> Vec<Value> {
        let (status, page) = status_json(
            self.app
                .get(&format!("/api/v1/accounts/{account}/activities"), &self.manager.token)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["data"].as_array().unwrap().clone()
    }
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

#[tokio::test]
async fn delivery_reports_move_a_sent_message_forward_once_and_tell_its_sender_when_it_was_not_delivered() {
    let h = hook().await;
    let account = id_of(&h.account(json!({})).await);
    let sent = h.send(&account).await;
    assert_eq!(sent["provider"], "twilio");
    assert_eq!(sent["provider_message_id"], sid(1));
    assert_eq!(sent["delivery"], Value::Null);
    let id = sent["id"].as_str().unwrap();

    let (status, body) = h.status(&sid(1), "sending").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<Response></Response>"), "an empty TwiML answer: {body}");
    assert_eq!(h.message(id).await["delivery"], Value::Null, "sending says nothing new");

    assert_eq!(h.status(&sid(1), "delivered").await.0, StatusCode::OK);
    let delivered = h.message(id).await;
    assert_eq!(delivered["delivery"], "delivered");
    assert!(delivered["delivery_at"].is_string());

    // A replay is refused and changes nothing; an older report arriving late is taken
    // but does not move the message back.
    let (status, body) = h.status(&sid(1), "delivered").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(h.status(&sid(1), "sent").await.0, StatusCode::OK);
    assert_eq!(h.message(id).await["delivery"], "delivered");
    assert_eq!(h.status(&sid(1), "read").await.0, StatusCode::OK);
    assert_eq!(h.message(id).await["delivery"], "read");
    assert!(h.app.notifications_of(&h.agent, "message_failed").await.is_empty());

    // Not delivered: kept with Twilio's error code, and whoever sent it is told.
    let second = h.send(&account).await;
    let second_sid = sid(2);
    let report = [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", second_sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    assert_eq!(h.post(&report).await.0, StatusCode::OK);
    let undelivered = h.message(second["id"].as_str().unwrap()).await;
    assert_eq!(undelivered["delivery"], "undelivered");
    assert_eq!(undelivered["delivery_error"], "Twilio error 30003");
    let told = h.app.notifications_of(&h.agent, "message_failed").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["title"], "A text message was not delivered");
    assert_eq!(told[0]["link"], format!("#/account/{account}"));
}

#[tokio::test]
async fn a_report_that_outruns_the_sender_is_held_and_applied_when_the_sending_is_recorded() {
    let h = hook().await;
    let account = id_of(&h.account(json!({})).await);
    // Twilio may report before the sender has committed its answer: nothing has this SID yet.
    assert_eq!(h.status(&sid(1), "sent").await.0, StatusCode::OK);
    assert_eq!(h.status(&sid(1), "delivered").await.0, StatusCode::OK);
    let sent = h.send(&account).await;
    assert_eq!(sent["provider_message_id"], sid(1));
    assert_eq!(sent["delivery"], "delivered", "the furthest held report: {sent}");
}

#[tokio::test]
async fn an_incoming_message_lands_on_each_account_with_the_number_and_tells_its_agent() {
    let h = hook().await;
    let first = id_of(&h.account(json!({"account_number": "IN-1"})).await);
    let second = id_of(&h.account(json!({"account_number": "IN-2", "assigned_agent_id": null})).await);
    let other = id_of(&h.account(json!({"account_number": "IN-3", "phone": "+12015550199"})).await);

    let (status, body) = h
        .inbound("SM00000000000000000000000000000a01", DEBTOR, "I can pay on Friday <b>ok</b>")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for account in [&first, &second] {
        let activities = h.activities(account).await;
        assert_eq!(activities.len(), 1, "{activities:?}");
        assert_eq!(activities[0]["type"], "sms");
        assert_eq!(activities[0]["direction"], "inbound");
        assert_eq!(activities[0]["notes"], "I can pay on Friday <b>ok</b>");
        assert_eq!(activities[0]["agent_id"], Value::Null, "logged by no one: the debtor wrote");
    }
    assert!(h.activities(&other).await.is_empty());
    let told = h.app.notifications_of(&h.agent, "message_received").await;
    assert_eq!(told.len(), 1, "only the assigned account's agent: {told:?}");
    assert_eq!(told[0]["title"], "A text message from Zoë O'Brien");
    assert_eq!(told[0]["link"], format!("#/account/{first}"));

    // A replay lands nowhere twice.
    let (status, _) = h
        .inbound("SM00000000000000000000000000000a01", DEBTOR, "I can pay on Friday <b>ok</b>")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(h.activities(&first).await.len(), 1);

    // WhatsApp arrives as `whatsapp:+<number>` and is logged as a WhatsApp message.
    let (status, _) = h
        .inbound("SM00000000000000000000000000000a02", &format!("whatsapp:{DEBTOR}"), "hola")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.activities(&first).await[0]["type"], "whatsapp");
}

#[tokio::test]
async fn stop_sets_do_not_call_on_the_debtors_accounts_and_the_guard_then_refuses_texts() {
    let h = hook().await;
    let account = id_of(&h.account(json!({})).await);
    h.send(&account).await;

    let (status, body) = h.inbound("SM00000000000000000000000000000b01", DEBTOR, " Stop ").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = status_json(h.app.get(&format!("/api/v1/accounts/{account}"), &h.agent.token).await).await;
    assert_eq!(read["do_not_call"], true, "{read}");
    let told = h.app.notifications_of(&h.agent, "message_received").await;
    assert_eq!(told[0]["data"]["opt_out"], true, "{told:?}");

    let path = format!("/api/v1/accounts/{account}/messages");
    let (status, refused) = status_json(
        h.app
            .post(&path, Some(&h.agent.token), &json!({"channel": "sms", "text": "One more reminder"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "contact_blocked");
    assert_eq!(refused["rule"], "do_not_call");
    // Email is another channel: the debtor stopped texts.
    let (status, _) = status_json(
        h.app
            .post(
                &path,
                Some(&h.agent.token),
                &json!({"channel": "email", "subject": "Hi", "text": "Hello"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_message_from_an_unknown_number_waits_for_a_manager() {
    let h = hook().await;
    let (status, _) = h
        .inbound("SM00000000000000000000000000000c01", "+14155550100", "who is this?")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = status_json(h.app.get("/api/v1/inbound-messages/unmatched", &h.manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    let first = &page["data"][0];
    assert_eq!(first["sender"], "+14155550100");
    assert_eq!(first["body"], "who is this?");
    assert_eq!(first["account_ids"], json!([]));
    for role in [Role::Agent, Role::Viewer] {
        let user = h.app.user(role).await;
        let (status, _) = status_json(h.app.get("/api/v1/inbound-messages/unmatched", &user.token).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
    }
}

#[tokio::test]
async fn unsigned_mis_signed_foreign_and_oversized_webhooks_are_refused_and_change_nothing() {
    let h = hook().await;
    let account = id_of(&h.account(json!({})).await);
    let params = [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", "SM00000000000000000000000000000d01"),
        ("SmsStatus", "received"),
        ("From", DEBTOR),
        ("Body", "STOP"),
    ];
    let (status, body) = h.post_signed(&params, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Signed for another URL, or with the body changed after signing.
    let (status, _) = h
        .post_signed(&params, Some(&twilio_signs("https://attacker.example.com/hook", &params)))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut changed = params;
    changed[4] = ("Body", "hello");
    let (status, _) = h.post_signed(&changed, Some(&twilio_signs(HOOK, &params))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Signed with our token but for another Twilio account.
    let mut foreign = params;
    foreign[0] = ("AccountSid", "AC99999999999999999999999999999999");
    let (status, _) = h.post(&foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, read) = status_json(h.app.get(&format!("/api/v1/accounts/{account}"), &h.agent.token).await).await;
    assert_eq!(read["do_not_call"], false, "nothing refused was taken: {read}");
    assert!(h.activities(&account).await.is_empty());

    let json_body = h
        .app
        .request(reqwest::Method::POST, "/api/v1/webhooks/twilio", None)
        .header("content-type", "application/json")
        .header("x-twilio-signature", twilio_signs(HOOK, &[]))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = "x".repeat(70 * 1024);
    let (status, _) = h.post_signed(&[("Body", huge.as_str())], Some("c2ln")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Closed unless the operator configures Twilio.
    let plain = spawn_guarded_app().await;
    let response = plain
        .request(reqwest::Method::POST, "/api/v1/webhooks/twilio", None)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", twilio_signs(HOOK, &params))
        .body(form(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "meta-app-secret-for-tests";
const VERIFY_TOKEN: &str = "meta-verify-token-for-tests";
const META_TOKEN: &str = "meta-access-token-for-tests";

/// A Graph API stand-in for sending.
#[derive(Clone, Default)]
struct Graph {
    url: String,
    /// The numbers (E.164) whose 24-hour window is open: the test opens one when the
    /// debtor writes.
    open: Arc<Mutex<HashSet<String>>>,
    /// The bodies it took, in order.
    took: Arc<Mutex<Vec<Value>>>,
}

/// Answers each WhatsApp message it takes with a new message id, as Meta does; refuses a
/// request without the bearer token, not JSON, or not the text or template message body
/// Meta's SDK types describe (providers.rs type-checks those bodies against them), and,
/// as Meta does, a text to a number whose 24-hour window is not open (131047).
async fn graph_stand_in() -> Graph {
    let sent = Arc::new(AtomicU32::new(0));
    let graph = Graph::default();
    let (open, took) = (graph.open.clone(), graph.took.clone());
    let route = warp::post()
        .and(warp::path!(String / "messages"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .map(move |number: String, auth: Option<String>, body: Value| {
            let keys: Vec<&str> = body.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            let text = keys == ["messaging_product", "recipient_type", "text", "to", "type"]
                && body["type"] == "text"
                && body["text"]["body"].is_string();
            let template = keys == ["messaging_product", "recipient_type", "template", "to", "type"]
                && body["type"] == "template"
                && body["template"]["name"].is_string()
                && body["template"]["language"]["code"].is_string();
            let (status, answer) = if number != PHONE_NUMBER_ID || auth.as_deref() != Some(&format!("Bearer {META_TOKEN}")) {
                (401, json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}))
            } else if !text && !template {
                (400, json!({"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}}))
            } else if text && !open.lock().unwrap().contains(body["to"].as_str().unwrap_or_default()) {
                (400, json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047}}))
            } else {
                took.lock().unwrap().push(body.clone());
                let n = sent.fetch_add(1, Ordering::SeqCst) + 1;
                let to = body["to"].as_str().unwrap().trim_start_matches('+').to_owned();
                (200, json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": to}], "messages": [{"id": wamid(n)}]}))
            };
            warp::reply::with_status(warp::reply::json(&answer), warp::http::StatusCode::from_u16(status).unwrap())
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Graph { url, ..graph }
}

fn wamid(n: u32) -> String {
    format!("wamid.TEST{n:08}")
}

/// `X-Hub-Signature-256` for `body`, made with Python's own hmac module.
fn meta_signs(body: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import hashlib, hmac, sys; print('sha256=' + hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())"])
        .args([APP_SECRET, body])
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// WhatsApp messages through Meta's Cloud API (a stand-in), its webhook open.
async fn meta_hook() -> (Hook, Graph) {
    let graph = graph_stand_in().await;
    let url = graph.url.clone();
    let hook = hook_with(move |s| {
        s.whatsapp_provider = WhatsappProvider::Meta;
        s.meta_graph_url = url;
        s.meta_phone_number_id = Some(PHONE_NUMBER_ID.to_owned());
        s.meta_access_token = Some(META_TOKEN.to_owned());
        s.meta_app_secret = Some(APP_SECRET.to_owned());
        s.meta_verify_token = Some(VERIFY_TOKEN.to_owned());
    })
    .await;
    (hook, graph)
}

impl Hook {
    async fn post_meta(&self, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .app
            .request(reqwest::Method::POST, "/api/v1/webhooks/meta", None)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        status_json(request.send().await.unwrap()).await
    }

    /// The debtor writes `text` on WhatsApp from `DEBTOR` (message `id`), signed as Meta
    /// signs it; the stand-in opens the debtor's window as Meta would.
    async fn debtor_writes(&self, graph: &Graph, id: &str, text: &str) {
        let body = meta_webhook(
            PHONE_NUMBER_ID,
            json!([{"from": DEBTOR.trim_start_matches('+'), "id": id, "timestamp": "1749416380", "type": "text", "text": {"body": text}}]),
            json!([]),
        );
        let (status, taken) = self.post_meta(&body, Some(&meta_signs(&body))).await;
        assert_eq!((status, taken), (StatusCode::OK, json!({"taken": 1})));
        graph.open.lock().unwrap().insert(DEBTOR.to_owned());
    }

    /// Sends `compose` on `account` as the agent; the status and body answered.
    async fn compose(&self, account: &str, compose: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/accounts/{account}/messages");
        status_json(self.app.post(&path, Some(&self.agent.token), &compose).await).await
    }
}

/// A webhook body as Meta sends them (the shape of its published examples), for
/// `phone_number_id`, with `messages` and `statuses`.
fn meta_webhook(phone_number_id: &str, messages: Value, statuses: Value) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Zoë O'Brien"}, "wa_id": "12015550134"}],
        "messages": messages,
        "statuses": statuses,
    }}]}]})
    .to_string()
}

#[tokio::test]
async fn metas_webhook_is_subscribed_with_the_verify_token_only() {
    let (h, _) = meta_hook().await;
    let subscribe = |token: &str| format!("/api/v1/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444");
    let response = h
        .app
        .request(reqwest::Method::GET, &subscribe(VERIFY_TOKEN), None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "1158201444");
    let response = h.app.request(reqwest::Method::GET, &subscribe("guess"), None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let plain = spawn_guarded_app().await;
    let response = plain
        .request(reqwest::Method::GET, &subscribe(VERIFY_TOKEN), None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn meta_reports_signed_with_the_app_secret_move_a_whatsapp_message_and_land_a_stop() {
    let (h, graph) = meta_hook().await;
    let account = id_of(&h.account(json!({})).await);
    h.debtor_writes(&graph, "wamid.IN0000", "Who is this?").await;
    let (status, queued) = h.compose(&account, json!({"channel": "whatsapp", "text": "Please call us."})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();
    eventually("the message is sent", || async { h.message(&id).await["status"] == "sent" }).await;
    let sent = h.message(&id).await;
    assert_eq!(sent["provider"], "meta");
    assert_eq!(sent["provider_message_id"], wamid(1));

    let body = meta_webhook(
        PHONE_NUMBER_ID,
        json!([{"from": "12015550134", "id": "wamid.IN0001", "timestamp": "1749416383", "type": "text", "text": {"body": "STOP"}}]),
        json!([{"id": wamid(1), "status": "delivered", "timestamp": "1749416384", "recipient_id": "12015550134"}]),
    );
    let (status, taken) = h.post_meta(&body, Some(&meta_signs(&body))).await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken, json!({"taken": 2}));
    assert_eq!(h.message(&id).await["delivery"], "delivered");
    let (_, read) = status_json(h.app.get(&format!("/api/v1/accounts/{account}"), &h.agent.token).await).await;
    assert_eq!(read["do_not_call"], true, "{read}");
    let activities = h.activities(&account).await;
    assert!(
        activities
            .iter()
            .any(|a| a["type"] == "whatsapp" && a["direction"] == "inbound" && a["notes"] == "STOP"),
        "{activities:?}"
    );

    // A replay is refused; so is a body changed after signing, or unsigned.
    assert_eq!(h.post_meta(&body, Some(&meta_signs(&body))).await.0, StatusCode::CONFLICT);
    let changed = body.replace("STOP", "HELLO");
    assert_eq!(h.post_meta(&changed, Some(&meta_signs(&body))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.post_meta(&body, None).await.0, StatusCode::FORBIDDEN);
    // Another phone number of the same app: signed, taken, nothing of ours in it.
    let other = meta_webhook(
        "999999999",
        json!([{"from": "12015550134", "id": "wamid.IN0002", "timestamp": "1749416385", "type": "text", "text": {"body": "hi"}}]),
        json!([]),
    );
    let (status, taken) = h.post_meta(&other, Some(&meta_signs(&other))).await;
    assert_eq!((status, taken), (StatusCode::OK, json!({"taken": 0})));
    assert_eq!(h.activities(&account).await.len(), activities.len());
}

#[tokio::test]
async fn outside_whatsapps_24_hour_window_only_a_template_meta_approved_goes() {
    let (h, graph) = meta_hook().await;
    let account = id_of(&h.account(json!({"due_date": "2026-12-01"})).await);
    let text = json!({"channel": "whatsapp", "text": "Please call us."});

    // The debtor never wrote: a text is refused before it is kept or sent.
    let (status, refused) = h.compose(&account, text.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "whatsapp_window_closed");
    assert_eq!(refused["window_closed_at"], Value::Null);
    assert!(refused["detail"].as_str().unwrap().contains("never written"), "{refused}");
    assert!(h.activities(&account).await.is_empty(), "a refused message logs nothing");

    // They write; a text goes for 24 hours, and no longer.
    h.debtor_writes(&graph, "wamid.IN0100", "Hello?").await;
    let wrote_at = h.app.clock.now();
    h.app.clock.advance(chrono::Duration::hours(23));
    assert_eq!(h.compose(&account, text.clone()).await.0, StatusCode::ACCEPTED);
    h.app.clock.advance(chrono::Duration::hours(1));
    let (status, refused) = h.compose(&account, text.clone()).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("whatsapp_window_closed"))
    );
    let closed_at = chrono::DateTime::parse_from_rfc3339(refused["window_closed_at"].as_str().unwrap()).unwrap();
    assert_eq!(closed_at, wrote_at + chrono::Duration::hours(24));

    // A template approved only at Twilio does not go through Meta; one Meta approved does,
    // as Meta's template message with its placeholders' values in order.
    let template = |name: &str, approval: Value| {
        json!({"name": name, "channel": "whatsapp", "approval": approval,
            "body": "Hi {{debtor_name}}, {{balance}} was due {{due_date}}. Reply to talk to us."})
    };
    let hook = &h;
    let create = |body: Value| async move {
        let (status, created) = status_json(hook.app.post("/api/v1/message-templates", Some(&hook.manager.token), &body).await).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    };
    let twilio_only = create(template(
        "Twilio reminder",
        json!({"twilio_content_sid": "HX0123456789abcdef0123456789abcdef"}),
    ))
    .await;
    let (status, refused) = h
        .compose(&account, json!({"channel": "whatsapp", "template_id": twilio_only["id"]}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("no approval for the meta provider"),
        "{refused}"
    );

    let approved = create(template(
        "Meta reminder",
        json!({"meta_name": "payment_reminder", "meta_language": "en_US"}),
    ))
    .await;
    assert_eq!(approved["approval_body"], "Hi {{1}}, {{2}} was due {{3}}. Reply to talk to us.");
    let (status, queued) = h
        .compose(&account, json!({"channel": "whatsapp", "template_id": approved["id"]}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let parameters = json!(["Zoë O'Brien", "1250.00 USD", "2026-12-01"]);
    assert_eq!(queued["approved_template"]["parameters"], parameters);
    let id = queued["id"].as_str().unwrap().to_owned();
    eventually("the template message is sent", || async {
        h.message(&id).await["status"] == "sent"
    })
    .await;
    let took = graph.took.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        took["template"],
        json!({"name": "payment_reminder", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Zoë O'Brien"}, {"type": "text", "text": "1250.00 USD"}, {"type": "text", "text": "2026-12-01"}]}]})
    );
}
