//! What docs/features/live-events.md promises of live events beyond one socket's life: sessions revoked
//! under an open socket, a server shutting down, the relay's leader handing over, Redis
//! coming back to two instances, and the payment events no other test sends.

use std::collections::HashMap;
use std::time::Duration;

use arrears::domain::role::Role;
use arrears::events::{Events, relay};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http;

use crate::helpers::{Served, TestApp, eventually, fresh_pool, instant, spawn_app, status_json};
use crate::ws::{RedisServer, authed, closed, expect, pay, redis_status, two_instances_on};

#[tokio::test]
async fn logging_out_closes_the_sessions_sockets_on_every_instance_at_once() {
    let redis = RedisServer::start();
    let (first, second) = two_instances_on(&redis).await;
    let agent = first.user(Role::Agent).await;
    let other = first.user(Role::Agent).await;
    let mut here = authed(&first, &agent.token, &["payments"]).await;
    let mut there = authed(&second, &agent.token, &["payments"]).await;
    let mut bystander = authed(&second, &other.token, &["payments"]).await;
    let started = std::time::Instant::now();
    let response = first
        .post("/api/v1/auth/logout", None, &json!({"refresh_token": agent.refresh_token}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // `closed` waits 10 s, a third of the periodic check: only the logout's hint closes them.
    assert_eq!(closed(&mut here).await, (4403, "session revoked".to_owned()));
    assert_eq!(
        closed(&mut there).await,
        (4403, "session revoked".to_owned()),
        "on the other instance too"
    );
    println!("sockets closed {:?} after the logout", started.elapsed());
    crate::ws::send(&mut bystander, "ping", Value::Null).await;
    expect(&mut bystander, "pong", |_| true).await;
}

#[tokio::test]
async fn disabling_a_user_closes_their_sockets_at_once() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    let mut socket = authed(&app, &agent.token, &[]).await;
    let (status, user) = status_json(
        app.patch(&format!("/api/v1/users/{}", agent.id), &admin.token, &json!({"disabled": true}))
            .await,
    )
    .await;
    assert_eq!((status, user["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{user}");
    assert_eq!(closed(&mut socket).await, (4403, "session revoked".to_owned()));
    let mut admins = authed(&app, &admin.token, &[]).await;
    crate::ws::send(&mut admins, "ping", Value::Null).await;
    expect(&mut admins, "pong", |_| true).await;
}

/// `arrears serve` told to stop (SIGTERM) while a request is in flight (its handler
/// reading a body the client sends slowly) and a socket is open: the socket is closed
/// with 1001, the listener closes, the request still gets its answer, then the process
/// exits cleanly.
#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_drains_a_request_in_flight() {
    let served = Served::start(&[]).await;
    let token = served.signed_in(Role::Manager).await;
    let (bind, settings) = (served.bind.clone(), served.settings.clone());
    let mut server = served.process;

    let mut request = format!("ws://{bind}/api/v1/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    expect(&mut socket, "auth.ok", |_| true).await;

    // The request in flight: its headers sent, its body not yet. `100 Continue` says the
    // handler has started to read the body.
    let body = json!({"debtor_name": "Drained", "original_balance": "10.00", "currency": "USD"}).to_string();
    let mut in_flight = tokio::net::TcpStream::connect(bind.as_str()).await.unwrap();
    let head = format!(
        "POST /api/v1/accounts HTTP/1.1\r\nHost: {bind}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let mut continued = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), in_flight.read_exact(&mut continued))
        .await
        .expect("100 Continue within 10 s")
        .unwrap();
    assert!(
        continued.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&continued)
    );

    server.terminate();
    assert_eq!(closed(&mut socket).await, (1001, "server shutting down".to_owned()));
    eventually("the listener closed", || async {
        tokio::net::TcpStream::connect(bind.as_str()).await.is_err()
    })
    .await;
    // A slow client: its body comes 2 s into the shutdown, long after a server that
    // did not drain would have stopped its tasks and exited (within 10 s it must).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.running(), "the server waits for the request in flight");
    in_flight.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_string(&mut answer))
        .await
        .expect("answered within 10 s")
        .expect("the request in flight gets its answer");
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    assert!(answer.contains("\"debtor_name\":\"Drained\""), "{answer}");
    assert!(server.exited().await.success(), "a clean exit after the drain");
    let _ = std::fs::remove_dir_all(&settings.data_dir);
}

/// Every event delivered by two relays' hubs, by event id, once the queue is empty.
async fn deliveries(
    pool: &sqlx::PgPool,
    hubs: &mut [(&str, broadcast::Receiver<std::sync::Arc<arrears::events::Outgoing>>)],
) -> HashMap<i64, Vec<String>> {
    eventually("the relay publishes every event", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_queue")
            .fetch_one(pool)
            .await
            .unwrap()
            == 0
    })
    .await;
    let mut seen: HashMap<i64, Vec<String>> = HashMap::new();
    for (name, hub) in hubs.iter_mut() {
        while let Ok(outgoing) = hub.try_recv() {
            if let Some(id) = outgoing.event.id {
                seen.entry(id).or_default().push((*name).to_owned());
            }
        }
    }
    seen
}

/// Writes `count` events a few milliseconds apart; after `stop_after` of them, sends on `stop`.
async fn write_events(pool: &sqlx::PgPool, count: usize, stop_after: usize, stop: impl FnOnce()) -> Vec<i64> {
    let mut stop = Some(stop);
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        if n == stop_after
            && let Some(stop) = stop.take()
        {
            stop();
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO events (kind, topics, data) VALUES ('payment.created', '{payments}', jsonb_build_object('n', $1::int)) RETURNING id")
            .bind(n as i32)
            .fetch_one(pool)
            .await
            .unwrap();
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ids
}

/// Two relays on one database, each with its own hub (two instances without Redis): the
/// first leads; the second stands by. Each with its hub, stop switch and task.
struct Relays {
    pool: sqlx::PgPool,
    leader: (Events, watch::Sender<bool>, tokio::task::JoinHandle<()>),
    standby: (Events, watch::Sender<bool>, tokio::task::JoinHandle<()>),
}

impl Relays {
    async fn start() -> Self {
        let pool = fresh_pool().await;
        let start = |name: &str| {
            let events = Events::new(None, name).unwrap();
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(relay::run(pool.clone(), events.clone(), stopped));
            (events, stop, task)
        };
        let leader = start("leader");
        let mut hub = leader.0.subscribe();
        sqlx::query("INSERT INTO events (kind, topics) VALUES ('payment.created', '{payments}')")
            .execute(&pool)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), hub.recv())
            .await
            .expect("the first relay leads")
            .unwrap();
        let standby = start("standby");
        Self { pool, leader, standby }
    }
}

