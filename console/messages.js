// An account's messages to its debtor: the ones sent (newest first, each with how its
// sending stands) and, for those who work the account, a form that composes one from a
// template or from their own text, previews it and sends it. The guard decides on the
// server; a refusal shows its rule and when contact opens. Every text is shown as text.

import { api, currentUser, works } from "./api.js";
import { clear, debounce, field, h, select, showProblem, toast, when, words } from "./dom.js";
import { live } from "./live.js";

const CHANNELS = [["sms", "Text message"], ["whatsapp", "WhatsApp"], ["email", "Email"]];
const channelName = (c) => (CHANNELS.find(([v]) => v === c) || [c, c])[1];

// How delivery went after the provider took it, as its reports say.
const DELIVERY = { sent: "on its way", delivered: "delivered", undelivered: "not delivered", failed: "not delivered", read: "read" };

function status(m) {
  if (m.status === "sent" && m.delivery) {
    const reason = m.delivery_error ? ` (${m.delivery_error})` : "";
    return `sent ${when(m.sent_at)}, ${DELIVERY[m.delivery]} ${when(m.delivery_at)}${reason}`;
  }
  if (m.status === "sent") return `sent ${when(m.sent_at)}`;
  if (m.status === "failed") return `failed ${when(m.failed_at)}: ${m.error}`;
  // The guard refused a retry: never sent, and why.
  if (m.status === "blocked") return `not sent, blocked ${when(m.blocked_at)}: ${m.error}`;
  if (m.attempts > 0) return `queued, try ${m.attempts + 1} ${when(m.next_attempt_at)} (${m.error})`;
  // Waiting for the debtor's contact hours.
  if (m.error) return `queued ${when(m.next_attempt_at)} (${m.error})`;
  return "queued";
}

function item(m) {
  const undelivered = m.delivery === "undelivered" || m.delivery === "failed";
  return h("li", { class: `message message-${undelivered ? "failed" : m.status}` },
    h("div", {}, h("strong", {}, channelName(m.channel)), ` to ${m.recipient} · ${when(m.created_at)}`),
    h("div", { class: `muted status-${undelivered || m.status === "blocked" ? "failed" : m.status}` }, status(m)),
    m.subject ? h("div", {}, h("strong", {}, m.subject)) : null,
    h("p", { class: "message-body" }, m.body),
    m.document_ids?.length ? h("div", { class: "muted" }, `${m.document_ids.length} document${m.document_ids.length === 1 ? "" : "s"} attached`) : null);
}

// The Messages card of `account`: `section`, filled by `load()` and following how each
// message's sending goes (`message.updated`) until `stop()`. Those who read the account
// in full (its agent, managers, admins, viewers) see the messages; those who work it
// also get the form.
export function messagesSection(account) {
  const section = h("section", { class: "card", "aria-labelledby": "messages-title" });
  const list = h("ul", { class: "plain messages" });
  const more = h("div");
  const readsInFull = works(account) || currentUser()?.role === "viewer";

  // Reads overlap (a send's own refresh and a live event's): only the latest one's
  // answer is drawn, after it comes; clearing before the read let two answers both
  // append, and every message showed twice.
  let reads = 0;
  async function page(cursor) {
    const read = ++reads;
    try {
      const answer = await api("GET", `/accounts/${account.id}/messages`, { params: { page_size: 10, cursor } });
      if (read !== reads) return;
      if (!cursor) clear(list);
      clear(more);
      for (const m of answer.data) list.append(item(m));
      if (!answer.total) list.append(h("li", { class: "muted" }, "No messages yet."));
      if (answer.next_cursor) more.append(h("button", { type: "button", onclick: () => page(answer.next_cursor) }, "More messages"));
    } catch (error) {
      if (read === reads) clear(more, h("p", { class: "form-alert", role: "alert" }, error.message));
    }
  }

  const followed = debounce(() => page(), 300);
  const updated = (event) => event.detail?.account_id === account.id && followed();

  async function load() {
    if (!readsInFull) {
      section.hidden = true;
      return;
    }
    clear(section, h("h2", { id: "messages-title" }, "Messages"));
    if (works(account)) section.append(composer(account, () => page()));
    section.append(list, more);
    live.addEventListener("message.updated", updated);
    await page();
  }
  const stop = () => live.removeEventListener("message.updated", updated);
  return { section, load, stop };
}

