// An agent takes whole calls in the console, at desktop size and on a phone: sets the
// phone they take calls on, calls an imported debtor whose zone came from the address
// (a place where it is daytime when the tests run),
// follows the call in the bar under the header while the test plays Twilio (the agent
// answers, the debtor talks, the dial ends), completes it in "Log contact" and goes on
// to the next account; then a debtor's call pops their account. Twilio's requests are
// signed as Twilio signs them (HMAC-SHA1 over the configured URL and the sorted
// parameters; tests/api/calls.rs holds the service to Twilio's own library).

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { BASE, PHONE, accessible, api, fits, login, open, shot, suite } from "./harness.js";

const HOOK = "https://arrears.e2e.example.com/api/v1/webhooks/twilio";
const ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef";
const ids = {};

// Posts `params` to the voice webhook at `path` (after the configured URL), signed.
async function twilio(path, params) {
  const signed = Object.keys(params).sort().reduce((text, name) => text + name + params[name], HOOK + path);
  const signature = createHmac("sha1", "e2e-twilio-auth-token").update(signed).digest("base64");
  const response = await fetch(`${BASE}/api/v1/webhooks/twilio${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature },
    body: new URLSearchParams(params).toString(),
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return text;
}

// Where the debtors live: a place where it is between 09:00 and 19:00 when the tests run
// (calls are allowed from 08:00 to 21:00), whatever the hour; its zone comes from the
// address, as an import leaves it (no zone named), and the phone is of the same zone.
const PLACES = [
  ["America/New_York", { city: "Hoboken", region: "NJ", postal_code: "07030", country: "US" }, "+1201555017"],
  ["America/Chicago", { city: "Chicago", region: "IL", postal_code: "60606", country: "US" }, "+1312555017"],
  ["America/Los_Angeles", { city: "San Francisco", region: "CA", postal_code: "94105", country: "US" }, "+1415555017"],
  ["Pacific/Honolulu", { city: "Honolulu", region: "HI", postal_code: "96813", country: "US" }, "+1808555017"],
  ["Asia/Tokyo", { city: "Tokyo", country: "JP" }, "+8131234567"],
  ["Asia/Kolkata", { city: "Mumbai", country: "IN" }, "+91226123450"],
  ["Europe/London", { city: "London", postal_code: "SW1A 1AA", country: "GB" }, "+44207946017"],
];
const hourIn = (zone) => Number(new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", hourCycle: "h23" }).format(new Date()));
const [ZONE, ADDRESS, PREFIX] = PLACES.find(([zone]) => hourIn(zone) >= 9 && hourIn(zone) < 19);
// The debtor's number of each size's account.
const number = (account) => `${PREFIX}${account === "desktop" ? 1 : 2}`;

async function setup() {
  const manager = await login("manager");
  const agent = await login("agent");
  ids.agent = agent.user.id;
  const create = (name, phone) => api(manager.access_token, "POST", "/accounts?wait_for=indexed", {
    debtor_name: name, original_balance: "640.00", currency: "USD", phone, assigned_agent_id: agent.user.id,
    address: { line1: "12 River St", ...ADDRESS },
  });
  ids.desktop = (await create("Dolores Desktop-Caller", number("desktop"))).id;
  ids.phone = (await create("Phineas Pocket-Caller", number("phone"))).id;
}

suite("calls taken in the console", setup, (test) => {
  for (const [size, options, account, own] of [["desktop", undefined, "desktop", "+12015550191"], ["phone", PHONE, "phone", "+12015550192"]]) {
    test(`an agent places a call, follows it, wraps it up and goes on to the next account, and a debtor's call pops (${size})`, async () => {
      const page = await open("agent", null, options);
      await page.goto(`${BASE}/#/me`);
      await page.locator("#my-phone").fill(own);
      await page.getByRole("button", { name: "Save phone" }).click();
      await page.locator("#toast", { hasText: own }).waitFor();

      const id = ids[account];
      await page.goto(`${BASE}/#/account/${id}`);
      await page.locator("#debtor-time", { hasText: "from the address" }).waitFor();
      assert.ok((await page.locator("#debtor-time").textContent()).includes(ZONE), `the debtor's time is ${ZONE}'s`);
      const dial = page.locator("#debtor-phone a[href^='tel:']");
      assert.equal(await dial.getAttribute("href"), `tel:${number(account)}`);
      await page.locator("#call-debtor").click();
      await page.locator("#call-bar", { hasText: "ringing your phone" }).waitFor();
      await shot(page, `call-ringing-${size}`);

      const token = (await login("agent")).access_token;
      const call = (await api(token, "GET", "/calls")).data[0];
      assert.equal(call.account_id, id);
      const sid = `CA${call.id.replaceAll("-", "")}`;
      const dialled = await twilio(`/voice/connect?call=${call.id}`, { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "in-progress" });
      assert.ok(dialled.includes(`<Number>${number(account)}</Number>`), dialled);
      await page.locator("#call-bar", { hasText: "dialling the debtor" }).waitFor();
      await twilio(`/voice/dialed?call=${call.id}`, { AccountSid: ACCOUNT_SID, CallSid: sid, DialCallStatus: "completed", DialCallDuration: "130" });
      await page.locator("#call-bar", { hasText: "wrap it up" }).waitFor();
      await page.locator("#wrap-call", { hasText: `Completes your call to ${number(account)}` }).waitFor();
      await fits(page, `account on a call (${size})`);
      await accessible(page, `account on a call (${size})`);
      await shot(page, `call-wrap-up-${size}`);

      const form = page.locator("form", { has: page.locator("#wrap-call") });
      await form.locator("select[name='contact.outcome']").selectOption("right_party");
      await form.locator("textarea[name='contact.notes']").fill("Agreed to call back with card details");
      await page.locator("#save-and-next").click();
      await page.locator("#call-bar").waitFor({ state: "hidden" });
      await page.waitForFunction((first) => !location.hash.includes(first) || document.querySelector("#toast")?.textContent.includes("queue is empty"), id);
      const logged = (await api(token, "GET", `/accounts/${id}/activities`)).data;
      assert.equal(logged.length, 1, "the call's own activity, completed, not a second one");
      assert.deepEqual([logged[0].type, logged[0].direction, logged[0].outcome], ["call", "outbound", "right_party"]);

      // The debtor calls back: the agent's phone rings; answering pops the account.
      const back = `CA${"b".repeat(30)}${size === "desktop" ? "01" : "02"}`;
      const rings = await twilio("/voice", { AccountSid: ACCOUNT_SID, CallSid: back, From: number(account), To: "+15005550006" });
      const answered = rings.match(/url="([^"]+)"/)[1].replaceAll("&amp;", "&");
      assert.ok(answered.includes(`agent=${ids.agent}`), rings);
      await twilio(answered.slice(HOOK.length), { AccountSid: ACCOUNT_SID, CallSid: `CA${"c".repeat(30)}0${size.length}`, ParentCallSid: back });
      await page.waitForFunction((first) => location.hash === `#/account/${first}`, id);
      await page.locator("#call-bar", { hasText: `Call from ${number(account)}` }).waitFor();
      await page.locator("#wrap-call", { hasText: "Completes your call from" }).waitFor();
      await shot(page, `call-popped-${size}`);
      await page.context().close();
    });
  }
});
