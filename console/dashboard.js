// The manager's dashboard over a period, a team and an agent (in the URL, so a view can
// be bookmarked and shared): collected per day (payments stats) as a chart with axes and
// as a table, accounts and balances by bucket and status (list facets), KPIs per agent
// (every agent, idle ones too), cure and roll rates, contact per channel and KPIs per
// portfolio; each figure's definition on hover, each table as CSV, each row a link into
// the accounts behind it; refreshed live as payments come in. Below, the messages from
// numbers no account has.

import { api, assignees, learnNames, nameOf } from "./api.js";
import { clear, debounce, field, h, localDate, money, select, sums, words, zoned } from "./dom.js";
import { catchUp, live } from "./live.js";
import { unmatchedSection } from "./messages.js";
import { applyPaymentChanges, collectedChart, table } from "./report.js";

const BUCKETS = ["current", "1-29", "30-59", "60-89", "90-119", "120+"];

// What each KPI means (docs/features/kpis.md), shown on hover over its column.
const DEFINED = {
  worked: ["Worked", "Distinct accounts with at least one activity in the period"],
  attempts: ["Attempts", "Outbound calls, texts, WhatsApp messages, emails, letters and visits"],
  rpc: ["Right-party rate", "Attempts that reached the debtor (right party, promise to pay, dispute, paid) over all attempts"],
  promises: ["Promises", "Promises to pay made in the period"],
  kept: ["Kept", "Promises kept over promises kept or broken (open and cancelled ones are not decided)"],
  cure: ["Cure rate", "Accounts past due at the start of the period that are current at its end (not written off), over the accounts past due at the start"],
  collected: ["Collected", "Completed payments received in the period, per currency (never added across currencies)"],
  roll: ["Roll rate", "Of the accounts in a bucket at the start of the period, the share in each bucket at its end"],
};

// A link into the account search with these filters (the accounts behind a figure).
function searchLink(text, filters) {
  const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  return h("a", { href: `#/search?${params}` }, text);
}

// Why the cure rates read "—": no account was past due in the period's opening
// snapshot (a fresh install has none from before its first day).
function cureWaits(report) {
  if (report.total.delinquent_at_opening) return null;
  return h("p", { class: "muted cure-waits" },
    `Cure rates show "—" until accounts past due on ${report.opening_day} can be followed to ${report.closing_day}: `,
    "the server snapshots every account once a day from its first day, so a period that starts on a day it ran, with accounts past due then, fills them in.");
}

function rate(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`;
}

function collectedOf(group) {
  return group.collected.map((c) => money(c.amount, c.currency)).join(", ") || "—";
}

// The money collected, as a link to the completed payments behind it in the payments
// screen: the period's, of the accounts `agent` holds now (`unassigned`: of none; no
// agent: every account's).
function collectedLink(group, period, agent) {
  const text = collectedOf(group);
  if (!group.collected.length) return text;
  const params = new URLSearchParams(Object.entries({ status: "completed", ...period, assigned_agent_id: agent }).filter(([, v]) => v));
  return h("a", {
    href: `#/payments?${params}`,
    title: "The completed payments of the period, days in your time zone; KPIs count them for the agent who held the account that day",
  }, text);
}

// A payment event's change as the statistics count it (what a `stats.updated` carries):
// the status it left (none for a new payment) and the one it took.
const changeOf = (payment) => ({
  id: payment.id,
  currency: payment.currency,
  amount: payment.amount,
  method: payment.method,
  received_at: payment.received_at,
  from: payment.previous_status ?? null,
  to: payment.status,
});

// A contact channel (an activity's type) as a person names it.
const CHANNEL_NAMES = { call: "Calls", sms: "Text messages", whatsapp: "WhatsApp", email: "Email", letter: "Letters", visit: "Visits" };
const channelName = (channel) => CHANNEL_NAMES[channel] || channel;

