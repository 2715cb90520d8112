//! Issue 75, item 2: live and replayed events carry only what their reader may read over REST.
//!
//! An agent subscribed to `accounts`, `payments` or `account:{id}` of an account they do
//! not work was sent its case notes, the text of its messages and its payments'
//! references, live and on replay, where REST answers them 403. Such an agent now
//! receives the summary of those events (what the summary of the account shows, marked
//! `access: summary`), judged by the account's owner when the event is sent; the owner,
//! managers and viewers receive them in full.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, eventually, id_of, spawn_app, status_json};
use crate::ws::{Socket, authed, next, send};

const NOTES: &str = "debtor has cancer";
const TEXT: &str = "Private words about your debt";
const REFERENCE: &str = "REF-SECRET-4411";

/// An account assigned to `owner`; `other` is an agent who does not work it.
struct Floor {
    app: TestApp,
    manager: TestUser,
    viewer: TestUser,
    owner: TestUser,
    other: TestUser,
    account: String,
}

async fn floor() -> Floor {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let owner = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let account = id_of(&app.account(&manager.token, json!({"assigned_agent_id": owner.id})).await);
    Floor {
        app,
        manager,
        viewer,
        owner,
        other,
        account,
    }
}

impl Floor {
    /// The topics every socket of these tests subscribes to.
    fn topics(&self) -> [String; 3] {
        ["accounts".to_owned(), "payments".to_owned(), format!("account:{}", self.account)]
    }

    async fn socket(&self, user: &TestUser) -> Socket {
        let topics = self.topics();
        authed(&self.app, &user.token, &topics.each_ref().map(String::as_str)).await
    }

    /// The owner's day on the account: a call with notes, a payment with a reference,
    /// and a text message, sent.
    async fn work(&self) {
        let call = json!({"type": "call", "direction": "outbound", "outcome": "right_party", "notes": NOTES});
        self.app.log_activity(&self.owner.token, &self.account, &call).await;
        let payment = json!({"amount": "25.00", "currency": "USD", "method": "card", "reference": REFERENCE});
        self.app.create_payment(&self.owner.token, &self.account, &payment).await;
        let path = format!("/api/v1/accounts/{}/messages", self.account);
        let (status, queued) = status_json(
            self.app
                .post(&path, Some(&self.owner.token), &json!({"channel": "sms", "text": TEXT}))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let message = format!("/api/v1/messages/{}", id_of(&queued));
        eventually("the text message is sent", || async {
            let (_, sent) = status_json(self.app.get(&message, &self.owner.token).await).await;
            sent["status"] == "sent"
        })
        .await;
    }

    /// A new account after the work: its `account.created` (topic `accounts`) is
    /// published after every event of the work, so a socket that receives it was sent
    /// all of theirs already. Answers its id.
    async fn marker(&self) -> String {
        id_of(&self.app.account(&self.manager.token, json!({"debtor_name": "Marker Person"})).await)
    }
}

/// The messages `socket` receives until the `account.created` of `marker`.
async fn until_marker(socket: &mut Socket, marker: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = next(socket).await.expect("the socket stays open");
        if message["event"] == "account.created" && message["data"]["id"] == marker {
            return seen;
        }
        seen.push(message);
    }
}

/// The events a replay from `since` sends, up to its `replay.done`.
async fn replay(socket: &mut Socket, since: i64) -> Vec<Value> {
    send(socket, "replay", json!({"since": since})).await;
    let mut events = Vec::new();
    loop {
        let message = next(socket).await.expect("the socket stays open through a replay");
        if message["event"] == "replay.done" {
            assert_eq!(message["data"]["more"], false, "{message}");
            return events;
        }
        events.push(message);
    }
}

/// The one event of `kind` about `account` among `events` whose data `matches`.
fn one<'a>(events: &'a [Value], kind: &str, account: &str, matches: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == kind && e["data"]["account_id"] == account && matches(&e["data"]))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} of {account}: {events:?}");
    found[0]
}

/// What a reader of the account in full is sent: the notes, the message's text (its
/// activity's notes) and the payment's reference and method.
fn assert_full(who: &str, events: &[Value], account: &str) {
    let call = one(events, "activity.logged", account, |d| d["type"] == "call");
    assert_eq!(call["data"]["notes"], NOTES, "{who}: {call}");
    let sms = one(events, "activity.logged", account, |d| d["type"] == "sms");
    assert_eq!(sms["data"]["notes"], TEXT, "{who}: {sms}");
    let payment = one(events, "payment.created", account, |_| true);
    assert_eq!(
        (&payment["data"]["reference"], &payment["data"]["method"]),
        (&json!(REFERENCE), &json!("card")),
        "{who}: {payment}"
    );
    assert!(payment["data"].get("access").is_none(), "{who}: {payment}");
}

