//! Live events over real WebSocket connections.

use std::time::Duration;

use arrears::domain::role::Role;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, eventually, id_of, spawn_app, spawn_app_with, spawn_peer, status_json};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn ws_url(app: &TestApp) -> String {
    format!("{}/api/v1/ws", app.address.replacen("http", "ws", 1))
}

pub(crate) async fn connect(app: &TestApp, bearer: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = ws_url(app).into_client_request().unwrap();
    if let Some(token) = bearer {
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    connect_async(request).await.map(|(socket, _)| socket)
}

pub(crate) async fn send(socket: &mut Socket, event: &str, data: Value) {
    let text = json!({"event": event, "data": data}).to_string();
    socket.send(Message::text(text)).await.unwrap();
}

/// The next JSON message (pings and pongs skipped), or `None` when the socket closed.
pub(crate) async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("a message within 10 s") {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Skips messages until one of `kind` arrives that `matches`.
pub(crate) async fn expect(socket: &mut Socket, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = next(socket)
            .await
            .unwrap_or_else(|| panic!("socket closed while waiting for {kind}"));
        if message["event"] == kind && matches(&message) {
            return message;
        }
    }
}

/// The close frame's code and reason.
pub(crate) async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("closed within 10 s") {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.as_str().to_owned()),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => {}
        }
    }
}

pub(crate) async fn authed(app: &TestApp, token: &str, topics: &[&str]) -> Socket {
    let mut socket = connect(app, None).await.unwrap();
    send(&mut socket, "auth", json!({"token": token})).await;
    expect(&mut socket, "auth.ok", |_| true).await;
    if !topics.is_empty() {
        send(&mut socket, "subscribe", json!({"topics": topics})).await;
        expect(&mut socket, "subscribed", |_| true).await;
    }
    socket
}

