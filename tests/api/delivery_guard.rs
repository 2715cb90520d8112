//! Issue 75, items 1, 5, 6 and the rendered subject of item 13, replayed over HTTP
//! against the real database. The guard is asked again at every try of a queued
//! message: with the local provider failing the first try (a file stands where its
//! directory goes), a STOP (a signed Twilio inbound), a cease request, `do_not_email`,
//! a dispute or a deletion between the tries blocks the retry, with the rule, the
//! sender told and a note on the timeline; the end of the contact hours holds it until
//! they open; a manager's override covers the retries of its message for the rule it
//! lifted, until it expires. A message sent after a failed try keeps no stale error; a
//! rendered subject is one line whatever the debtor's name holds. Twilio's signature
//! covers the configured URL's explicit port; a STOP opts out every account with the
//! number, however many, deleted ones included.

use std::path::PathBuf;

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::helpers::{TestApp, TestUser, eventually, id_of, spawn_guarded_app_with, status_json};
use crate::webhooks::{TOKEN, twilio_signs};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const HOOK: &str = "https://arrears.example.com/api/v1/webhooks/twilio";

struct Desk {
    app: TestApp,
    manager: TestUser,
    agent: TestUser,
}

/// An app with the default contact policy, messages through the local provider, and
/// Twilio's webhook open at `hook`; its clock held.
async fn desk_at(hook: &str) -> Desk {
    let hook = hook.to_owned();
    let app = spawn_guarded_app_with(move |s| {
        s.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        s.twilio_auth_token = Some(TOKEN.to_owned());
        s.twilio_webhook_url = Some(hook);
    })
    .await;
    hold_clock(&app);
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    Desk { app, manager, agent }
}

async fn desk() -> Desk {
    desk_at(HOOK).await
}

/// A debtor's message from `from`, as Twilio posts it.
fn inbound(sid: &str, from: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", ACCOUNT_SID.to_owned()),
        ("MessageSid", sid.to_owned()),
        ("SmsStatus", "received".to_owned()),
        ("From", from.to_owned()),
        ("To", "+15005550006".to_owned()),
        ("Body", body.to_owned()),
    ]
}

impl Desk {
    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

    /// An account of the agent's with `phone`, in a zone where it is between `from` and
    /// `to` o'clock now.
    async fn account(&self, phone: &str, from: u32, to: u32) -> String {
        let body = json!({
            "debtor_name": "Zoë O'Brien",
            "phone": phone,
            "email": "zoe@example.com",
            "timezone": zone_where_it_is(self.now(), from, to),
            "assigned_agent_id": self.agent.id,
        });
        id_of(&self.app.account(&self.manager.token, body).await)
    }

    /// Sends `compose` on `account` as the agent: the message, queued.
    async fn send(&self, account: &str, compose: Value) -> String {
        let path = format!("/api/v1/accounts/{account}/messages");
        let (status, queued) = status_json(self.app.post(&path, Some(&self.agent.token), &compose).await).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        id_of(&queued)
    }

