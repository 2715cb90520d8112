// The public API and the session.
//
// The access token lives only in memory (a script injected into the page could read
// storage; a reload simply refreshes). The refresh token is kept in sessionStorage so a
// reload or a new screen in the same tab stays signed in; it is gone when the tab
// closes, it is not shared with other tabs, and it rotates on every use (a stolen used
// token revokes the whole session).

const BASE = "/api/v1";

// An account's statuses, in the order the console lists them (the API's `AccountStatus`).
export const ACCOUNT_STATUSES = ["active", "delinquent", "promise_to_pay", "payment_plan", "disputed", "paid", "settled", "closed"];
const REFRESH_KEY = "arrears.refresh";

// What each queue reason means, as the API's `Reason` describes it: the one place the
// console takes a reason's words from.
export const REASONS = {
  broken_promise: "Broken promise (due yesterday)",
  promise_due_today: "Promise due today",
  next_action_due: "Next action due",
  plan_instalment_missed: "Plan instalment missed",
  score: "Most overdue, largest balance",
};

// The channels the queue works by (the API's `Channel`), as a sentence names them.
export const CHANNELS = [["call", "calls"], ["sms", "text messages"], ["email", "email"], ["letter", "letters"], ["visit", "visits"]];

// What holds a queue's account back on a channel (the API's `Hold`).
export const HOLDS = {
  outside_window: "outside calling hours in the debtor's zone",
  call_frequency: "call limit reached or a recent conversation",
  do_not_call: "do not call",
  do_not_email: "do not email",
  cease_communication: "asked that all contact cease",
  unverified_dispute: "disputed, not yet verified",
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const session = { token: null, user: null, expiresAt: 0, timer: null, refreshing: null };
export const sessionEvents = new EventTarget();

export function currentUser() {
  return session.user;
}

export function accessToken() {
  return session.token;
}

function adopt(answer) {
  session.token = answer.access_token;
  session.user = answer.user;
  session.expiresAt = Date.now() + answer.expires_in * 1000;
  sessionStorage.setItem(REFRESH_KEY, answer.refresh_token);
  clearTimeout(session.timer);
  // Refresh ahead of expiry so the live socket can be handed a fresh token in time.
  const ahead = Math.max(5, answer.expires_in * 0.8) * 1000;
  session.timer = setTimeout(() => refresh().catch(() => {}), ahead);
  sessionEvents.dispatchEvent(new Event("token"));
}

function forget() {
  clearTimeout(session.timer);
  session.token = null;
  session.user = null;
  sessionStorage.removeItem(REFRESH_KEY);
  sessionEvents.dispatchEvent(new Event("signedout"));
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json().catch(() => null);
  return { detail: `The server answered ${response.status}.` };
}

// Signs in; `proof` is `{code}` or `{recovery_code}` for a user with a second factor on
// (the API answers `second_factor_required` when it is missing).
export async function signIn(email, password, proof = {}) {
  const response = await fetch(`${BASE}/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password, ...proof }),
  });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  adopt(await response.json());
  return session.user;
}

// Rotates the refresh token; concurrent callers share one request (presenting a used
// token twice would revoke the session).
export function refresh() {
  if (session.refreshing) return session.refreshing;
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return Promise.reject(new ApiError(401, { detail: "Not signed in." }));
  session.refreshing = (async () => {
    try {
      const response = await fetch(`${BASE}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
      if (!response.ok) {
        forget();
        throw new ApiError(response.status, await problemOf(response));
      }
      adopt(await response.json());
      return session.user;
    } finally {
      session.refreshing = null;
    }
  })();
  return session.refreshing;
}

export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return null;
  return refresh().catch(() => null);
}

export async function signOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (token) {
    await fetch(`${BASE}/auth/logout`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${session.token}` },
      body: JSON.stringify({ refresh_token: token }),
    }).catch(() => {});
  }
  forget();
}

// A query string from an object; arrays repeat the parameter, empty values are left out.
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") search.append(key, v);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Calls the API. `body` is sent as JSON, `form` as multipart; `raw` returns the Response
// (files). A 401 refreshes the token once and retries; a refusal throws an ApiError
// carrying the problem+json.
export async function api(method, path, { body, form, params, signal, headers, raw } = {}) {
  const send = () => {
    const init = { method, signal, headers: { ...headers } };
    if (session.token) init.headers.authorization = `Bearer ${session.token}`;
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    } else if (form) {
      init.body = form;
    }
    return fetch(`${BASE}${path}${query(params)}`, init);
  };
  let response = await send();
  if (response.status === 401 && sessionStorage.getItem(REFRESH_KEY)) {
    await refresh();
    response = await send();
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    // The role requires a second factor the user has not turned on: the shell sends
    // them to enrol.
    if (problem?.code === "second_factor_enrollment_required") sessionEvents.dispatchEvent(new Event("mustenrol"));
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

// Every item of a paged list.
export async function everyPage(path, params) {
  const items = [];
  let cursor;
  do {
    const page = await api("GET", path, { params: { ...params, page_size: 200, cursor } });
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

const RANK = { pending: 0, viewer: 1, agent: 2, manager: 3, admin: 4 };

// Whether the signed-in user's role is at least `role`.
export function atLeast(role) {
  return (RANK[session.user?.role] ?? -1) >= RANK[role];
}

// Whether the signed-in user may work (log, pay, promise, plan) this account.
export function works(account) {
  return atLeast("manager") || (atLeast("agent") && account.assigned_agent_id === session.user?.id);
}

// Names of the people who work accounts (GET /agents, managers and admins), kept for the
// session; the signed-in user always knows their own.
const names = new Map();

// Looks up the names of `ids` not known yet, 200 at a time; whether it learned any.
export async function learnNames(ids) {
  if (session.user) names.set(session.user.id, session.user.name);
  const wanted = [...new Set(ids.filter((id) => id && id !== "unassigned" && !names.has(id)))];
  if (!wanted.length || !atLeast("manager")) return false;
  for (let i = 0; i < wanted.length; i += 200) {
    const page = await api("GET", "/agents", { params: { id: wanted.slice(i, i + 200).join(","), include_disabled: true, page_size: 200 } });
    for (const person of page.data) names.set(person.id, person.name);
  }
  return true;
}

// A user's name if known, else the start of their id.
export function nameOf(id) {
  if (!id || id === "unassigned") return "no agent";
  return names.get(id) || `${id.slice(0, 8)}…`;
}

// The people an account may be assigned to, by name (the first 200).
export async function assignees() {
  const page = await api("GET", "/agents", { params: { page_size: 200 } });
  for (const person of page.data) names.set(person.id, person.name);
  return page.data;
}
