// An account's history from the audit trail (managers, admins and the agent who owns
// the account): every recorded change, newest first, a page at a time, with who made
// it and the fields before and after; the whole history as a CSV file.

import { api } from "./api.js";
import { clear, download, h, when, words } from "./dom.js";

const VERBS = { create: "created", update: "changed", delete: "deleted", read_summary: "opened by another agent" };

const shown = (value) =>
  value === null || value === undefined || value === "" ? "—" : Array.isArray(value) ? value.join(", ") || "—" : typeof value === "object" ? JSON.stringify(value) : String(value);

// "Payment changed", "Account created" ...
function headline(entry) {
  const [entity, verb] = entry.action.split(".");
  return `${words(entity)} ${VERBS[verb] || words(verb)}`;
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
      h("dt", {}, words(name)),
      h("dd", {}, change.changed ? "changed" : `${shown(change.before)} → ${shown(change.after)}`),
    ]));
}

function item(entry) {
  return h("li", { dataset: { action: entry.action } },
    h("strong", {}, headline(entry)),
    entry.by_rule ? h("span", { class: "muted" }, " by rule") : "",
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
    for (const entry of page.data) list.append(item(entry));
    if (!page.data.length && !cursor) list.append(h("li", { class: "muted" }, "Nothing recorded yet."));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  };
  clear(section, h("div", { class: "row-head" }, h("h2", { id: headingId }, "History"), file), list, more);
  await load();
}