    async fn message(&self, id: &str) -> Value {
        let (status, body) = status_json(self.app.get(&format!("/api/v1/messages/{id}"), &self.manager.token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn message_when(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(what, || async { done(&self.message(id).await) }).await;
        self.message(id).await
    }

    /// Message `id`'s status, read from SQL (its account may be deleted).
    async fn status_in_sql(&self, id: &str) -> String {
        self.app.sql_value("SELECT status FROM account_messages WHERE id = $1", id).await
    }

    fn outbox(&self) -> PathBuf {
        self.app.settings.data_dir.join("messages")
    }

    /// What the local provider wrote for message `id`, if anything.
    fn written(&self, id: &str) -> Option<Value> {
        let bytes = std::fs::read(self.outbox().join(format!("{}.json", id.replace('-', "")))).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    /// The local provider cannot write: a file stands where its directory goes.
    fn provider_fails(&self) {
        std::fs::create_dir_all(&self.app.settings.data_dir).unwrap();
        let _ = std::fs::remove_dir_all(self.outbox());
        std::fs::write(self.outbox(), b"not a directory").unwrap();
    }

    fn provider_recovers(&self) {
        std::fs::remove_file(self.outbox()).unwrap();
    }

    /// Posts Twilio's `params` signed for `url` as Twilio's library signs them.
    async fn twilio(&self, url: &str, params: &[(&str, String)]) -> StatusCode {
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signature = twilio_signs(url, &borrowed);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&borrowed).finish();
        self.app
            .request(reqwest::Method::POST, "/api/v1/webhooks/twilio", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The debtor at `phone` texts STOP (Twilio's signed inbound).
    async fn stop(&self, sid: &str, phone: &str) {
        assert_eq!(self.twilio(HOOK, &inbound(sid, phone, "STOP")).await, StatusCode::OK);
    }

    async fn patch(&self, account: &str, body: Value) {
        let path = format!("/api/v1/accounts/{account}");
        let (status, answer) = status_json(self.app.patch(&path, &self.manager.token, &body).await).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn timeline(&self, account: &str) -> Vec<Value> {
        let path = format!("/api/v1/accounts/{account}/activities");
        let (status, page) = status_json(self.app.get(&path, &self.manager.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["data"].as_array().unwrap().clone()
    }
}

fn sms(text: &str) -> Value {
    json!({"channel": "sms", "text": text})
}

fn email(text: &str) -> Value {
    json!({"channel": "email", "subject": "Your balance", "text": text})
}

#[tokio::test]
async fn a_retry_the_guard_now_refuses_is_blocked_with_its_rule_the_sender_told_and_the_timeline_noted() {
    let d = desk().await;
    d.provider_fails();
    let stopped = d.account("+12015550101", 10, 19).await;
    let ceased = d.account("+12015550102", 10, 19).await;
    let no_email = d.account("+12015550103", 10, 19).await;
    let disputed = d.account("+12015550104", 10, 19).await;
    let deleted = d.account("+12015550105", 10, 19).await;
    let cases = [
        (&stopped, d.send(&stopped, sms("Please pay 11524.80 USD")).await, "do_not_call"),
        (
            &ceased,
            d.send(&ceased, email("Please pay 11524.80 USD")).await,
            "cease_communication",
        ),
        (&no_email, d.send(&no_email, email("Please pay 11524.80 USD")).await, "do_not_email"),
        (
            &disputed,
            d.send(&disputed, sms("Please pay 11524.80 USD")).await,
            "unverified_dispute",
        ),
        (&deleted, d.send(&deleted, sms("Please pay 11524.80 USD")).await, "account_deleted"),
    ];
    let mut next = d.now();
    for (_, id, _) in &cases {
        let first = d.message_when(id, "the first try fails", |m| m["attempts"] == 1).await;
        assert_eq!(first["status"], "queued", "{first}");
        next = next.max(first["next_attempt_at"].as_str().unwrap().parse().unwrap());
    }

    // Between the tries: the debtor texts STOP, asks that communication cease, refuses
    // email, disputes the debt; a manager deletes an account.
    d.stop("SM000000000000000000000000000000b1", "+12015550101").await;
    d.patch(&ceased, json!({"cease_communication": true})).await;
    d.patch(&no_email, json!({"do_not_email": true})).await;
    d.patch(&disputed, json!({"status": "disputed"})).await;
    let gone = d.app.delete(&format!("/api/v1/accounts/{deleted}"), &d.manager.token).await;
    assert!(gone.status().is_success(), "{}", gone.status());

    d.provider_recovers();
    d.app.clock.set(next);
    for (_, id, _) in &cases {
        eventually("the retry is judged", || async { d.status_in_sql(id).await == "blocked" }).await;
    }
    let restored = d
        .app
        .post(&format!("/api/v1/accounts/{deleted}/restore"), Some(&d.manager.token), &json!({}))
        .await;
    assert!(restored.status().is_success(), "{}", restored.status());

    for (account, id, rule) in &cases {
        let blocked = d.message(id).await;
        assert_eq!(
            (blocked["status"].as_str(), blocked["blocked_rule"].as_str()),
            (Some("blocked"), Some(*rule)),
            "{blocked}"
        );
        assert_eq!(blocked["attempts"], 1, "the provider was not asked again: {blocked}");
        assert!(
            blocked["blocked_at"].is_string() && blocked["next_attempt_at"].is_null(),
            "{blocked}"
        );
        assert!(blocked["sent_at"].is_null() && blocked["failed_at"].is_null(), "{blocked}");
        assert!(
            blocked["error"].as_str().unwrap().starts_with("not sent: "),
            "the error says why: {blocked}"
        );
        assert_eq!(d.written(id), None, "nothing reached the provider for {rule}");
        let note = d
            .timeline(account)
            .await
            .into_iter()
            .find(|a| a["type"] == "note")
            .unwrap_or_else(|| panic!("a note on the timeline for {rule}"));
        assert_eq!(note["agent_id"], Value::Null, "written by the sender, not a person");
        let notes = note["notes"].as_str().unwrap();
        assert!(notes.contains("was not sent") && notes.contains(rule), "{notes}");
    }
    let told = d.app.notifications_of(&d.agent, "message_failed").await;
    assert_eq!(told.len(), cases.len(), "{told:?}");
    for (account, id, rule) in &cases {
        let note = told
            .iter()
            .find(|n| n["data"]["id"] == id.as_str())
            .unwrap_or_else(|| panic!("the sender is told of {rule}: {told:?}"));
        assert_eq!(note["data"]["status"], "blocked");
        assert_eq!(note["data"]["blocked_rule"], *rule);
        assert_eq!(note["link"], format!("#/account/{account}"));
        assert!(note["title"].as_str().unwrap().contains("was not sent"), "{note}");
    }
}

#[tokio::test]
async fn a_retry_after_the_contact_hours_end_waits_for_them_and_the_sent_message_keeps_no_stale_error() {
    let d = desk().await;
    d.provider_fails();
    let zone = zone_where_it_is(d.now(), 20, 21);
    let evening = d.account("+12015550111", 20, 21).await;
    let id = d.send(&evening, sms("Please call us.")).await;
    let first = d.message_when(&id, "the first try fails", |m| m["attempts"] == 1).await;
    assert!(first["error"].as_str().unwrap().contains("messages"), "{first}");
    d.provider_recovers();

    // The retry falls due at 21:00 in the debtor's zone or later: it waits for 08:00.
    let tz: Tz = zone.parse().unwrap();
    let local = d.now().with_timezone(&tz);
    let nine = tz
        .from_local_datetime(&local.date_naive().and_hms_opt(21, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let retry_at: DateTime<Utc> = first["next_attempt_at"].as_str().unwrap().parse().unwrap();
    d.app.clock.set(retry_at.max(nine));
    let morning = tz
        .from_local_datetime(&(local.date_naive() + Duration::days(1)).and_hms_opt(8, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let held = d
        .message_when(&id, "the retry waits for the hours", |m| {
            m["next_attempt_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()) == Some(morning)
        })
        .await;
    assert_eq!(
        (held["status"].as_str(), held["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "a wait is not a try: {held}"
    );
    assert!(held["error"].as_str().unwrap().contains("outside the allowed hours"), "{held}");
    assert_eq!(d.written(&id), None, "nothing went at night");

    d.app.clock.set(morning);
    let sent = d.message_when(&id, "sent when the hours open", |m| m["status"] == "sent").await;
    assert_eq!(sent["attempts"], 2);
    assert_eq!(sent["error"], Value::Null, "no stale error on a sent message: {sent}");
    assert!(d.written(&id).is_some());
}

#[tokio::test]
async fn an_override_used_when_the_message_was_queued_covers_its_retries_for_that_rule_until_it_expires() {
    let d = desk().await;
    let late = d.account("+12015550121", 21, 24).await;
    let grant = || async {
        let path = format!("/api/v1/accounts/{late}/contact-overrides");
        let body = json!({"channel": "sms", "reason": "The debtor asked to be texted tonight"});
        d.app.create(&d.manager.token, &path, &body).await
    };
    d.provider_fails();

    // Covered: the retry 30 s later, inside the override's 60 minutes, for the same rule.
    grant().await;
    let covered = d.send(&late, sms("As agreed, here is the link.")).await;
    let first = d.message_when(&covered, "the first try fails", |m| m["attempts"] == 1).await;
    d.provider_recovers();
    d.app.clock.set(first["next_attempt_at"].as_str().unwrap().parse().unwrap());
    let sent = d.message_when(&covered, "the retry is sent", |m| m["status"] == "sent").await;
    assert_eq!(sent["error"], Value::Null, "{sent}");

    // Expired: the retry after the override's 60 minutes waits for the hours.
    d.provider_fails();
    grant().await;
    let expired = d.send(&late, sms("As agreed, here is the link.")).await;
    d.message_when(&expired, "the first try fails", |m| m["attempts"] == 1).await;
    d.provider_recovers();
    d.app.clock.set(d.now() + Duration::minutes(61));
    let held = d
        .message_when(&expired, "the retry waits", |m| {
            m["error"].as_str().is_some_and(|e| e.contains("outside the allowed hours"))
        })
        .await;
    assert_eq!((held["status"].as_str(), held["attempts"].as_i64()), (Some("queued"), Some(1)));
    assert_eq!(d.written(&expired), None);

    // Another rule: a STOP between the tries is not what the manager lifted.
    d.provider_fails();
    grant().await;
    let stopped = d.send(&late, sms("As agreed, here is the link.")).await;
    let first = d.message_when(&stopped, "the first try fails", |m| m["attempts"] == 1).await;
    d.stop("SM000000000000000000000000000000c1", "+12015550121").await;
    d.provider_recovers();
    d.app.clock.set(first["next_attempt_at"].as_str().unwrap().parse().unwrap());
    let blocked = d.message_when(&stopped, "the retry is blocked", |m| m["status"] == "blocked").await;
    assert_eq!(blocked["blocked_rule"], "do_not_call");
    assert_eq!(d.written(&stopped), None);
}

#[tokio::test]
async fn a_rendered_subject_is_one_line_whatever_the_debtors_name_holds() {
    let d = desk().await;
    let account = d.account("+12015550131", 10, 19).await;
    // A name written before names were checked (or straight into SQL).
    sqlx::query("UPDATE accounts SET debtor_name = $2 WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&account).unwrap())
        .bind("Zoë\r\nBcc: everyone@example.com\u{1b}[2J\u{202e}")
        .execute(&d.app.pool)
        .await
        .unwrap();
    let compose = json!({"channel": "email", "subject": "Your balance, {{debtor_name}}", "text": "It is {{balance}}."});
    let path = format!("/api/v1/accounts/{account}/messages/preview");
    let (status, preview) = status_json(d.app.post(&path, Some(&d.agent.token), &compose).await).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let expected = "Your balance, Zoë Bcc: everyone@example.com [2J";
    assert_eq!(preview["subject"], expected);
    let id = d.send(&account, compose).await;
    let sent = d.message_when(&id, "the email is sent", |m| m["status"] == "sent").await;
    assert_eq!(sent["subject"], expected);
    assert_eq!(d.written(&id).unwrap()["subject"], expected);

    // A message queued before subjects were made one line goes out as one line too.
    d.provider_fails();
    let id = d.send(&account, email("It is {{balance}}.")).await;
    let first = d.message_when(&id, "the first try fails", |m| m["attempts"] == 1).await;
    sqlx::query("UPDATE account_messages SET subject = $2 WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .bind("Your balance\r\nBcc: everyone@example.com")
        .execute(&d.app.pool)
        .await
        .unwrap();
    d.provider_recovers();
    d.app.clock.set(first["next_attempt_at"].as_str().unwrap().parse().unwrap());
    d.message_when(&id, "the email is sent", |m| m["status"] == "sent").await;
    assert_eq!(d.written(&id).unwrap()["subject"], "Your balance Bcc: everyone@example.com");
}

#[tokio::test]
async fn twilios_signature_covers_the_explicit_port_of_the_configured_url_and_no_other() {
    let hook = "https://arrears.example.com:8443/api/v1/webhooks/twilio";
    let d = desk_at(hook).await;
    let report = |sid: &str| {
        vec![
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("MessageSid", sid.to_owned()),
            ("MessageStatus", "delivered".to_owned()),
        ]
    };
    assert_eq!(
        d.twilio(hook, &report("SM000000000000000000000000000000d1")).await,
        StatusCode::OK,
        "the genuine signature, over the URL Twilio called"
    );
    for (other, sid) in [
        (
            "https://arrears.example.com/api/v1/webhooks/twilio",
            "SM000000000000000000000000000000d2",
        ),
        (
            "https://arrears.example.com:443/api/v1/webhooks/twilio",
            "SM000000000000000000000000000000d3",
        ),
        (
            "https://arrears.example.com:9443/api/v1/webhooks/twilio",
            "SM000000000000000000000000000000d4",
        ),
    ] {
        assert_eq!(d.twilio(other, &report(sid)).await, StatusCode::FORBIDDEN, "signed for {other}");
    }
    // A STOP through the port opts the debtor out.
    let account = d.account("+12015550141", 10, 19).await;
    let stop = inbound("SM000000000000000000000000000000d5", "+12015550141", "STOP");
    assert_eq!(d.twilio(hook, &stop).await, StatusCode::OK);
    assert_eq!(d.app.get_account(&d.manager.token, &account).await["do_not_call"], true);

    // Without a port, as Twilio's own validator does, the default one may be written or not.
    let d = desk().await;
    let with_default = "https://arrears.example.com:443/api/v1/webhooks/twilio";
    assert_eq!(d.twilio(HOOK, &report("SM000000000000000000000000000000e1")).await, StatusCode::OK);
    assert_eq!(
        d.twilio(with_default, &report("SM000000000000000000000000000000e2")).await,
        StatusCode::OK
    );
    let other_port = "https://arrears.example.com:8443/api/v1/webhooks/twilio";
    assert_eq!(
        d.twilio(other_port, &report("SM000000000000000000000000000000e3")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_stop_opts_out_every_account_with_the_number_however_many_deleted_ones_included() {
    let d = desk().await;
    let phone = "+12015550151";
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO accounts (id, account_number, debtor_name, phone, original_balance, current_balance, currency, assigned_agent_id)
         SELECT gen_random_uuid(), 'STOP-' || g, 'Shared Number ' || g, $1, 100, 100, 'USD', $2
         FROM generate_series(1, 55) g RETURNING id",
    )
    .bind(phone)
    .bind(d.agent.id)
    .fetch_all(&d.app.pool)
    .await
    .unwrap();
    // The account changed least recently, deleted: the first a bounded lookup leaves out.
    let deleted = ids[0].to_string();
    sqlx::query("UPDATE accounts SET updated_at = now() - interval '1 day' WHERE id = $1")
        .bind(ids[0])
        .execute(&d.app.pool)
        .await
        .unwrap();
    let gone = d.app.delete(&format!("/api/v1/accounts/{deleted}"), &d.manager.token).await;
    assert!(gone.status().is_success(), "{}", gone.status());

    d.stop("SM000000000000000000000000000000f1", phone).await;
    let textable: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE phone = $1 AND NOT do_not_call")
        .bind(phone)
        .fetch_one(&d.app.pool)
        .await
        .unwrap();
    assert_eq!(textable, 0, "every account with the number is opted out");

    // Restored, the deleted one stays opted out, and the guard refuses a text on it.
    let restored = d
        .app
        .post(&format!("/api/v1/accounts/{deleted}/restore"), Some(&d.manager.token), &json!({}))
        .await;
    assert!(restored.status().is_success(), "{}", restored.status());
    assert_eq!(d.app.get_account(&d.manager.token, &deleted).await["do_not_call"], true);
    let path = format!("/api/v1/accounts/{deleted}/messages");
    let (status, refused) = status_json(d.app.post(&path, Some(&d.agent.token), &sms("Hello")).await).await;
    assert_eq!(
        (status, refused["rule"].as_str()),
        (StatusCode::CONFLICT, Some("do_not_call")),
        "{refused}"
    );
}