fn assert_handed_over(written: &[i64], seen: &HashMap<i64, Vec<String>>) {
    let lost: Vec<&i64> = written.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(lost.is_empty(), "events never published: {lost:?}");
    let by_standby = written.iter().filter(|id| seen[id].iter().any(|r| r == "standby")).count();
    assert!(by_standby > 0, "the standby took over");
    assert!(
        seen[&written[0]].iter().all(|r| r == "leader"),
        "the leader published before it went: {:?}",
        seen[&written[0]]
    );
}

#[tokio::test]
async fn a_standby_relay_takes_over_from_a_leader_that_stops_and_each_event_is_published_once() {
    let Relays { pool, leader, standby } = Relays::start().await;
    let (leader_events, stop_leader, leader_task) = leader;
    let mut hubs = [("leader", leader_events.subscribe()), ("standby", standby.0.subscribe())];
    let written = write_events(&pool, 300, 100, move || {
        let _ = stop_leader.send(true);
    })
    .await;
    let seen = deliveries(&pool, &mut hubs).await;
    assert_handed_over(&written, &seen);
    let twice: Vec<(&i64, &Vec<String>)> = seen.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "published more than once: {twice:?}");
    assert!(leader_task.is_finished(), "the leader stopped");
}

/// A leader that dies (its task and its connection dropped mid-stream, as when its
/// process is killed) frees the lock with its connection; the standby publishes the rest.
/// Delivery is at least once: only a batch the dead leader published and had not yet
/// dequeued may come again, from the standby, never twice from one relay.
#[tokio::test]
async fn a_standby_relay_takes_over_from_a_leader_that_dies_and_no_event_is_lost() {
    let Relays { pool, leader, standby } = Relays::start().await;
    let (leader_events, _stop_leader, leader_task) = leader;
    let mut hubs = [("leader", leader_events.subscribe()), ("standby", standby.0.subscribe())];
    let written = write_events(&pool, 300, 100, move || leader_task.abort()).await;
    let seen = deliveries(&pool, &mut hubs).await;
    assert_handed_over(&written, &seen);
    let again: Vec<(&i64, &Vec<String>)> = seen.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(
        again.iter().all(|(_, by)| by.as_slice() == ["leader", "standby"]),
        "only the dead leader's last batch comes again, from the standby: {again:?}"
    );
    println!("{} of {} events published again after the leader died", again.len(), written.len());
}

