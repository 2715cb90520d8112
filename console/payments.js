// Payments, for managers: find payments (a debtor's name, an account number, a
// reference) by status, method, agent and the days they were received, page by page,
// and export what is found; and over the same days, the money collected per day, week
// or month in the viewer's zone, and the failures by method (with their rate) and by
// reason. The search is in the URL, so it can be bookmarked and sent.

import { api, assignees, learnNames, nameOf } from "./api.js";
import { clear, counted, download, field, h, localDate, money, select, sums, when, words } from "./dom.js";
import { collectedChart, table } from "./report.js";

const STATUSES = ["completed", "pending", "failed", "refunded", "reversed"];
const METHODS = ["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];
const INTERVALS = [["day", "Day"], ["week", "Week"], ["month", "Month"]];
// What the form keeps in the URL; the list reads all but `interval`.
const KEYS = ["q", "status", "method", "assigned_agent_id", "from", "to", "interval"];

const rate = (value) => (value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`);

// The search from the URL: the last 30 days by default.
function readState(params) {
  const state = Object.fromEntries(KEYS.map((key) => [key, params.get(key) || ""]));
  if (!state.to) state.to = localDate();
  if (!state.from) {
    const back = new Date(`${state.to}T12:00:00`);
    back.setDate(back.getDate() - 29);
    state.from = localDate(back);
  }
  state.interval ||= "day";
  return state;
}

// The local days as the instants the list reads: from the first day's midnight to the
// midnight after the last, in the viewer's zone (as the statistics count them).
function listParams(state) {
  const after = new Date(`${state.to}T00:00:00`);
  after.setDate(after.getDate() + 1);
  const params = {
    q: state.q || undefined,
    status: state.status || undefined,
    method: state.method || undefined,
    assigned_agent_id: state.assigned_agent_id || undefined,
    from: new Date(`${state.from}T00:00:00`).toISOString(),
    to: after.toISOString(),
  };
  return params;
}

function searchForm(state, people) {
  const submit = (event) => {
    event.preventDefault();
    const params = new URLSearchParams([...new FormData(event.target)].filter(([, v]) => v));
    location.hash = `#/payments?${params}`;
  };
  return h("form", { class: "dashboard-filters", onsubmit: submit, "aria-label": "Find payments" },
    field("Debtor, account or reference", h("input", { type: "search", name: "q", value: state.q, maxlength: 200 })),
    field("Status", select("status", [["", "Any status"], ...STATUSES.map((s) => [s, words(s)])], state.status)),
    field("Method", select("method", [["", "Any method"], ...METHODS.map((m) => [m, words(m)])], state.method)),
    field("Agent", select("assigned_agent_id", [["", "Every agent"], ["unassigned", "No agent"], ...people.map((p) => [p.id, p.name])], state.assigned_agent_id)),
    field("From", h("input", { type: "date", name: "from", value: state.from, max: localDate(), required: true })),
    field("To", h("input", { type: "date", name: "to", value: state.to, max: localDate(), required: true })),
    field("Collected per", select("interval", INTERVALS, state.interval)),
    h("button", { type: "submit" }, "Show"));
}

// Failures by method with their rate: failed over completed and failed, per method.
function failureTables(failed, decided) {
  const count = (page, facet, value) => page.facets[facet]?.find((f) => f.value === value)?.count ?? 0;
  const methods = METHODS.filter((m) => count(decided, "method", m) > 0);
  const byMethod = table("Failures by method", ["Method", "Failed", "Completed or failed", ["Failure rate", "Failed payments over the payments completed or failed, by method"]],
    methods.map((m) => {
      const bad = count(failed, "method", m);
      const all = count(decided, "method", m);
      return [words(m), String(bad), String(all), rate(all ? bad / all : null)];
    }));
  const reasons = (failed.facets.failure_reason || []).filter((f) => f.count > 0);
  const withoutReason = failed.total - reasons.reduce((n, f) => n + f.count, 0);
  const byReason = table("Failures by reason", ["Reason", "Failed", ["Share", "Of the failed payments"], "Amounts"],
    [...reasons.map((f) => [f.value, String(f.count), rate(failed.total ? f.count / failed.total : null), sums(f.sums || [])]),
      ...(withoutReason > 0 ? [["No reason given", String(withoutReason), rate(withoutReason / failed.total), "—"]] : [])]);
  return [byMethod, byReason];
}

