// The console on a phone and on a desktop (every screen fits, the header's controls in
// view), the search's toolbar, keyboard shortcuts, local dates and zoned times, and a
// queue that explains what it holds back.

import assert from "node:assert/strict";
import { BASE, PHONE, accessible, api, daytimeZone, email, login, open, PASSWORD, shot, suite, tokenOf } from "./harness.js";

const ids = {};
const DESKTOP = { viewport: { width: 1280, height: 900 } };
const SIZES = [["phone", PHONE], ["desktop", DESKTOP]];

// A fixed-offset zone where it is now between `from` and `to` o'clock.
function zoneWhereItIs(from, to) {
  for (let offset = -12; offset <= 12; offset += 1) {
    const hour = (new Date().getUTCHours() + offset + 24) % 24;
    if (hour >= from && hour < to) return offset === 0 ? "Etc/GMT" : `Etc/GMT${offset < 0 ? "+" : "-"}${Math.abs(offset)}`;
  }
  throw new Error("no zone has that hour now");
}

async function setup() {
  const admin = await login("admin");
  const manager = await login("manager");
  const agent = await login("agent");
  // An agent of their own, whose accounts no other test touches: none of them can be
  // called now.
  const night = await api(admin.access_token, "POST", "/users", {
    email: email("night"), name: "E2E Night Agent", role: "agent", password: PASSWORD,
  });
  ids.sleepingZone = zoneWhereItIs(1, 6);
  const create = (fields) => api(manager.access_token, "POST", "/accounts?wait_for=indexed", {
    original_balance: "1000.00",
    currency: "USD",
    timezone: daytimeZone(),
    address: { line1: "1 Main St", city: "Springfield", country: "US" },
    ...fields,
  });
  ids.phone = (await create({
    debtor_name: "Maximiliana Featherstonehaugh-Worthington", phone: "(201) 555-0181", email: "maximiliana.featherstonehaugh@example.com",
    assigned_agent_id: agent.user.id, tags: ["phone-e2e"],
  })).id;
  ids.keys = (await create({ debtor_name: "Kendrick Keyboardson", phone: "(201) 555-0182", assigned_agent_id: agent.user.id })).id;
  ids.asleep = (await create({ debtor_name: "Selma Sleepwell", timezone: ids.sleepingZone, assigned_agent_id: night.id, due_date: "2026-01-10" })).id;
  ids.noCalls = (await create({ debtor_name: "Nigel Nocalls", do_not_call: true, assigned_agent_id: night.id, original_balance: "5000.00", due_date: "2025-12-01" })).id;
  ids.ceased = (await create({ debtor_name: "Cora Ceased", cease_communication: true, assigned_agent_id: night.id })).id;
  // No zone given: New Jersey's ZIP code says New York, the San Francisco number Los Angeles.
  ids.moved = (await create({
    debtor_name: "Mona Moved", timezone: undefined, phone: "(415) 555-0183", assigned_agent_id: agent.user.id,
    address: { line1: "1 Hudson Pl", city: "Hoboken", region: "NJ", postal_code: "07030", country: "US" },
  })).id;
}

// No sideways scrolling, and every control of the header inside the viewport, its label
// not cut off.
async function fits(page, screen) {
  const found = await page.evaluate(() => {
    const width = window.innerWidth;
    const outside = [];
    for (const el of document.querySelectorAll("#top a, #top button")) {
      const box = el.getBoundingClientRect();
      if (!box.width || el.closest("[hidden]")) continue;
      const name = el.textContent.trim().slice(0, 20);
      if (box.left < 0 || box.right > width + 0.5) outside.push(`${name}: ${Math.round(box.left)}–${Math.round(box.right)} of ${width}`);
      if (el.scrollWidth > el.clientWidth + 1) outside.push(`${name}: label cut off`);
    }
    const top = document.getElementById("top");
    const header = top.hidden || top.classList.contains("menu-open") ? 0 : top.getBoundingClientRect().height;
    return { scroll: document.scrollingElement.scrollWidth, width, outside, header };
  });
  assert.ok(found.header <= 56, `${screen}: the header is one line (${found.header} px tall)`);
  assert.ok(found.scroll <= found.width, `${screen}: the page scrolls sideways (${found.scroll} px wide in ${found.width})`);
  assert.deepEqual(found.outside, [], `${screen}: header controls off screen`);
}

