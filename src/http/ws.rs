//! `GET /api/v1/ws`: live events over a WebSocket.
//!
//! Authentication: `Authorization: Bearer` on the upgrade request, or a first message
//! `{"event": "auth", "data": {"token": "..."}}` within 5 s (never a token in the URL).
//! Close codes: 4401 authentication missing, invalid or expired; 4403 session revoked
//! (checked at once when the user's sessions change, and every 30 s); 4429 too many
//! messages; 1008 slow consumer; 1001 server shutting down or peer gone silent.
//!
//! What one user can cost: a socket's messages are paced ([`Pace`], `WS_MESSAGES_PER_SECOND`),
//! a user's replays are budgeted across their sockets (`WS_REPLAYS_PER_MINUTE`), and a
//! replay reads only the events the user may see ([`events::replay`]).
//!
//! What a user is sent of an event, live or replayed, is what they read of its account
//! over REST: an agent gets the summary of a shared event about an account they do not
//! work ([`crate::events::visibility`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::event::valid_topic;
use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::events::{Outgoing, SESSIONS_CHANGED};
use crate::service::events;
use crate::state::AppState;
use crate::telemetry::metrics;

const AUTH_WITHIN: Duration = Duration::from_secs(5);
const RECHECK_SESSION_EVERY: Duration = Duration::from_secs(30);
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Per-connection read buffer; it grows for larger messages. (The library default of
/// 128 KiB, zero-filled, would cost 1.3 GB for 10,000 idle sockets.)
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Messages queued for one connection's socket.
pub const SEND_BUFFER: usize = 256;
/// How long an event may wait for room in a full queue before the client counts as slow.
const SEND_WAIT: Duration = Duration::from_secs(5);
/// Most events one catch-up request returns.
const REPLAY_LIMIT: i64 = 1000;
/// Most topics one socket may subscribe to.
const MAX_TOPICS: usize = 200;
const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub const PATH: &str = "/api/v1/ws";

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Live events over a WebSocket
///
/// Served here: a request without an upgrade, told what to do instead.
#[utoipa::path(get, path = "/api/v1/ws", tag = "events", operation_id = "events_socket",
    // The token may come after the upgrade, in the first message: the header is optional.
    security((), ("bearer" = [])),
    description = "Live events over a WebSocket: `Authorization: Bearer` on the upgrade, or a first \
                   message `{\"event\": \"auth\", \"data\": {\"token\": \"...\"}}` within 5 s.",
    responses(
        (status = 101, description = "The upgrade, taken by the connection loop before routing"),
        (status = 426, description = "`upgrade_required`: connect with a WebSocket client"),
    ))]
fn socket() -> Response {
    let mut response = Error::new(Code::UpgradeRequired, "connect with a WebSocket client").into_response();
    response
        .headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response
}

/// A clear answer to a plain request for the socket path (upgrades are taken by the
/// connection loop before routing; see [`upgrade`]).
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "ws").and(warp::get()).map(socket).boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(socket))]
pub struct Api;

/// Whether a request asks for a WebSocket on the socket path.
pub fn is_upgrade<B>(request: &hyper::Request<B>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    request.uri().path() == PATH
        && request.method() == hyper::Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
}

/// A caller and when their token stops being valid.
#[derive(Clone)]
struct Authed {
    principal: Principal,
    token: String,
    expires_at: Instant,
}

async fn authenticate(state: &AppState, token: &str) -> Result<Authed> {
    let claims = state.auth().keys().verify(token)?;
    let principal = state.auth().authenticate(token).await?;
    let left = (claims.exp - chrono::Utc::now().timestamp()).max(0) as u64;
    Ok(Authed {
        principal,
        token: token.to_owned(),
        expires_at: Instant::now() + Duration::from_secs(left),
    })
}

