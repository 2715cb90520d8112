// Issue 51 in the browser: a manager reads the dashboard over a period, a team and an
// agent; every agent is listed (an idle one too), each figure says what it means, each
// table downloads as CSV (a name a spreadsheet would run as a formula stays text), the
// collected chart has its axes and a table, and a row leads to the accounts behind it. At
// desktop width and on a phone, as a manager and as an admin. A payment reaches the open
// dashboard's collected figures live, and by replay when it landed after the statistics
// were read but before the page's socket signed in (issue 73).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { BASE, PASSWORD, PHONE, accessible, api, email, fits, login, newContext, open, rowsOf, shot, suite, tokenOf } from "./harness.js";

const TEAM = "E2E Dashboard";
const run = Date.now().toString(36);
// A name that a spreadsheet would run as a formula if a CSV held it as it is.
const FORMULA = `=HYPERLINK("http://x.example","E2E ${run}")`;
let people = {};

async function setup() {
  const admin = await login("admin");
  const user = (key, name) => api(admin.access_token, "POST", "/users", {
    email: email(`${key}-${run}`), name, role: "agent", password: PASSWORD, team: TEAM,
  });
  people = { busy: await user("dash-busy", `E2E Busy ${run}`), idle: await user("dash-idle", FORMULA) };
  // Two agents of no team whose names sort one way as text and the other as people count.
  for (const n of [2, 10]) {
    await api(admin.access_token, "POST", "/users", { email: email(`dash-seq${n}-${run}`), name: `E2E Seq ${n} ${run}`, role: "agent", password: PASSWORD });
  }
  // Searchable before the screens read them: the charts and lists below come from the index.
  const account = await api(admin.access_token, "POST", "/accounts?wait_for=indexed", {
    debtor_name: "Dana Dashboard", original_balance: "500.00", currency: "EUR", due_date: "2026-01-10", assigned_agent_id: people.busy.id,
  });
  await api(admin.access_token, "POST", `/accounts/${account.id}/activities`, { type: "letter", direction: "outbound" });
  await api(admin.access_token, "POST", `/accounts/${account.id}/payments?wait_for=indexed`, { amount: "120.00", currency: "EUR", method: "cash" });
  // Francs only this suite's live test collects (other suites pay in dollars and euros
  // meanwhile), on an account of no agent's: the chart has a CHF row to update.
  const francs = await api(admin.access_token, "POST", "/accounts", { debtor_name: "Frieda Franc", original_balance: "900.00", currency: "CHF" });
  await api(admin.access_token, "POST", `/accounts/${francs.id}/payments`, { amount: "1.00", currency: "CHF", method: "cash" });
}

// A socket of the test's own (in a page of its own, signed in as `role`, subscribed to
// `stats`): `sent(id)` resolves once a `stats.updated` carrying payment `id` went out.
// The dashboard's reads of the payment statistics, as the page makes them.
function statsReadsOf(page) {
  const reads = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/api/v1/payments/stats") reads.push(request.url());
  });
  return reads;
}

// Opens the dashboard on `page` (a manager lands on it) and waits for its first
// statistics read: what the chart says was collected today in CHF.
async function collectedTodayInChf(page) {
  if (!new URL(page.url()).hash.startsWith("#/dashboard")) await page.goto(`${BASE}/#/dashboard`);
  const caption = page.locator("#collected figcaption", { hasText: "CHF" });
  await caption.waitFor();
  const today = Number(/Today ([\d,.]+) CHF/.exec(await caption.textContent())[1].replaceAll(",", ""));
  await page.locator("#dashboard-updated", { hasText: "Updated" }).waitFor();
  return today;
}

// Waits until the chart says `amount` CHF was collected today.
async function showsCollectedTodayInChf(page, amount) {
  const expected = amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  await page.waitForFunction((shown) => [...document.querySelectorAll("#collected figcaption")]
    .some((caption) => caption.textContent.includes(`Today ${shown} CHF`)), expected);
}

async function statsWatcher(role) {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(BASE);
  await page.evaluate((token) => new Promise((subscribed, failed) => {
    window.statsPayments = [];
    const socket = new WebSocket(`ws://${location.host}/api/v1/ws`);
    socket.onopen = () => socket.send(JSON.stringify({ event: "auth", data: { token } }));
    socket.onclose = (closed) => failed(new Error(`the watching socket closed: ${closed.code} ${closed.reason}`));
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.event === "auth.ok") socket.send(JSON.stringify({ event: "subscribe", data: { topics: ["stats"] } }));
      if (event.event === "subscribed") subscribed();
      if (event.event === "stats.updated") window.statsPayments.push(...(event.data.payments || []).map((p) => p.id));
    };
  }), await tokenOf(role));
  return {
    sent: (id) => page.waitForFunction((payment) => window.statsPayments.includes(payment), id),
    close: () => context.close(),
  };
}