#[tokio::test]
async fn two_instances_deliver_each_others_events_again_after_redis_restarts() {
    let redis = RedisServer::start();
    let redis_socket = redis.socket();
    let (first, second) = two_instances_on(&redis).await;
    let manager = first.user(Role::Manager).await;
    let account = first.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let mut sockets = [
        authed(&first, &manager.token, &["payments"]).await,
        authed(&second, &manager.token, &["payments"]).await,
    ];
    let before = pay(&first, &manager.token, &account, "1.00").await;
    for socket in &mut sockets {
        expect(socket, "payment.created", |m| m["data"]["id"] == before["id"]).await;
    }

    drop(redis);
    for app in [&first, &second] {
        eventually("redis down", || async { redis_status(app).await == "down" }).await;
    }
    let _redis = RedisServer::start_at(redis_socket);
    for app in [&first, &second] {
        eventually("redis reconnected", || async { redis_status(app).await == "ok" }).await;
    }
    // Whichever instance relays, both hear of payments written on either.
    for (writer, amount) in [(&first, "2.00"), (&second, "3.00")] {
        let after = pay(writer, &manager.token, &account, amount).await;
        for socket in &mut sockets {
            expect(socket, "payment.created", |m| m["data"]["id"] == after["id"]).await;
        }
    }
}

/// The fields of a payment as the API answers it, times as instants.
fn comparable(payment: &Value) -> Value {
    let mut payment = payment.clone();
    for field in ["received_at", "created_at", "updated_at"] {
        if payment[field].is_string() {
            payment[field] = json!(instant(&payment[field]).timestamp_micros());
        }
    }
    payment
}

async fn patch_payment(app: &TestApp, token: &str, id: &Value, body: Value) -> Value {
    let (status, payment) = status_json(app.patch(&format!("/api/v1/payments/{}", id.as_str().unwrap()), token, &body).await).await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    payment
}

#[tokio::test]
async fn a_payment_status_change_sends_payment_updated_with_the_payment() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await["id"].as_str().unwrap().to_owned();
    let mut by_account = authed(&app, &manager.token, &[&format!("account:{account}")]).await;
    let mut by_payments = authed(&app, &manager.token, &["payments"]).await;
    let body = json!({"amount": "40.00", "currency": "USD", "method": "card", "status": "pending"});
    let pending = app.create_payment(&manager.token, &account, &body).await;
    for (change, before, status) in [
        (json!({"status": "completed"}), "pending", "completed"),
        (json!({"status": "refunded"}), "completed", "refunded"),
    ] {
        let changed = patch_payment(&app, &manager.token, &pending["id"], change).await;
        assert_eq!(changed["status"], status);
        for socket in [&mut by_account, &mut by_payments] {
            let mut event = expect(socket, "payment.updated", |m| m["data"]["status"] == status).await;
            let left = event["data"].as_object_mut().unwrap().remove("previous_status");
            assert_eq!(left, Some(json!(before)), "it says the status the payment left");
            assert_eq!(
                comparable(&event["data"]),
                comparable(&changed),
                "the event carries the payment as the API answers it, and the status it left"
            );
            assert!(event["id"].as_i64().unwrap() > 0 && event["at"].is_string());
        }
    }
}

#[tokio::test]
async fn a_broken_promise_sends_payment_overdue_and_notifies_the_agent() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let id = account["id"].as_str().unwrap().to_owned();
    let mut watching = authed(&app, &manager.token, &["payments"]).await;
    let mut agents = authed(&app, &agent.token, &[]).await;
    let due = chrono::Utc::now().date_naive();
    let promise = app
        .create_promise(&agent.token, &id, &json!({"amount": "75.50", "due_date": due}))
        .await;
    // What the promise scheduler does every minute, two days on.
    let broken = arrears::store::promises::break_overdue(&app.pool, chrono::Utc::now() + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(broken, 1);
    let overdue = expect(&mut watching, "payment.overdue", |_| true).await;
    assert_eq!(
        overdue["data"],
        json!({
            "promise_id": promise["id"],
            "account_id": id,
            "amount": "75.50",
            "currency": "USD",
            "due_date": due.to_string(),
            "account_number": account["account_number"],
        })
    );
    assert!(overdue["id"].as_i64().unwrap() > 0);
    let note = expect(&mut agents, "notification.created", |m| m["data"]["kind"] == "payment_overdue").await;
    assert_eq!(
        note["data"]["data"], overdue["data"],
        "the agent's notification carries the same facts"
    );
}
