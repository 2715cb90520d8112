// Issue 51 in the browser: an admin watches the System screen (this server's memory, CPU,
// pool, backlog and requests charted live, statements by family, jobs) at desktop width
// and on a phone; a manager has no such screen.

import assert from "node:assert/strict";
import { accessible, BASE, fits, open, PHONE, screens, shot, suite } from "./harness.js";

suite("system", async () => {}, (test) => {
  test("an admin watches the server live on the System screen, on a phone too; a manager has none", async () => {
    for (const [screen, options] of [["desktop", undefined], ["phone", PHONE]]) {
      const page = await open("admin", null, options);
      await page.goto(`${BASE}/#/system`);
      await page.getByRole("heading", { name: "System", level: 1 }).waitFor();
      // The second read draws the rates (CPU, requests): a line in each chart.
      await page.getByRole("status").filter({ hasText: /^Read at/ }).waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll("svg.chart.line path.trace")]
        .filter((trace) => trace.getAttribute("d").includes("L")).length === 5, null, { timeout: 15000 });
      for (const name of ["Memory", "CPU", "Database connections in use", "Changes waiting to be indexed", "Requests"]) {
        const chart = page.getByRole("img", { name: new RegExp(`^${name},`) });
        await chart.waitFor();
        assert.match(await chart.getAttribute("aria-label"), /now \d+(\.\d)?, the most \d/, `${name} says its figures`);
      }
      const families = page.getByRole("table", { name: /Database statements by family/ });
      await families.waitFor();
      assert.ok(await families.getByRole("row").count() > 2, "statements are timed by family");
      assert.match(await families.textContent(), /select [a-z_]+/);
      await page.getByRole("table", { name: "Jobs waiting" }).getByText("document upload").waitFor();
      await fits(page, `system (${screen})`);
      await accessible(page, `system (${screen})`);
      await shot(page, `system-admin-${screen}`);
      await page.context().close();
    }

    const manager = await open("manager");
    await manager.goto(`${BASE}/#/dashboard`);
    await (await screens(manager)).getByRole("link", { name: "Dashboard" }).waitFor();
    assert.equal(await (await screens(manager)).getByRole("link", { name: "System" }).count(), 0);
    await manager.context().close();
  });
});