// The form: channel, a template or one's own text (and an email's subject), Preview
// and Send; `sent` runs once a message is queued.
function composer(account, sent) {
  const offered = CHANNELS.filter(([c]) => (c === "email" ? account.email : account.phone));
  if (!offered.length) return h("p", { class: "muted" }, "The account has no phone number or email address to message.");
  const channel = select("channel", offered, offered[0][0]);
  const template = h("select", { name: "template_id" });
  const subject = h("input", { name: "subject", maxlength: 200 });
  const text = h("textarea", { name: "text", rows: 4, maxlength: 5000 });
  const preview = h("div", { class: "message-preview", "aria-live": "polite" });
  const subjectField = field("Subject", subject);
  // An email may carry up to five of the account's documents.
  const attach = h("fieldset", { class: "checks message-attachments" });
  const textField = field("Text", text, "Placeholders: {{debtor_name}}, {{balance}}, {{due_date}}, {{account_number}}, {{payment_link}}");
  const form = h("form", { class: "message-form", "aria-labelledby": "messages-title" },
    h("div", { class: "form-alert", role: "alert" }),
    field("Channel", channel),
    field("Template", template),
    subjectField, textField, attach,
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => run(false) }, "Preview"),
      h("button", { type: "submit", class: "primary" }, "Send message")),
    preview);

  const own = () => template.value === "";
  const layout = () => {
    textField.hidden = !own();
    subjectField.hidden = !own() || channel.value !== "email";
    attach.hidden = channel.value !== "email" || !attach.querySelector("input");
  };
  // The account's latest documents, read again each time email is chosen.
  async function documents() {
    clear(attach, h("legend", {}, "Attach documents"));
    try {
      const page = await api("GET", `/accounts/${account.id}/documents`, { params: { page_size: 20 } });
      for (const d of page.data) {
        attach.append(h("label", { class: "check" }, h("input", { type: "checkbox", name: "document_ids", value: d.id }), ` ${d.name}`));
      }
    } catch (error) {
      showProblem(form, error);
    }
    layout();
  }
  async function templates() {
    clear(template, h("option", { value: "" }, "Write my own"));
    try {
      const page = await api("GET", "/message-templates", { params: { channel: channel.value, page_size: 200 } });
      for (const t of page.data) template.append(h("option", { value: t.id }, t.name));
    } catch (error) {
      showProblem(form, error);
    }
    layout();
  }
  channel.addEventListener("change", () => {
    templates();
    if (channel.value === "email") documents();
  });
  template.addEventListener("change", layout);

  const body = () => {
    const b = own() ? { channel: channel.value, text: text.value } : { channel: channel.value, template_id: template.value };
    if (own() && channel.value === "email") b.subject = subject.value;
    const ids = [...attach.querySelectorAll("input:checked")].map((i) => i.value);
    if (channel.value === "email" && ids.length) b.document_ids = ids;
    return b;
  };
  async function run(send) {
    const buttons = form.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    try {
      if (send) {
        const m = await api("POST", `/accounts/${account.id}/messages`, { body: body() });
        showProblem(form, null);
        clear(preview);
        text.value = "";
        subject.value = "";
        for (const box of attach.querySelectorAll("input")) box.checked = false;
        sent();
        toast(`${channelName(m.channel)} to ${m.recipient} queued.`);
      } else {
        const r = await api("POST", `/accounts/${account.id}/messages/preview`, { body: body() });
        showProblem(form, null);
        clear(preview, h("p", { class: "muted" }, `${channelName(r.channel)} to ${r.recipient}${r.subject ? `, subject “${r.subject}”` : ""}:`),
          h("p", { class: "message-body" }, r.body),
          r.attachments ? h("p", { class: "muted" }, `Attached: ${r.attachments.map((a) => a.name).join(", ")}`) : null,
          r.approved_template ? h("p", { class: "muted" },
            `If the debtor has not written on WhatsApp in the last 24 hours, this goes as the approved template` +
            `${r.approved_template.parameters.length ? ` with ${r.approved_template.parameters.join(" · ")}` : ""}.`) : null);
      }
    } catch (error) {
      showProblem(form, error);
      if (error.problem?.code === "contact_blocked") toast(`Not sent: ${words(error.problem.rule)}.`, { refusal: true });
      if (error.problem?.code === "whatsapp_window_closed") toast("Not sent: outside WhatsApp's 24-hour window, send an approved template.", { refusal: true });
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(true);
  });
  templates();
  if (channel.value === "email") documents();
  return form;
}

// Messages debtors sent from numbers no account has (managers and admins): who sent
// it, when, on which channel, and what it says, newest first, to find whose it is.
export function unmatchedSection() {
  const section = h("section", { class: "card", "aria-labelledby": "unmatched-title" });
  const list = h("ul", { class: "plain messages" });
  const more = h("div");

  async function page(cursor) {
    if (!cursor) clear(list);
    clear(more);
    try {
      const answer = await api("GET", "/inbound-messages/unmatched", { params: { page_size: 10, cursor } });
      clear(section, h("h2", { id: "unmatched-title" }, `Messages from unknown numbers: ${answer.total}`), list, more);
      for (const m of answer.data) {
        list.append(h("li", { class: "message" },
          h("div", {}, h("strong", {}, channelName(m.channel)), ` from ${m.sender} · ${when(m.received_at)}`),
          m.opt_out ? h("div", { class: "muted" }, "An opt-out (STOP): no account had this number to stop.") : null,
          h("p", { class: "message-body" }, m.body)));
      }
      if (!answer.total) list.append(h("li", { class: "muted" }, "None: every message came from a number an account has."));
      if (answer.next_cursor) more.append(h("button", { type: "button", onclick: () => page(answer.next_cursor) }, "More messages"));
    } catch (error) {
      clear(section, h("h2", { id: "unmatched-title" }, "Messages from unknown numbers"), h("p", { class: "form-alert", role: "alert" }, error.message));
    }
  }
  return { section, load: () => page() };
}
