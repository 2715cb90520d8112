//! Messages to debtors over HTTP against the real database: the compliance guard decides
//! first, exactly as for a logged contact; an allowed message is logged on the timeline
//! and queued, and the sender hands it to the local provider, which writes it under
//! DATA_DIR; a provider that fails is retried with backoff and the message fails after
//! its last try; templates, previews, idempotent sends, and who may do what.

use std::path::PathBuf;

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::documents::uploaded;
use crate::helpers::{TestApp, TestUser, assert_problem, eventually, id_of, spawn_guarded_app_with, status_json};

const LINK: &str = "https://pay.example.com/a/{account_number}";

struct Desk {
    app: TestApp,
    manager: TestUser,
    agent: TestUser,
}

async fn desk() -> Desk {
    let app = spawn_guarded_app_with(|s| s.payment_link_template = Some(LINK.to_owned())).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    hold_clock(&app);
    Desk { app, manager, agent }
}

impl Desk {
    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

    /// An account of the agent's in a zone where it is daytime now, unless `overrides`
    /// says otherwise.
    async fn account(&self, overrides: Value) -> Value {
        let mut body = json!({
            "debtor_name": "Zoë O'Brien",
            "timezone": zone_where_it_is(self.now(), 10, 19),
            "assigned_agent_id": self.agent.id,
        });
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.app.account(&self.manager.token, body).await
    }

    async fn send(&self, token: &str, account: &str, body: Value) -> (StatusCode, Value) {
        status_json(
            self.app
                .post(&format!("/api/v1/accounts/{account}/messages"), Some(token), &body)
                .await,
        )
        .await
    }