// Each screen a role sees: where it is and what says it has loaded.
const SCREENS = {
  agent: [
    ["search", "#/search", (page) => page.locator("#result-count", { hasText: /accounts?/ }).waitFor()],
    ["filters", "#/search?tags=phone-e2e", (page) => page.getByText(/^1 account$/).waitFor()],
    ["account", () => `#/account/${ids.phone}`, (page) => page.getByRole("heading", { name: "Contact now" }).waitFor()],
    ["queue", "#/queue", (page) => page.getByText(/accounts? to work/).waitFor()],
  ],
  manager: [
    ["search", "#/search", (page) => page.locator("#result-count", { hasText: /accounts?/ }).waitFor()],
    ["account-overrides", () => `#/account/${ids.phone}`, (page) => page.getByRole("heading", { name: "Contact now" }).waitFor()],
    ["dashboard", "#/dashboard", (page) => page.getByRole("heading", { name: /^Portfolio/ }).waitFor()],
    ["imports-and-jobs", "#/imports", (page) => page.getByRole("heading", { name: "Import accounts" }).waitFor()],
    ["queue", "#/queue", (page) => page.getByText(/accounts? to work/).waitFor()],
    ["fields", "#/fields", (page) => page.getByRole("table", { name: "Fields" }).waitFor()],
    ["portfolios", "#/portfolios", (page) => page.getByRole("table", { name: "Portfolios" }).waitFor()],
  ],
  admin: [
    ["users", "#/admin", (page) => page.getByRole("heading", { name: "Users and roles" }).waitFor()],
    ["fields", "#/fields", (page) => page.getByRole("form", { name: "New field" }).waitFor()],
    ["portfolios", "#/portfolios", (page) => page.getByRole("form", { name: "New portfolio" }).waitFor()],
  ],
};