pub(crate) async fn pay(app: &TestApp, token: &str, account: &str, amount: &str) -> Value {
    let body = json!({"amount": amount, "currency": "USD", "method": "card"});
    let (status, payment) = status_json(app.post(&format!("/api/v1/accounts/{account}/payments"), Some(token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    payment
}

#[tokio::test]
async fn a_payment_made_over_http_arrives_on_a_connected_socket() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let mut by_message = authed(&app, &agent.token, &["payments"]).await;
    let mut by_header = connect(&app, Some(&manager.token)).await.unwrap();
    let hello = expect(&mut by_header, "auth.ok", |_| true).await;
    assert_eq!(hello["data"]["user_id"], manager.id.to_string());
    send(&mut by_header, "subscribe", json!({"topics": ["payments", "accounts"]})).await;
    expect(&mut by_header, "subscribed", |m| {
        m["data"]["topics"] == json!(["accounts", "payments"])
    })
    .await;

    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let assigned = expect(&mut by_message, "account.assigned", |_| true).await;
    assert_eq!(
        assigned["data"]["id"], account["id"],
        "the agent hears of the assignment without subscribing"
    );
    let payment = pay(&app, &manager.token, account["id"].as_str().unwrap(), "250.00").await;
    for socket in [&mut by_message, &mut by_header] {
        let event = expect(socket, "payment.created", |m| m["data"]["id"] == payment["id"]).await;
        assert_eq!(event["data"]["amount"], "250.00");
        assert_eq!(event["data"]["account_id"], account["id"]);
        assert!(event["id"].as_i64().unwrap() > 0 && event["at"].is_string());
    }
    // The assigned agent's notification follows the payment event (`expect` skips
    // what does not match, so one sent before it would have been passed over).
    let note = expect(&mut by_message, "notification.created", |m| m["data"]["kind"] == "payment_received").await;
    assert_eq!(note["data"]["data"]["payment_id"], payment["id"]);
    assert_eq!(note["data"]["data"]["amount"], "250.00");
    assert!(note["data"]["title"].as_str().unwrap().starts_with("Payment received from "));
    assert_eq!(note["data"]["read_at"], Value::Null);
}

#[tokio::test]
async fn activities_stats_and_job_events_reach_who_they_concern() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let id = account["id"].as_str().unwrap();
    let mut socket = authed(&app, &manager.token, &[&format!("account:{id}"), "stats"]).await;
    let body = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let (status, activity) = status_json(
        app.post(&format!("/api/v1/accounts/{id}/activities"), Some(&manager.token), &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let logged = expect(&mut socket, "activity.logged", |_| true).await;
    assert_eq!(logged["data"]["id"], activity["id"]);
    for amount in ["1.00", "2.00", "3.00"] {
        pay(&app, &manager.token, id, amount).await;
    }
    expect(&mut socket, "stats.updated", |_| true).await;
    let body = json!({"ids": [id], "patch": {"tags_add": ["evented"]}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let finished = expect(&mut socket, "job.finished", |m| m["data"]["id"] == job["id"]).await;
    assert_eq!(
        finished["data"]["status"], "succeeded",
        "the owner hears without subscribing to jobs"
    );
    let started = std::time::Instant::now();
    let mut stats_updates = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let message = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
        if let Ok(Some(Ok(Message::Text(text)))) = message
            && text.as_str().contains("\"stats.updated\"")
        {
            stats_updates += 1;
        }
    }
    assert!(
        stats_updates <= 1,
        "stats.updated comes at most once a second, and nothing changed: {stats_updates}"
    );
}

#[tokio::test]
async fn an_edit_and_a_cancelled_promise_or_plan_reach_the_accounts_screen_and_a_job_sends_none() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({})).await);
    let mut socket = authed(&app, &manager.token, &[&format!("account:{id}")]).await;
    // A bulk update is announced by its job, not account by account.
    let body = json!({"ids": [id], "patch": {"tags_add": ["bulk"]}});
    let (status, job) = status_json(app.post("/api/v1/accounts/bulk-update", Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut during = Vec::new();
    loop {
        let message = next(&mut socket).await.expect("the socket stays open");
        if message["event"] == "job.finished" && message["data"]["id"] == job["id"] {
            break;
        }
        during.push(message);
    }
    assert!(!during.iter().any(|m| m["event"] == "account.updated"), "{during:?}");

    // A person's edit names the fields it changed.
    let edit = json!({"tags": ["edited"], "do_not_email": true});
    let (status, _) = status_json(app.patch(&format!("/api/v1/accounts/{id}"), &manager.token, &edit).await).await;
    assert_eq!(status, StatusCode::OK);
    let updated = expect(&mut socket, "account.updated", |_| true).await;
    assert_eq!(updated["data"]["changed"], json!(["do_not_email", "tags"]), "{updated}");
    assert_eq!(updated["data"]["account_id"], id.as_str());

    let promise = app
        .create(
            &manager.token,
            &format!("/api/v1/accounts/{id}/promises"),
            &json!({"amount": "10.00", "due_date": "2030-01-01"}),
        )
        .await;
    let (status, _) = status_json(
        app.post(
            &format!("/api/v1/promises/{}/cancel", promise["id"].as_str().unwrap()),
            Some(&manager.token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = expect(&mut socket, "promise.cancelled", |_| true).await;
    assert_eq!(cancelled["data"]["promise_id"], promise["id"]);

    let plan = json!({"total": "30.00", "instalment_count": 3, "frequency": "monthly", "first_due_date": "2030-01-01"});
    let plan = app.create(&manager.token, &format!("/api/v1/accounts/{id}/plans"), &plan).await;
    let (status, _) = status_json(
        app.post(
            &format!("/api/v1/plans/{}/cancel", plan["id"].as_str().unwrap()),
            Some(&manager.token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = expect(&mut socket, "plan.cancelled", |_| true).await;
    assert_eq!(
        (&cancelled["data"]["plan_id"], &cancelled["data"]["status"]),
        (&plan["id"], &json!("cancelled"))
    );
}

#[tokio::test]
async fn bad_missing_and_late_authentication_is_refused() {
    let app = spawn_app().await;
    match connect(&app, Some("not-a-token")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a bad bearer token must fail the upgrade: {other:?}"),
    }
    let mut socket = connect(&app, None).await.unwrap();
    send(&mut socket, "auth", json!({"token": "garbage"})).await;
    assert_eq!(closed(&mut socket).await, (4401, "invalid token".to_owned()));

    let mut socket = connect(&app, None).await.unwrap();
    send(&mut socket, "subscribe", json!({"topics": ["payments"]})).await;
    assert_eq!(closed(&mut socket).await, (4401, "authentication required".to_owned()));

    let mut silent = connect(&app, None).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(closed(&mut silent).await, (4401, "authentication required".to_owned()));
    assert!(started.elapsed() >= Duration::from_secs(4), "the client had 5 s to authenticate");
}

#[tokio::test]
async fn an_expired_token_closes_the_socket() {
    let app = spawn_app_with(|s| s.access_token_ttl_secs = 2).await;
    let agent = app.user(Role::Agent).await;
    let mut socket = connect(&app, Some(&agent.token)).await.unwrap();
    expect(&mut socket, "auth.ok", |_| true).await;
    assert_eq!(closed(&mut socket).await, (4401, "token expired".to_owned()));
}

#[tokio::test]
async fn nobody_receives_what_is_not_theirs() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let other_agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let mut viewer_socket = authed(&app, &viewer.token, &["accounts"]).await;
    let mut other_socket = authed(&app, &other_agent.token, &[]).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    // A public marker after the private events: once it arrives, they would have too.
    let marker = app.account(&manager.token, json!({"debtor_name": "Marker Person"})).await;
    let mut seen = Vec::new();
    loop {
        let message = next(&mut viewer_socket).await.unwrap();
        let done = message["event"] == "account.created" && message["data"]["id"] == marker["id"];
        seen.push(message);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|m| m["event"] == "account.created" && m["data"]["id"] == account["id"])
    );
    assert!(
        seen.iter()
            .all(|m| m["event"] != "account.assigned" && m["event"] != "notification.created"),
        "a viewer never gets an agent's private events: {seen:?}"
    );
    send(&mut other_socket, "ping", Value::Null).await;
    let first = next(&mut other_socket).await.unwrap();
    assert_eq!(first["event"], "pong", "the other agent got nothing of this: {first}");
}

#[tokio::test]
async fn rolled_back_writes_emit_nothing() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let id: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    let mut socket = authed(&app, &manager.token, &[&format!("account:{id}")]).await;
    let insert = "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at) \
                  VALUES ($1, $2, 5, 'USD', 'cash', 'completed', now())";
    let mut tx = app.pool.begin().await.unwrap();
    let rolled_back = Uuid::now_v7();
    sqlx::query(insert).bind(rolled_back).bind(id).execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let committed = Uuid::now_v7();
    sqlx::query(insert).bind(committed).bind(id).execute(&app.pool).await.unwrap();
    let event = expect(&mut socket, "payment.created", |_| true).await;
    assert_eq!(
        event["data"]["id"],
        committed.to_string(),
        "the first payment event is the committed one"
    );
}

/// The ids of the `payment.created` messages a socket receives until its catch-up is done
/// and `expected` of them came, then for half a second more: replayed or live, each
/// event should come once.
async fn payments_received(socket: &mut Socket, expected: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    let mut done = false;
    while !(done && ids.len() >= expected) {
        let message = next(socket).await.expect("the socket stays open");
        match message["event"].as_str() {
            Some("replay.done") => done = true,
            Some("payment.created") => ids.push(message["data"]["id"].clone()),
            _ => {}
        }
    }
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["event"] == "payment.created" {
                ids.push(message["data"]["id"].clone());
            }
        }
    }
    ids
}

/// Waits until the relay has published every event written so far.
async fn published(app: &TestApp) {
    eventually("the relay publishes every event", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_queue")
            .fetch_one(&app.pool)
            .await
            .unwrap()
            == 0
    })
    .await;
}

/// A manager's socket that was sent one payment and closed: the app, the manager, the
/// account, and the event it was sent.
async fn a_socket_that_saw_one_payment_and_closed() -> (TestApp, TestUser, String, Value) {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    let first = pay(&app, &manager.token, &account, "1.00").await;
    let seen = expect(&mut socket, "payment.created", |m| m["data"]["id"] == first["id"]).await;
    socket.close(None).await.unwrap();
    (app, manager, account, seen)
}

#[tokio::test]
async fn missed_events_are_replayed_after_a_reconnect() {
    let (app, manager, account, seen) = a_socket_that_saw_one_payment_and_closed().await;
    let missed = [
        pay(&app, &manager.token, &account, "2.00").await,
        pay(&app, &manager.token, &account, "3.00").await,
    ];
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    send(&mut socket, "replay", json!({"since": seen["id"]})).await;
    // Whether the relay publishes them before or after the catch-up, each comes once, in order.
    let ids = payments_received(&mut socket, 2).await;
    assert_eq!(
        ids,
        [missed[0]["id"].clone(), missed[1]["id"].clone()],
        "in commit order, once each"
    );
}

#[tokio::test]
async fn a_catch_up_leaves_out_what_the_new_socket_was_already_sent_live() {
    let (app, manager, account, seen) = a_socket_that_saw_one_payment_and_closed().await;
    let missed = pay(&app, &manager.token, &account, "2.00").await;
    published(&app).await;
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    // The reconnected client is sent an event live before it asks for its catch-up.
    let live = pay(&app, &manager.token, &account, "3.00").await;
    expect(&mut socket, "payment.created", |m| m["data"]["id"] == live["id"]).await;
    send(&mut socket, "replay", json!({"since": seen["id"]})).await;
    let ids = payments_received(&mut socket, 1).await;
    assert_eq!(ids, [missed["id"].clone()], "the catch-up sends the missed payment only");
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    send(&mut socket, "replay", json!({"since": seen["id"]})).await;
    let again = payments_received(&mut socket, 2).await;
    assert_eq!(
        again,
        [missed["id"].clone(), live["id"].clone()],
        "a socket with nothing live gets both"
    );
}

#[tokio::test]
async fn auth_ok_names_the_latest_event_so_a_socket_that_saw_none_can_catch_up() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let before = pay(&app, &manager.token, &account, "1.00").await;
    // Published before the sockets below open, so it cannot reach them live.
    published(&app).await;
    let mut socket = connect(&app, None).await.unwrap();
    send(&mut socket, "auth", json!({"token": manager.token})).await;
    let ok = expect(&mut socket, "auth.ok", |_| true).await;
    let latest: i64 = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(ok["data"]["last_event_id"], latest, "{ok}");
    let before_id: i64 = sqlx::query_scalar("SELECT id FROM events WHERE kind = 'payment.created' AND data->>'id' = $1")
        .bind(before["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(latest >= before_id, "the payment made before the socket is not to be replayed");
    // The socket drops before it is sent anything.
    socket.close(None).await.unwrap();
    let missed = pay(&app, &manager.token, &account, "2.00").await;
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    send(&mut socket, "replay", json!({"since": latest})).await;
    let ids = payments_received(&mut socket, 1).await;
    assert_eq!(ids, [missed["id"].clone()]);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_while_others_keep_up() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let mut slow = small_window(&app, &manager.token).await;
    let mut fast = authed(&app, &manager.token, &["payments"]).await;
    // 60 MB of incompressible text: far more than the buffers between server and client hold.
    const EVENTS: i64 = 15_000;
    sqlx::query(
        "INSERT INTO events (kind, topics, data)
         SELECT 'payment.created', ARRAY['payments'], jsonb_build_object('n', n, 'pad',
                (SELECT string_agg(md5(random()::text || n || g), '') FROM generate_series(1, 125) g))
         FROM generate_series(1, $1) n",
    )
    .bind(EVENTS)
    .execute(&app.pool)
    .await
    .unwrap();
    let last = expect(&mut fast, "payment.created", |m| m["data"]["n"] == EVENTS).await;
    assert_eq!(last["data"]["n"], EVENTS, "a client that reads gets everything");
    // The slow client has not read for longer than the server waits on a full queue (5 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut received = 0;
    let ended = loop {
        match tokio::time::timeout(WAIT, slow.next())
            .await
            .unwrap_or_else(|_| panic!("the slow socket ends (after {received} events)"))
        {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            None | Some(Err(_)) => break None,
            Some(Ok(_)) => {}
        }
    };
    assert!(received < EVENTS, "the slow client was cut off ({received} events)");
    assert!(matches!(ended, None | Some(1008)), "closed as a slow consumer: {ended:?}");
}

/// A client whose kernel receive buffer is fixed at 64 KiB (no autotuning up to
/// 32 MiB), subscribed to payments, so that not reading soon backs up to the server.
async fn small_window(app: &TestApp, token: &str) -> Socket {
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(ws_url(app), MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    send(&mut ws, "auth", json!({"token": token})).await;
    expect(&mut ws, "auth.ok", |_| true).await;
    send(&mut ws, "subscribe", json!({"topics": ["payments"]})).await;
    expect(&mut ws, "subscribed", |_| true).await;
    ws
}

/// A private Redis on a free port, killed when dropped.
/// A private `redis-server` on a Unix socket of its own (a path no other process can
/// take, unlike a TCP port found free and bound later), answering `PING` before
/// `start` returns. Killed when dropped; `start_at` brings it back on the same socket,
/// as a restarted server comes back at its address.
pub(crate) struct RedisServer {
    socket: std::path::PathBuf,
    child: std::process::Child,
}

impl RedisServer {
    pub(crate) fn start() -> Self {
        Self::start_at(std::env::temp_dir().join(format!("arrears-redis-{}.sock", uuid::Uuid::new_v4().simple())))
    }

    pub(crate) fn start_at(socket: std::path::PathBuf) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (bin/test installs it)");
        let mut server = Self { socket, child };
        server.wait_until_it_answers();
        server
    }

    fn wait_until_it_answers(&mut self) {
        use std::io::{Read as _, Write as _};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answered = std::os::unix::net::UnixStream::connect(&self.socket).is_ok_and(|mut stream| {
                let mut pong = [0u8; 7];
                stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut pong).is_ok() && &pong == b"+PONG\r\n"
            });
            if answered {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("redis-server can be waited for") {
                panic!("redis-server exited ({status}) before answering");
            }
            assert!(std::time::Instant::now() < deadline, "redis-server did not answer PING within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn socket(&self) -> std::path::PathBuf {
        self.socket.clone()
    }

    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local address nothing listens on: bound, never listening, so a connection to it is
/// refused for as long as the returned socket lives (a port found free and released could
/// be taken by another process in between).
pub(crate) fn refusing_address() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Two API instances on one database, fanning events out through `redis`, both connected.
pub(crate) async fn two_instances_on(redis: &RedisServer) -> (TestApp, TestApp) {
    let first = spawn_app_with(|s| s.redis_url = Some(redis.url())).await;
    let second = spawn_peer(&first, |s| s.redis_url = Some(redis.url())).await;
    for app in [&first, &second] {
        eventually("redis connected", || async { redis_status(app).await == "ok" }).await;
    }
    (first, second)
}

pub(crate) async fn redis_status(app: &TestApp) -> String {
    let response = app.request(reqwest::Method::GET, "/health/ready", None).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    body["checks"]["redis"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn two_instances_sharing_redis_both_deliver() {
    let redis = RedisServer::start();
    let (first, second) = two_instances_on(&redis).await;
    let manager = first.user(Role::Manager).await;
    let account = first.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let mut on_first = authed(&first, &manager.token, &["payments"]).await;
    let mut on_second = authed(&second, &manager.token, &["payments"]).await;
    for (writer, amount) in [(&first, "4.00"), (&second, "5.00")] {
        let payment = pay(writer, &manager.token, &account, amount).await;
        for socket in [&mut on_first, &mut on_second] {
            expect(socket, "payment.created", |m| m["data"]["id"] == payment["id"]).await;
        }
    }
}

#[tokio::test]
async fn losing_redis_degrades_to_local_delivery_and_recovers() {
    let redis = RedisServer::start();
    let redis_socket = redis.socket();
    let app = spawn_app_with(|s| s.redis_url = Some(redis.url())).await;
    eventually("redis connected", || async { redis_status(&app).await == "ok" }).await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    let before = pay(&app, &manager.token, &account, "1.00").await;
    expect(&mut socket, "payment.created", |m| m["data"]["id"] == before["id"]).await;

    drop(redis);
    eventually("readiness reports redis down", || async { redis_status(&app).await == "down" }).await;
    let ready: Value = app
        .request(reqwest::Method::GET, "/health/ready", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded");
    let during = pay(&app, &manager.token, &account, "2.00").await;
    expect(&mut socket, "payment.created", |m| m["data"]["id"] == during["id"]).await;

    let _redis = RedisServer::start_at(redis_socket);
    eventually("redis reconnected", || async { redis_status(&app).await == "ok" }).await;
    let after = pay(&app, &manager.token, &account, "3.00").await;
    expect(&mut socket, "payment.created", |m| m["data"]["id"] == after["id"]).await;
}

#[tokio::test]
async fn events_written_by_plain_sql_are_published_once_and_pruning_keeps_unpublished_ones() {
    let pool = crate::helpers::fresh_pool().await;
    let old = chrono::Utc::now() - chrono::Duration::days(arrears::events::relay::RETENTION_DAYS + 1);
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO events (kind, topics, created_at) VALUES ('payment.created', '{payments}', $1), ('payment.created', '{payments}', $1) RETURNING id",
    )
    .bind(old)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (queued, events) = arrears::store::events::unpublished(&mut conn, 10).await.unwrap();
    assert_eq!(queued, ids, "a plain insert is queued, in id order");
    assert_eq!(events.iter().filter_map(|e| e.id).collect::<Vec<_>>(), ids);
    arrears::store::events::mark_published(&mut conn, &ids[..1]).await.unwrap();
    let (left, events) = arrears::store::events::unpublished(&mut conn, 10).await.unwrap();
    assert_eq!(left, ids[1..], "a published event is not handed out again");
    assert_eq!(events.iter().filter_map(|e| e.id).collect::<Vec<_>>(), ids[1..]);

    // An event deleted by hand before the relay saw it leaves its id in the queue: it
    // is handed out without an event, so the relay dequeues it instead of stepping over
    // it on every poll.
    let gone: i64 = sqlx::query_scalar("INSERT INTO events (kind, topics) VALUES ('payment.created', '{payments}') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    let (queued, events) = arrears::store::events::unpublished(&mut conn, 10).await.unwrap();
    assert_eq!(queued, [ids[1], gone]);
    assert_eq!(events.iter().filter_map(|e| e.id).collect::<Vec<_>>(), ids[1..]);
    arrears::store::events::mark_published(&mut conn, &[gone]).await.unwrap();
    let (left, _) = arrears::store::events::unpublished(&mut conn, 10).await.unwrap();
    assert_eq!(left, ids[1..]);

    let removed = arrears::store::events::prune(&mut conn, chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(removed, 1, "only the published old event goes");
    let kept: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kept, ids[1..], "an old event still waiting for the relay is kept");
    arrears::store::events::vacuum_queue(&mut conn).await.unwrap();
}

/// Five thousand missed events (more than the send queue holds, and several replay
/// pages) all arrive, in order, each once.
#[tokio::test]
async fn thousands_of_missed_events_are_replayed_in_order() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let since: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO events (kind, topics) SELECT 'payment.created', '{payments}' FROM generate_series(1, 5000) RETURNING id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    // Published to nobody before the client comes back, so only the replay sends them.
    eventually("the relay publishes the events", || async {
        let mut conn = app.pool.acquire().await.unwrap();
        arrears::store::events::unpublished(&mut conn, 1).await.unwrap().0.is_empty()
    })
    .await;
    let mut socket = authed(&app, &manager.token, &["payments"]).await;
    let mut received = Vec::new();
    let mut from = since;
    loop {
        send(&mut socket, "replay", json!({"since": from})).await;
        let done = loop {
            let message = next(&mut socket).await.expect("the socket stays open during a replay");
            if message["event"] == "replay.done" {
                break message;
            }
            received.push(message["id"].as_i64().unwrap());
        };
        from = done["data"]["until"].as_i64().unwrap();
        if done["data"]["more"] == false {
            break;
        }
    }
    let mut expected = inserted;
    expected.sort_unstable();
    assert_eq!(received.len(), 5000);
    assert_eq!(received, expected, "every event once, in commit order");
}

/// Messages until `replay.done`, the events among them.
async fn replayed(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let message = next(socket).await.expect("the socket stays open through a replay");
        if message["event"] == "replay.done" {
            return events;
        }
        events.push(message);
    }
}

/// A viewer's replay returned the payment and activity events (references, notes) of a
/// deleted account, and its live events reached everyone. Events of a deleted account
/// now reach only those who may read deleted accounts (`include_deleted`: managers).
#[tokio::test]
async fn events_of_deleted_accounts_reach_only_who_may_read_them() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let doomed = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let live = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let body = json!({"amount": "5.00", "currency": "USD", "method": "card", "reference": "SECRET-REF"});
    let (status, secret) = status_json(
        app.post(&format!("/api/v1/accounts/{doomed}/payments"), Some(&manager.token), &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    let note = json!({"type": "note", "notes": "debtor's lawyer called"});
    let (status, _) = status_json(
        app.post(&format!("/api/v1/accounts/{doomed}/activities"), Some(&manager.token), &note)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let visible = pay(&app, &manager.token, &live, "1.00").await;
    let deleted = app.delete(&format!("/api/v1/accounts/{doomed}"), &manager.token).await;
    assert!(deleted.status().is_success());
    published(&app).await;

    let of_doomed = |events: &[Value]| {
        let doomed = json!(doomed);
        events
            .iter()
            .filter(|e| e["data"]["account_id"] == doomed || e["data"]["id"] == doomed)
            .count()
    };
    let mut viewing = authed(&app, &viewer.token, &["payments", "accounts"]).await;
    send(&mut viewing, "replay", json!({"since": 0})).await;
    let seen = replayed(&mut viewing).await;
    assert_eq!(of_doomed(&seen), 0, "{seen:?}");
    assert!(seen.iter().any(|e| e["data"]["id"] == visible["id"]), "{seen:?}");
    let mut managing = authed(&app, &manager.token, &["payments", "accounts"]).await;
    send(&mut managing, "replay", json!({"since": 0})).await;
    // Its creation, payment and note, and the edit that deleted it.
    assert_eq!(of_doomed(&replayed(&mut managing).await), 4, "a manager may read deleted accounts");

    // Live: a change to the deleted account's payment (here by SQL, as any write path),
    // then one to a live account's; the viewer is sent only the second.
    sqlx::query("UPDATE payments SET status = 'refunded' WHERE id = $1::uuid")
        .bind(secret["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let after = pay(&app, &manager.token, &live, "2.00").await;
    loop {
        let message = next(&mut viewing).await.expect("the viewer's socket stays open");
        assert_eq!(of_doomed(std::slice::from_ref(&message)), 0, "{message}");
        if message["data"]["id"] == after["id"] {
            break;
        }
    }
    let hidden = expect(&mut managing, "payment.updated", |_| true).await;
    assert_eq!(hidden["data"]["id"], secret["id"]);
}

/// An account in a portfolio granted to `granted` (to no one without), and one in none.
async fn private_and_open(app: &TestApp, admin: &TestUser, granted: Option<&TestUser>) -> (String, String) {
    let (status, portfolio) = status_json(
        app.post("/api/v1/portfolios", Some(&admin.token), &json!({"name": "Private"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{portfolio}");
    if let Some(granted) = granted {
        let grants = format!("/api/v1/portfolios/{}/grants", portfolio["id"].as_str().unwrap());
        let granting = app.post(&grants, Some(&admin.token), &json!({"user_id": granted.id})).await;
        assert_eq!(granting.status(), StatusCode::CREATED);
    }
    let private = app.account(&admin.token, json!({"portfolio_id": portfolio["id"]})).await;
    let open = app.account(&admin.token, json!({})).await;
    (id_of(&private), id_of(&open))
}

/// An agent subscribed to `payments` was sent every payment's event, with its amount,
/// reference and account number, in portfolios they may not work (issue 51, found while
/// scoping `stats.updated`). A shared event about an account in a portfolio now reaches,
/// live and replayed, only those whose portfolios include it; an account in no portfolio
/// is everyone's, as in searches.
#[tokio::test]
async fn events_about_an_account_in_a_portfolio_reach_only_who_may_work_it() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let granted = app.user(Role::Agent).await;
    let outsider = app.user(Role::Agent).await;
    let (private, open) = private_and_open(&app, &admin, Some(&granted)).await;
    let mut inside = authed(&app, &granted.token, &["payments"]).await;
    let mut outside = authed(&app, &outsider.token, &["payments"]).await;

    let hidden = pay(&app, &admin.token, &private, "10.00").await;
    let shown = pay(&app, &admin.token, &open, "11.00").await;
    let seen_inside = expect(&mut inside, "payment.created", |_| true).await;
    assert_eq!(seen_inside["data"]["id"], hidden["id"]);
    expect(&mut inside, "payment.created", |e| e["data"]["id"] == shown["id"]).await;
    // The relay publishes in id order: the outsider's first payment event is the open one.
    let seen_outside = expect(&mut outside, "payment.created", |_| true).await;
    assert_eq!(seen_outside["data"]["id"], shown["id"], "{seen_outside}");

    published(&app).await;
    let mut outside_again = authed(&app, &outsider.token, &["payments"]).await;
    send(&mut outside_again, "replay", json!({"since": 0})).await;
    let replayed_outside = replayed(&mut outside_again).await;
    assert!(
        replayed_outside.iter().any(|e| e["data"]["id"] == shown["id"]),
        "{replayed_outside:?}"
    );
    assert!(
        replayed_outside.iter().all(|e| e["data"]["account_id"] != json!(private)),
        "{replayed_outside:?}"
    );
    // A new socket of the granted agent (the first one was sent both live).
    let mut again = authed(&app, &granted.token, &["payments"]).await;
    send(&mut again, "replay", json!({"since": 0})).await;
    let replayed_inside = replayed(&mut again).await;
    assert!(
        replayed_inside.iter().any(|e| e["data"]["id"] == hidden["id"]),
        "{replayed_inside:?}"
    );
}

/// Issue 51: `stats.updated` carries how the statistics changed (each payment's
/// currency, amount, method, received time and the status it left and took), so an open
/// dashboard updates without reading them again; one goes per portfolio, reaching only
/// those who work it.
#[tokio::test]
async fn stats_updated_carries_each_payment_change_to_who_works_its_portfolio() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let outsider = app.user(Role::Agent).await;
    let (private, open) = private_and_open(&app, &admin, None).await;
    let mut managing = authed(&app, &admin.token, &["stats"]).await;
    let mut outside = authed(&app, &outsider.token, &["stats"]).await;

    let paid = pay(&app, &admin.token, &private, "40.00").await;
    let update = expect(&mut managing, "stats.updated", |_| true).await;
    assert_eq!(update["data"]["truncated"], false, "{update}");
    let mut change = update["data"]["payments"][0].clone();
    let received = crate::helpers::instant(&change["received_at"]);
    assert!((received - crate::helpers::instant(&paid["received_at"])).num_microseconds() == Some(0));
    change["received_at"] = Value::Null;
    assert_eq!(update["data"]["payments"].as_array().unwrap().len(), 1);
    assert_eq!(
        change,
        json!({"id": paid["id"], "currency": "USD", "amount": "40.00", "method": "card",
               "received_at": null, "from": null, "to": "completed"})
    );
    let refunded = app
        .patch(
            &format!("/api/v1/payments/{}", paid["id"].as_str().unwrap()),
            &admin.token,
            &json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(refunded.status(), StatusCode::OK);
    let update = expect(&mut managing, "stats.updated", |_| true).await;
    assert_eq!(update["data"]["payments"][0]["from"], "completed");
    assert_eq!(update["data"]["payments"][0]["to"], "refunded");

    let shown = pay(&app, &admin.token, &open, "5.00").await;
    let seen = expect(&mut outside, "stats.updated", |_| true).await;
    assert_eq!(seen["data"]["payments"][0]["id"], shown["id"], "the outsider's first: {seen}");
}

/// Issue 44, item 4: a user with no read rights replaying `since 0` on eight sockets made
/// ordinary reads 20x slower, each replay reading a thousand rows of other people's
/// events to send none. A replay now reads what its user may see: here nothing, found in
/// one round (`more` false), where the old query stopped after the first thousand rows
/// of the log and told the client to ask again from there.
#[tokio::test]
async fn a_replay_reads_only_what_its_user_may_see() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let pending = app.user(Role::Pending).await;
    sqlx::query("INSERT INTO events (kind, topics) SELECT 'payment.created', '{payments}' FROM generate_series(1, 2500)")
        .execute(&app.pool)
        .await
        .unwrap();
    let own: i64 = sqlx::query_scalar("INSERT INTO events (kind, user_id) VALUES ('notification.created', $1) RETURNING id")
        .bind(pending.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    published(&app).await;

    let mut socket = authed(&app, &pending.token, &["payments"]).await;
    send(&mut socket, "replay", json!({"since": 0})).await;
    let done = expect(&mut socket, "replay.done", |_| true).await;
    assert_eq!(done["data"]["more"], false, "{done}");
    assert_eq!(done["data"]["sent"], 1, "only their own notification: {done}");
    assert_eq!(done["data"]["until"], own, "{done}");

    // A reader's replay pages through the topics it subscribed to.
    let mut reading = authed(&app, &manager.token, &["payments"]).await;
    send(&mut reading, "replay", json!({"since": 0})).await;
    let first = replayed(&mut reading).await;
    assert_eq!(first.len(), 1000);
    assert!(first.iter().all(|e| e["event"] == "payment.created"), "no one else's notification");
}

/// A socket that keeps sending is closed with 4429 once its allowance (twice the
/// per-second rate in a burst) is spent; another socket of the same user is untouched.
#[tokio::test]
async fn a_socket_that_floods_messages_is_closed_with_4429() {
    let app = spawn_app_with(|s| s.ws_messages_per_second = 5).await;
    let viewer = app.user(Role::Viewer).await;
    let mut calm = authed(&app, &viewer.token, &[]).await;
    let mut flooding = authed(&app, &viewer.token, &[]).await;
    // A burst within the allowance (10, less the auth) is answered in full.
    for _ in 0..8 {
        send(&mut flooding, "ping", Value::Null).await;
    }
    for _ in 0..8 {
        expect(&mut flooding, "pong", |_| true).await;
    }
    for _ in 0..60 {
        if flooding.send(Message::text(json!({"event": "ping"}).to_string())).await.is_err() {
            break;
        }
    }
    assert_eq!(closed(&mut flooding).await, (4429, "too many messages".to_owned()));
    send(&mut calm, "ping", Value::Null).await;
    expect(&mut calm, "pong", |_| true).await;
}

/// Replays are budgeted per user across their sockets: the budget spent on one socket
/// is spent for the other, the refusal says when to try again, and other users keep
/// theirs.
#[tokio::test]
async fn replays_are_budgeted_per_user_across_sockets() {
    let app = spawn_app_with(|s| s.ws_replays_per_minute = 3).await;
    let viewer = app.user(Role::Viewer).await;
    let other = app.user(Role::Viewer).await;
    let mut first = authed(&app, &viewer.token, &["payments"]).await;
    let mut second = authed(&app, &viewer.token, &["payments"]).await;
    for turn in 0..3 {
        let socket = if turn == 1 { &mut second } else { &mut first };
        send(socket, "replay", json!({"since": 0})).await;
        replayed(socket).await;
    }
    send(&mut second, "replay", json!({"since": 0})).await;
    let refused = expect(&mut second, "error", |_| true).await;
    assert_eq!(refused["data"]["code"], "rate_limited", "{refused}");
    let retry_after = refused["data"]["retry_after"].as_u64().unwrap();
    assert!((1..=61).contains(&retry_after), "{refused}");
    send(&mut second, "ping", Value::Null).await;
    expect(&mut second, "pong", |_| true).await;

    let mut others = authed(&app, &other.token, &["payments"]).await;
    send(&mut others, "replay", json!({"since": 0})).await;
    replayed(&mut others).await;
}

/// A socket's topics are bounded, so a subscription cannot grow a session without end.
#[tokio::test]
async fn a_socket_subscribes_to_at_most_two_hundred_topics() {
    let app = spawn_app().await;
    let viewer = app.user(Role::Viewer).await;
    let mut socket = authed(&app, &viewer.token, &[]).await;
    let topics: Vec<String> = (0..150).map(|_| format!("account:{}", Uuid::new_v4())).collect();
    send(&mut socket, "subscribe", json!({"topics": topics})).await;
    expect(&mut socket, "subscribed", |m| m["data"]["topics"].as_array().unwrap().len() == 150).await;
    let more: Vec<String> = (0..51).map(|_| format!("account:{}", Uuid::new_v4())).collect();
    send(&mut socket, "subscribe", json!({"topics": more})).await;
    let refused = expect(&mut socket, "error", |_| true).await;
    assert!(refused["data"]["message"].as_str().unwrap().contains("at most 200"), "{refused}");
    send(&mut socket, "subscribe", json!({"topics": ["payments"]})).await;
    expect(&mut socket, "subscribed", |m| m["data"]["topics"].as_array().unwrap().len() == 151).await;
}