// A portfolio's group by its name; the accounts in none last, as the API orders them.
function portfolioName(group) {
  if (group.key === null) return "No portfolio";
  return group.name ?? group.key;
}

// Roll rates as a matrix: a row per bucket at the start, a column per bucket at the end.
function rollTable(rolls) {
  const from = BUCKETS.filter((b) => rolls.some((r) => r.from_bucket === b));
  const cell = (a, b) => {
    const roll = rolls.find((r) => r.from_bucket === a && r.to_bucket === b);
    return roll ? `${rate(roll.rate)} (${roll.accounts})` : "—";
  };
  return table("Roll rates: bucket at the start (rows) to bucket at the end (columns), share of accounts (accounts)",
    [DEFINED.roll, ...BUCKETS], from.map((a) => [a, ...BUCKETS.map((b) => cell(a, b))]));
}

// The period and who: the URL's parameters, today and the 29 days before by default.
function readFilters(params) {
  const today = localDate();
  const back = new Date(`${today}T00:00:00Z`);
  back.setUTCDate(back.getUTCDate() - 29);
  return {
    from: params.get("from") || back.toISOString().slice(0, 10),
    to: params.get("to") || today,
    team: params.get("team") || "",
    agent: params.get("agent") || "",
  };
}

function filterForm(filters, people) {
  const teams = [...new Set(people.map((p) => p.team).filter(Boolean))].sort();
  const inTeam = people.filter((p) => !filters.team || p.team === filters.team);
  const apply = (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const params = new URLSearchParams([...data].filter(([, v]) => v));
    location.hash = `#/dashboard?${params}`;
  };
  return h("form", { class: "dashboard-filters", onsubmit: apply, "aria-label": "Period, team and agent" },
    field("From", h("input", { type: "date", name: "from", value: filters.from, max: localDate(), required: true })),
    field("To", h("input", { type: "date", name: "to", value: filters.to, max: localDate(), required: true })),
    field("Team", select("team", [["", "Every team"], ...teams.map((t) => [t, t])], filters.team)),
    field("Agent", select("agent", [["", "Every agent"], ...inTeam.map((p) => [p.id, p.name])], filters.agent)),
    h("button", { type: "submit" }, "Show"));
}

