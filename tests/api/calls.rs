//! Calls over HTTP against the real database, the provider's side driven as Twilio
//! drives it: every voice webhook is signed by Twilio's own Node library
//! (tests/providers/sign.js), and every TwiML answer is compared with what Twilio's own
//! library (`twiml.VoiceResponse`, tests/providers/twiml.js) writes for the same verbs.
//! The dialer is `local` (it rings nothing and answers a Twilio-shaped call SID), so the
//! tests play the provider; the request that places a call through Twilio is checked
//! against Twilio's published description in providers.rs.
//!
//! A placed call rings the agent, the guard decides again as it connects, the attempt is
//! logged, the dial's end and the agent's wrap-up (the account's, naming the call)
//! complete it; a debtor's call rings
//! their agent, pops their accounts on the console of the one who answers, and is
//! logged on their account.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::helpers::{TestApp, TestUser, spawn_guarded_app_with, status_json};
use crate::webhooks::{TOKEN, twilio_signs};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const HOOK: &str = "https://arrears.example.com/api/v1/webhooks/twilio";
const FROM: &str = "+15005550006";
const DEBTOR: &str = "+12015550134";

struct Floor {
    app: TestApp,
    manager: TestUser,
    agent: TestUser,
}

async fn floor() -> Floor {
    let app = spawn_guarded_app_with(|s| {
        s.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        s.twilio_auth_token = Some(TOKEN.to_owned());
        s.twilio_webhook_url = Some(HOOK.to_owned());
        s.twilio_voice_from = Some(FROM.to_owned());
    })
    .await;
    hold_clock(&app);
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    Floor { app, manager, agent }
}

