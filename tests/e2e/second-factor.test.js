// Two-step sign-in in the console: enrolling an authenticator app (the key shown as
// text), the recovery codes shown once, signing in again with a code computed here from
// the key (RFC 6238), and with a recovery code; a user whose role requires it is sent to
// enrol.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { accessible, api, BASE, email, login, open, PASSWORD, PHONE, screens, shot, signIn, suite } from "./harness.js";

// RFC 4648 base32, as the console shows the key (grouped by spaces).
function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let [bits, value] = [0, 0];
  const out = [];
  for (const c of text.replace(/\s/g, "").toUpperCase()) {
    value = ((value << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// The 6-digit RFC 6238 code of `secret` for the 30-second step `step`.
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const stepNow = () => Math.floor(Date.now() / 1000 / 30);

async function setup() {
  // RFC 6238 Appendix B (SHA-1, T = 59: 94287082): this file's codes are the standard's.
  assert.equal(totp(Buffer.from("12345678901234567890"), 1), "287082");
  const admin = await login("admin");
  for (const name of ["twostep", "twostep-phone", "twostep-lost"]) {
    await api(admin.access_token, "POST", "/users", { email: email(name), name: `E2E ${name}`, role: "agent", password: PASSWORD });
  }
}

async function signInWith(page, user, proof) {
  await page.getByLabel("Email").fill(email(user));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Two-step sign-in" }).waitFor();
  await proof(page);
}

// Two-step sign-in is reached from My account.
async function twoStep(page) {
  await screens(page);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("link", { name: "Two-step sign-in" }).click();
}

suite("Two-step sign-in", setup, (test) => {
  test("an agent enrols an app, signs out, and signs in with a code, then with a recovery code", async () => {
    const page = await open(null);
    await signIn(page, "twostep");
    await twoStep(page);
    await page.getByRole("heading", { name: "Two-step sign-in is off" }).waitFor();
    await page.getByRole("button", { name: "Set up" }).click();
    const shownKey = await page.locator("#sf-secret").textContent();
    assert.match(shownKey, /^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/);
    const secret = base32Decode(shownKey);
    assert.equal(secret.length, 20);
    const uri = await page.getByRole("link", { name: "open the key in the app" }).getAttribute("href");
    assert.ok(uri.startsWith("otpauth://totp/Arrears:") && uri.includes(`secret=${shownKey.replace(/ /g, "")}`), uri);
    // The key as a QR code to scan, drawn (an image the browser decoded, on screen).
    const qr = await page.locator("#sf-qr").evaluate((img) => ({ width: img.naturalWidth, shown: img.getBoundingClientRect().width }));
    assert.ok(qr.width >= 200 && qr.shown >= 150, JSON.stringify(qr));
    await accessible(page, "second factor: the key");
    await shot(page, "second-factor-key");

    await page.getByLabel("Code", { exact: true }).fill(String((Number(totp(secret, stepNow())) + 1) % 1_000_000).padStart(6, "0"));
    await page.getByRole("button", { name: "Turn on" }).click();
    await page.getByText("does not match the secret").first().waitFor();
    const step = stepNow();
    await page.getByLabel("Code", { exact: true }).fill(totp(secret, step));
    await page.getByRole("button", { name: "Turn on" }).click();
    await page.getByRole("heading", { name: /Save your recovery codes/ }).waitFor();
    const codes = await page.locator("#sf-recovery li").allTextContents();
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    await accessible(page, "second factor: recovery codes");
    await shot(page, "second-factor-recovery-codes");
    await page.getByRole("button", { name: "I have saved them" }).click();
    await twoStep(page);
    await page.getByText("10 of 10 recovery codes left.").waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();

    // The password alone is not enough: the form asks for the code. The next step's code
    // is within the one step of drift the server accepts, and newer than the one spent.
    await signInWith(page, "twostep", async () => {
      await accessible(page, "sign in: the code");
      await shot(page, "second-factor-sign-in");
      await page.getByLabel("Code from your authenticator app").fill(totp(secret, step + 5));
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByText("the code is wrong or was already used").waitFor();
      await page.getByLabel("Code from your authenticator app").fill(totp(secret, step + 1));
      await page.getByRole("button", { name: "Sign in" }).click();
    });
    await page.getByRole("button", { name: "Sign out" }).click();

    await signInWith(page, "twostep", async () => {
      await page.getByRole("button", { name: "Use a recovery code instead" }).click();
      await page.getByLabel("Recovery code").fill(codes[0]);
      await page.getByRole("button", { name: "Sign in" }).click();
    });
    await twoStep(page);
    await page.getByText("9 of 10 recovery codes left.").waitFor();

    // Turning it off takes the password and a code from the app or a recovery code: a
    // wrong one is refused by name. On a phone the form fits the screen.
    await page.setViewportSize(PHONE.viewport);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByLabel("Code from your app, or a recovery code").fill("000000");
    await page.getByRole("button", { name: "Turn off" }).click();
    await page.getByText("is not the code your app shows now").first().waitFor();
    await accessible(page, "second factor: turning it off");
    await shot(page, "second-factor-turn-off-phone");
    await page.getByLabel("Code from your app, or a recovery code").fill(codes[1]);
    await page.getByRole("button", { name: "Turn off" }).click();
    await page.getByRole("heading", { name: "Two-step sign-in is off" }).waitFor();
    await page.context().close();
  });

  test("on a phone the key and its code field fit the screen", async () => {
    const page = await open(null, null, PHONE);
    await signIn(page, "twostep-phone");
    await twoStep(page);
    await page.getByRole("button", { name: "Set up" }).click();
    await page.locator("#sf-secret").waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
    await accessible(page, "second factor on a phone");
    await shot(page, "second-factor-key-phone");
    await page.context().close();
  });

  test("an admin turns off the two-step sign-in of a user who lost their phone, and sets their team, from the Users screen", async () => {
    const lost = await login("twostep-lost");
    const begun = await api(lost.access_token, "POST", "/auth/second-factor");
    await api(lost.access_token, "POST", "/auth/second-factor/confirm", { code: totp(base32Decode(begun.secret), stepNow()) });
    const refused = await fetch(`${BASE}/api/v1/auth/login`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: email("twostep-lost"), password: PASSWORD }),
    });
    assert.equal((await refused.json()).code, "second_factor_required", "the password alone is not enough");

    for (const [size, options] of [["desktop", undefined], ["phone", PHONE]]) {
      const page = await open("admin", null, options);
      await (await screens(page)).getByRole("link", { name: "Users" }).click();
      const row = page.locator("tbody tr", { hasText: "E2E twostep-lost" });
      const more = page.getByRole("button", { name: "More users" });
      await page.locator("tbody tr").first().waitFor();
      while (!(await row.count()) && await more.isVisible()) await more.click();
      const team = row.getByRole("textbox", { name: "Team of E2E twostep-lost" });
      await team.fill(`E2E Found ${size}`);
      await row.getByRole("button", { name: "Set the team of E2E twostep-lost" }).click();
      await page.getByText("E2E twostep-lost updated.").waitFor();
      const users = await api((await login("admin")).access_token, "GET", "/users?page_size=200");
      assert.equal(users.data.find((u) => u.email === email("twostep-lost")).team, `E2E Found ${size}`);
      if (size === "desktop") {
        await row.getByRole("button", { name: "Reset two-step sign-in" }).click();
        await row.getByRole("button", { name: "Yes, turn it off" }).click();
        await page.getByText("E2E twostep-lost's two-step sign-in is off.").waitFor();
        assert.ok((await login("twostep-lost")).access_token, "the password alone signs in again");
      }
      await accessible(page, `users, a user's team and second factor (${size})`);
      await shot(page, `users-team-and-second-factor-${size}`);
      await page.context().close();
    }
  });

  test("a user whose role requires it is sent to enrol and offered nothing else", async () => {
    // The server of these tests requires no role to enrol (SECOND_FACTOR_REQUIRED_FOR is
    // unset): the answer of a required role is played here; tests/api/second_factor.rs
    // proves the API's side.
    const required = { enabled: false, pending: false, required: true, recovery_codes_left: 0 };
    const page = await open("viewer", (p) => p.route("**/api/v1/auth/second-factor", (route) =>
      route.request().method() === "GET" ? route.fulfill({ json: required }) : route.continue()));
    await page.waitForURL(/#\/second-factor$/);
    await page.getByRole("heading", { name: "Your role requires two-step sign-in" }).waitFor();
    assert.equal(await page.locator("#top nav a").count(), 0, "no other screen is offered");
    await page.evaluate(() => { location.hash = "#/search"; });
    await page.waitForURL(/#\/second-factor$/);
    await shot(page, "second-factor-required");
    await page.context().close();
  });
});
