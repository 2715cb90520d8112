// Live events over the WebSocket: authenticates with its first message (a token never
// goes in the URL), subscribes, and replays what it missed since the last event id it
// knows: the latest one it was sent, or the one the server named when it first signed
// in (so a socket that drops before any event still catches up), or from earlier when a
// screen asks (catchUp). Screens listen with live.addEventListener(eventName, fn): the
// event's data is its `detail` and its id (null for one sent live only) its `id`;
// "status" tells whether the socket is up.

import { accessToken, refresh, sessionEvents } from "./api.js";

export const live = new EventTarget();

const TOPICS = ["payments", "accounts", "jobs"];
// How many recent event ids are remembered to drop one delivered twice.
const REMEMBERED = 500;
// `from`: the event id after which every event reaches the screens (live or replayed),
// known once the socket first signs in; `wanted`: an earlier one a screen asked for
// before it did.
const state = {
  socket: null, lastId: null, replayFrom: null, from: null, wanted: null, seen: new Set(), retry: 1000, stopped: true, connected: false,
};

// Whether an event id is new; remembers it.
function fresh(id) {
  if (state.seen.has(id)) return false;
  state.seen.add(id);
  if (state.seen.size > REMEMBERED) state.seen.delete(state.seen.values().next().value);
  if (state.lastId === null || id > state.lastId) state.lastId = id;
  return true;
}

function emit(name, detail, id = null) {
  live.dispatchEvent(Object.assign(new CustomEvent(name, { detail }), { id }));
}

function send(message) {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

// A catch-up from `since`; remembered so that a replay refused for the user's budget
// can be asked for again when the server says.
function replay(since) {
  state.replayFrom = since;
  send({ event: "replay", data: { since } });
}

function connect() {
  if (state.stopped || !accessToken()) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  state.socket = socket;
  socket.addEventListener("open", () => send({ event: "auth", data: { token: accessToken() } }));
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "auth.ok") {
      state.retry = 1000;
      if (state.lastId === null && typeof event.data.last_event_id === "number") state.lastId = event.data.last_event_id;
      if (!state.connected) {
        state.connected = true;
        send({ event: "subscribe", data: { topics: TOPICS } });
        // From the latest event known, or from earlier if a screen's read saw less.
        const since = state.wanted !== null && (state.lastId === null || state.wanted < state.lastId) ? state.wanted : state.lastId;
        state.wanted = null;
        // No event kept when it signed in: every one from now on comes live.
        state.from = Math.min(state.from ?? Infinity, since ?? 0);
        if (since !== null) replay(since);
        emit("status", { connected: true });
      }
      return;
    }
    if (event.event === "replay.done") {
      emit("replayed", event.data);
      if (event.data.more) replay(event.data.until);
      return;
    }
    if (event.event === "error" && event.data?.code === "rate_limited") {
      const since = state.replayFrom;
      setTimeout(() => {
        if (state.socket === socket && state.connected) replay(since);
      }, (event.data.retry_after ?? 5) * 1000);
      return;
    }
    // Delivery is at least once: drop what was already seen.
    if (typeof event.id === "number" && !fresh(event.id)) return;
    emit(event.event, event.data, event.id ?? null);
  });
  socket.addEventListener("close", async (closed) => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.connected = false;
    emit("status", { connected: false });
    if (state.stopped) return;
    if (closed.code === 4401) await refresh().catch(() => {});
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 30000);
  });
}

// A fresh token goes to the open socket before the old one expires.
sessionEvents.addEventListener("token", () => {
  if (state.connected) send({ event: "auth", data: { token: accessToken() } });
});

// Makes the events after `since` reach the screens. A screen that read what they change
// (the dashboard's statistics name the latest event they saw) may have read it before
// this socket signed in, and the socket's own catch-up starts at the latest event then:
// what came between is asked for too.
export function catchUp(since) {
  if (state.from !== null && since >= state.from) return;
  if (state.connected) {
    state.from = since;
    replay(since);
  } else if (state.wanted === null || since < state.wanted) {
    state.wanted = since;
  }
}

export function startLive() {
  state.stopped = false;
  if (!state.socket) connect();
}

export function stopLive() {
  state.stopped = true;
  state.lastId = null;
  state.from = null;
  state.wanted = null;
  state.seen.clear();
  state.socket?.close(1000);
  state.socket = null;
  state.connected = false;
}