/// Completes the handshake (RFC 6455) itself, so the socket gets a small read buffer,
/// after checking a bearer token if the request carries one.
pub async fn upgrade<B>(state: AppState, mut request: hyper::Request<B>) -> Response {
    let key = request.headers().get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let version_ok = request.headers().get("sec-websocket-version").is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| version_ok) else {
        return Error::new(
            Code::InvalidParameter,
            "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        )
        .into_response();
    };
    let authed = match request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
    {
        None => None,
        Some(header) => {
            let token = match header.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim().to_owned(),
                _ => return Error::new(Code::Unauthorized, "the Authorization header must use the Bearer scheme").into_response(),
            };
            match authenticate(&state, &token).await {
                Ok(authed) => Some(authed),
                Err(err) => return err.into_response(),
            }
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .max_message_size(Some(MAX_MESSAGE_BYTES))
                    .max_frame_size(Some(MAX_MESSAGE_BYTES));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                metrics::ws_opened();
                let slow = Session::run(socket, state, authed).await;
                metrics::ws_closed(slow);
            }
            Err(err) => tracing::debug!(error = %err, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(&key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

#[derive(Deserialize)]
struct ClientMessage {
    event: String,
    #[serde(default)]
    data: Value,
}

/// Why a session ends, and what the client is told.
struct Closing(u16, &'static str);

struct Session {
    state: AppState,
    authed: Option<Authed>,
    /// The portfolios whose shared events the user receives (`None`: every one), read at
    /// sign-in and at every recheck, as a search reads them.
    scope: Option<Vec<Uuid>>,
    topics: HashSet<String>,
    /// Ids sent by the last catch-up, so the live stream does not repeat them.
    replayed: HashSet<i64>,
    /// The id of the first event this socket delivered live. The relay publishes in id
    /// order, so the events from there on come live, and a catch-up stops before it
    /// rather than send them twice.
    first_live: Option<i64>,
    out: mpsc::Sender<Message>,
    pace: Pace,
}

/// A socket's allowance of incoming messages: a token bucket holding up to twice the
/// rate per second, so a client may burst (auth, subscribe, replay at once) but not keep
/// the server busy reading and answering.
struct Pace {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        Pace {
            per_second,
            tokens: per_second * 2.0,
            last: Instant::now(),
        }
    }

    /// Spends one message; false when the allowance is used up.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second * 2.0);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Writes queued messages to the socket; a close frame jumps the queue.
async fn write(mut sink: SplitSink<Socket, Message>, mut queue: mpsc::Receiver<Message>, mut close: oneshot::Receiver<Message>) {
    loop {
        tokio::select! {
            biased;
            frame = &mut close => {
                if let Ok(frame) = frame {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
                }
                break;
            }
            message = queue.recv() => {
                let Some(message) = message else { break };
                tokio::select! {
                    sent = sink.send(message) => if sent.is_err() { break },
                    frame = &mut close => {
                        if let Ok(frame) = frame {
                            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
                        }
                        break;
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

impl Session {
    /// Serves the socket until it closes; true when it was closed as a slow consumer.
    async fn run(socket: Socket, state: AppState, authed: Option<Authed>) -> bool {
        let (sink, mut incoming) = socket.split();
        let (out, queue) = mpsc::channel(SEND_BUFFER);
        let (close, close_rx) = oneshot::channel();
        let writer = tokio::spawn(write(sink, queue, close_rx));
        let mut hub = state.events().subscribe();
        let mut closing = state.events().closing();
        let ping_every = Duration::from_secs(state.settings().ws_ping_secs.max(1));
        let pace = Pace::new(state.settings().ws_messages_per_second);
        let mut session = Session {
            state,
            authed: None,
            scope: None,
            topics: HashSet::new(),
            replayed: HashSet::new(),
            first_live: None,
            out,
            pace,
        };
        let mut ending = match authed {
            Some(authed) => session.accept(authed).await.err(),
            None => None,
        };
        let auth_deadline = Instant::now() + AUTH_WITHIN;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK_SESSION_EVERY, RECHECK_SESSION_EVERY);
        let mut last_heard = Instant::now();
        while ending.is_none() {
            let expiry = session.authed.as_ref().map_or(auth_deadline, |a| a.expires_at);
            ending = tokio::select! {
                _ = tokio::time::sleep_until(expiry) => Some(if session.authed.is_some() {
                    Closing(4401, "token expired")
                } else {
                    Closing(4401, "authentication required")
                }),
                message = incoming.next() => match message {
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        if session.pace.take() {
                            session.on_message(message).await.err()
                        } else {
                            Some(Closing(4429, "too many messages"))
                        }
                    }
                    Some(Err(_)) | None => Some(Closing(1000, "")),
                },
                received = hub.recv() => match received {
                    Ok(event) => session.on_event(&event).await.err(),
                    Err(broadcast::error::RecvError::Lagged(_)) => Some(Closing(1008, "slow consumer")),
                    Err(broadcast::error::RecvError::Closed) => Some(Closing(1001, "server shutting down")),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > ping_every * 2 {
                        Some(Closing(1001, "no answer to pings"))
                    } else {
                        session.send(Message::Ping(Bytes::new())).err()
                    }
                }
                _ = recheck.tick(), if session.authed.is_some() => session.recheck().await.err(),
                _ = closing.changed() => Some(Closing(1001, "server shutting down")),
            };
        }
        let slow = matches!(ending, Some(Closing(1008, _)));
        if let Some(Closing(code, reason)) = ending {
            if let Some(authed) = &session.authed {
                tracing::debug!(user_id = %authed.principal.user_id, code, reason, "websocket closed");
            }
            let _ = close.send(close_frame(code, reason));
        }
        drop(session);
        let _ = tokio::time::timeout(CLOSE_GRACE * 2, writer).await;
        slow
    }

    /// Queues a message; a full queue means the client does not keep up.
    fn send(&self, message: Message) -> std::result::Result<(), Closing> {
        self.out.try_send(message).map_err(|_| Closing(1008, "slow consumer"))
    }

    fn reply(&self, event: &str, data: Value) -> std::result::Result<(), Closing> {
        self.send(Message::text(json!({"event": event, "data": data}).to_string()))
    }

    /// Welcomes `authed` with the id of the latest committed event, so a client that
    /// drops before it is sent one still knows where to replay from.
    async fn accept(&mut self, authed: Authed) -> std::result::Result<(), Closing> {
        let latest = events::latest_id(self.state.pool()).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "reading the latest event id failed");
            None
        });
        self.scope = self.scope_of(&authed.principal, Some(Vec::new())).await;
        let p = &authed.principal;
        let data = json!({"user_id": p.user_id, "role": p.role, "name": p.name, "last_event_id": latest});
        self.authed = Some(authed);
        self.reply("auth.ok", data)
    }

    async fn on_message(&mut self, message: Message) -> std::result::Result<(), Closing> {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Err(Closing(1000, "")),
            _ => return Ok(()),
        };
        let parsed = serde_json::from_str::<ClientMessage>(text.as_str()).ok();
        let Some(ClientMessage { event, data }) = parsed else {
            return self.reply("error", json!({"message": "send JSON {\"event\": ..., \"data\": {...}}"}));
        };
        match (event.as_str(), &self.authed) {
            ("auth", _) => self.auth(&data).await,
            (_, None) => Err(Closing(4401, "authentication required")),
            ("subscribe", Some(_)) => self.subscribe(&data, true),
            ("unsubscribe", Some(_)) => self.subscribe(&data, false),
            ("replay", Some(_)) => self.replay(&data).await,
            ("ping", Some(_)) => self.reply("pong", Value::Null),
            (other, Some(_)) => self.reply("error", json!({"message": format!("unknown event `{other}`")})),
        }
    }

    /// First authentication, or a fresh token for the same user before the old expires.
    async fn auth(&mut self, data: &Value) -> std::result::Result<(), Closing> {
        let Some(token) = data.get("token").and_then(Value::as_str) else {
            return Err(Closing(4401, "auth needs data.token"));
        };
        let authed = authenticate(&self.state, token).await.map_err(|err| match err.code() {
            Code::TokenExpired => Closing(4401, "token expired"),
            _ => Closing(4401, "invalid token"),
        })?;
        if let Some(current) = &self.authed
            && current.principal.user_id != authed.principal.user_id
        {
            return Err(Closing(4401, "a socket belongs to one user"));
        }
        self.accept(authed).await
    }

    fn subscribe(&mut self, data: &Value, add: bool) -> std::result::Result<(), Closing> {
        let topics: Vec<String> = data
            .get("topics")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let invalid: Vec<&String> = topics.iter().filter(|t| !valid_topic(t)).collect();
        if topics.is_empty() || !invalid.is_empty() {
            return self.reply(
                "error",
                json!({"message": "topics must be a list of account:{id}, payments, accounts, jobs, stats", "invalid": invalid}),
            );
        }
        let mut after = self.topics.clone();
        for topic in topics {
            if add {
                after.insert(topic);
            } else {
                after.remove(&topic);
            }
        }
        if after.len() > MAX_TOPICS {
            return self.reply(
                "error",
                json!({"message": format!("a socket may subscribe to at most {MAX_TOPICS} topics"), "topics": after.len()}),
            );
        }
        self.topics = after;
        let mut current: Vec<&String> = self.topics.iter().collect();
        current.sort();
        self.reply("subscribed", json!({"topics": current}))
    }

    /// Sends what this client may see that was committed after `since` and before the
    /// first event it was sent live, in order, if its user has replays left this minute.
    async fn replay(&mut self, data: &Value) -> std::result::Result<(), Closing> {
        let Some(since) = data.get("since").and_then(Value::as_i64) else {
            return self.reply("error", json!({"message": "replay needs data.since (an event id)"}));
        };
        let Some(authed) = &self.authed else { return Ok(()) };
        let principal = &authed.principal;
        if let Err(wait) = self.state.ws_replays().try_record(&principal.user_id.to_string()) {
            let retry_after = wait.as_secs() + 1;
            let limit = self.state.settings().ws_replays_per_minute;
            return self.reply(
                "error",
                json!({"message": format!("too many replays ({limit} a minute per user); try again in {retry_after} s"),
                       "code": "rate_limited", "retry_after": retry_after}),
            );
        }
        let topics: Vec<String> = self.topics.iter().cloned().collect();
        let missed = match events::replay(self.state.pool(), principal, &topics, since, self.first_live, REPLAY_LIMIT).await {
            Ok(missed) => missed,
            Err(err) => {
                tracing::warn!(error = %err, "event replay failed");
                return self.reply("error", json!({"message": "replay failed; try again"}));
            }
        };
        let more = missed.len() as i64 == REPLAY_LIMIT;
        let last = missed.last().and_then(|e| e.id).unwrap_or(since);
        self.replayed.clear();
        let mut sent = 0;
        for marked in missed {
            let outgoing = Outgoing::new(marked);
            self.replayed.extend(outgoing.event.id);
            if let Some(text) = self.text_of(&outgoing) {
                self.deliver(Message::Text(text)).await?;
                sent += 1;
            }
        }
        self.reply("replay.done", json!({"since": since, "until": last, "sent": sent, "more": more}))
    }

    /// What this session's user is sent of `outgoing`: nothing when it is not
    /// [visible](crate::domain::event::Event::visible_to) to them, else as much as they
    /// read of its account.
    fn text_of(&self, outgoing: &Outgoing) -> Option<Utf8Bytes> {
        let principal = &self.authed.as_ref()?.principal;
        if !outgoing.event.visible_to(principal, &self.topics, self.scope.as_deref()) {
            return None;
        }
        outgoing.text_for(principal)
    }

    /// `principal`'s portfolios now, or `otherwise` when they cannot be read (at sign-in
    /// none but the accounts in no portfolio; at a recheck the ones read before).
    async fn scope_of(&self, principal: &Principal, otherwise: Option<Vec<Uuid>>) -> Option<Vec<Uuid>> {
        match events::scope(self.state.pool(), principal).await {
            Ok(scope) => scope,
            Err(err) => {
                tracing::warn!(error = %err, "reading the socket user's portfolios failed");
                otherwise
            }
        }
    }

    async fn on_event(&mut self, outgoing: &Arc<Outgoing>) -> std::result::Result<(), Closing> {
        let event = &outgoing.event;
        if event.kind == SESSIONS_CHANGED {
            let mine = self.authed.as_ref().is_some_and(|a| Some(a.principal.user_id) == event.user_id);
            if !mine {
                return Ok(());
            }
            // Another instance may have read the session before it changed.
            self.state.auth().forget_sessions();
            return self.recheck().await;
        }
        if event.id.is_some_and(|id| self.replayed.contains(&id)) {
            return Ok(());
        }
        let Some(text) = self.text_of(outgoing) else { return Ok(()) };
        self.first_live = self.first_live.or(event.id);
        self.deliver(Message::Text(text)).await
    }

    /// Queues an event, waiting (bounded) for room: a replay of a thousand events or a
    /// burst pass at the client's pace, a client that stays behind is dropped.
    async fn deliver(&self, message: Message) -> std::result::Result<(), Closing> {
        match tokio::time::timeout(SEND_WAIT, self.out.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closing(1008, "slow consumer")),
        }
    }

    /// Logout, a disabled user or a role change apply to open sockets too: at once on
    /// the hint [`SESSIONS_CHANGED`], and every [`RECHECK_SESSION_EVERY`] for changes
    /// no instance announced (Redis down, `psql`, the CLI).
    async fn recheck(&mut self) -> std::result::Result<(), Closing> {
        let Some(authed) = &self.authed else { return Ok(()) };
        match self.state.auth().authenticate(&authed.token).await {
            Ok(principal) => {
                self.scope = self.scope_of(&principal, self.scope.clone()).await;
                if let Some(authed) = &mut self.authed {
                    authed.principal = principal;
                }
                Ok(())
            }
            Err(err) if err.code() == Code::TokenExpired => Err(Closing(4401, "token expired")),
            Err(err) if err.code() == Code::Internal => Ok(()),
            Err(_) => Err(Closing(4403, "session revoked")),
        }
    }
}
