// Files people open and notifications people read: a bulk assignment rings the bell once
// with a link to the search of those accounts, the panel closes on Escape, and an XLSX
// export holds phone numbers as text (no guarding apostrophe) and names the agents.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BASE, PASSWORD, PHONE, accessible, api, login, open, sheetRows, shot, suite, unzip } from "./harness.js";

const people = {};

async function setup() {
  const admin = await login("admin");
  // An agent of this file alone, so the bell holds only what these tests did.
  people.role = `notices-${Date.now()}`;
  const agent = await api(admin.access_token, "POST", "/users", {
    email: `${people.role}@e2e.example.com`,
    name: "Nora Notified",
    role: "agent",
    password: PASSWORD,
  });
  people.agent = agent.id;
}

// Assigns `count` new accounts to the file's agent in one bulk update; waits for the job.
async function bulkAssign(count) {
  const manager = (await login("manager")).access_token;
  const ids = [];
  for (let i = 0; i < count; i += 1) {
    const account = await api(manager, "POST", "/accounts?wait_for=indexed", {
      debtor_name: `Batch Person ${i}`,
      original_balance: "10.00",
      currency: "USD",
    });
    ids.push(account.id);
  }
  const job = await api(manager, "POST", "/accounts/bulk-update", { ids, patch: { assigned_agent_id: people.agent } });
  // Done once the job ended and the index lists the accounts as the agent's.
  for (let tries = 0; tries < 100; tries += 1) {
    const token = (await login("manager")).access_token;
    const now = await api(token, "GET", `/jobs/${job.id}`);
    const listed = await api(token, "GET", `/accounts?assigned_agent_id=${people.agent}&page_size=1`);
    if (now.finished_at && listed.total === count) return ids;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail("the bulk update did not finish");
}

suite("files and notices", setup, (test) => {
  test("a bulk assignment rings the bell once; its link opens the search; Escape closes the panel", async () => {
    const ids = await bulkAssign(5);
    for (const options of [undefined, PHONE]) {
      const page = await open(people.role, null, options);
      const count = page.locator(".bell .count");
      await page.waitForFunction(() => document.querySelector(".bell .count").textContent === "1");
      assert.equal(await count.textContent(), "1", "one notification for the whole bulk update");
      const bell = page.getByRole("button", { name: /^Notifications/ });
      await bell.click();
      const items = page.locator("#bell-panel li");
      await items.first().waitFor();
      assert.equal(await items.count(), 1);
      const link = items.first().getByRole("link", { name: "5 accounts assigned to you" });
      assert.equal(await link.getAttribute("href"), "#/search?assigned_agent_id=me&sort=-updated_at");
      await accessible(page, "the bell panel");
      await shot(page, options ? "notices-bell-phone" : "notices-bell");

      await link.focus();
      await page.keyboard.press("Escape");
      assert.equal(await page.locator("#bell-panel").isHidden(), true, "Escape closes the panel");
      assert.equal(await bell.getAttribute("aria-expanded"), "false");
      assert.equal(await page.evaluate(() => document.activeElement?.classList.contains("bell")), true, "the focus is back on the bell");

      if (options) {
        await page.context().close();
        continue;
      }
      await bell.click();
      await link.click();
      await page.waitForFunction(() => location.hash === "#/search?assigned_agent_id=me&sort=-updated_at");
      assert.equal(await page.locator("#bell-panel").isHidden(), true, "following a notification closes the panel");
      await page.locator("#result-count", { hasText: /^5 accounts$/ }).waitFor();
      for (const id of ids) await page.locator(`a[href="#/account/${id}"]`).first().waitFor();
      await page.waitForFunction(() => document.querySelector(".bell .count").textContent === "", null, { timeout: 5000 });
      await shot(page, "notices-followed");
      await page.context().close();
    }
  });

  test("an XLSX export holds the phone number as text, without an apostrophe, and the agent's name", async () => {
    const manager = (await login("manager")).access_token;
    // The shared agent: this file's own agent keeps only the bulk assignment's notice.
    const agent = (await login("agent")).user;
    const name = `Phoebe Phonebook ${Date.now()}`;
    await api(manager, "POST", "/accounts?wait_for=indexed", {
      debtor_name: name,
      phone: "+1 201 555 0188",
      assigned_agent_id: agent.id,
      original_balance: "10.00",
      currency: "USD",
    });
    const page = await open("manager");
    await page.goto(`${BASE}/#/search?q=${encodeURIComponent(name)}`);
    await page.locator("#result-count", { hasText: /^1 account\b/ }).waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download XLSX" }).click()]);
    const files = unzip(readFileSync(await download.path()));
    const sheet = [...files.keys()].find((file) => file.startsWith("xl/worksheets/"));
    const [header, row] = sheetRows(files, sheet);
    const cell = (column) => row[header.indexOf(column)];
    assert.equal(cell("debtor_name"), name);
    assert.equal(cell("phone"), "+12015550188", "the phone number as typed, with no guarding apostrophe");
    assert.equal(cell("assigned_agent_name"), agent.name);
    assert.equal(cell("assigned_agent_id"), agent.id);
    const phoneCell = files.get(sheet).match(new RegExp(`<c r="${String.fromCharCode(65 + header.indexOf("phone"))}2"[^>]*>`))[0];
    assert.match(phoneCell, /t="(s|inlineStr|str)"/, "a text cell, never a number or a formula");
    await page.context().close();
  });
});