    /// Sends `body` on `account` as the agent with an `Idempotency-Key`.
    async fn send_keyed(&self, account: &str, key: &str, body: &Value) -> reqwest::Response {
        self.app
            .request(
                Method::POST,
                &format!("/api/v1/accounts/{account}/messages"),
                Some(&self.agent.token),
            )
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn template(&self, body: Value) -> (StatusCode, Value) {
        status_json(self.app.post("/api/v1/message-templates", Some(&self.manager.token), &body).await).await
    }

    /// A WhatsApp template Meta approved (`reminder`, en_US): what goes outside WhatsApp's
    /// 24-hour window.
    async fn approved_whatsapp_template(&self) -> Value {
        let (status, template) = self
            .template(json!({"name": format!("Approved {}", uuid::Uuid::new_v4()), "channel": "whatsapp",
                "body": "Hello {{debtor_name}}, please call us.",
                "approval": {"meta_name": "reminder", "meta_language": "en_US"}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{template}");
        template["id"].clone()
    }

    async fn message(&self, id: &str) -> Value {
        let (status, body) = status_json(self.app.get(&format!("/api/v1/messages/{id}"), &self.agent.token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until message `id` satisfies `done`, and answers it.
    async fn message_when(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(what, || async { done(&self.message(id).await) }).await;
        self.message(id).await
    }

    fn outbox(&self) -> PathBuf {
        self.app.settings.data_dir.join("messages")
    }

    async fn count(&self, sql: &'static str, account: &str) -> i64 {
        self.app.sql_value(sql, account).await
    }
}

#[tokio::test]
async fn an_allowed_message_is_logged_on_the_timeline_queued_and_sent_through_the_local_provider() {
    let d = desk().await;
    let account = d.account(json!({"account_number": "acc-7_1", "due_date": "2026-12-01"})).await;
    let account_id = id_of(&account);
    let (status, template) = d
        .template(json!({"name": "First reminder", "channel": "sms",
            "body": "Hi {{debtor_name}}, {{ balance }} on {{account_number}} was due {{due_date}}. Pay: {{payment_link}}"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let expected = "Hi Zoë O'Brien, 1250.00 USD on ACC-7_1 was due 2026-12-01. Pay: https://pay.example.com/a/ACC-7_1";

    let compose = json!({"channel": "sms", "template_id": template["id"]});
    let path = format!("/api/v1/accounts/{account_id}/messages/preview");
    let (status, preview) = status_json(d.app.post(&path, Some(&d.agent.token), &compose).await).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview,
        json!({"channel": "sms", "recipient": "+12015550134", "subject": null, "body": expected})
    );
    assert_eq!(
        d.count("SELECT count(*) FROM account_messages WHERE account_id = $1::uuid", &account_id)
            .await,
        0
    );

    let response = d.send_keyed(&account_id, "reminder-1", &compose).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, queued) = status_json(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/messages/{id}"));
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["body"], expected);
    assert_eq!(queued["recipient"], "+12015550134");
    assert_eq!(queued["provider"], "local");

    let sent = d.message_when(&id, "the message is sent", |m| m["status"] == "sent").await;
    assert_eq!(sent["attempts"], 1);
    assert_eq!(sent["provider_message_id"], format!("local-{}", id.replace('-', "")));
    assert!(sent["sent_at"].is_string() && sent["error"].is_null(), "{sent}");
    let written: Value = serde_json::from_slice(&std::fs::read(d.outbox().join(format!("{}.json", id.replace('-', "")))).unwrap()).unwrap();
    assert_eq!(
        (written["to"].as_str(), written["body"].as_str()),
        (Some("+12015550134"), Some(expected))
    );

    // On the timeline as an outbound text message, the contact the guard counted.
    let (_, timeline) = status_json(
        d.app
            .get(&format!("/api/v1/accounts/{account_id}/activities"), &d.agent.token)
            .await,
    )
    .await;
    let logged = &timeline["data"][0];
    assert_eq!(
        (logged["type"].as_str(), logged["direction"].as_str()),
        (Some("sms"), Some("outbound"))
    );
    assert_eq!(logged["id"], sent["activity_id"]);
    assert_eq!(logged["notes"], expected);

    // The same key again answers the first result and sends nothing more; with another
    // request it is refused.
    let again = d.send_keyed(&account_id, "reminder-1", &compose).await;
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let (status, replayed) = status_json(again).await;
    assert_eq!((status, replayed["id"].as_str()), (StatusCode::ACCEPTED, Some(id.as_str())));
    let other = d
        .send_keyed(&account_id, "reminder-1", &json!({"channel": "sms", "text": "Another text"}))
        .await;
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    assert_eq!(
        d.count("SELECT count(*) FROM account_messages WHERE account_id = $1::uuid", &account_id)
            .await,
        1
    );

    // An email of one's own text, with a subject; WhatsApp is logged as its own type.
    let (status, email) = d
        .send(
            &d.agent.token,
            &account_id,
            json!({"channel": "email", "subject": "Your balance, {{debtor_name}}", "text": "It is {{balance}}."}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{email}");
    assert_eq!(
        (email["recipient"].as_str(), email["subject"].as_str()),
        (Some("jane@example.com"), Some("Your balance, Zoë O'Brien"))
    );
    // The debtor never wrote on WhatsApp: only a template its provider approved goes,
    // with the values of its placeholders (the local provider stands in for any).
    let (status, refused) = d
        .send(&d.agent.token, &account_id, json!({"channel": "whatsapp", "text": "Hello"}))
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("whatsapp_window_closed")),
        "{refused}"
    );
    let approved = d.approved_whatsapp_template().await;
    let (status, whatsapp) = d
        .send(&d.agent.token, &account_id, json!({"channel": "whatsapp", "template_id": approved}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{whatsapp}");
    assert_eq!(whatsapp["approved_template"]["parameters"], json!(["Zoë O'Brien"]));
    let whatsapp_id = whatsapp["id"].as_str().unwrap().replace('-', "");
    d.message_when(whatsapp["id"].as_str().unwrap(), "the WhatsApp message is sent", |m| {
        m["status"] == "sent"
    })
    .await;
    let written: Value = serde_json::from_slice(&std::fs::read(d.outbox().join(format!("{whatsapp_id}.json"))).unwrap()).unwrap();
    assert_eq!(written["approved_template"]["approval"]["meta_name"], "reminder");
    let (_, list) = status_json(
        d.app
            .get(&format!("/api/v1/accounts/{account_id}/messages?page_size=2"), &d.manager.token)
            .await,
    )
    .await;
    assert_eq!(list["total"], 3);
    assert_eq!(list["data"][0]["channel"], "whatsapp");
    assert!(list["next_cursor"].is_string(), "{list}");
    let (_, timeline) = status_json(
        d.app
            .get(&format!("/api/v1/activities?account_id={account_id}&type=whatsapp"), &d.agent.token)
            .await,
    )
    .await;
    assert_eq!(timeline["total"], 1, "{timeline}");

    // Every message is in the account's history.
    let entries: i64 = d
        .app
        .sql_value(
            "SELECT count(*) FROM audit_log WHERE entity = 'message' AND account_id = $1::uuid",
            &account_id,
        )
        .await;
    assert_eq!(entries, 3);
}

#[tokio::test]
async fn the_guard_refuses_a_message_as_it_refuses_a_logged_contact_and_nothing_is_kept() {
    let d = desk().await;
    let late = id_of(&d.account(json!({"timezone": zone_where_it_is(d.now(), 21, 24)})).await);
    let (status, refused) = d.send(&d.agent.token, &late, json!({"channel": "sms", "text": "Hello"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        (refused["code"].as_str(), refused["rule"].as_str()),
        (Some("contact_blocked"), Some("outside_window"))
    );
    assert_eq!(refused["channel"], "sms");
    assert!(refused["next_allowed_at"].is_string(), "{refused}");

    // A WhatsApp message is a text message to the guard: do-not-call stops it.
    let no_calls = id_of(&d.account(json!({"do_not_call": true})).await);
    let (status, refused) = d
        .send(&d.agent.token, &no_calls, json!({"channel": "whatsapp", "text": "Hello"}))
        .await;
    assert_eq!(
        (status, refused["rule"].as_str(), refused["channel"].as_str()),
        (StatusCode::CONFLICT, Some("do_not_call"), Some("sms"))
    );
    let (status, email) = d
        .send(
            &d.agent.token,
            &no_calls,
            json!({"channel": "email", "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "do-not-call leaves email open: {email}");
    let no_email = id_of(&d.account(json!({"do_not_email": true})).await);
    let (status, refused) = d
        .send(
            &d.agent.token,
            &no_email,
            json!({"channel": "email", "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!((status, refused["rule"].as_str()), (StatusCode::CONFLICT, Some("do_not_email")));
    let ceased = id_of(&d.account(json!({"cease_communication": true})).await);
    let (_, refused) = d
        .send(
            &d.agent.token,
            &ceased,
            json!({"channel": "email", "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(refused["rule"], "cease_communication");

    for account in [&late, &no_calls, &no_email, &ceased] {
        let kept = d
            .count(
                "SELECT count(*) FROM activities WHERE account_id = $1::uuid AND type <> 'email'",
                account,
            )
            .await
            + d.count(
                "SELECT count(*) FROM account_messages WHERE account_id = $1::uuid AND channel <> 'email'",
                account,
            )
            .await;
        assert_eq!(kept, 0, "a refused message keeps nothing");
    }

    // A manager's override on the text channel lets one message through, once.
    let path = format!("/api/v1/accounts/{late}/contact-overrides");
    let (status, _) = status_json(
        d.app
            .post(
                &path,
                Some(&d.manager.token),
                &json!({"channel": "sms", "reason": "The debtor asked to be texted tonight"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let approved = d.approved_whatsapp_template().await;
    let (status, sent) = d
        .send(&d.agent.token, &late, json!({"channel": "whatsapp", "template_id": approved}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let (status, _) = d.send(&d.agent.token, &late, json!({"channel": "sms", "text": "Again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // No address for the channel; no right to work the account.
    let no_email_address = id_of(&d.account(json!({"email": null})).await);
    let (status, refused) = d
        .send(
            &d.agent.token,
            &no_email_address,
            json!({"channel": "email", "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_recipient")),
        "{refused}"
    );
    let other_agent = d.app.user(Role::Agent).await;
    let viewer = d.app.user(Role::Viewer).await;
    let day = id_of(&d.account(json!({})).await);
    for token in [&other_agent.token, &viewer.token] {
        let (status, _) = d.send(token, &day, json!({"channel": "sms", "text": "Hello"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Reading them is reading the account in full: viewers do, another agent does not.
    let list = format!("/api/v1/accounts/{day}/messages");
    assert_eq!(d.app.get(&list, &other_agent.token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(d.app.get(&list, &viewer.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_provider_that_fails_is_retried_with_growing_pauses_and_the_message_fails_after_its_last_try() {
    let d = desk().await;
    let account = id_of(&d.account(json!({})).await);
    // The local provider cannot write: a file stands where its directory goes.
    std::fs::create_dir_all(&d.app.settings.data_dir).unwrap();
    std::fs::write(d.outbox(), b"not a directory").unwrap();
    let (status, queued) = d.send(&d.agent.token, &account, json!({"channel": "sms", "text": "Hello"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();

    let start = d.now();
    let first = d.message_when(&id, "the first try fails", |m| m["attempts"] == 1).await;
    assert_eq!(first["status"], "queued");
    assert!(first["error"].as_str().unwrap().contains("messages"), "{first}");
    let next: DateTime<Utc> = first["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, start + Duration::seconds(30));

    // Not before its time.
    d.app.clock.set(next - Duration::seconds(1));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(d.message(&id).await["attempts"], 1);
    d.app.clock.set(next);
    let second = d.message_when(&id, "the second try fails", |m| m["attempts"] == 2).await;
    let next: DateTime<Utc> = second["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, d.now() + Duration::minutes(2));

    // The provider recovers: the next try sends it.
    std::fs::remove_file(d.outbox()).unwrap();
    d.app.clock.set(next);
    let sent = d.message_when(&id, "the third try sends it", |m| m["status"] == "sent").await;
    assert_eq!(sent["attempts"], 3);

    // One that keeps failing fails after five tries, its last reason kept.
    std::fs::remove_dir_all(d.outbox()).unwrap();
    std::fs::write(d.outbox(), b"not a directory").unwrap();
    let (_, queued) = d
        .send(&d.agent.token, &account, json!({"channel": "sms", "text": "Hello again"}))
        .await;
    let id = queued["id"].as_str().unwrap().to_owned();
    for tries in 1..5 {
        let m = d.message_when(&id, "a try fails", |m| m["attempts"] == tries).await;
        assert_eq!(m["status"], "queued");
        d.app.clock.set(m["next_attempt_at"].as_str().unwrap().parse().unwrap());
    }
    let failed = d.message_when(&id, "the last try fails", |m| m["status"] == "failed").await;
    assert_eq!(failed["attempts"], 5);
    assert!(failed["failed_at"].is_string() && failed["next_attempt_at"].is_null(), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("messages"), "{failed}");

    // Whoever sent it is told, with a link to the account; retries alone tell no one.
    let (_, inbox) = status_json(d.app.get("/api/v1/notifications", &d.agent.token).await).await;
    let told: Vec<_> = inbox["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "message_failed")
        .collect();
    assert_eq!(told.len(), 1, "{inbox}");
    assert_eq!(told[0]["title"], "A text message could not be sent");
    assert_eq!(told[0]["link"], format!("#/account/{account}"));
    assert_eq!(told[0]["data"]["id"], id.as_str());
}

#[tokio::test]
async fn templates_are_checked_managed_by_managers_and_read_by_those_who_send() {
    let d = desk().await;
    let (status, refused) = d
        .template(json!({"name": "Bad", "channel": "sms", "body": "Hi {{first_name}}"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["errors"][0]["field"], "body");
    assert!(
        refused["errors"][0]["message"].as_str().unwrap().contains("{{first_name}}"),
        "{refused}"
    );
    let (status, refused) = d.template(json!({"name": "Mail", "channel": "email", "body": "Hi"})).await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("subject"))
    );
    let (status, refused) = d
        .template(json!({"name": "Text", "channel": "sms", "subject": "Hi", "body": "Hi"}))
        .await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("subject"))
    );

    // Only a WhatsApp template is approved by its provider, under the names it takes.
    let (status, refused) = d
        .template(json!({"name": "Text", "channel": "sms", "body": "Hi", "approval": {"twilio_content_sid": "HX0123456789abcdef0123456789abcdef"}}))
        .await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("approval"))
    );
    let (status, refused) = d
        .template(json!({"name": "Chat", "channel": "whatsapp", "body": "Hi",
            "approval": {"meta_name": "Payment Reminder", "twilio_content_sid": "MG0123456789abcdef0123456789abcdef"}}))
        .await;
    let fields: Vec<_> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        (status, fields),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["approval.meta_language", "approval.twilio_content_sid"]
        ),
        "{refused}"
    );
    let (status, chat) = d
        .template(
            json!({"name": "Chat", "channel": "whatsapp", "body": "Hi {{debtor_name}}, it is {{balance}}.",
            "approval": {"twilio_content_sid": "HX0123456789abcdef0123456789abcdef"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["approval_body"], "Hi {{1}}, it is {{2}}.");
    let path = format!("/api/v1/message-templates/{}", chat["id"].as_str().unwrap());
    let (status, cleared) = status_json(d.app.patch(&path, &d.manager.token, &json!({"approval": {}})).await).await;
    assert_eq!((status, &cleared["approval"]), (StatusCode::OK, &Value::Null), "{cleared}");
    assert_eq!(status_json(d.app.delete(&path, &d.manager.token).await).await.0, StatusCode::OK);

    let (status, sms) = d
        .template(json!({"name": "Reminder", "channel": "sms", "body": "Due {{due_date}}"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sms}");
    let (status, taken) = d
        .template(json!({"name": "reminder", "channel": "email", "subject": "s", "body": "b"}))
        .await;
    assert_eq!((status, taken["errors"][0]["field"].as_str()), (StatusCode::CONFLICT, Some("name")));
    let (status, _) = status_json(
        d.app
            .post(
                "/api/v1/message-templates",
                Some(&d.agent.token),
                &json!({"name": "Mine", "channel": "sms", "body": "b"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = status_json(d.app.get("/api/v1/message-templates?channel=sms", &d.agent.token).await).await;
    assert_eq!((status, list["total"].as_i64()), (StatusCode::OK, Some(1)));
    let (status, _) = status_json(d.app.get("/api/v1/message-templates?channel=fax", &d.agent.token).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An account without a due date cannot fill the template; a template of another
    // channel is refused; a text too long once filled is refused.
    let account = id_of(&d.account(json!({"due_date": null})).await);
    let (status, refused) = d
        .send(&d.agent.token, &account, json!({"channel": "sms", "template_id": sms["id"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "template_id");
    assert!(
        refused["errors"][0]["message"].as_str().unwrap().contains("no due date"),
        "{refused}"
    );
    let (status, _) = d
        .send(&d.agent.token, &account, json!({"channel": "whatsapp", "template_id": sms["id"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let long = "{{debtor_name}} ".repeat(150);
    let (status, refused) = d.send(&d.agent.token, &account, json!({"channel": "sms", "text": long})).await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("text")),
        "{refused}"
    );
    assert_eq!(
        d.count("SELECT count(*) FROM activities WHERE account_id = $1::uuid", &account)
            .await,
        0
    );

    // Changed, the template's next message uses the new text; deleted, none does.
    let path = format!("/api/v1/message-templates/{}", sms["id"].as_str().unwrap());
    let (status, changed) = status_json(
        d.app
            .patch(&path, &d.manager.token, &json!({"body": "Please call us, {{debtor_name}}"}))
            .await,
    )
    .await;
    assert_eq!((status, changed["channel"].as_str()), (StatusCode::OK, Some("sms")), "{changed}");
    let (status, sent) = d
        .send(&d.agent.token, &account, json!({"channel": "sms", "template_id": sms["id"]}))
        .await;
    assert_eq!(
        (status, sent["body"].as_str()),
        (StatusCode::ACCEPTED, Some("Please call us, Zoë O'Brien"))
    );
    let (status, _) = status_json(d.app.delete(&path, &d.agent.token).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, deleted) = status_json(d.app.delete(&path, &d.manager.token).await).await;
    assert!(status == StatusCode::OK && deleted["deleted_at"].is_string(), "{deleted}");
    let (status, _) = d
        .send(&d.agent.token, &account, json!({"channel": "sms", "template_id": sms["id"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = status_json(d.app.get(&path, &d.agent.token).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE entity = 'message_template' AND entity_id = $1 ORDER BY id")
            .bind(sms["id"].as_str().unwrap())
            .fetch_all(&d.app.pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        ["message_template.create", "message_template.update", "message_template.update"]
    );
}

#[tokio::test]
async fn how_a_message_is_sent_reaches_a_subscribed_socket_without_its_text() {
    let d = desk().await;
    let account = id_of(&d.account(json!({})).await);
    let mut socket = crate::ws::authed(&d.app, &d.agent.token, &[&format!("account:{account}")]).await;
    let (status, queued) = d
        .send(&d.agent.token, &account, json!({"channel": "sms", "text": "Private words"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let event = crate::ws::expect(&mut socket, "message.updated", |e| e["data"]["id"] == queued["id"]).await;
    assert_eq!(event["data"]["status"], "sent");
    assert_eq!(event["data"]["account_id"], account.as_str());
    assert!(
        !event.to_string().contains("Private words"),
        "the text stays out of the event: {event}"
    );
}

#[tokio::test]
async fn an_email_carries_live_documents_of_its_account_and_fails_when_one_is_deleted_before_it_goes() {
    let d = desk().await;
    let account = id_of(&d.account(json!({})).await);
    let elsewhere = id_of(&d.account(json!({})).await);
    let letter = uploaded(
        &d.app,
        &d.agent.token,
        &account,
        "../letter.txt",
        b"Dear Zoe,\nthe plan is attached.\n".to_vec(),
    )
    .await;
    let plan = uploaded(&d.app, &d.agent.token, &account, "plan", b"%PDF-1.4\n%%EOF\n".to_vec()).await;
    let foreign = uploaded(&d.app, &d.agent.token, &elsewhere, "other.txt", b"someone else's\n".to_vec()).await;
    let email = |ids: Value| json!({"channel": "email", "subject": "Your plan", "text": "Attached.", "document_ids": ids});

    // What the request alone shows, and what only the account's documents show.
    for (compose, why) in [
        (json!({"channel": "sms", "text": "x", "document_ids": [letter["id"]]}), "email only"),
        (email(json!([letter["id"], letter["id"]])), "twice"),
        (
            email(json!([
                letter["id"],
                plan["id"],
                foreign["id"],
                letter["id"],
                plan["id"],
                foreign["id"]
            ])),
            "at most 5",
        ),
        (email(json!([foreign["id"]])), "not a live document of this account"),
        (email(json!([uuid::Uuid::now_v7()])), "not a live document of this account"),
    ] {
        let (status, refused) = d.send(&d.agent.token, &account, compose).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {refused}");
        assert_eq!(refused["errors"][0]["field"], "document_ids", "{refused}");
        assert!(refused["errors"][0]["message"].as_str().unwrap().contains(why), "{refused}");
    }
    assert_eq!(
        d.count("SELECT count(*) FROM account_messages WHERE account_id = $1::uuid", &account)
            .await,
        0
    );

    // The preview names them; the local provider records them by name, type and size.
    let compose = email(json!([plan["id"], letter["id"]]));
    let path = format!("/api/v1/accounts/{account}/messages/preview");
    let (status, preview) = status_json(d.app.post(&path, Some(&d.agent.token), &compose).await).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let names: Vec<_> = preview["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("plan.pdf"), json!("letter.txt")]);
    let (status, queued) = d.send(&d.agent.token, &account, compose).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["document_ids"], json!([plan["id"], letter["id"]]));
    let id = queued["id"].as_str().unwrap().to_owned();
    d.message_when(&id, "the email is sent", |m| m["status"] == "sent").await;
    let written: Value = serde_json::from_slice(&std::fs::read(d.outbox().join(format!("{}.json", id.replace('-', "")))).unwrap()).unwrap();
    assert_eq!(
        written["attachments"],
        json!([
            {"name": "plan.pdf", "content_type": "application/pdf", "size": 15},
            {"name": "letter.txt", "content_type": "text/plain; charset=utf-8", "size": 32},
        ])
    );

    // A document deleted while its email waited for a retry: the email fails, saying so.
    std::fs::remove_dir_all(d.outbox()).unwrap();
    std::fs::write(d.outbox(), b"not a directory").unwrap();
    let (_, queued) = d.send(&d.agent.token, &account, email(json!([letter["id"]]))).await;
    let id = queued["id"].as_str().unwrap().to_owned();
    let first = d.message_when(&id, "the first try fails", |m| m["attempts"] == 1).await;
    let deleted = d
        .app
        .delete(&format!("/api/v1/documents/{}", letter["id"].as_str().unwrap()), &d.manager.token)
        .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    std::fs::remove_file(d.outbox()).unwrap();
    d.app.clock.set(first["next_attempt_at"].as_str().unwrap().parse().unwrap());
    let failed = d.message_when(&id, "the email fails", |m| m["status"] == "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("deleted before the email was sent"),
        "{failed}"
    );
}
