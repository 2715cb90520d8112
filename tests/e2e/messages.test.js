// Issue 50 in the browser: an agent messages a debtor from the account screen (a
// template previewed and sent, an email of their own, the guard refusing a text at
// night beside the form), the sent ones listed with how their sending stands; a manager
// on a phone reads them and has the form; a viewer reads them without it.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { BASE, PHONE, accessible, api, daytimeZone, fits, login, open, shot, suite, upload } from "./harness.js";

const run = Date.now().toString(36);
const TEMPLATE = `E2E reminder ${run}`;
const ids = {};

// A zone where it is now between 22:00 and 06:00: the guard refuses texts there.
function nightZone() {
  const zones = ["America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland"];
  return zones.find((zone) => {
    const hour = Number(new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", hourCycle: "h23" }).format(new Date()));
    return hour >= 22 || hour < 6;
  });
}

async function setup() {
  const manager = (await login("manager")).access_token;
  const agent = await login("agent");
  const create = (fields) => api(manager, "POST", "/accounts", { original_balance: "310.00", currency: "USD", email: "bo@example.com", phone: "(201) 555-0190", assigned_agent_id: agent.user.id, ...fields });
  ids.day = (await create({ debtor_name: `<b>Bo</b> Messageworth ${run}`, timezone: daytimeZone() })).id;
  ids.statement = (await upload(agent.access_token, ids.day, "statement.txt", `Statement ${run}\n`)).id;
  // The phone and viewer test reads an account of its own with a message already sent,
  // so it holds in whichever order the seed draws.
  ids.read = (await create({ debtor_name: `Rita Readworth ${run}`, timezone: daytimeZone() })).id;
  await api(manager, "POST", `/accounts/${ids.read}/messages`, { channel: "sms", text: "We tried to reach you." });
  const night = nightZone();
  if (night) ids.night = (await create({ debtor_name: `Nina Nightly ${run}`, timezone: night })).id;
  await api(manager, "POST", "/message-templates", { name: TEMPLATE, channel: "sms", body: "Hello {{debtor_name}}, you owe {{balance}}." });
  // From a number no account has: it waits on the managers' dashboard.
  ids.stranger = `1415555${String(Date.now() % 10000).padStart(4, "0")}`;
  await debtorWrites(ids.stranger, `<img src=x onerror=alert(1)> who is this? ${run}`);
}

const card = (page) => page.getByRole("region", { name: "Messages" });

// Posts what a debtor wrote from `from` (digits) to Meta's webhook, signed with the app
// secret bin/e2e configures, as Meta signs it.
async function debtorWrites(from, text) {
  const body = JSON.stringify({ object: "whatsapp_business_account", entry: [{ id: "1", changes: [{ field: "messages", value: {
    messaging_product: "whatsapp",
    metadata: { display_phone_number: "15550783881", phone_number_id: "106540352242922" },
    messages: [{ from, id: `wamid.E2E${run}${from}`, timestamp: "1749416383", type: "text", text: { body: text } }],
  } }] }] });
  const signature = `sha256=${createHmac("sha256", "e2e-meta-app-secret").update(body).digest("hex")}`;
  const response = await fetch(`${BASE}/api/v1/webhooks/meta`, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": signature }, body });
  assert.equal(response.status, 200, await response.text());
}

suite("messages", setup, (test) => {
  test("a manager reads the messages from unknown numbers on the dashboard, on a phone too", async () => {
    for (const [page, screen] of [[await open("manager"), "desktop"], [await open("manager", null, PHONE), "phone"]]) {
      await page.goto(`${BASE}/#/dashboard`);
      const unknown = page.getByRole("region", { name: /^Messages from unknown numbers/ });
      const item = unknown.locator("li.message", { hasText: `+${ids.stranger}` });
      await item.getByText(`<img src=x onerror=alert(1)> who is this? ${run}`).waitFor();
      assert.equal(await unknown.locator("img").count(), 0, "what a debtor wrote is text, never markup");
      await fits(page, `unknown numbers, ${screen}`);
      await accessible(page, `unknown numbers, ${screen}`);
      await unknown.scrollIntoViewIfNeeded();
      await shot(page, `messages-unknown-${screen}`);
    }
  });

  test("an agent previews and sends a template, sends an email, and is refused a text at night", async () => {
    const page = await open("agent");
    await page.goto(`${BASE}/#/account/${ids.day}`);
    const messages = card(page);
    const form = messages.getByRole("form", { name: "Messages" });
    await form.getByLabel("Template").selectOption({ label: TEMPLATE });
    assert.equal(await form.getByLabel("Text").isVisible(), false, "a template needs no text of one's own");
    await form.getByRole("button", { name: "Preview" }).click();
    const expected = `Hello <b>Bo</b> Messageworth ${run}, you owe 310.00 USD.`;
    await form.locator(".message-preview").getByText(expected).waitFor();
    assert.equal(await messages.locator("b").count(), 0, "the debtor's name is text, never markup");
    await accessible(page, "messages, a preview");

    await form.getByRole("button", { name: "Send message" }).click();
    await page.getByText("Text message to +12015550190 queued.").waitFor();
    await messages.locator("li.message-sent", { hasText: expected }).waitFor();

    await form.getByLabel("Channel").selectOption("email");
    await form.getByLabel("Template").selectOption({ label: "Write my own" });
    await form.getByLabel("Subject").fill("Your balance");
    await form.getByLabel("Text").fill("Dear {{debtor_name}},\nplease call us.");
    await form.getByRole("group", { name: "Attach documents" }).getByLabel("statement.txt").check();
    await form.getByRole("button", { name: "Preview" }).click();
    await form.locator(".message-preview").getByText("Attached: statement.txt").waitFor();
    await form.getByRole("button", { name: "Send message" }).click();
    await page.getByText("Email to bo@example.com queued.").waitFor();
    await messages.locator("li.message-sent", { hasText: "Your balance" }).waitFor();
    await shot(page, "messages-desktop");

    const sent = await api((await login("agent")).access_token, "GET", `/accounts/${ids.day}/messages`);
    assert.deepEqual(sent.data.map((m) => [m.channel, m.status]), [["email", "sent"], ["sms", "sent"]]);
    assert.equal(sent.data[0].body, `Dear <b>Bo</b> Messageworth ${run},\nplease call us.`);
    assert.deepEqual(sent.data[0].document_ids, [ids.statement]);
    assert.deepEqual(sent.data[1].document_ids, [], "a text message carries no documents");

    if (ids.night) {
      await page.goto(`${BASE}/#/account/${ids.night}`);
      const night = card(page).getByRole("form", { name: "Messages" });
      await night.getByLabel("Text").fill("Are you there?");
      await night.getByRole("button", { name: "Send message" }).click();
      await night.getByText("Rule: outside window.").waitFor();
      await night.getByText(/Allowed again/).waitFor();
      await card(page).getByText("No messages yet.").waitFor();
    }
  });

  test("a manager on a phone reads the messages and has the form; a viewer reads them without it", async () => {
    const phone = await open("manager", null, PHONE);
    await phone.goto(`${BASE}/#/account/${ids.read}`);
    await card(phone).locator("li.message").first().waitFor();
    await card(phone).getByRole("form", { name: "Messages" }).waitFor();
    await fits(phone, "messages on a phone");
    await accessible(phone, "messages on a phone");
    await card(phone).scrollIntoViewIfNeeded();
    await shot(phone, "messages-phone");

    const viewer = await open("viewer");
    await viewer.goto(`${BASE}/#/account/${ids.read}`);
    await card(viewer).locator("li.message").first().waitFor();
    assert.equal(await card(viewer).getByRole("form").count(), 0, "viewers send nothing");
  });
});
