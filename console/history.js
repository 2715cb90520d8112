// An account's history from the audit trail (managers, admins and the agent who owns
// the account): every recorded change, newest first, a page at a time, with who made
// it and the fields before and after; the whole history as a CSV file.

import { api, learnNames, nameOf } from "./api.js";
import { clear, download, fieldWords, h, money, when, words } from "./dom.js";
import { portfolios } from "./custom-fields.js";

const VERBS = {
  create: "created", update: "changed", delete: "deleted", read_summary: "opened by another agent",
  download: "downloaded", view: "viewed",
};

// Fields whose values are people, and the portfolios' names by id (learned per history).
const PEOPLE = new Set(["assigned_agent_id", "created_by", "agent_id", "user_id"]);
let portfolioNames = new Map();

// A recorded value as a person reads it: a person's or a portfolio's name rather than an
// id, "promise to pay" rather than `promise_to_pay`, yes or no.
export function shownValue(name, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.map((v) => shownValue(name, v)).join(", ") || "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return Object.entries(value).map(([key, v]) => `${fieldWords(key).toLowerCase()} ${shownValue(key, v)}`).join(", ");
  if (PEOPLE.has(name)) return nameOf(String(value));
  if (name === "portfolio_id") return portfolioNames.get(value) ?? "a portfolio";
  return typeof value === "string" && /^[a-z]+(_[a-z]+)+$/.test(value) ? words(value) : String(value);
}

// Learns the names the entries' changes will show.
async function learn(entries) {
  const ids = entries.flatMap((e) => Object.entries(e.details?.changes || {})
    .filter(([name]) => PEOPLE.has(name))
    .flatMap(([, c]) => [c.before, c.after]));
  await learnNames(ids.filter((id) => typeof id === "string")).catch(() => {});
  if (entries.some((e) => e.details?.changes?.portfolio_id)) {
    const found = await portfolios({ includeDeleted: true }).catch(() => null);
    portfolioNames = new Map((found || []).map((p) => [p.id, p.name]));
  }
}

// Headlines said otherwise than "<entity> <verb>".
const HEADLINES = { "activity.create": "contact logged", "activity.update": "contact completed" };

// "payment changed", "account created", "contact logged" ...
function headline(entry) {
  const [entity, verb] = entry.action.split(".");
  return HEADLINES[entry.action] ?? `${words(entity)} ${VERBS[verb] || words(verb)}`;
}

// An amount the audit trail keeps as a JSON number (40) in its currency's decimals
// ("40.00 USD", "1250 JPY"); two decimals when the currency is not named.
function amountOf(value, currency) {
  if (value === null || value === undefined) return null;
  const digits = currency ? new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits : 2;
  return money(Number(value).toFixed(digits), currency);
}

function who(entry) {
  if (entry.actor_name) return entry.job ? `${entry.actor_name} (${entry.job})` : entry.actor_name;
  if (entry.job) return entry.job;
  return entry.by_rule ? "a rule" : `database user ${entry.db_user}`;
}

function changes(entry) {
  const list = entry.details?.changes;
  if (!list) return null;
  return h("dl", { class: "changes" },
    Object.entries(list).flatMap(([name, change]) => [
      h("dt", {}, fieldWords(name)),
      h("dd", {}, change.changed ? "changed" : `${shownValue(name, change.before)} → ${shownValue(name, change.after)}`),
    ]));
}

// What a created row was, in a line: "120.00 EUR · cash · completed", "call (outbound) ·
// right party · pays Friday".
const MADE = {
  payment: (r) => [amountOf(r.amount, r.currency), words(r.method), words(r.status), r.reference],
  activity: (r) => [`${words(r.type)}${r.direction ? ` (${r.direction})` : ""}`, r.outcome && words(r.outcome), r.notes],
  promise: (r) => [amountOf(r.amount), r.due_date && `by ${r.due_date}`],
  plan: (r) => [amountOf(r.total), r.instalment_count && `${r.instalment_count} ${words(r.frequency)} instalments`],
  document: (r) => [r.name, r.kind && words(r.kind)],
  override: (r) => [r.channel && words(r.channel), r.reason],
};

function made(entry) {
  const [entity, verb] = entry.action.split(".");
  const row = entry.details?.row ?? (verb === "view" || verb === "download" ? entry.details : null);
  const parts = row && MADE[entity]?.(row).filter(Boolean);
  return parts?.length ? h("p", { class: "made" }, parts.join(" · ")) : null;
}

function item(entry) {
  return h("li", { dataset: { action: entry.action } },
    h("strong", {}, headline(entry)),
    entry.by_rule ? h("span", { class: "muted" }, " by rule") : "",
    made(entry),
    changes(entry),
    h("small", {}, `${when(entry.at)} · ${who(entry)}`));
}

// The history of account `id`, to show in `section` (its heading is `headingId`).
export async function renderHistory(section, id, headingId) {
  const list = h("ul", { class: "plain timeline history" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Older");
  const file = h("button", { type: "button" }, "Download CSV");
  file.addEventListener("click", async () => {
    const response = await api("GET", `/accounts/${id}/history`, { params: { format: "csv" }, raw: true });
    download(await response.blob(), `history-${id.slice(0, 8)}.csv`);
  });
  const load = async (cursor) => {
    const page = await api("GET", `/accounts/${id}/history`, { params: { page_size: 25, cursor } });
    await learn(page.data);
    for (const entry of page.data) list.append(item(entry));
    if (!page.data.length && !cursor) list.append(h("li", { class: "muted" }, "Nothing recorded yet."));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  };
  clear(section, h("div", { class: "row-head" }, h("h2", { id: headingId }, "History"), file), list, more);
  await load();
}
