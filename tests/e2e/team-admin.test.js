// Issue 48 in the browser: a manager looks after the agents of their team (creates one,
// disables and enables them, moves accounts between them), and a newcomer registers and
// waits for an administrator. Each at desktop and phone size.

import assert from "node:assert/strict";
import { accessible, api, BASE, email, login, open, PASSWORD, PHONE, screens, shot, suite } from "./harness.js";

const TEAM = "E2E North";
const SIZES = [["desktop", undefined], ["phone", PHONE]];
const run = Date.now().toString(36);

async function setup() {
  const admin = await login("admin");
  const user = (key, name, role) => api(admin.access_token, "POST", "/users", { email: email(key), name, role, password: PASSWORD, team: TEAM });
  await user("teammanager", "E2E Team Manager", "manager");
  for (const size of ["desktop", "phone"]) {
    const leaving = await user(`leaving-${size}`, `E2E Leaving ${size}`, "agent");
    await user(`staying-${size}`, `E2E Staying ${size}`, "agent");
    for (const debtor of ["Mona Mover", "Moe Mover"]) {
      await api(admin.access_token, "POST", "/accounts", {
        debtor_name: `${debtor} ${size}`, original_balance: "300.00", currency: "USD", assigned_agent_id: leaving.id,
      });
    }
  }
  const keeping = await user("keeping", "E2E Keeping Agent", "agent");
  await api(admin.access_token, "POST", "/accounts", {
    debtor_name: "Kept Debtor", original_balance: "300.00", currency: "USD", assigned_agent_id: keeping.id,
  });
  await user("departing", "E2E Departing Agent", "agent");
}

suite("team administration and registration", setup, (test) => {
  test("a manager creates an agent of their team, disables and enables them, and moves an agent's accounts", async () => {
    for (const [size, options] of SIZES) {
      const page = await open("teammanager", null, options);
      await (await screens(page)).getByRole("link", { name: "Users" }).click();
      await page.getByRole("heading", { name: `Team ${TEAM}` }).waitFor();
      const form = page.getByRole("form", { name: "New agent" });
      assert.equal(await form.getByLabel("Role").count(), 0, "a manager creates agents only");
      const name = `Tess Team ${size}`;
      await form.getByLabel("Name").fill(name);
      await form.getByLabel("Email").fill(`tess-${size}-${run}@e2e.example.com`);
      await form.getByLabel("Password").fill("a-long-enough-password");
      await form.getByRole("button", { name: "Create agent" }).click();
      const row = page.getByRole("row", { name: new RegExp(name) });
      await row.waitFor();
      assert.match(await row.textContent(), /E2E North/, "the agent joins the manager's team");
      assert.equal(await row.getByLabel(/Role of/).count(), 0, "a manager does not change roles");
      assert.equal(await row.getByRole("button", { name: "Delete" }).count(), 0, "only admins delete");

      await row.getByRole("button", { name: "Disable" }).click();
      await page.getByText(`${name} updated.`).waitFor();
      await row.getByRole("button", { name: "Enable" }).waitFor();
      const token = (await login("teammanager")).access_token;
      const team = await api(token, "GET", "/users?page_size=200");
      assert.equal(team.data.find((u) => u.name === name)?.disabled, true, "disabled on the server");
      assert.ok(team.data.every((u) => u.team === TEAM), "the manager lists their team only");

      const move = page.getByRole("form", { name: "Move accounts" });
      await move.getByLabel("From").selectOption({ label: `E2E Leaving ${size} (${TEAM})` });
      await move.getByLabel("To").selectOption({ label: `E2E Staying ${size} (${TEAM})` });
      await move.getByRole("button", { name: "Move open accounts" }).click();
      await move.getByText("2 open accounts moved.").waitFor();

      await accessible(page, `team admin (${size})`);
      await shot(page, `team-admin-manager-${size}`);
      await row.getByRole("button", { name: "Enable" }).click();
      await row.getByRole("button", { name: "Disable" }).waitFor();
      await page.context().close();
    }
  });

  test("an admin deletes a user once asked twice; one with open accounts is refused and offered the move", async () => {
    const page = await open("admin");
    await page.goto(`${BASE}/#/admin`);
    const keeping = page.getByRole("row", { name: /E2E Keeping Agent/ });
    await keeping.getByRole("button", { name: "Delete" }).click();
    await keeping.getByRole("button", { name: "Yes, delete" }).click();
    await page.getByText(/1 open account is still assigned/).waitFor();
    const move = page.getByRole("form", { name: "Move accounts" });
    assert.match(await move.getByLabel("From").evaluate((el) => el.selectedOptions[0].textContent), /E2E Keeping Agent/, "the move is offered");

    const departing = page.getByRole("row", { name: /E2E Departing Agent/ });
    await departing.getByRole("button", { name: "Delete" }).click();
    await departing.getByRole("button", { name: "No, keep it" }).click();
    await departing.getByRole("button", { name: "Delete" }).click();
    await departing.getByRole("button", { name: "Yes, delete" }).click();
    await page.getByText("E2E Departing Agent deleted.").waitFor();
    const gone = page.getByRole("row", { name: /Deleted user/ });
    await gone.waitFor();
    assert.match(await gone.textContent(), /deleted/);
    assert.equal(await gone.getByRole("button").count(), 0, "a deleted user offers no action");
    await page.context().close();
  });

  test("a newcomer registers from the sign-in form and waits for an administrator", async () => {
    for (const [size, options] of SIZES) {
      const page = await open(null, null, options);
      await page.getByRole("link", { name: "Create an account" }).click();
      await page.getByRole("heading", { name: "Create an account" }).waitFor();
      await accessible(page, `register (${size})`);
      await shot(page, `team-admin-register-${size}`);
      const address = `newcomer-${size}-${run}@e2e.example.com`;
      await page.getByLabel("Name").fill(`Nora Newcomer ${size}`);
      await page.getByLabel("Email").fill(address);
      await page.getByLabel("Password").fill("a-long-enough-password");
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("heading", { name: "Waiting for approval" }).waitFor();
      await page.getByText("An administrator must approve you").waitFor();
      await accessible(page, `pending (${size})`);
      await shot(page, `team-admin-pending-${size}`);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      const users = await api((await login("admin")).access_token, "GET", "/users?page_size=200");
      assert.equal(users.data.find((u) => u.email === address)?.role, "pending", "registered as pending");
      await page.context().close();
    }
  });
});