suite("the console on a phone, its toolbar, shortcuts and queue", setup, (test) => {
  test("the sign-in page fits a phone and a desktop", async () => {
    for (const [size, options] of SIZES) {
      const page = await open(null, null, options);
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      await fits(page, `sign-in (${size})`);
      await shot(page, `phone-sign-in-${size}`);
      await page.context().close();
    }
  });

  for (const [role, screens] of Object.entries(SCREENS)) {
    test(`every screen of the ${role} fits a phone and a desktop, with Sign out and Notifications in view`, async () => {
      for (const [size, options] of SIZES) {
        const page = await open(role, null, options);
        for (const [name, where, loaded] of screens) {
          await page.goto(`${BASE}/${typeof where === "function" ? where() : where}`);
          await loaded(page);
          await fits(page, `${role} ${name} (${size})`);
          await shot(page, `phone-${role}-${name}-${size}`);
        }
        // The notifications open on the phone too, inside the screen.
        await page.getByRole("button", { name: /^Notifications/ }).click();
        const panel = page.locator("#bell-panel");
        await panel.waitFor();
        const box = await panel.boundingBox();
        assert.ok(box.x >= 0 && box.x + box.width <= options.viewport.width + 0.5, `${role} (${size}): the notifications panel is on screen`);
        await page.getByRole("button", { name: /^Notifications/ }).click();
        await panel.waitFor({ state: "hidden" });
        await page.getByRole("button", { name: "Sign out" }).click();
        await page.getByRole("button", { name: "Sign in" }).waitFor();
        await page.context().close();
      }
    });
  }

  test("export and bulk update sit in a toolbar above the results, in view without scrolling", async () => {
    for (const [size, options] of SIZES) {
      const page = await open("manager", null, options);
      await page.goto(`${BASE}/#/search`);
      await page.locator("#results a.result").nth(10).waitFor();
      const csv = await page.getByRole("button", { name: "Download CSV" }).boundingBox();
      const first = await page.locator("#results a.result").first().boundingBox();
      assert.ok(csv.y < first.y, `${size}: the export comes before the results`);
      assert.ok(csv.y + csv.height <= options.viewport.height, `${size}: the export is in the first screenful (${csv.y})`);
      const bulk = page.getByText("Bulk update this search");
      assert.ok((await bulk.boundingBox()).y < first.y, `${size}: the bulk update comes before the results`);
      // Folded until asked for: a tap opens it.
      assert.equal(await page.getByLabel("Add tags").isVisible(), false);
      await bulk.click();
      await page.getByLabel("Add tags").waitFor();
      await accessible(page, `search toolbar (${size})`);
      await page.context().close();
    }
  });

  test("on a phone the screens, the user's name and My account fold behind Menu", async () => {
    const page = await open("manager", null, PHONE);
    const menu = page.getByRole("button", { name: "Menu" });
    assert.equal(await menu.getAttribute("aria-expanded"), "false");
    assert.equal(await page.getByRole("link", { name: "My account" }).isVisible(), false, "folded");
    await menu.click();
    assert.equal(await menu.getAttribute("aria-expanded"), "true");
    await page.getByRole("link", { name: "My account" }).waitFor();
    await fits(page, "unfolded menu (phone)");
    await accessible(page, "unfolded menu (phone)");
    await shot(page, "phone-menu-open");
    await page.getByRole("navigation", { name: "Screens" }).getByRole("link", { name: "Payments" }).click();
    await page.waitForURL(/#\/payments/);
    assert.equal(await menu.getAttribute("aria-expanded"), "false", "choosing a screen folds the menu");
    assert.equal(await page.getByRole("link", { name: "My account" }).isVisible(), false);
    await page.context().close();

    const desktop = await open("manager", null, DESKTOP);
    assert.equal(await desktop.getByRole("button", { name: "Menu" }).isVisible(), false, "nothing is folded on a desktop");
    await desktop.getByRole("link", { name: "My account" }).waitFor();
    await desktop.context().close();
  });

  test("a search that finds nothing offers no export or bulk update; a manager's rows say whose account; the sort box fits its words", async () => {
    for (const [size, options] of SIZES) {
      const page = await open("manager", null, options);
      await page.goto(`${BASE}/#/search?tags=phone-e2e`);
      await page.getByText(/^1 account$/).waitFor();
      await page.locator("#results a.result .agent", { hasText: "E2E Agent" }).waitFor();
      assert.equal(await page.getByLabel("Add tags").isVisible(), false, `${size}: the bulk update is folded until asked for`);
      const sort = await page.locator("#sort").evaluate((select) => {
        const probe = document.createElement("span");
        probe.style.cssText = `font: ${getComputedStyle(select).font}; white-space: nowrap; position: absolute;`;
        document.body.append(probe);
        const widest = Math.max(...[...select.options].map((o) => { probe.textContent = o.textContent; return probe.getBoundingClientRect().width; }));
        probe.remove();
        return { widest, width: select.clientWidth };
      });
      assert.ok(sort.widest + 20 <= sort.width, `${size}: the sort box (${sort.width} px) holds its longest choice (${sort.widest} px)`);
      await page.getByLabel("Search", { exact: true }).fill("zzqqxx nobody has this name");
      await page.getByText(/^0 accounts matching/).waitFor();
      assert.equal(await page.getByRole("button", { name: "Download CSV" }).isVisible(), false, `${size}: no export of nothing`);
      assert.equal(await page.getByText("Bulk update this search").isVisible(), false, `${size}: no bulk update of nothing`);
      await shot(page, `search-nothing-found-${size}`);
      await page.context().close();
    }
    const agent = await open("agent");
    await agent.goto(`${BASE}/#/search?tags=phone-e2e`);
    await agent.getByText(/^1 account$/).waitFor();
    assert.equal(await agent.locator("#results .agent").count(), 0, "an agent's rows are their own");
    await agent.context().close();
  });

  test("a refusal names a field by its label", async () => {
    const page = await open("agent");
    await page.goto(`${BASE}/#/account/${ids.keys}`);
    const form = page.getByRole("form", { name: "Log contact" });
    await form.getByLabel("Outcome").selectOption("promise_to_pay");
    await form.getByLabel("Promise amount").fill("1.2345");
    await form.getByLabel("Promise due date").fill(new Date(Date.now() + 7 * 86400000).toISOString().slice(0, 10));
    await form.getByRole("button", { name: "Log contact" }).click();
    const alert = form.locator(".form-alert");
    await alert.locator("div").first().waitFor();
    const text = await alert.textContent();
    assert.match(text, /^Promise amount: /, text);
    assert.doesNotMatch(text, /promise\.amount/, text);
    await page.context().close();
  });

  test("keyboard only: search to an account, log contact, record payment, promise, back to search; ? lists the shortcuts", async () => {
    const page = await open("agent");
    await page.goto(`${BASE}/#/queue`);
    await page.getByText(/accounts? to work/).waitFor();
    await page.keyboard.press("/");
    await page.waitForURL(/#\/search/);
    await page.waitForFunction(() => document.activeElement?.id === "q");
    await page.keyboard.type("Keyboardson");
    // Typed into the box, "n", "l" and "p" are letters, not shortcuts.
    await page.locator("#results a.result", { hasText: "Kendrick Keyboardson" }).waitFor();
    // The typed search's answer, not the agent's whole list it replaces (where Kendrick is
    // one of several and the first may be another).
    await page.waitForFunction(() => document.querySelectorAll("#results a.result").length === 1);
    assert.match(page.url(), /#\/search/);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Kendrick Keyboardson" }).waitFor();
    await page.getByRole("heading", { name: "Contact now" }).waitFor();
    const focusedForm = () => page.evaluate(() => document.activeElement?.closest("form")?.dataset.shortcut ?? null);
    await page.keyboard.press("l");
    await page.waitForFunction(() => document.activeElement?.closest("form[data-shortcut='log-contact']"));
    assert.equal(await page.evaluate(() => document.activeElement.name), "contact.type", "the channel, the form's first field");
    // In a field a key is typed; Escape leaves the field, then "p" is the payment form.
    await page.keyboard.press("Escape");
    await page.keyboard.press("p");
    await page.waitForFunction(() => document.activeElement?.name === "amount");
    assert.equal(await focusedForm(), "record-payment");
    await page.keyboard.type("12.50");
    await page.keyboard.press("Enter");
    await page.locator("section[aria-labelledby='timeline-title'] li[data-kind='payment']", { hasText: "12.50 USD" }).waitFor();
    await page.keyboard.press("Escape");
    await page.keyboard.press("m");
    await page.waitForFunction(() => document.activeElement?.dataset.shortcut === "make-promise");
    await page.keyboard.press("Escape");
    await page.keyboard.press("?");
    const help = page.getByRole("dialog", { name: "Keyboard shortcuts" });
    await help.waitFor();
    for (const key of ["/", "n", "l", "p", "m", "?"]) await help.locator("kbd", { hasText: key }).first().waitFor();
    await accessible(page, "shortcuts help");
    await shot(page, "keys-help");
    await page.keyboard.press("Escape");
    await help.waitFor({ state: "detached" });
    await page.keyboard.press("/");
    await page.waitForURL(/#\/search/);
    await page.waitForFunction(() => document.activeElement?.id === "q");
    // "n" goes to the queue, whose Next account takes the focus; "n" again claims.
    await page.keyboard.press("Escape");
    await page.keyboard.press("n");
    await page.waitForURL(/#\/queue/);
    await page.waitForFunction(() => document.activeElement?.id === "next-account");
    await page.keyboard.press("n");
    await page.waitForURL(/#\/account\//);
    await page.context().close();
  });

  test("date pickers start at the agent's own date and times carry their zone", async () => {
    // A zone whose date is not UTC's right now (ahead late in the UTC day, behind early).
    const zone = ["Pacific/Kiritimati", "Pacific/Pago_Pago"].find((z) =>
      new Intl.DateTimeFormat("en-CA", { timeZone: z }).format(new Date()) !== new Date().toISOString().slice(0, 10));
    const localToday = new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
    const page = await open("agent", null, { timezoneId: zone });
    await page.goto(`${BASE}/#/account/${ids.keys}`);
    const promise = page.getByRole("form", { name: "Log contact" });
    assert.equal(await promise.getByLabel("Promise due date").getAttribute("min"), localToday, `today in ${zone}`);
    await page.getByRole("tab", { name: "Plan" }).click();
    const plan = page.getByRole("form", { name: "Set up plan" });
    assert.equal(await plan.getByLabel("First due date").getAttribute("min"), localToday);
    // Times shown say their zone (Kiritimati is GMT+14, Pago Pago GMT-11 or SST).
    await page.locator("section[aria-labelledby='timeline-title']").waitFor();
    const next = await page.locator(".details dt", { hasText: "Next action" }).locator("xpath=following-sibling::dd[1]").textContent();
    assert.ok(next === "—" || /GMT|SST|LINT/.test(next), next);
    const zoned = await page.evaluate(async () => (await import(document.querySelector("script[type=module]").src.replace("main.js", "dom.js"))).when("2026-01-15T13:00:00Z"));
    assert.match(zoned, /GMT[+-]1[14]|SST|LINT/, `a time carries its zone: ${zoned}`);
    const clock = await page.evaluate(async () => (await import(document.querySelector("script[type=module]").src.replace("main.js", "dom.js"))).localClock("America/New_York", new Date("2026-01-15T13:00:00Z")));
    assert.match(clock, /08:00( AM)? EST \(America\/New_York\)/);
    await page.context().close();
  });

  test("the account says where the debtor's zone came from, and the other zone a disagreeing phone points to", async () => {
    for (const role of ["agent", "manager"]) {
      for (const [size, options] of SIZES) {
        const page = await open(role, null, options);
        await page.goto(`${BASE}/#/account/${ids.moved}`);
        const time = page.locator("#debtor-time");
        await time.waitFor();
        assert.match(await time.textContent(), /\(America\/New_York\) from the address/);
        const conflict = await page.locator("#zone-conflict").textContent();
        assert.match(conflict, /The phone number points to .*\(America\/Los_Angeles\): contact only in hours open in both\./, conflict);
        await fits(page, `${role} account with two zones, ${size}`);
        await shot(page, `account-zones-${role}-${size}`);
        await page.context().close();
      }
    }
  });

  test("an empty queue says why, when calling hours open, and offers the channels open now", async () => {
    for (const [size, options] of SIZES) {
      const page = await open("night", null, options);
      await page.goto(`${BASE}/#/queue`);
      const held = page.locator("#held-back");
      await held.waitFor();
      await page.getByText("0 accounts to work on calls").waitFor();
      const text = await held.textContent();
      assert.match(text, /Nothing can be worked on calls now: 3 accounts are held back on calls/);
      for (const why of ["1 asked that all contact cease", "1 do not call", "1 outside calling hours"]) assert.ok(text.includes(why), `${why} in “${text}”`);
      const opens = await page.locator("#window-opens").textContent();
      assert.match(opens, /your time, .*08:00.* in Etc\/GMT/, opens);
      assert.ok(opens.includes(ids.sleepingZone), opens);
      // Next account takes the team's unassigned accounts once the agent's own are worked:
      // it says so, or is off and says why when the team has none to call either.
      const { explanation } = await api(await tokenOf("night"), "GET", "/queue?channel=call");
      const next = page.getByRole("button", { name: "Next account" });
      const nextWhy = await page.locator("#next-why").textContent();
      if (explanation.team_contactable) {
        assert.ok(await next.isEnabled(), "the team has accounts to call");
        assert.match(nextWhy, /Next account takes one of the team's \d+ unassigned accounts? that can be worked on calls/, nextWhy);
      } else {
        assert.ok(await next.isDisabled(), "nothing anywhere to call");
        assert.match(nextWhy, /Next account is off: neither your queue nor the team's unassigned accounts hold one to work on calls now/, nextWhy);
        assert.equal(await next.getAttribute("aria-describedby"), "next-why");
      }
      await accessible(page, `explained queue (${size})`);
      await fits(page, `explained queue (${size})`);
      await shot(page, `queue-explained-${size}`);
      await page.context().close();
    }
    const page = await open("night");
    await page.goto(`${BASE}/#/queue`);
    // Letters have no calling hours: the sleeping debtor and the do-not-call one.
    await page.getByRole("button", { name: "Work letters (2)" }).click();
    await page.waitForURL(/channel=letter/);
    await page.getByText("2 accounts to work on letters").waitFor();
    const badges = await page.locator("#main .badge.reason").allTextContents();
    assert.deepEqual(badges, ["Most overdue, largest balance", "Most overdue, largest balance"], "the score's reason says what it means");
    assert.equal(await page.getByLabel("Channel").inputValue(), "letter");
    await page.getByRole("button", { name: "Next account" }).click();
    await page.waitForURL(/#\/account\//);
    assert.match(page.url(), new RegExp(`#/account/${ids.noCalls}$`), "the most overdue, largest debt first");
    await page.context().close();
  });
});