/// What an agent who does not work the account is sent: no notes, no text, no
/// reference or method, nowhere; the summary of each event, marked so.
fn assert_summary(who: &str, events: &[Value], account: &str) {
    for event in events {
        let text = event.to_string();
        for secret in [NOTES, TEXT, REFERENCE] {
            assert!(!text.contains(secret), "{who} was sent {secret:?}: {text}");
        }
    }
    for kind in ["activity.logged", "payment.created", "message.updated"] {
        let about: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == kind && e["data"]["account_id"] == account)
            .collect();
        assert!(!about.is_empty(), "{who}: the summary of {kind}: {events:?}");
        for event in about {
            assert_eq!(event["data"]["access"], "summary", "{who}: {event}");
        }
    }
    let call = one(events, "activity.logged", account, |d| d["type"] == "call");
    assert_eq!(call["data"]["outcome"], "right_party", "the outcome is on the summary: {call}");
    assert!(call["data"].get("notes").is_none(), "{who}: {call}");
    let payment = one(events, "payment.created", account, |_| true);
    assert_eq!(payment["data"]["amount"], "25.00", "the balance moves on the summary: {payment}");
    for hidden in ["reference", "method", "created_by"] {
        assert!(payment["data"].get(hidden).is_none(), "{who}: {hidden} in {payment}");
    }
    for sent in events.iter().filter(|e| e["event"] == "message.updated") {
        for hidden in ["error", "attempts", "delivery_error"] {
            assert!(sent["data"].get(hidden).is_none(), "{who}: {hidden} in {sent}");
        }
    }
}

/// The attack, live: an agent subscribed to another agent's account, to `accounts` and
/// to `payments` was sent the call's notes ("debtor has cancer"), the text message and
/// the payment's reference as they happened.
#[tokio::test]
async fn an_agent_is_sent_live_only_the_summary_of_events_on_an_account_they_do_not_work() {
    let f = floor().await;
    let mut other = f.socket(&f.other).await;
    let mut full = [
        ("owner", f.socket(&f.owner).await),
        ("manager", f.socket(&f.manager).await),
        ("viewer", f.socket(&f.viewer).await),
    ];
    f.work().await;
    let marker = f.marker().await;
    assert_summary("the other agent", &until_marker(&mut other, &marker).await, &f.account);
    for (who, socket) in &mut full {
        assert_full(who, &until_marker(socket, &marker).await, &f.account);
    }
}

/// The attack, replayed: a socket opened after the events were published asks for them
/// with `since`, and the other agent's catch-up is held to the summary as the live
/// events are.
#[tokio::test]
async fn an_agent_replays_only_the_summary_of_events_on_an_account_they_do_not_work() {
    let f = floor().await;
    let mut witness = authed(&f.app, &f.manager.token, &["accounts"]).await;
    let since: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM events")
        .fetch_one(&f.app.pool)
        .await
        .unwrap();
    f.work().await;
    let marker = f.marker().await;
    // Once the witness is sent the marker, the relay has published every event of the work.
    until_marker(&mut witness, &marker).await;

    let mut other = f.socket(&f.other).await;
    assert_summary("the other agent", &replay(&mut other, since).await, &f.account);
    for (who, user) in [("owner", &f.owner), ("manager", &f.manager), ("viewer", &f.viewer)] {
        let mut socket = f.socket(user).await;
        assert_full(who, &replay(&mut socket, since).await, &f.account);
    }
}

/// The owner is judged when an event is sent, as REST judges a read: after the account
/// moves to the other agent, their catch-up of its earlier events is in full, and the
/// first owner's is the summary.
#[tokio::test]
async fn a_replay_follows_the_account_to_its_new_owner() {
    let f = floor().await;
    let mut witness = authed(&f.app, &f.manager.token, &["accounts"]).await;
    f.work().await;
    let path = format!("/api/v1/accounts/{}", f.account);
    let (status, moved) = status_json(
        f.app
            .patch(&path, &f.manager.token, &json!({"assigned_agent_id": f.other.id}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let marker = f.marker().await;
    until_marker(&mut witness, &marker).await;

    let mut now_owner = f.socket(&f.other).await;
    assert_full("the new owner", &replay(&mut now_owner, 0).await, &f.account);
    let mut first_owner = f.socket(&f.owner).await;
    assert_summary("the first owner", &replay(&mut first_owner, 0).await, &f.account);
}