export function paymentsScreen(main, _args, params) {
  const state = readState(params);
  const form = h("div");
  const analytics = h("section", { class: "card", "aria-labelledby": "payment-analytics-title" });
  const failures = h("section", { class: "card", "aria-labelledby": "failures-title" });
  const found = h("section", { class: "card", "aria-labelledby": "found-title" });
  const status = h("p", { class: "muted", role: "status" });
  clear(main, h("h1", {}, "Payments"), form, status, analytics, failures, found);
  assignees().then((people) => clear(form, searchForm(state, people))).catch(() => clear(form, searchForm(state, [])));

  const list = listParams(state);
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More payments");
  let cursor = null;

  const row = (p) => h("tr", {},
    h("td", {}, when(p.received_at)),
    h("td", {}, h("a", { href: `#/account/${p.account_id}` }, p.debtor_name)),
    h("td", {}, p.account_number),
    h("td", {}, money(p.amount, p.currency)),
    h("td", {}, words(p.method)),
    h("td", {}, words(p.status)),
    h("td", {}, nameOf(p.assigned_agent_id)),
    h("td", {}, p.reference || "—"),
    h("td", {}, p.failure_reason || "—"));

  async function page() {
    const answer = await api("GET", "/payments", { params: { ...list, page_size: 50, cursor: cursor || undefined } });
    await learnNames(answer.data.map((p) => p.assigned_agent_id)).catch(() => {});
    rows.append(...answer.data.map(row));
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    return answer;
  }
  more.addEventListener("click", () => page().catch((error) => clear(status, error.problem?.detail || error.message)));

  const exportAs = async (format) => {
    try {
      const response = await api("GET", "/payments/export", { params: { ...list, format }, raw: true });
      download(await response.blob(), `payments.${format}`);
    } catch (error) {
      clear(status, error.problem?.detail || error.message);
    }
  };

  async function load() {
    const [stats, first, failed, decided] = await Promise.all([
      api("GET", "/payments/stats", { params: { tz, from: state.from, to: state.to, interval: state.interval } }),
      page(),
      api("GET", "/payments", { params: { ...list, status: "failed", page_size: 0, facets: "method,failure_reason" } }),
      api("GET", "/payments", { params: { ...list, status: "completed,failed", page_size: 0, facets: "method" } }),
    ]);
    const period = INTERVALS.find(([v]) => v === state.interval)?.[1].toLowerCase() ?? "day";
    clear(analytics,
      h("h2", { id: "payment-analytics-title" }, `Collected per ${period}, ${stats.from} to ${stats.to}`),
      h("p", { class: "muted" }, `Completed payments of every account you see, days in your time zone (${stats.tz}).`),
      stats.currencies.length
        ? stats.currencies.map((c) => collectedChart(c, stats.interval, Math.min(Math.max(analytics.clientWidth - 40, 300), 960)))
        : h("p", { class: "muted" }, "No payments in this period."),
      stats.currencies.length
        ? table("Outcome per currency", ["Currency", ["Success rate", "Completed over completed or failed"], "Failed", "By status"],
          stats.currencies.map((c) => [c.currency, rate(c.success_rate), String(c.failed_count),
            c.by_status.map((s) => `${words(s.value)} ${s.count}`).join(", ")]))
        : null);
    clear(failures,
      h("h2", { id: "failures-title" }, `Failures, ${stats.from} to ${stats.to}`),
      h("p", { class: "muted" }, "The payments of this search (whatever its status) that failed, by method and by the reason given."),
      failed.total ? failureTables(failed, decided) : h("p", { class: "muted" }, "No failed payments in this search."));
    clear(found,
      h("h2", { id: "found-title" }, `${counted(first)} payments found`),
      h("div", { class: "export", role: "group", "aria-label": "Export these payments" },
        h("button", { type: "button", onclick: () => exportAs("csv") }, "Download CSV"),
        h("button", { type: "button", onclick: () => exportAs("xlsx") }, "Download XLSX")),
      h("div", { class: "report-table" },
        h("table", { class: "report", tabindex: "0" },
          h("caption", {}, "Payments, newest first"),
          h("thead", {}, h("tr", {}, ["Received", "Debtor", "Account", "Amount", "Method", "Status", "Agent", "Reference", "Failure reason"]
            .map((t) => h("th", { scope: "col" }, t)))),
          rows)),
      more);
    clear(status);
  }
  load().catch((error) => clear(status, error.problem?.detail || error.message));
}