export function dashboardScreen(main, _args, params) {
  const filters = readFilters(params);
  const form = h("div");
  const collected = h("section", { class: "card", "aria-labelledby": "collected-title", id: "collected" });
  const portfolio = h("section", { class: "card", "aria-labelledby": "portfolio-title" });
  const kpis = h("section", { class: "card", "aria-labelledby": "kpi-title", id: "kpis" });
  const rates = h("section", { class: "card", "aria-labelledby": "rates-title", id: "rates" });
  const byPortfolio = h("section", { class: "card", "aria-labelledby": "by-portfolio-title", id: "by-portfolio" });
  const updated = h("p", { class: "muted", role: "status", id: "dashboard-updated" });
  const unmatched = unmatchedSection();
  clear(main, h("h1", {}, "Dashboard"), form, updated, collected, kpis, h("div", { class: "columns" }, portfolio, rates), byPortfolio, unmatched.section);
  unmatched.load();
  assignees().then((people) => clear(form, filterForm(filters, people))).catch(() => clear(form, filterForm(filters, [])));

  // KPIs count UTC days, which may not have reached the viewer's today yet.
  const utcToday = new Date().toISOString().slice(0, 10);
  const kpiTo = filters.to > utcToday ? utcToday : filters.to;
  const kpiFrom = filters.from > kpiTo ? kpiTo : filters.from;
  const who = { from: kpiFrom, to: kpiTo, team: filters.team || undefined, agent: filters.agent || undefined };
  // The payments statistics as last read, with the changes of the payment events after
  // the one the read saw (its `last_event_id`). Events that come while a read is on its
  // way wait for it (`waiting`): only it knows which of them it counts. `reads` numbers
  // the reads, so that an older answer arriving last does not replace a newer one.
  let stats = null;
  let waiting = null;
  let reads = 0;
  const stamp = () => clear(updated, `Updated ${zoned(new Date(), undefined, { dateShown: false })}`);
  function drawCollected() {
    clear(
      collected,
      h("h2", { id: "collected-title" }, `Collected per day, ${stats.from} to ${stats.to}`),
      h("p", { class: "muted" }, "Every agent's accounts, days in your time zone."),
      // Drawn at the width it is shown at, so that its labels are the page's size.
      stats.currencies.length
        ? stats.currencies.map((c) => collectedChart(c, "day", Math.min(Math.max(collected.clientWidth - 40, 300), 960)))
        : h("p", { class: "muted" }, "No payments in this period."),
      stats.currencies.map((c) => h("p", { class: "muted" }, `${c.currency}: success rate ${rate(c.success_rate)}, ${c.failed_count} failed.`)),
    );
  }
  async function loadStats() {
    const read = ++reads;
    waiting ??= [];
    const answer = await api("GET", "/payments/stats", { params: { tz: Intl.DateTimeFormat().resolvedOptions().timeZone, from: filters.from, to: filters.to } })
      .catch((error) => {
        if (read === reads) waiting = null;
        throw error;
      });
    if (read !== reads) return;
    const seen = answer.last_event_id ?? 0;
    const changes = waiting.filter((event) => event.id > seen).map((event) => changeOf(event.detail));
    waiting = null;
    stats = answer;
    // The events after the one the read saw come live or by replay, even those made
    // before the socket signed in (the dashboard may be the first screen it serves).
    catchUp(seen);
    if (!applyPaymentChanges(stats, changes)) return loadStats();
    drawCollected();
  }
  // What the server attributes (agents, portfolios, buckets) is read again.
  async function loadReports() {
    const [facets, report, portfolios] = await Promise.all([
      api("GET", "/accounts", { params: { page_size: 0, facets: "status,bucket", exact_total: true, assigned_agent_id: filters.agent || undefined } }),
      api("GET", "/kpis", { params: { ...who, group_by: "agent" } }),
      api("GET", "/kpis", { params: { ...who, group_by: "portfolio" } }),
    ]);
    await learnNames(report.groups.map((g) => g.key)).catch(() => {});
    const agentName = (g) => g.name ?? nameOf(g.key);
    // By name as people count ("Agent 2" before "Agent 10"), the accounts of no agent last.
    const byName = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    report.groups.sort((a, b) => (a.key === null) - (b.key === null) || byName.compare(agentName(a), agentName(b)));
    const held = filters.agent ? `, held by ${nameOf(filters.agent)}` : "";
    clear(
      portfolio,
      h("h2", { id: "portfolio-title" }, `Portfolio: ${facets.total} accounts${held}`),
      table("By days past due", ["Bucket", "Accounts", "Balance"], (facets.facets.bucket || []).map((f) => [
        searchLink(f.value, { bucket: f.value, assigned_agent_id: filters.agent }), String(f.count), sums(f.sums || []),
      ])),
      table("By status", ["Status", "Accounts", "Balance"], (facets.facets.status || []).map((f) => [
        searchLink(words(f.value), { status: f.value, assigned_agent_id: filters.agent }), String(f.count), sums(f.sums || []),
      ])),
    );
    const period = { from: report.from, to: report.to };
    // The payments screen filters by agent, not by team: with a team chosen, the total
    // has no payments list that holds exactly its money.
    const agentRow = (g, all = false) => [
      g.key ? searchLink(agentName(g), { assigned_agent_id: g.key }) : "No agent",
      String(g.accounts_worked),
      String(g.contact_attempts),
      rate(g.right_party_contact_rate),
      String(g.promises_made),
      rate(g.promise_kept_rate),
      rate(g.cure_rate),
      all && filters.team && !filters.agent ? collectedOf(g) : collectedLink(g, period, all ? filters.agent : g.key ?? "unassigned"),
    ];
    clear(
      kpis,
      h("h2", { id: "kpi-title" }, `Agents, ${report.from} to ${report.to}`),
      table("KPIs per agent",
        ["Agent", DEFINED.worked, DEFINED.attempts, DEFINED.rpc, DEFINED.promises, DEFINED.kept, DEFINED.cure, DEFINED.collected],
        [...report.groups.map((g) => agentRow(g)), [h("strong", {}, "All"), ...agentRow(report.total, true).slice(1)]]),
      cureWaits(report),
      // Which channels reach debtors: the agents' attempts together, per channel.
      report.total.channels.length
        ? table("Contact by channel", ["Channel", DEFINED.attempts, "Reached the debtor", DEFINED.rpc], report.total.channels.map((c) => [
          channelName(c.channel),
          String(c.contact_attempts),
          String(c.right_party_contacts),
          rate(c.right_party_contact_rate),
        ]))
        : h("p", { class: "muted" }, "No contact attempts in this period."),
    );
    clear(
      rates,
      h("h2", { id: "rates-title" }, `Cure and roll rates, ${report.opening_day} to ${report.closing_day}`),
      h("p", {}, h("span", { class: "defined", title: DEFINED.cure[1] }, "Cure rate"),
        `: ${rate(report.total.cure_rate)} (${report.total.cured} of ${report.total.delinquent_at_opening} accounts past due at the start).`),
      cureWaits(report),
      report.total.roll_rates.length
        ? rollTable(report.total.roll_rates)
        : h("p", { class: "muted" }, "No bucket snapshots open and close this period yet."),
    );
    clear(
      byPortfolio,
      h("h2", { id: "by-portfolio-title" }, `By portfolio, ${portfolios.from} to ${portfolios.to}`),
      table("KPIs per portfolio",
        ["Portfolio", DEFINED.worked, DEFINED.attempts, DEFINED.rpc, DEFINED.promises, DEFINED.kept, DEFINED.collected, DEFINED.cure],
        portfolios.groups.map((g) => [
          searchLink(portfolioName(g), { portfolio_id: g.key ?? "none", assigned_agent_id: filters.agent }),
          String(g.accounts_worked),
          String(g.contact_attempts),
          rate(g.right_party_contact_rate),
          String(g.promises_made),
          rate(g.promise_kept_rate),
          collectedOf(g),
          rate(g.cure_rate),
        ])),
    );
  }

  // Each payment event is a change the collected chart takes as it comes, without
  // reading the statistics again (unless it cannot be applied). Payment events have ids
  // and are replayed, where `stats.updated` is sent live only: a change made while the
  // socket was not subscribed (before it signed in, or while it reconnected) would be
  // lost. Redrawn at most ten times a second (a replay brings many at once); the tables
  // whose figures the server attributes are read again at most twice a second.
  const refreshReports = debounce(() => loadReports().then(stamp).catch(() => {}), 500);
  let drawing = null;
  const redraw = () => {
    drawing ??= setTimeout(() => {
      drawing = null;
      drawCollected();
      stamp();
    }, 100);
  };
  function onPayment(event) {
    refreshReports();
    if (waiting) {
      waiting.push(event);
      return;
    }
    // The read counts what it saw.
    if (stats && event.id <= (stats.last_event_id ?? 0)) return;
    if (stats && applyPaymentChanges(stats, [changeOf(event.detail)])) redraw();
    else loadStats().then(stamp).catch(() => {});
  }
  const names = ["payment.created", "payment.updated"];
  names.forEach((name) => live.addEventListener(name, onPayment));
  Promise.all([loadStats(), loadReports()])
    .then(stamp)
    .catch((error) => clear(updated, error.problem?.detail || error.message));
  return () => names.forEach((name) => live.removeEventListener(name, onPayment));
}
