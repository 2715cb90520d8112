// Issue 49 in the browser: an admin creates, changes, deletes and restores a portfolio on
// the Portfolios screen (each refusal beside its field), grants it to a person and a team
// and revokes a grant, and sets its contact rules over the agency's; a manager on a
// phone reads the portfolios, who works them and their rules.

import assert from "node:assert/strict";
import { accessible, api, BASE, fits, login, open, PHONE, screens, shot, suite } from "./harness.js";

const run = Date.now().toString(36);
const TAKEN = `E2E Taken ${run}`;
const MARKUP = `<img src=x onerror="window.pwned=1">E2E ${run}`;
const NAME = `E2E Placement ${run}`;
const TEAM = `E2E South ${run}`;

const admin = async () => (await login("admin")).access_token;

async function setup() {
  const token = await admin();
  await api(token, "POST", "/portfolios", { name: TAKEN });
  await api(token, "POST", "/portfolios", { name: MARKUP, client: "<b>Bold Bank</b>" });
}

suite("portfolios", setup, (test) => {
  test("an admin creates, changes, grants, revokes, deletes and restores a portfolio; a manager on a phone reads them", async () => {
    const page = await open("admin");
    await (await screens(page)).getByRole("link", { name: "Portfolios" }).click();
    const form = page.getByRole("form", { name: "New portfolio" });
    await form.waitFor();
    // What users wrote is text, never markup.
    const marked = page.locator("table.portfolios tbody tr", { hasText: MARKUP });
    await marked.waitFor();
    assert.match(await marked.textContent(), /<b>Bold Bank<\/b>/);
    assert.equal(await page.locator("table.portfolios img, table.portfolios b").count(), 0, "no markup from a name or client");

    await form.getByLabel("Name").fill(TAKEN);
    await form.getByLabel("Client").fill("Acme Bank");
    await form.getByLabel("Placement date").fill("2026-11-02");
    await form.getByLabel("Commission rate").fill("150");
    await form.getByRole("button", { name: "Create portfolio" }).click();
    await form.locator(".field-error").first().waitFor();
    assert.equal(await form.getByLabel("Commission rate").getAttribute("aria-invalid"), "true", "the rate is marked");
    assert.match(await form.locator(".field-error").textContent(), /0 to 100/);
    await accessible(page, "portfolios, a refused rate");
    await form.getByLabel("Commission rate").fill("18.5");
    await form.getByRole("button", { name: "Create portfolio" }).click();
    await form.getByText("is taken by another live portfolio").waitFor();
    assert.equal(await form.getByLabel("Name").getAttribute("aria-invalid"), "true", "a taken name is refused at the name");
    assert.equal(await form.getByLabel("Commission rate").getAttribute("aria-invalid"), null, "the rate is no longer marked");
    await form.getByLabel("Name").fill(NAME);
    await form.getByRole("button", { name: "Create portfolio" }).click();
    await page.getByText(`${NAME} created.`).waitFor();
    const row = page.getByRole("row", { name: new RegExp(NAME) });
    assert.match(await row.textContent(), /Acme Bank.*18\.5 %/s);

    await row.getByRole("button", { name: `Edit ${NAME}` }).click();
    const change = page.getByRole("form", { name: `Change ${NAME}` });
    await change.getByLabel("Client").fill("");
    await change.getByLabel("Commission rate").fill("20");
    await change.getByLabel("Delinquent after (days past due)").fill("30");
    await change.getByRole("button", { name: "Save portfolio" }).click();
    await page.getByText(`${NAME} saved.`).waitFor();
    await row.getByText("20 %").waitFor();
    const portfolios = await api(await admin(), "GET", "/portfolios?page_size=200");
    const made = portfolios.data.find((p) => p.name === NAME);
    assert.deepEqual([made.client, made.placement_date, made.commission_rate, made.delinquent_after_days], [null, "2026-11-02", "20", 30]);

    await row.getByRole("button", { name: `Grants of ${NAME}` }).click();
    const grants = page.getByRole("region", { name: `Who works ${NAME}` });
    await grants.getByText(/Granted to no one/).waitFor();
    const person = grants.getByRole("form", { name: "Grant to a person" });
    await person.getByLabel("Person").selectOption({ label: "E2E Agent (agent)" });
    await person.getByRole("button", { name: "Grant" }).click();
    await grants.locator(".grant-list li", { hasText: "E2E Agent" }).waitFor();
    await person.getByLabel("Person").selectOption({ label: "E2E Agent (agent)" });
    await person.getByRole("button", { name: "Grant" }).click();
    await person.getByText("already granted").waitFor();
    const team = grants.getByRole("form", { name: "Grant to a team" });
    await team.getByRole("button", { name: "Grant" }).click();
    await team.locator(".field-error").waitFor();
    assert.equal(await team.getByLabel("Team").getAttribute("aria-invalid"), "true", "an empty team is refused at the team");
    await team.getByLabel("Team").fill(TEAM);
    await team.getByRole("button", { name: "Grant" }).click();
    const teamGrant = grants.locator(".grant-list li", { hasText: `Team ${TEAM}` });
    await teamGrant.waitFor();
    await accessible(page, "portfolio grants");
    await shot(page, "portfolios-admin-desktop");
    await teamGrant.getByRole("button", { name: "Revoke" }).click();
    await teamGrant.getByRole("button", { name: "Yes, revoke" }).click();
    await page.getByText(`Team ${TEAM} no longer works ${NAME}.`).waitFor();
    await teamGrant.waitFor({ state: "detached" });
    const held = await api(await admin(), "GET", `/portfolios/${made.id}/grants`);
    assert.deepEqual(held.data.map((g) => g.user_name), ["E2E Agent"], "the person's grant stays, the team's is gone");

    // Contact rules: the agency's until the portfolio sets its own; a bad window is
    // refused beside its input.
    const rules = grants.getByRole("form", { name: "Contact rules" });
    await grants.getByText("Follows the agency's policy.").waitFor();
    await rules.getByLabel("Contact allowed until").fill("07:00");
    await rules.getByRole("button", { name: "Save contact rules" }).click();
    await rules.locator(".field-error").waitFor();
    assert.equal(await rules.getByLabel("Contact allowed until").getAttribute("aria-invalid"), "true", "the window's end is marked");
    await rules.getByLabel("Contact allowed until").fill("19:00");
    await rules.getByLabel("Call attempts at most").fill("3");
    await rules.getByRole("button", { name: "Save contact rules" }).click();
    await page.getByText(`Contact rules of ${NAME} saved.`).waitFor();
    await grants.getByText(/08:00–19:00 in the debtor's zone/).waitFor();
    await grants.getByText(/at most 3 in 7 days/).waitFor();
    const policy = await api(await admin(), "GET", `/portfolios/${made.id}/contact-policy`);
    assert.deepEqual([policy.own.window_end, policy.own.call_attempt_limit, policy.own.window_start], ["19:00:00", 3, null]);
    await accessible(page, "portfolio contact rules");
    await shot(page, "portfolios-contact-rules-desktop");

    await row.getByRole("button", { name: "Delete" }).click();
    await row.getByRole("button", { name: "Yes, delete" }).click();
    await page.getByText(`${NAME} deleted.`).waitFor();
    await row.getByText(/^deleted /).waitFor();
    await grants.getByText("A deleted portfolio is granted to no one new").waitFor();
    assert.equal(await row.getByRole("button", { name: `Edit ${NAME}` }).count(), 0, "a deleted portfolio is not changed");
    await row.getByRole("button", { name: "Restore" }).click();
    await row.getByRole("button", { name: "Yes, restore" }).click();
    await page.getByText(`${NAME} restored.`).waitFor();
    await row.getByRole("button", { name: `Edit ${NAME}` }).waitFor();
    await page.context().close();

    const phone = await open("admin", null, PHONE);
    await phone.goto(`${BASE}/#/portfolios`);
    const phoneRow = phone.getByRole("row", { name: new RegExp(NAME) });
    await phoneRow.getByRole("button", { name: `Grants of ${NAME}` }).click();
    await phone.getByRole("form", { name: "Grant to a team" }).waitFor();
    await fits(phone, "portfolios, admin (phone)");
    await accessible(phone, "portfolios, admin (phone)");
    await shot(phone, "portfolios-admin-phone");
    await phone.context().close();

    const manager = await open("manager", null, PHONE);
    await (await screens(manager)).getByRole("link", { name: "Portfolios" }).click();
    const read = manager.getByRole("row", { name: new RegExp(NAME) });
    await read.waitFor();
    assert.equal(await manager.getByRole("form", { name: "New portfolio" }).count(), 0, "managers create no portfolios");
    assert.equal(await manager.getByRole("button", { name: /^Edit / }).count(), 0, "managers change no portfolios");
    assert.equal(await read.getByRole("button", { name: "Delete" }).count(), 0, "managers delete no portfolios");
    await read.getByRole("button", { name: `Grants of ${NAME}` }).click();
    const readGrants = manager.getByRole("region", { name: `Who works ${NAME}` });
    await readGrants.locator(".grant-list li", { hasText: "E2E Agent" }).waitFor();
    assert.equal(await readGrants.getByRole("button", { name: "Revoke" }).count(), 0, "managers revoke nothing");
    assert.equal(await readGrants.getByRole("form").count(), 0, "managers grant nothing");
    await readGrants.getByText(/08:00–19:00 in the debtor's zone/).waitFor();
    await fits(manager, "portfolios, manager (phone)");
    await accessible(manager, "portfolios, manager (phone)");
    await shot(manager, "portfolios-manager-phone");
    assert.equal(await manager.evaluate(() => window.pwned), undefined, "no script from a name ran");
    await manager.context().close();
  });
});
