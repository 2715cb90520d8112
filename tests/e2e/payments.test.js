// Issue 51 in the browser: a manager finds payments, narrows them to the failed ones,
// reads the failures by method (with their rate) and by reason, sees the money collected
// per week, and exports the payments found; at desktop width and on a phone, as a manager
// and as an admin.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { accessible, api, BASE, fits, login, open, PHONE, rowsOf, screens, shot, suite } from "./harness.js";

const run = Date.now().toString(36);
const DEBTOR = `Paula Payments ${run}`;
// A reason a spreadsheet would run as a formula if a CSV held it as it is.
const FORMULA_REASON = "=1+2 declined";

async function setup() {
  const admin = (await login("admin")).access_token;
  const account = await api(admin, "POST", "/accounts", { debtor_name: DEBTOR, original_balance: "900.00", currency: "USD" });
  const pay = (method, status = "completed") => api(admin, "POST", `/accounts/${account.id}/payments?wait_for=indexed`, {
    amount: "25.00", currency: "USD", method, status,
  });
  const fail = async (method, failure_reason) => {
    const payment = await pay(method, "pending");
    await api(admin, "PATCH", `/payments/${payment.id}?wait_for=indexed`, { status: "failed", ...(failure_reason ? { failure_reason } : {}) });
  };
  await pay("card");
  await pay("ach");
  await fail("card", "Card declined: do not honour");
  await fail("card", FORMULA_REASON);
  await fail("ach");
}

suite("payments", setup, (test) => {
  test("a manager finds the failed payments, reads why they failed, sees weeks and exports them", async () => {
    const page = await open("manager");
    await (await screens(page)).getByRole("link", { name: "Payments" }).click();
    await page.getByRole("heading", { name: /payments found$/ }).waitFor();
    const form = page.getByRole("form", { name: "Find payments" });
    await form.getByLabel("Debtor, account or reference").fill(DEBTOR);
    await form.getByLabel("Status").selectOption("failed");
    await form.getByLabel("Collected per").selectOption("week");
    await form.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(/#\/payments\?.*status=failed.*interval=week/);
    await page.getByRole("heading", { name: "3 payments found" }).waitFor();
    const found = await rowsOf(page, "Payments, newest first");
    assert.deepEqual(found.map((row) => row[5]).sort(), ["failed", "failed", "failed"]);
    assert.ok(found.every((row) => row[1] === DEBTOR));

    // By method: card 2 failed of 3 decided, ach 1 of 2; by reason, the two given and one without.
    assert.deepEqual(await rowsOf(page, "Failures by method"), [["card", "2", "3", "67%"], ["ach", "1", "2", "50%"]]);
    const reasons = await rowsOf(page, "Failures by reason");
    assert.deepEqual(reasons.map((row) => row.slice(0, 3)).sort(), [
      [FORMULA_REASON, "1", "33%"], ["Card declined: do not honour", "1", "33%"], ["No reason given", "1", "33%"],
    ].sort());
    const [csv] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download CSV: Failures by reason" }).click(),
    ]);
    const text = await readFile(await csv.path(), "utf8");
    assert.ok(text.includes(`'${FORMULA_REASON}`), `the reason is kept as text: ${text}`);

    // Collected per week: a chart with its axes, and the weeks as a table.
    const chart = page.getByRole("img", { name: /^Collected per week in USD/ });
    await chart.waitFor();
    assert.equal(await chart.locator("line.axis").count(), 2);

    // The payments found, exported by the server with the same search.
    const [exported] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("group", { name: "Export these payments" }).getByRole("button", { name: "Download CSV" }).click(),
    ]);
    assert.equal(exported.suggestedFilename(), "payments.csv");
    const lines = (await readFile(await exported.path(), "utf8")).trim().split(/\r?\n/);
    assert.equal(lines.length, 4, "a header and the three failed payments");
    assert.ok(lines.slice(1).every((line) => line.includes(DEBTOR) && line.includes("failed")));
    await fits(page, "payments (desktop)");
    await accessible(page, "payments");
    await page.context().close();
  });

  test("the payments screen fits a phone, for a manager and an admin", async () => {
    for (const role of ["manager", "admin"]) {
      for (const [size, options] of [["desktop", undefined], ["phone", PHONE]]) {
        const page = await open(role, null, options);
        await page.goto(`${BASE}/#/payments?q=${encodeURIComponent(DEBTOR)}`);
        await page.getByRole("heading", { name: "5 payments found" }).waitFor();
        await page.locator("table", { hasText: "Failures by method" }).waitFor();
        await fits(page, `payments (${role}, ${size})`);
        await accessible(page, `payments (${role}, ${size})`);
        await shot(page, `payments-${role}-${size}`);
        await page.context().close();
      }
    }
  });
});