suite("dashboard", setup, (test) => {
  test("a manager narrows the dashboard to a team and an agent, reads definitions, downloads CSV and follows a row", async () => {
    const page = await open("manager");
    await page.goto(`${BASE}/#/dashboard`);
    const form = page.getByRole("form", { name: "Period, team and agent" });
    await form.getByLabel("Team").selectOption(TEAM);
    await form.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(new RegExp(`team=${encodeURIComponent(TEAM).replaceAll("%20", "\\+")}`));
    const kpis = page.locator("table", { hasText: "KPIs per agent" });
    await kpis.getByText(`E2E Busy ${run}`, { exact: true }).waitFor();
    // Every agent of the team, the idle one too, and nobody else; the API's figures.
    const report = await api((await login("manager")).access_token, "GET", `/kpis?team=${encodeURIComponent(TEAM)}`);
    const shown = await rowsOf(page, "KPIs per agent");
    assert.deepEqual(shown.slice(0, -1).map((row) => row[0]).sort(), [FORMULA, `E2E Busy ${run}`].sort());
    assert.equal(shown.at(-1)[0], "All");
    const busy = shown.find((row) => row[0] === `E2E Busy ${run}`);
    const group = report.groups.find((g) => g.key === people.busy.id);
    assert.equal(busy[2], String(group.contact_attempts));
    assert.match(busy.at(-1), /120\.00 EUR/, "the payment counts for the agent who holds the new account");
    assert.deepEqual(shown.find((row) => row[0] === FORMULA).slice(1, 3), ["0", "0"], "the idle agent is listed with zeros");
    // Each figure says what it means, and an empty cure rate says when it fills.
    assert.match(await kpis.locator("th", { hasText: "Cure rate" }).getAttribute("title"), /past due at the start/);
    if (!report.total.delinquent_at_opening) {
      const waits = await page.locator("#kpis .cure-waits").textContent();
      assert.match(waits, new RegExp(`until accounts past due on ${report.opening_day} can be followed to ${report.closing_day}`), waits);
    }

    // The CSV holds the table's rows; the formula-like name stays text.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download CSV: KPIs per agent" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "kpis-per-agent.csv");
    const text = await readFile(await download.path(), "utf8");
    assert.ok(text.startsWith("\ufeffAgent,Worked,Attempts,"), text.slice(0, 60));
    assert.ok(text.includes(`"'=HYPERLINK(""http://x.example"",""E2E ${run}"")"`), `the name is kept as text: ${text}`);
    assert.ok(!/^=|,=/m.test(text.replace(/^\ufeff/, "")), "no field starts a formula");

    // The money collected leads to the completed payments behind it.
    const paymentsLink = kpis.getByRole("link", { name: /120\.00 EUR/ }).first();
    const href = await paymentsLink.getAttribute("href");
    assert.match(href, new RegExp(`^#/payments\\?status=completed&from=\\d{4}-\\d\\d-\\d\\d&to=\\d{4}-\\d\\d-\\d\\d&assigned_agent_id=${people.busy.id}$`));

    // One agent: the URL says so, and the table holds them alone (and all).
    await form.getByLabel("Agent").selectOption(people.busy.id);
    await form.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(new RegExp(`agent=${people.busy.id}`));
    await page.getByRole("heading", { name: new RegExp(`held by E2E Busy ${run}`) }).waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll("table.report")]
      .find((table) => table.caption?.textContent === "KPIs per agent")?.tBodies[0]?.rows.length === 2);
    assert.deepEqual((await rowsOf(page, "KPIs per agent")).map((row) => row[0]), [`E2E Busy ${run}`, "All"]);

    // The collected chart has its axes, labels and a table of the same days.
    const chart = page.getByRole("img", { name: /^Collected per day in EUR/ });
    await chart.waitFor();
    assert.equal(await chart.locator("line.axis").count(), 2);
    assert.ok(await chart.locator("text.tick").count() >= 4, "the axes are labelled");
    await page.getByText("Collected per day in EUR as a table").click();
    assert.ok((await rowsOf(page, "Collected per day in EUR")).some((row) => /120\.00 EUR/.test(row[2])));

    await fits(page, "dashboard (desktop)");
    await accessible(page, "dashboard (filtered)");
    await shot(page, "dashboard-manager-desktop");
    // A bucket leads to the agent's accounts in it (due in January: 120 days and more).
    await page.locator("table", { hasText: "By days past due" }).getByRole("link", { name: "120+", exact: true }).click();
    await page.waitForURL(/#\/search\?bucket=120%2B&assigned_agent_id=/);
    await page.getByText("Dana Dashboard").first().waitFor();
    // The collected figure's payments: the agent's completed ones of the period.
    await page.goto(`${BASE}/${href}`);
    await page.getByRole("heading", { name: /^Payments/ }).first().waitFor();
    await page.locator("table", { hasText: "Dana Dashboard" }).first().waitFor();
    assert.ok((await page.locator("tbody tr", { hasText: "Dana Dashboard" }).first().textContent()).includes("120.00 EUR"));
    await page.context().close();
  });

  test("a payment updates the open dashboard's collected figures from its live event, without reading the statistics again", async () => {
    // Counted from before the sign-in: the manager lands on the dashboard.
    let statsReads;
    const page = await open("manager", (p) => { statsReads = statsReadsOf(p); });
    const today = await collectedTodayInChf(page);
    assert.equal(statsReads.length, 1, statsReads.join("\n"));
    const admin = await login("admin");
    const account = await api(admin.access_token, "POST", "/accounts", { debtor_name: "Live Dashboard", original_balance: "90.00", currency: "CHF" });
    await api(admin.access_token, "POST", `/accounts/${account.id}/payments`, { amount: "7.25", currency: "CHF", method: "card" });
    await showsCollectedTodayInChf(page, today + 7.25);
    assert.equal(statsReads.length, 1, "the chart took the change from the event");
    await page.context().close();
  });

  test("a payment made after the dashboard read its statistics, before its socket signed in, reaches the collected figures by replay", async () => {
    // The page's socket goes through a route that holds what the page sends (its sign-in,
    // subscription and catch-up) until the test lets it through: the dashboard reads the
    // statistics, the payment lands and its live stats.updated goes out, then the socket
    // signs in, as when the dashboard is the first screen of a slow socket.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    let statsReads;
    const page = await open("manager", (p) => (statsReads = statsReadsOf(p)) && p.routeWebSocket(/\/api\/v1\/ws$/, (ws) => {
      const server = ws.connectToServer();
      // (A socket the server closed meanwhile, its sign-in being late, takes nothing.)
      ws.onMessage((message) => held.then(() => server.send(message)).catch(() => {}));
    }));
    const today = await collectedTodayInChf(page);
    assert.equal(await page.locator("#live-status").textContent(), "offline", "the socket has not signed in yet");

    const watcher = await statsWatcher("manager");
    const admin = await login("admin");
    const account = await api(admin.access_token, "POST", "/accounts", { debtor_name: "Late Socket", original_balance: "90.00", currency: "CHF" });
    const payment = await api(admin.access_token, "POST", `/accounts/${account.id}/payments`, { amount: "3.50", currency: "CHF", method: "card" });
    await watcher.sent(payment.id);
    await watcher.close();
    release();
    await page.locator("#live-status", { hasText: "live" }).waitFor();
    await showsCollectedTodayInChf(page, today + 3.5);
    assert.equal(statsReads.length, 1, "the chart took the change from the replayed event");
    await page.context().close();
  });

  test("agents are listed by name as people count (2 before 10), the accounts of no agent last", async () => {
    const page = await open("manager");
    await page.goto(`${BASE}/#/dashboard`);
    await page.locator("table", { hasText: "KPIs per agent" }).getByText(`E2E Busy ${run}`, { exact: true }).waitFor();
    const names = (await rowsOf(page, "KPIs per agent")).slice(0, -1).map((row) => row[0]);
    const agents = names.filter((name) => name !== "No agent");
    const counted = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    assert.deepEqual(agents, [...agents].sort(counted.compare), names.join(" | "));
    assert.ok(names.indexOf(`E2E Seq 2 ${run}`) < names.indexOf(`E2E Seq 10 ${run}`), names.join(" | "));
    assert.ok(names.includes(`E2E Seq 2 ${run}`));
    if (names.includes("No agent")) assert.equal(names.at(-1), "No agent");
    await page.context().close();
  });

  test("the dashboard fits a phone, for a manager and an admin", async () => {
    for (const role of ["manager", "admin"]) {
      for (const [size, options] of [["desktop", undefined], ["phone", PHONE]]) {
        const page = await open(role, null, options);
        await page.goto(`${BASE}/#/dashboard?team=${encodeURIComponent(TEAM)}`);
        await page.locator("table", { hasText: "KPIs per agent" }).getByText(`E2E Busy ${run}`, { exact: true }).waitFor();
        await page.locator("#rates h2").waitFor();
        await fits(page, `dashboard (${role}, ${size})`);
        await accessible(page, `dashboard (${role}, ${size})`);
        await shot(page, `dashboard-${role}-${size}`);
        await page.context().close();
      }
    }
  });
});
