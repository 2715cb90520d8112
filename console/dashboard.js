// The manager's dashboard: collected per day (payments stats), accounts and balances by
// bucket and status (list facets), KPIs per agent and per portfolio, refreshed live as
// payments come in; and the messages from numbers no account has.

import { api, learnNames, nameOf } from "./api.js";
import { clear, debounce, h, money, sums, words, zoned } from "./dom.js";
import { live } from "./live.js";
import { unmatchedSection } from "./messages.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// A bar chart of the daily series, with a table of the same figures for screen readers.
function chart(currency) {
  const series = currency.series;
  const max = Math.max(1, ...series.map((d) => Number(d.amount)));
  const width = 720;
  const height = 180;
  const step = width / Math.max(series.length, 1);
  const bars = series.map((d, i) => {
    const barHeight = (Number(d.amount) / max) * (height - 20);
    return svg("rect", { x: i * step + 1, y: height - barHeight, width: Math.max(step - 2, 1), height: barHeight, class: "bar" },
      svg("title", {}, `${d.date}: ${money(d.amount, currency.currency)} (${d.count})`));
  });
  return h(
    "figure",
    {},
    svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": `Collected per day in ${currency.currency}, up to ${money(String(max), currency.currency)}` }, ...bars),
    h("figcaption", {}, `Today ${money(currency.today.amount, currency.currency)} · this week ${money(currency.this_week.amount, currency.currency)} · this month ${money(currency.this_month.amount, currency.currency)}`),
  );
}

// A report table. On a phone it scrolls sideways inside itself rather than breaking its
// words, so it takes the focus (a keyboard scrolls it too).
function table(caption, heads, rows) {
  return h(
    "table",
    { class: "report", tabindex: "0" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

function rate(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`;
}

function collectedOf(group) {
  return group.collected.map((c) => money(c.amount, c.currency)).join(", ") || "—";
}

// A contact channel (an activity's type) as a person names it.
const CHANNEL_NAMES = { call: "Calls", sms: "Text messages", whatsapp: "WhatsApp", email: "Email", letter: "Letters", visit: "Visits" };
const channelName = (channel) => CHANNEL_NAMES[channel] || channel;

// A portfolio's group by its name; the accounts in none last, as the API orders them.
function portfolioName(group) {
  if (group.key === null) return "No portfolio";
  return group.name ?? group.key;
}

export function dashboardScreen(main) {
  const collected = h("section", { class: "card", "aria-labelledby": "collected-title", id: "collected" });
  const portfolio = h("section", { class: "card", "aria-labelledby": "portfolio-title" });
  const kpis = h("section", { class: "card", "aria-labelledby": "kpi-title" });
  const byPortfolio = h("section", { class: "card", "aria-labelledby": "by-portfolio-title", id: "by-portfolio" });
  const updated = h("p", { class: "muted", role: "status", id: "dashboard-updated" });
  const unmatched = unmatchedSection();
  clear(main, h("h1", {}, "Dashboard"), updated, collected, h("div", { class: "columns" }, portfolio, kpis), byPortfolio, unmatched.section);
  unmatched.load();

  async function load() {
    const [stats, facets, report, portfolios] = await Promise.all([
      api("GET", "/payments/stats", { params: { tz: Intl.DateTimeFormat().resolvedOptions().timeZone } }),
      api("GET", "/accounts", { params: { page_size: 1, facets: "status,bucket" } }),
      api("GET", "/kpis", { params: { group_by: "agent" } }),
      api("GET", "/kpis", { params: { group_by: "portfolio" } }),
    ]);
    await learnNames(report.groups.map((g) => g.key)).catch(() => {});
    clear(
      collected,
      h("h2", { id: "collected-title" }, `Collected per day, ${stats.from} to ${stats.to}`),
      stats.currencies.length ? stats.currencies.map(chart) : h("p", { class: "muted" }, "No payments in this period."),
      stats.currencies.map((c) => h("p", { class: "muted" }, `${c.currency}: success rate ${rate(c.success_rate)}, ${c.failed_count} failed.`)),
    );
    clear(
      portfolio,
      h("h2", { id: "portfolio-title" }, `Portfolio: ${facets.total} accounts`),
      table("By days past due", ["Bucket", "Accounts", "Balance"], (facets.facets.bucket || []).map((f) => [f.value, String(f.count), sums(f.sums || [])])),
      table("By status", ["Status", "Accounts", "Balance"], (facets.facets.status || []).map((f) => [words(f.value), String(f.count), sums(f.sums || [])])),
    );
    clear(
      kpis,
      h("h2", { id: "kpi-title" }, `Agents, ${report.from} to ${report.to}`),
      table("KPIs per agent", ["Agent", "Attempts", "Right party", "Promises", "Kept", "Collected"], report.groups.map((g) => [
        nameOf(g.key),
        String(g.contact_attempts),
        rate(g.right_party_contact_rate),
        String(g.promises_made),
        rate(g.promise_kept_rate),
        collectedOf(g),
      ])),
      // Which channels reach debtors: every agent's attempts together, per channel.
      report.total.channels.length
        ? table("Contact by channel", ["Channel", "Attempts", "Right party", "Rate"], report.total.channels.map((c) => [
          channelName(c.channel),
          String(c.contact_attempts),
          String(c.right_party_contacts),
          rate(c.right_party_contact_rate),
        ]))
        : h("p", { class: "muted" }, "No contact attempts in this period."),
    );
    clear(
      byPortfolio,
      h("h2", { id: "by-portfolio-title" }, `By portfolio, ${portfolios.from} to ${portfolios.to}`),
      table("KPIs per portfolio", ["Portfolio", "Accounts worked", "Attempts", "Right party", "Promises", "Kept", "Collected", "Cured"], portfolios.groups.map((g) => [
        portfolioName(g),
        String(g.accounts_worked),
        String(g.contact_attempts),
        rate(g.right_party_contact_rate),
        String(g.promises_made),
        rate(g.promise_kept_rate),
        collectedOf(g),
        rate(g.cure_rate),
      ])),
    );
    clear(updated, `Updated ${zoned(new Date(), undefined, { dateShown: false })}`);
  }

  const refresh = debounce(() => load().catch(() => {}), 500);
  live.addEventListener("stats.updated", refresh);
  live.addEventListener("payment.created", refresh);
  load().catch((error) => clear(updated, error.message));
  return () => {
    live.removeEventListener("stats.updated", refresh);
    live.removeEventListener("payment.created", refresh);
  };
}
