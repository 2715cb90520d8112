// An account's History tab: a manager and the owning agent read who changed what (fields
// before and after, the rule or database user when no one did), page back and download
// it; another agent does not get the tab. At a phone's width and a desktop's.

import assert from "node:assert/strict";
import { PHONE, accessible, api, login, open, shot, suite } from "./harness.js";

const ids = {};
const SIZES = [["phone", PHONE], ["desktop", { viewport: { width: 1280, height: 900 } }]];

async function setup() {
  const manager = await login("manager");
  const agent = await login("agent");
  ids.agent = agent.user.id;
  const account = await api(manager.access_token, "POST", "/accounts?wait_for=indexed", {
    debtor_name: "Hester Historyworth", original_balance: "640.00", currency: "USD", assigned_agent_id: agent.user.id,
  });
  ids.account = account.id;
  await api(manager.access_token, "PATCH", `/accounts/${account.id}`, { status: "promise_to_pay", tags: ["history-e2e"], do_not_call: true });
  await api(agent.access_token, "POST", `/accounts/${account.id}/payments`, { amount: "40.00", currency: "USD", method: "card" });
  await api(agent.access_token, "POST", `/accounts/${account.id}/activities`, { type: "letter", direction: "outbound", notes: "final notice sent" });
}

async function openHistory(page) {
  await page.goto(`${page.url().split("#")[0]}#/account/${ids.account}`);
  await page.getByRole("tab", { name: "History" }).click();
  await page.getByRole("heading", { name: "History", exact: true }).waitFor();
}

suite("an account's history", setup, (test) => {
  test("a manager reads each change with its fields before and after, and downloads it", async () => {
    for (const [size, options] of SIZES) {
      const page = await open("manager", null, options);
      await openHistory(page);
      const edit = page.locator(".history li[data-action='account.update']", { hasText: "Do not call" });
      await edit.waitFor();
      const text = await edit.innerText();
      // Words a person reads: no API value or field name.
      assert.match(text, /Status\s+active → promise to pay/);
      assert.match(text, /Tags\s+— → history-e2e/);
      assert.match(text, /Do not call\s+no → yes/);
      assert.doesNotMatch(text, /promise_to_pay|do_not_call|false|true/, text);
      assert.match(text, /E2E Manager/, "who made it");
      // What was made, in a line: the payment's amount, the contact logged.
      await page.locator(".history li[data-action='payment.create']", { hasText: "40.00 USD · card · completed" }).waitFor();
      await page.locator(".history li[data-action='activity.create']", { hasText: /contact logged\s*letter \(outbound\) · final notice sent/ }).waitFor();
      assert.equal(await page.getByRole("tab", { name: "History" }).getAttribute("aria-selected"), "true");
      await accessible(page, `history (${size})`);
      const scroll = await page.evaluate(() => document.scrollingElement.scrollWidth <= window.innerWidth);
      assert.ok(scroll, `history (${size}) does not scroll sideways`);
      await shot(page, `history-manager-${size}`);
      if (size === "desktop") {
        const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
        const csv = await (await file.createReadStream()).toArray();
        const lines = Buffer.concat(csv).toString("utf8").trim().split("\r\n");
        assert.ok(lines[0].startsWith("at,id,action"), lines[0]);
        assert.ok(lines.some((line) => line.includes("payment.create")), "the payment is in the file");
      }
      // Back to the timeline: the tab switches the card.
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.getByRole("heading", { name: "Timeline", exact: true }).waitFor();
      await page.context().close();
    }
  });

  test("the owning agent reads their account's history; the tab is theirs only", async () => {
    const page = await open("agent", null, PHONE);
    await openHistory(page);
    await page.locator(".history li[data-action='payment.create']").waitFor();
    await shot(page, "history-agent-phone");
    await page.context().close();

    const other = await open("agent2");
    await other.goto(`${other.url().split("#")[0]}#/account/${ids.account}`);
    await other.getByText("Hester Historyworth").first().waitFor();
    assert.equal(await other.getByRole("tab", { name: "History" }).count(), 0, "another agent's account has no History tab");
    await other.context().close();
  });
});
