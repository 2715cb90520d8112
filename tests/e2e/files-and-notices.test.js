// Files people open: an XLSX export holds phone numbers as text (no guarding apostrophe)
// and names the agents.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BASE, api, login, open, sheetRows, suite, unzip } from "./harness.js";

async function setup() {}

suite("files and notices", setup, (test) => {
  test("an XLSX export holds the phone number as text, without an apostrophe, and the agent's name", async () => {
    const manager = (await login("manager")).access_token;
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
