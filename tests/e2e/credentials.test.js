// "My account" and password resets: changing my password, ending one of my sessions,
// and setting a new password from an admin's reset link while signed out; at desktop
// and phone width.

import assert from "node:assert/strict";
import { accessible, api, BASE, email, login, open, PASSWORD, PHONE, screens, shot, signIn, suite } from "./harness.js";

const NEW_PASSWORD = "a fresh e2e passphrase";
const users = {};

async function setup() {
  const admin = await login("admin");
  for (const [key, role] of [["changer", "agent"], ["phonechanger", "viewer"], ["sessions", "manager"], ["resetter", "viewer"]]) {
    users[key] = await api(admin.access_token, "POST", "/users", {
      email: email(key), name: `E2E ${key[0].toUpperCase()}${key.slice(1)}`, role, password: PASSWORD,
    });
  }
}

const signsIn = async (who, password) => {
  const response = await fetch(`${BASE}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: email(who), password }),
  });
  return response.status;
};

async function changePassword(who, options, name) {
  const page = await open(who, null, options);
  await screens(page);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("heading", { name: "My account" }).waitFor();
  await page.locator("table.sessions td", { hasText: "This device" }).waitFor();
  await accessible(page, `my account (${name})`);
  const form = page.locator("form[aria-labelledby='password-title']");
  await form.getByLabel("Current password").fill("not my password");
  await form.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await form.getByLabel("Repeat the new password").fill(NEW_PASSWORD);
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByText("is wrong").first().waitFor();
  await shot(page, `my-account-refused-${name}`);
  await form.getByLabel("Current password").fill(PASSWORD);
  await form.getByRole("button", { name: "Change password" }).click();
  await page.getByText("Password changed. Your other sessions have ended.").waitFor();
  await shot(page, `my-account-${name}`);
  assert.equal(await signsIn(who, PASSWORD), 401, "the old password no longer signs in");
  assert.equal(await signsIn(who, NEW_PASSWORD), 200);
  await page.context().close();
}

suite("my account and password resets", setup, (test) => {
  test("I change my password on a desktop", () => changePassword("changer", undefined, "desktop"));

  test("I change my password on a phone (390 px), the header's account link in view", async () => {
    await changePassword("phonechanger", PHONE, "phone");
  });

  test("I end one of my sessions, this device marked, and its token stops working", async () => {
    const page = await open("sessions", null, PHONE);
    const elsewhere = await login("sessions");
    assert.equal((await fetch(`${BASE}/api/v1/auth/me`, { headers: { authorization: `Bearer ${elsewhere.access_token}` } })).status, 200);
    await page.goto(`${BASE}/#/me`);
    const rows = page.locator("table.sessions tbody tr");
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    const other = rows.filter({ hasNot: page.getByText("This device") });
    await shot(page, "my-sessions-phone");
    await other.getByRole("button", { name: /^End the session/ }).click();
    await page.getByText("Session ended.").waitFor();
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 1);
    await page.locator("table.sessions td", { hasText: "This device" }).waitFor();
    const me = await fetch(`${BASE}/api/v1/auth/me`, { headers: { authorization: `Bearer ${elsewhere.access_token}` } });
    assert.equal(me.status, 401, "the ended session's access token fails at once");
    await page.context().close();
  });

  test("an admin's reset link sets a new password while signed out", async () => {
    const adminPage = await open("admin");
    await adminPage.getByRole("link", { name: "Users" }).click();
    await adminPage.getByRole("button", { name: "Reset password of E2E Resetter" }).click();
    const linkInput = adminPage.getByLabel(/^Link/);
    await linkInput.waitFor();
    const link = await linkInput.inputValue();
    assert.match(link, /#\/reset\?token=[\w-]{20,}$/);
    await shot(adminPage, "users-reset-link");
    await adminPage.context().close();

    for (const [name, options] of [["phone", PHONE], ["desktop", undefined]]) {
      const page = await open(null, null, options);
      await page.goto(link);
      await page.getByRole("heading", { name: "Set a new password" }).waitFor();
      assert.ok(!page.url().includes("token="), "the token leaves the address bar");
      await accessible(page, `reset (${name})`);
      if (name === "phone") {
        await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
        await page.getByLabel("Repeat the new password").fill("not the same password");
        await page.getByRole("button", { name: "Set password" }).click();
        await page.getByText("The new passwords differ.").waitFor();
        await page.getByLabel("Repeat the new password").fill(NEW_PASSWORD);
        await page.getByRole("button", { name: "Set password" }).click();
        await page.getByText("Your password is set. Sign in with it.").waitFor();
        await shot(page, "reset-done-phone");
        await page.getByLabel("Email").fill(email("resetter"));
        await page.getByLabel("Password").fill(NEW_PASSWORD);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.getByRole("button", { name: "Sign out" }).waitFor();
      } else {
        // The link is spent: a second use is refused, naming the token.
        await page.getByLabel("New password", { exact: true }).fill("yet another passphrase");
        await page.getByLabel("Repeat the new password").fill("yet another passphrase");
        await page.getByRole("button", { name: "Set password" }).click();
        await page.getByText("this reset token is unknown, used or expired").waitFor();
        await shot(page, "reset-spent-desktop");
      }
      await page.context().close();
    }
    assert.equal(await signsIn("resetter", PASSWORD), 401);
  });

  test("a signed-out visitor sees the sign-in screen, not My account", async () => {
    const page = await open(null);
    await page.goto(`${BASE}/#/me`);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await signIn(page, "viewer");
    await page.getByRole("link", { name: "My account" }).waitFor();
    await page.context().close();
  });
});