/// What Twilio's own library writes for `verbs` (tests/providers/twiml.js).
fn twilio_writes(verbs: Value) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers/twiml.js");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(json!({ "verbs": verbs }).to_string())
        .output()
        .expect("node runs tests/providers/twiml.js (bin/test installs its packages)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn form(params: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

impl Floor {
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

    async fn set_phone(&self, user: &TestUser, phone: &str) -> (StatusCode, Value) {
        status_json(self.app.put("/api/v1/me/phone", &user.token, &json!({ "phone": phone })).await).await
    }

    async fn place(&self, user: &TestUser, account: &str) -> (StatusCode, Value) {
        status_json(
            self.app
                .post(&format!("/api/v1/accounts/{account}/calls"), Some(&user.token), &json!({}))
                .await,
        )
        .await
    }

    /// Posts `params` to the voice webhook `path` (after TWILIO_WEBHOOK_URL), signed as
    /// Twilio signs them.
    async fn hook(&self, path: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
        let signature = twilio_signs(&format!("{HOOK}{path}"), params);
        let response = self
            .app
            .request(reqwest::Method::POST, &format!("/api/v1/webhooks/twilio{path}"), None)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(form(params))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn wrap_up(&self, user: &TestUser, account: &str, body: &Value) -> (StatusCode, Value) {
        status_json(
            self.app
                .post(&format!("/api/v1/accounts/{account}/wrap-up"), Some(&user.token), body)
                .await,
        )
        .await
    }

    async fn call(&self, user: &TestUser, id: &str) -> Value {
        let (status, call) = status_json(self.app.get(&format!("/api/v1/calls/{id}"), &user.token).await).await;
        assert_eq!(status, StatusCode::OK, "{call}");
        call
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

    /// The events addressed to `user` of `kind`, oldest first.
    async fn events_to(&self, user: &TestUser, kind: &str) -> Vec<Value> {
        sqlx::query_scalar("SELECT data FROM events WHERE user_id = $1 AND kind = $2 ORDER BY id")
            .bind(user.id)
            .bind(kind)
            .fetch_all(&self.app.pool)
            .await
            .unwrap()
    }
}

/// The call SID the local dialer gives call `id`.
fn sid_of(id: &str) -> String {
    format!("CA{}", id.replace('-', ""))
}

fn dial(action: &str, numbers: Value) -> Value {
    json!([{"verb": "dial", "attributes": {"action": action, "method": "POST", "timeout": 30, "callerId": FROM}, "numbers": numbers}])
}

#[tokio::test]
async fn a_placed_call_rings_the_agent_dials_once_the_guard_allows_and_logs_itself() {
    let floor = floor().await;
    let account = floor.account(json!({})).await;
    let account_id = account["id"].as_str().unwrap();

    let (status, refused) = floor.place(&floor.agent, account_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "no_agent_phone");
    let (status, bad) = floor.set_phone(&floor.agent, "12").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, phone) = floor.set_phone(&floor.agent, "(201) 555-0199").await;
    assert_eq!(status, StatusCode::OK, "{phone}");
    assert_eq!(phone, json!({"phone": "+12015550199", "provider": "local"}));

    let (status, call) = floor.place(&floor.agent, account_id).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    assert_eq!(call["status"], "placed");
    assert_eq!(call["direction"], "outbound");
    let id = call["id"].as_str().unwrap().to_owned();
    let written = floor.app.settings.data_dir.join(format!("calls/{}.json", id.replace('-', "")));
    let written: Value = serde_json::from_slice(&std::fs::read(written).unwrap()).unwrap();
    assert_eq!(written["agent"], "+12015550199", "the agent's phone rings first");
    assert!(
        floor.activities(account_id).await.is_empty(),
        "nothing is an attempt until the debtor is dialled"
    );

    // The agent answers: the guard allows, the debtor is dialled from our number.
    let sid = sid_of(&id);
    let query = format!("?call={id}");
    let leg = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", sid.as_str()),
        ("CallStatus", "in-progress"),
    ];
    let (status, twiml) = floor.hook(&format!("/voice/connect{query}"), &leg).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    let dialed = format!("{HOOK}/voice/dialed{query}");
    assert_eq!(twiml, twilio_writes(dial(&dialed, json!([{"number": DEBTOR}]))));
    let logged = floor.activities(account_id).await;
    assert_eq!(logged.len(), 1);
    assert_eq!((&logged[0]["type"], &logged[0]["direction"]), (&json!("call"), &json!("outbound")));
    assert_eq!(floor.call(&floor.agent, &id).await["status"], "connecting");
    // A replay of the step dials the same again and logs nothing more.
    let (_, again) = floor.hook(&format!("/voice/connect{query}"), &leg).await;
    assert_eq!(again, twiml);
    assert_eq!(floor.activities(account_id).await.len(), 1);

    // The debtor talked for 95 s; then the agent's leg ends.
    let (status, end) = floor
        .hook(
            &format!("/voice/dialed{query}"),
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", &sid),
                ("DialCallStatus", "completed"),
                ("DialCallSid", "CA99999999999999999999999999999999"),
                ("DialCallDuration", "95"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(end, twilio_writes(json!([{"verb": "hangup"}])));
    let (status, _) = floor
        .hook(
            &format!("/voice/status{query}"),
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", &sid),
                ("CallStatus", "completed"),
                ("CallDuration", "120"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ended = floor.call(&floor.agent, &id).await;
    assert_eq!(
        (&ended["status"], &ended["result"], &ended["duration_seconds"]),
        (&json!("ended"), &json!("answered"), &json!(95))
    );
    let told: Vec<String> = floor
        .events_to(&floor.agent, "call.updated")
        .await
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(told, ["placed", "connecting", "ended"], "the agent's console follows the call");

    // The account's wrap-up, naming the call, completes the attempt, once.
    let next = (floor.app.clock.now() + chrono::Duration::days(2)).to_rfc3339();
    let wrap = json!({"contact": {"type": "call", "outcome": "promise_to_pay", "notes": "Pays Friday", "next_action_at": next},
        "call_id": id});
    let (status, wrapped) = floor.wrap_up(&floor.agent, account_id, &wrap).await;
    assert_eq!(status, StatusCode::CREATED, "{wrapped}");
    assert_eq!(wrapped["activity"]["id"], logged[0]["id"], "the call's own activity, not another");
    let logged = floor.activities(account_id).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (&logged[0]["outcome"], &logged[0]["notes"]),
        (&json!("promise_to_pay"), &json!("Pays Friday"))
    );
    assert!(floor.call(&floor.agent, &id).await["wrapped_up_at"].is_string());
    let (status, twice) = floor.wrap_up(&floor.agent, account_id, &wrap).await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");

    // Another agent neither reads nor wraps up the call; a manager reads it.
    let other = floor.app.user(Role::Agent).await;
    let (status, _) = status_json(floor.app.get(&format!("/api/v1/calls/{id}"), &other.token).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(floor.call(&floor.manager, &id).await["result"], "answered");
    let (status, listed) = status_json(floor.app.get("/api/v1/calls", &floor.agent.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["total"], 1);

    // Unsigned, mis-signed and another account's steps are refused; an unknown call is not found.
    let unsigned = floor
        .app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/webhooks/twilio/voice/connect{query}"),
            None,
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&leg))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    let foreign = [("AccountSid", "AC99999999999999999999999999999999"), ("CallSid", sid.as_str())];
    assert_eq!(
        floor.hook(&format!("/voice/connect{query}"), &foreign).await.0,
        StatusCode::FORBIDDEN
    );
    let stranger = format!("?call={}", uuid::Uuid::now_v7());
    assert_eq!(
        floor.hook(&format!("/voice/connect{stranger}"), &leg).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_guard_stops_a_call_before_it_rings_and_again_as_it_connects() {
    let floor = floor().await;
    floor.set_phone(&floor.agent, "+12015550199").await;
    let opted_out = floor.account(json!({"do_not_call": true})).await;
    let (status, refused) = floor.place(&floor.agent, opted_out["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        (&refused["code"], &refused["rule"]),
        (&json!("contact_blocked"), &json!("do_not_call"))
    );

    // Allowed when placed; the debtor asks not to be called while the agent's phone rings.
    let account = floor.account(json!({})).await;
    let account_id = account["id"].as_str().unwrap();
    let (_, call) = floor.place(&floor.agent, account_id).await;
    let id = call["id"].as_str().unwrap();
    let (status, changed) = status_json(
        floor
            .app
            .patch(
                &format!("/api/v1/accounts/{account_id}"),
                &floor.manager.token,
                &json!({"do_not_call": true}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let sid = sid_of(id);
    let (status, twiml) = floor
        .hook(
            &format!("/voice/connect?call={id}"),
            &[("AccountSid", ACCOUNT_SID), ("CallSid", &sid), ("CallStatus", "in-progress")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        twiml,
        twilio_writes(json!([
            {"verb": "say", "text": "This call was stopped by the contact rules and the debtor was not dialled."},
            {"verb": "hangup"}
        ]))
    );
    let stopped = floor.call(&floor.agent, id).await;
    assert_eq!(
        (&stopped["result"], &stopped["refused_rule"]),
        (&json!("refused"), &json!("do_not_call"))
    );
    assert!(floor.activities(account_id).await.is_empty(), "no attempt was made");
    let wrap = json!({"contact": {"type": "call", "outcome": "no_answer"}, "call_id": id});
    let (status, refused) = floor.wrap_up(&floor.agent, account_id, &wrap).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing to wrap up: {refused}");
    assert_eq!(refused["code"], "conflict");

    // The agent's phone is not answered: the call ends without an attempt.
    floor
        .app
        .patch(
            &format!("/api/v1/accounts/{account_id}"),
            &floor.manager.token,
            &json!({"do_not_call": false}),
        )
        .await;
    let (_, call) = floor.place(&floor.agent, account_id).await;
    let id = call["id"].as_str().unwrap();
    let sid = sid_of(id);
    for status in ["ringing", "no-answer"] {
        floor
            .hook(
                &format!("/voice/status?call={id}"),
                &[("AccountSid", ACCOUNT_SID), ("CallSid", &sid), ("CallStatus", status)],
            )
            .await;
    }
    assert_eq!(floor.call(&floor.agent, id).await["result"], "agent_missed");
    assert!(floor.activities(account_id).await.is_empty());
}

#[tokio::test]
async fn a_debtors_call_rings_their_agent_and_pops_their_account_on_the_console_of_who_answers() {
    let floor = floor().await;
    let account = floor.account(json!({})).await;
    let account_id = account["id"].as_str().unwrap();
    let colleague = floor.app.user(Role::Agent).await;
    floor.set_phone(&floor.agent, "+12015550199").await;
    floor.set_phone(&colleague, "+12015550198").await;

    let sid = "CA0000000000000000000000000000c0de";
    let incoming = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", DEBTOR),
        ("To", FROM),
    ];
    let (status, twiml) = floor.hook("/voice", &incoming).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM calls WHERE provider_call_id = $1")
        .bind(sid)
        .fetch_one(&floor.app.pool)
        .await
        .unwrap();
    let answered = format!("{HOOK}/voice/answered?call={id}&agent={}", floor.agent.id);
    let expected = json!([{"verb": "dial", "attributes": {"action": format!("{HOOK}/voice/dialed?call={id}"), "method": "POST", "timeout": 30},
        "numbers": [{"attributes": {"url": answered, "method": "POST"}, "number": "+12015550199"}]}]);
    assert_eq!(twiml, twilio_writes(expected), "only the debtor's own agent rings");

    let leg = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA1111111111111111111111111111a9e7"),
        ("ParentCallSid", sid),
        ("CallStatus", "in-progress"),
    ];
    let (status, twiml) = floor
        .hook(&format!("/voice/answered?call={id}&agent={}", floor.agent.id), &leg)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(twiml, twilio_writes(json!([])), "the agent is connected");
    let popped = floor.events_to(&floor.agent, "call.popped").await;
    assert_eq!(popped.len(), 1);
    assert_eq!(popped[0]["number"], DEBTOR);
    assert_eq!(popped[0]["account_ids"], json!([account_id]));
    let logged = floor.activities(account_id).await;
    assert_eq!((&logged[0]["type"], &logged[0]["direction"]), (&json!("call"), &json!("inbound")));
    // A colleague's answer after the first is hung up on.
    let (_, late) = floor.hook(&format!("/voice/answered?call={id}&agent={}", colleague.id), &leg).await;
    assert_eq!(late, twilio_writes(json!([{"verb": "hangup"}])));
    assert!(floor.events_to(&colleague, "call.popped").await.is_empty());

    // An unknown number rings the floor and pops the lookup with the number.
    let unknown = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA2222222222222222222222222222b0b0"),
        ("From", "+12015550100"),
    ];
    let (_, twiml) = floor.hook("/voice", &unknown).await;
    assert!(twiml.contains("+12015550199") && twiml.contains("+12015550198"), "{twiml}");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM calls WHERE provider_call_id = 'CA2222222222222222222222222222b0b0'")
        .fetch_one(&floor.app.pool)
        .await
        .unwrap();
    let leg = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA3333333333333333333333333333b0b0"),
        ("ParentCallSid", "CA2222222222222222222222222222b0b0"),
    ];
    floor.hook(&format!("/voice/answered?call={id}&agent={}", colleague.id), &leg).await;
    let popped = floor.events_to(&colleague, "call.popped").await;
    assert_eq!(
        (&popped[0]["number"], &popped[0]["account_ids"]),
        (&json!("+12015550100"), &json!([]))
    );
    // Its wrap-up names the account the caller turned out to be about.
    let wrap = json!({"contact": {"type": "call", "outcome": "right_party", "notes": "Called from work"}, "call_id": id});
    let (status, wrapped) = floor.wrap_up(&colleague, account_id, &wrap).await;
    assert_eq!(status, StatusCode::CREATED, "{wrapped}");
    assert_eq!(wrapped["activity"]["direction"], "inbound");
    assert_eq!(floor.call(&colleague, &id.to_string()).await["account_id"], account_id);
    assert_eq!(floor.activities(account_id).await.len(), 2);

    // With no agent's phone, the caller is told and the call is missed.
    sqlx::query("DELETE FROM agent_phones").execute(&floor.app.pool).await.unwrap();
    let (_, twiml) = floor
        .hook(
            "/voice",
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", "CA4444444444444444444444444444d00d"),
                ("From", DEBTOR),
            ],
        )
        .await;
    assert_eq!(
        twiml,
        twilio_writes(
            json!([{"verb": "say", "text": "No one can take your call right now. Please call again later."}, {"verb": "hangup"}])
        )
    );
}
