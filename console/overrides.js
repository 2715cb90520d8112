// Contact overrides (managers and admins): an account's overrides, newest first, and the
// form granting one. An override lets the next attempt on its channel that the contact
// guard would refuse go through, once, until it expires; it then records the rule it
// overrode.

import { api, learnNames, nameOf } from "./api.js";
import { clear, field, h, select, showProblem, toast, when, words } from "./dom.js";

const CHANNELS = ["call", "sms", "email", "letter", "visit"];

function standing(override) {
  if (override.used_at) return `used ${when(override.used_at)}${override.rule ? `, past the ${words(override.rule)} rule` : ""}`;
  if (new Date(override.expires_at) <= new Date()) return `expired unused ${when(override.expires_at)}`;
  return `unused, open until ${when(override.expires_at)}`;
}

export function overridesSection(accountId) {
  const list = h("ul", { class: "plain timeline", id: "overrides" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Older overrides");
  const form = h(
    "form",
    { "aria-labelledby": "grant-title" },
    h("h3", { id: "grant-title" }, "Grant an override"),
    h("div", { class: "form-alert", role: "alert" }),
    field("Channel", select("channel", CHANNELS.map((c) => [c, words(c)]), "call")),
    field("Reason", h("textarea", { name: "reason", rows: 2, maxlength: 2000 }), "Why this attempt may go ahead; kept with the override"),
    h("button", { type: "submit" }, "Grant override"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", `/accounts/${accountId}/contact-overrides`, {
        body: { channel: form.elements.channel.value, reason: form.elements.reason.value },
      });
      showProblem(form, null);
      form.reset();
      toast("Override granted.");
      await load();
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });

  async function load(cursor) {
    const page = await api("GET", "/contact-overrides", { params: { account_id: accountId, page_size: 10, cursor } });
    await learnNames(page.data.map((o) => o.granted_by)).catch(() => {});
    if (!cursor) clear(list);
    for (const override of page.data) {
      list.append(h("li", {},
        h("strong", {}, words(override.channel)), ` — ${standing(override)}`,
        h("small", {}, `granted by ${nameOf(override.granted_by)} ${when(override.created_at)}`),
        h("p", { class: "notes" }, override.reason)));
    }
    if (!page.data.length && !cursor) list.append(h("li", { class: "muted" }, "None granted."));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  const section = h(
    "section",
    { class: "card", "aria-labelledby": "overrides-title" },
    h("h2", { id: "overrides-title" }, "Contact overrides"),
    list,
    more,
    form,
  );
  return { section, load: () => load() };
}
