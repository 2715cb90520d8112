// One account: details, balance, delinquency, the debtor's clock, what the contact guard
// allows now, one timeline of everything that happened to it, and its plan; and the forms
// to work it (shown only to whoever may: an agent on their own accounts, managers and
// admins): wrap up a call (outcome, promise, payment and next action in one step), pay,
// plan, settle or fail a pending payment, cancel a promise or plan, edit the account;
// managers also refund and reverse payments, verify disputes and override the contact
// guard; and the account's documents. An agent who opens another agent's account (a
// debtor calling in) gets its summary and may log the inbound call and take a payment.

import { api, atLeast, currentUser, learnNames, nameOf, works } from "./api.js";
import { clear, confirmStep, debounce, field, fieldWords, h, localClock, localDate, money, openQuestions, reopenQuestions, reveal, select, showProblem, tabs, toast, when, words } from "./dom.js";
import { live } from "./live.js";
import { accountEditor } from "./account-edit.js";
import { applying, definitions, empty, formatValue, portfolios } from "./custom-fields.js";
import { overridesSection } from "./overrides.js";
import { renderHistory, shownValue } from "./history.js";
import { documentsSection } from "./documents.js";
import { messagesSection } from "./messages.js";
import { callChanges, callFor, placeCall, wrappedUp } from "./calls.js";

const CHANNELS = ["call", "sms", "whatsapp", "email", "letter", "visit", "note"];
const OUTCOMES = ["right_party", "wrong_party", "no_answer", "left_message", "refused", "promise_to_pay", "dispute", "paid"];
const METHODS = ["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

function today() {
  return localDate();
}

// A live clock element for `zone`, updated every half minute while it is on the page.
function debtorClock(zone) {
  const el = h("span", { class: "clock" }, localClock(zone));
  const timer = setInterval(() => (el.isConnected ? (el.textContent = localClock(zone)) : clearInterval(timer)), 30000);
  return el;
}

// The debtor's clock, where their zone came from, and the other zone the guard keeps to
// when the phone number points elsewhere than the address (docs/features/compliance.md).
function debtorTime(a) {
  if (a.timezone_source === "unknown") {
    return "unknown: no address or phone number says where, so contact is allowed only in hours open across the country";
  }
  const from = { address: " from the address", phone: " from the phone number" }[a.timezone_source];
  const others = a.alternate_timezones ?? [];
  return [
    debtorClock(a.timezone),
    from ? h("span", { class: "muted" }, from) : null,
    others.length
      ? h("p", { class: "notice caution", role: "note", id: "zone-conflict" },
        `The phone number points to ${others.map((zone) => localClock(zone)).join(", ")}: contact only in hours open in both.`)
      : null,
  ];
}

export async function accountScreen(main, [id]) {
  const view = h("div", { class: "account" });
  main.append(view);
  // Without the definitions the values still show, as plain text; agents read no
  // portfolios, so they see no portfolio name. Asked for beside the account.
  const meta = Promise.all([definitions().catch(() => []), portfolios({ includeDeleted: true }).catch(() => null)]);
  let account;
  try {
    account = await api("GET", `/accounts/${id}`);
  } catch (error) {
    clear(view, h("h1", {}, "Account"), h("p", { role: "alert" }, error.message));
    return null;
  }
  // An agent reads a summary of an account that is not theirs: enough to take the call.
  if (account.access === "summary") return inboundScreen(view, account);
  const [defs, folios] = await meta;

  const sections = {
    summary: h("section", { class: "card summary", "aria-labelledby": "acct-title" }),
    contact: h("section", { class: "card", "aria-labelledby": "contact-title" }),
    timeline: h("section", { class: "card", "aria-labelledby": "timeline-title" }),
    plan: h("section", { class: "card", "aria-labelledby": "plan-title" }),
  };
  const actions = h("div", { class: "actions" });
  const overrides = atLeast("manager") ? overridesSection(id) : null;
  const documents = documentsSection(account);
  const messages = messagesSection(account);
  const editor = works(account) ? accountEditor(id, () => reload(), { defs, portfolios: folios }) : null;
  clear(
    view,
    sections.summary,
    // Who the debtor is and what they owe (the summary), what the guard allows now and
    // the timeline come first (on a phone, before any form); the actions beside them.
    h("div", { class: "columns" },
      h("div", {}, sections.contact, sections.timeline),
      h("div", {}, actions, overrides?.section, sections.plan, documents.section, messages.section)),
  );

  const renderAll = () => Promise.all([renderContact(), renderRecords(), renderPlan(), overrides?.load()]);

  async function reload() {
    account = await api("GET", `/accounts/${id}`);
    renderSummary();
    editor?.show(account);
    await renderAll();
  }

  // A small form around one item's actions: their refusal shows in it, beside the item.
  function itemForm(label, item, ...children) {
    return h("form", { class: "item-actions", "aria-label": label, dataset: { item } },
      h("div", { class: "form-alert", role: "alert" }),
      h("div", { class: "item-buttons" }, children));
  }

  // An item's confirm steps, named by its form's data-item, so that a question asked
  // beside an item is put back beside the item drawn anew.
  const itemOfStep = (step) => step.closest("form.item-actions[data-item]")?.dataset.item;
  const stepsOfItem = (root, item) => root.querySelectorAll(`form.item-actions[data-item="${CSS.escape(item)}"] .confirm-step`);

  // The refusal last shown beside each item (its form's data-item), put back beside it
  // whenever the timeline is redrawn: another change's live event may redraw it while
  // the action is on its way, and the refusal then lands beside the item drawn anew.
  const refusals = new Map();

  // Runs an item's action; a refusal stays beside its item, success reloads the screen.
  async function act(form, request, done) {
    const item = form.dataset.item;
    try {
      await request();
      refusals.delete(item);
      showProblem(form, null);
      toast(done);
      await reload();
    } catch (error) {
      refusals.set(item, error);
      const drawn = form.isConnected ? form : view.querySelector(`form.item-actions[data-item="${CSS.escape(item)}"]`);
      if (drawn) showProblem(drawn, error);
    }
  }

  function renderSummary() {
    const a = account;
    learnNames([a.assigned_agent_id]).then((learned) => learned && account === a && renderSummary()).catch(() => {});
    const address = a.address ? [a.address.line1, a.address.line2, a.address.city, a.address.region, a.address.postal_code, a.address.country].filter(Boolean).join(", ") : "";
    const flags = [a.do_not_call && "do not call", a.do_not_email && "do not email", a.cease_communication && "cease communication"].filter(Boolean);
    const portfolio = a.portfolio_id && folios?.find((p) => p.id === a.portfolio_id);
    clear(
      sections.summary,
      h("div", { class: "row" },
        h("h1", { id: "acct-title" }, a.debtor_name),
        h("span", { class: `badge ${a.status}` }, words(a.status))),
      h("div", { class: "figures" },
        h("div", {}, h("span", { class: "muted" }, "Balance"), h("strong", { class: "big", id: "balance" }, money(a.current_balance, a.currency))),
        h("div", {}, h("span", { class: "muted" }, "Original"), h("span", {}, money(a.original_balance, a.currency))),
        h("div", {}, h("span", { class: "muted" }, "Days past due"), h("strong", {}, String(a.days_past_due ?? 0)), h("span", { class: "muted" }, ` (${a.bucket ?? "current"})`)),
        h("div", {}, h("span", { class: "muted" }, "Due date"), h("span", {}, a.due_date || "—")),
        h("div", {}, h("span", { class: "muted" }, "Paid so far"), h("span", {}, money(a.total_paid ?? "0", a.currency))),
      ),
      h("dl", { class: "details" },
        h("dt", {}, "Account number"), h("dd", {}, a.account_number),
        h("dt", {}, "Assigned to"), h("dd", { id: "assignee" }, nameOf(a.assigned_agent_id)),
        h("dt", {}, "Phone"), phone,
        h("dt", {}, "Email"), h("dd", {}, a.email || "—"),
        h("dt", {}, "Address"), h("dd", {}, address || "—"),
        h("dt", {}, "Debtor's time"), h("dd", { id: "debtor-time" }, debtorTime(a)),
        h("dt", {}, "Next action"), h("dd", {}, when(a.next_action_at)),
        h("dt", {}, "Last contact"), h("dd", {}, a.last_contact_at ? `${when(a.last_contact_at)} (${words(a.last_outcome)})` : "—"),
        h("dt", {}, "Open promise"), h("dd", {}, a.open_promise ? `${money(a.open_promise.amount, a.currency)} by ${a.open_promise.due_date}` : "—"),
        h("dt", {}, "Tags"), h("dd", {}, a.tags?.length ? a.tags.join(", ") : "—"),
        h("dt", {}, "Contact flags"), h("dd", {}, flags.length ? flags.join(", ") : "none"),
        portfolio ? [h("dt", {}, "Portfolio"), h("dd", { id: "portfolio" }, portfolio.name)] : null,
      ),
      customFields(a),
    );
  }

  // The account's custom fields: the shown definitions by position, each labelled and
  // formatted per its type; then the keys no definition describes, as plain text.
  function customFields(a) {
    const values = a.custom_fields || {};
    const defined = new Set(defs.map((d) => d.key));
    const rows = [
      ...applying(defs, a).filter((d) => d.shown).map((d) => [d.label, formatValue(d, values[d.key], a.currency), d.key]),
      ...Object.keys(values).filter((key) => !defined.has(key) && !empty(values[key])).sort()
        .map((key) => [key, formatValue(undefined, values[key]), key]),
    ];
    if (!rows.length) return null;
    return h("section", { class: "custom-fields", "aria-labelledby": "cf-title" },
      h("h2", { id: "cf-title" }, "Custom fields"),
      h("dl", { class: "details" }, rows.flatMap(([label, value, key]) => [h("dt", {}, label), h("dd", { dataset: { key } }, value)])));
  }

  // The debtor's number: a link that dials it and a "Call" button (through the agent's
  // own phone) only while the guard allows a call; plain text, and why, otherwise.
  const phone = h("dd", { id: "debtor-phone" });
  function renderPhone(call) {
    const number = account.phone;
    if (!number) return clear(phone, "—");
    if (!call?.allowed) {
      return clear(phone, number, " ", h("span", { class: "muted" }, call ? `(no calls now: ${words(call.rule)})` : ""));
    }
    const alert = h("span", { class: "call-alert", role: "alert" });
    const button = works(account)
      ? h("button", {
        type: "button",
        id: "call-debtor",
        onclick: async () => {
          button.disabled = true;
          clear(alert);
          try {
            await placeCall(id);
          } catch (error) {
            clear(alert, error.problem?.code === "no_agent_phone"
              ? ["Set the phone you take calls on first, in ", h("a", { href: "#/me" }, "My account"), "."]
              : error.message);
          } finally {
            button.disabled = false;
          }
        },
      }, "Call")
      : null;
    clear(phone, h("a", { href: `tel:${number}` }, number), " ", button, alert);
  }

  async function renderContact() {
    const standing = await api("GET", `/accounts/${id}/contact`);
    renderPhone(standing.channels.find((c) => c.channel === "call"));
    const unverified = standing.channels.some((c) => c.rule === "unverified_dispute");
    clear(
      sections.contact,
      h("h2", { id: "contact-title" }, "Contact now"),
      h("ul", { class: "plain contact" }, standing.channels.map((c) =>
        h("li", { class: c.allowed ? "ok" : "blocked" },
          h("strong", {}, words(c.channel)), " ",
          c.allowed
            ? "allowed now"
            : `blocked: ${words(c.rule)}${c.next_allowed_at ? `, opens ${when(c.next_allowed_at)}` : ", does not open by waiting"}`))),
      unverified && atLeast("manager") ? disputeVerification() : null,
    );
  }

  // The guard refuses every channel while a dispute is unverified; a manager who has
  // verified the debt lifts that.
  function disputeVerification() {
    const form = itemForm(
      "Dispute verification",
      "dispute",
      h("p", { class: "muted" }, "The debtor disputes this debt: no contact until the dispute is verified."),
      h("button", {
        type: "button",
        onclick: () => act(form, () => api("POST", `/accounts/${id}/dispute-verification`), "Dispute verified."),
      }, "Mark the dispute verified"),
    );
    return form;
  }

  // The card's two tabs: the timeline, and (for managers, admins and the owner) the
  // history the audit trail keeps.
  let tab = "timeline";
  const panel = h("div", { role: "tabpanel" });
  const mayReadHistory = atLeast("manager") || account.assigned_agent_id === currentUser().id;
  async function renderRecords() {
    // What is typed beside a timeline item (a failure reason), and the caret in it,
    // outlive a redraw: the agent goes on typing where they were. Read before the panel
    // is put back, which takes the focus from it.
    const typed = [...panel.querySelectorAll("form.item-actions[data-item] :is(input, textarea)[name]")]
      .filter((input) => input.value || input === document.activeElement)
      .map((input) => ({ item: input.form.dataset.item, name: input.name, value: input.value, focused: input === document.activeElement }));
    const asked = openQuestions(panel, itemOfStep);
    const button = (name, label) =>
      h("button", { type: "button", role: "tab", id: `tab-${name}`, "aria-selected": String(tab === name), "aria-controls": "records-panel",
        onclick: () => { tab = name; renderRecords(); } }, label);
    panel.id = "records-panel";
    panel.setAttribute("aria-labelledby", `tab-${tab}`);
    clear(sections.timeline,
      mayReadHistory ? h("div", { role: "tablist", class: "tabs", "aria-label": "Account records" }, button("timeline", "Timeline"), button("history", "History")) : null,
      panel);
    if (tab === "history") await renderHistory(panel, id, "timeline-title");
    else await renderTimeline(typed, asked);
  }

  // The timeline: newest first, a page at a time, each entry with when and who; `typed`
  // and the questions `asked` are put back beside the items drawn anew.
  async function renderTimeline(typed, asked) {
    const list = h("ul", { class: "plain timeline" });
    const more = h("button", { type: "button", class: "more", hidden: true }, "Older");
    const load = async (cursor) => {
      const page = await api("GET", `/accounts/${id}/timeline`, { params: { page_size: 20, cursor } });
      for (const entry of page.data) list.append(timelineEntry(entry));
      if (!page.data.length && !cursor) list.append(h("li", { class: "muted" }, "Nothing yet."));
      more.hidden = !page.next_cursor;
      more.onclick = () => load(page.next_cursor);
    };
    clear(panel, h("h2", { id: "timeline-title" }, "Timeline"), list, more);
    await load();
    // A refusal shown beside an item outlives a redraw, if the item still has its form.
    for (const form of list.querySelectorAll("form.item-actions[data-item]")) {
      const refusal = refusals.get(form.dataset.item);
      if (refusal) showProblem(form, refusal);
    }
    for (const { item, name, value, focused } of typed) {
      const input = list.querySelector(`form.item-actions[data-item="${CSS.escape(item)}"] [name="${CSS.escape(name)}"]`);
      if (!input) continue;
      input.value = value;
      // The caret goes back only if nothing else took it while the timeline was read.
      if (focused && (!document.activeElement || document.activeElement === document.body)) input.focus();
    }
    reopenQuestions(asked, (item) => stepsOfItem(list, item));
  }

  function timelineEntry(e) {
    const d = e.data || {};
    const amount = e.amount ? money(e.amount, e.currency) : "";
    const by = e.actor_name || (e.actor_id ? nameOf(e.actor_id) : d.db_user && d.db_user !== "arrears" && !d.by_rule ? `database user ${d.db_user}` : "the system");
    const what = {
      created: () => [h("strong", {}, "Account created")],
      contact: () => [
        h("strong", {}, `${words(d.type)}${d.direction ? ` (${d.direction})` : ""}`),
        d.outcome ? ` — ${words(d.outcome)}` : "",
        d.notes ? h("p", { class: "notes" }, d.notes) : null,
      ],
      payment: () => [
        h("strong", {}, amount), ` ${words(d.method)} · ${d.status}`,
        d.reference ? ` · ${d.reference}` : "",
        d.failure_reason ? h("p", { class: "notes" }, `Failed: ${d.failure_reason}`) : null,
        paymentActions({ id: d.payment_id, status: d.status, amount: e.amount, currency: e.currency }),
      ],
      promise: () => [h("strong", {}, `Promise of ${amount}`), ` by ${d.due_date} · ${d.status}`, promiseActions(d.promise_id, d.status, amount, d.due_date)],
      promise_resolved: () => [h("strong", {}, `Promise ${d.status}`), ` (${amount} by ${d.due_date})`],
      plan: () => [h("strong", {}, `Plan of ${amount}`), `, ${d.instalment_count} ${words(d.frequency)} instalments from ${d.first_due_date}`],
      plan_resolved: () => [h("strong", {}, `Plan ${d.status}`), ` (${amount})`],
      instalment_missed: () => [h("strong", {}, "Instalment missed"), ` #${d.seq}, ${amount} due ${d.due_date}`],
      override_granted: () => [h("strong", {}, `Override granted: ${words(d.channel)}`), d.reason ? h("p", { class: "notes" }, d.reason) : null],
      override_used: () => [h("strong", {}, `Override used: ${words(d.channel)}`), ` (${words(d.rule)})`],
      assignment: () => [h("strong", {}, "Assigned"), ` to ${nameOf(d.changes?.assigned_agent_id?.after)}, was ${nameOf(d.changes?.assigned_agent_id?.before)}`],
      edit: () => [h("strong", {}, "Changed"), " ", changeWords(d.changes).join("; ")],
      access: () => [h("strong", {}, "Opened by another agent")],
    }[e.kind] || (() => [h("strong", {}, words(e.kind))]);
    return h("li", { dataset: { kind: e.kind } }, what(), h("small", {}, `${when(e.at)} · ${by}`));
  }

  // An edit's changes in words; custom fields key by key, by their labels.
  const changeWords = (changes) => Object.entries(changes || {}).flatMap(([name, c]) => {
    if (name !== "custom_fields") return [`${fieldWords(name)}: ${shownValue(name, c.before)} → ${shownValue(name, c.after)}`];
    const [before, after] = [c.before || {}, c.after || {}];
    return [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
      .map((key) => {
        const d = defs.find((f) => f.key === key);
        return `${d?.label ?? key}: ${formatValue(d, before[key], account.currency)} → ${formatValue(d, after[key], account.currency)}`;
      });
  });

  const setPaymentStatus = (p, status, failureReason) =>
    api("PATCH", `/payments/${p.id}`, { body: { status, failure_reason: failureReason } });

  // Pending: complete or fail it (whoever works the account). Completed: refund or
  // reverse it (managers and admins), each asked twice.
  function paymentActions(p) {
    const amount = money(p.amount, p.currency);
    if (p.status === "pending" && works(account)) {
      const reason = h("input", { name: "failure_reason", maxlength: 500 });
      const form = itemForm(
        `Pending payment of ${amount}`,
        `payment:${p.id}`,
        h("button", { type: "button", onclick: () => act(form, () => setPaymentStatus(p, "completed"), "Payment completed.") }, "Complete"),
        field("Failure reason", reason, "Optional, when it failed"),
        h("button", { type: "submit" }, "Mark failed"),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(form, () => setPaymentStatus(p, "failed", reason.value.trim() || undefined), "Payment marked failed.");
      });
      return form;
    }
    if (p.status === "completed" && atLeast("manager")) {
      const form = itemForm(
        `Completed payment of ${amount}`,
        `payment:${p.id}`,
        confirmStep("Refund", `Refund ${amount} to the debtor?`, "Yes, refund",
          () => act(form, () => setPaymentStatus(p, "refunded"), "Payment refunded.")),
        " ",
        confirmStep("Reverse", `Reverse the ${amount} payment (charged back)?`, "Yes, reverse",
          () => act(form, () => setPaymentStatus(p, "reversed"), "Payment reversed.")),
      );
      return form;
    }
    return null;
  }

  // An open promise can be cancelled by whoever works the account, asked twice.
  function promiseActions(promiseId, status, amount, dueDate) {
    if (status !== "open" || !works(account)) return null;
    const form = itemForm(`Promise of ${amount}`, `promise:${promiseId}`, confirmStep("Cancel promise", `Cancel the promise of ${amount} by ${dueDate}?`, "Yes, cancel the promise",
      () => act(form, () => api("POST", `/promises/${promiseId}/cancel`), "Promise cancelled.")));
    return form;
  }

  async function renderPlan() {
    const plans = await api("GET", `/accounts/${id}/plans`, { params: { page_size: 1 } });
    const latest = plans.data[0];
    if (!latest) {
      clear(sections.plan, h("h2", { id: "plan-title" }, "Payment plan"), h("p", { class: "muted" }, "No plan."));
      return;
    }
    const plan = await api("GET", `/plans/${latest.id}`);
    const asked = openQuestions(sections.plan, itemOfStep);
    const cancel = plan.status === "active" && works(account)
      ? itemForm("Active plan", `plan:${plan.id}`, confirmStep("Cancel plan", "Cancel this plan? Later payments no longer pay its instalments.", "Yes, cancel the plan",
        () => act(cancel, () => api("POST", `/plans/${plan.id}/cancel`), "Plan cancelled.")))
      : null;
    clear(
      sections.plan,
      h("h2", { id: "plan-title" }, "Payment plan"),
      h("p", {}, `${money(plan.total, plan.currency)} ${plan.frequency}, ${plan.status}; paid ${money(plan.paid_total, plan.currency)}, ${plan.missed_count} missed.`),
      cancel,
      h("table", {},
        h("caption", { class: "sr-only" }, "Instalments"),
        h("thead", {}, h("tr", {}, ["#", "Due", "Amount", "Paid", "Status"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, (plan.instalments || []).map((i) =>
          h("tr", {}, h("td", {}, i.seq), h("td", {}, i.due_date), h("td", {}, money(i.amount)), h("td", {}, money(i.paid_amount)), h("td", {}, i.status))))),
    );
    reopenQuestions(asked, (item) => stepsOfItem(sections.plan, item));
  }

  const actionForm = (title, fields, submit, options) => postingForm(title, fields, submit, () => reload(), options);

  // "Save and next": the next account of the agent's call queue, or why there is none.
  async function nextAccount() {
    const claim = await api("POST", "/queue/next", { params: { channel: "call", skip: id } });
    if (claim) location.hash = `#/account/${claim.account.id}`;
    else toast("Your call queue is empty: nothing can be called now.");
  }

  function renderActions() {
    if (!works(account)) {
      clear(actions, h("p", { class: "muted" }, "Your role reads accounts; it does not work them."));
      return;
    }
    // One place for the actions, a tab each; logging the contact comes first.
    clear(actions, tabs("Actions", [
      ["contact", "Contact", wrapUpForm(account, { promise: true, nextAction: true }, () => reload(), atLeast("agent") ? nextAccount : undefined)],
      ["payment", "Payment", paymentForm(account, () => reload())],
      ["plan", "Plan", actionForm("Set up plan", [
        field("Total", h("input", { name: "total", inputmode: "decimal", required: true }), "At most the current balance"),
        field("Instalments", h("input", { name: "instalment_count", type: "number", min: 1, max: 260, value: 3, required: true })),
        field("Frequency", select("frequency", [["weekly", "Weekly"], ["biweekly", "Every two weeks"], ["monthly", "Monthly"]], "monthly")),
        field("First due date", h("input", { name: "first_due_date", type: "date", min: today(), required: true })),
      ], (els) => api("POST", `/accounts/${id}/plans`, {
        body: {
          total: els.total.value.trim(),
          instalment_count: Number(els.instalment_count.value),
          frequency: els.frequency.value,
          first_due_date: els.first_due_date.value,
        },
      }))],
      ["edit", "Edit", editor.details, () => { editor.details.open = true; }],
    ]));
    editor.show(account);
  }

  renderSummary();
  renderActions();
  await Promise.all([renderAll(), documents.load(), messages.load()]);

  // Changes by anyone else show up without a reload.
  const changed = debounce(() => reload(), 300);
  const mine = (event) => event.detail?.account_id === id && changed();
  const names = ["account.updated", "payment.created", "payment.updated", "activity.logged", "promise.cancelled",
    "plan.instalment_missed", "plan.broken", "plan.completed", "plan.cancelled"];
  for (const name of names) live.addEventListener(name, mine);
  return () => {
    names.forEach((name) => live.removeEventListener(name, mine));
    messages.stop();
  };
}

// A form that posts to the API, shows the refusal next to its fields (and, for a refusal
// that `options.offer` knows how to lift, a button that sends again with it), and runs
// `done` after a success; with `options.next`, a "Save and next" button runs it after.
function postingForm(title, fields, submit, done, options = {}) {
  const slug = title.toLowerCase().replace(/\W+/g, "-");
  const offer = h("div", { class: "offer" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": `${slug}-title`, dataset: { shortcut: slug } },
    h("h2", { id: `${slug}-title` }, title),
    h("div", { class: "form-alert", role: "alert" }),
    offer,
    fields,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, title),
      options.next ? h("button", { type: "submit", name: "and-next", id: "save-and-next" }, "Save and next") : null),
  );
  const send = async (extra, andNext = false) => {
    const buttons = [...form.querySelectorAll("button[type=submit]")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await submit(form.elements, extra);
      showProblem(form, null);
      clear(offer);
      form.reset();
      form.dispatchEvent(new Event("reset-done"));
      toast(`${title}: done.`);
      await done();
      if (andNext) await options.next();
    } catch (error) {
      showProblem(form, error);
      clear(offer, options.offer?.(error, (more) => send(more, andNext)));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(undefined, event.submitter?.name === "and-next");
  });
  return form;
}

const optional = (value) => (value.trim() ? value.trim() : undefined);
const instant = (value) => (value ? new Date(value).toISOString() : undefined);

// An overpayment refusal offers to take the payment as a credit, which the API allows
// anyone who may record it to ask for.
function creditOffer(error, send) {
  if (error.problem?.code !== "overpayment") return null;
  return h("button", { type: "button", onclick: () => send({ allow_overpayment: true }) }, "Accept the excess as a credit");
}

// A payment taken outside a call (a cheque in the post, a transfer seen on a statement).
function paymentForm(account, done) {
  return postingForm("Record payment", [
    field("Amount", h("input", { name: "amount", inputmode: "decimal", required: true }), `In ${account.currency}, e.g. 50.00`),
    field("Method", select("method", METHODS.map((m) => [m, words(m)]), "card")),
    field("Reference", h("input", { name: "reference" })),
  ], (els, extra) => api("POST", `/accounts/${account.id}/payments`, {
    body: { amount: els.amount.value.trim(), currency: account.currency, method: els.method.value, reference: optional(els.reference.value), ...extra },
    headers: { "idempotency-key": crypto.randomUUID() },
  }), done, { offer: creditOffer });
}

// The end of a call in one step: the contact and its outcome, and what the debtor
// agreed (a promise) or paid (a payment), and the next action; all recorded or none
// (POST /accounts/{id}/wrap-up). `allowed.promise` and `allowed.nextAction` are off on an
// account the agent does not own, where only the inbound call itself is theirs to log.
// On a call about this account (placed here or popped), the contact completes that
// call. `next`, when given, is "Save and next".
function wrapUpForm(account, allowed, done, next) {
  const channel = select("contact.type", CHANNELS.map((c) => [c, words(c)]), "call");
  const direction = select("contact.direction", allowed.nextAction
    ? [["outbound", "Outbound"], ["inbound", "Inbound"]]
    : [["inbound", "Inbound"]], allowed.nextAction ? "outbound" : "inbound");
  const outcome = select("contact.outcome", [["", "—"], ...OUTCOMES.map((o) => [o, words(o)])], "");
  const notes = h("textarea", { name: "contact.notes", rows: 2 });
  const nextAction = allowed.nextAction ? h("input", { name: "contact.next_action_at", type: "datetime-local" }) : null;
  const onCall = h("p", { class: "notice", id: "wrap-call", hidden: true });
  // Follows the call until the form is gone from the screen.
  const showCall = () => {
    if (form.isConnected) form.dataset.drawn = "yes";
    else if (form.dataset.drawn) return callChanges.removeEventListener("change", showCall);
    const call = callFor(account.id);
    // A call that begins brings its wrap-up to the front.
    if (call && onCall.hidden) reveal(form);
    onCall.hidden = !call;
    clear(onCall, call ? `Completes your call ${call.direction === "inbound" ? "from" : "to"} ${call.debtor_number}.` : "");
  };
  const promiseAmount = h("input", { name: "promise.amount", inputmode: "decimal", "data-shortcut": "make-promise" });
  const promiseDate = h("input", { name: "promise.due_date", type: "date", min: today() });
  const payAmount = h("input", { name: "payment.amount", inputmode: "decimal" });
  const payMethod = select("payment.method", METHODS.map((m) => [m, words(m)]), "card");
  // A new channel starts a new contact: nothing of the last one (an outcome, a refusal)
  // carries over; a note has no direction or outcome.
  const fit = () => {
    const note = channel.value === "note";
    direction.disabled = note;
    outcome.disabled = note;
  };
  channel.addEventListener("change", () => {
    outcome.value = "";
    direction.value = allowed.nextAction ? "outbound" : "inbound";
    showProblem(form, null);
    fit();
  });
  const form = postingForm("Log contact", [
    onCall,
    field("Channel", channel),
    field("Direction", direction),
    field("Outcome", outcome),
    field("Notes", notes),
    nextAction ? field("Next action", nextAction, "In your time") : null,
    allowed.promise
      ? h("fieldset", {}, h("legend", {}, "Promise to pay (optional)"),
        field("Promise amount", promiseAmount, `In ${account.currency}`),
        field("Promise due date", promiseDate))
      : null,
    h("fieldset", {}, h("legend", {}, "Payment taken (optional)"),
      field("Payment amount", payAmount, `In ${account.currency}`),
      field("Payment method", payMethod)),
  ], async (els, extra) => {
    const call = callFor(account.id);
    const note = !call && channel.value === "note";
    const body = {
      contact: {
        type: call ? "call" : channel.value,
        direction: call ? call.direction : note ? undefined : direction.value,
        outcome: note ? undefined : outcome.value || undefined,
        notes: optional(notes.value),
        next_action_at: nextAction ? instant(nextAction.value) : undefined,
      },
      call_id: call?.id,
    };
    if (allowed.promise && (promiseAmount.value.trim() || promiseDate.value)) {
      body.promise = { amount: promiseAmount.value.trim(), due_date: promiseDate.value };
    }
    if (payAmount.value.trim()) {
      body.payment = { amount: payAmount.value.trim(), currency: account.currency, method: payMethod.value, ...extra };
    }
    const recorded = await api("POST", `/accounts/${account.id}/wrap-up`, { body, headers: { "idempotency-key": crypto.randomUUID() } });
    if (call) wrappedUp();
    return recorded;
  }, done, { offer: creditOffer, next });
  form.addEventListener("reset-done", fit);
  fit();
  callChanges.addEventListener("change", showCall);
  showCall();
  return form;
}

// What an agent sees of an account assigned to someone else (or to no one): who owns it,
// the figures a call needs, the debtor's clock, and the two things they may do for the
// caller: log the inbound call (with a payment taken on it) and record a payment.
function inboundScreen(view, account) {
  const owner = account.assigned_agent_id ? account.assigned_agent_name || "another agent" : "no one yet";
  const refresh = async () => {
    const fresh = await api("GET", `/accounts/${account.id}`);
    clear(balance, money(fresh.current_balance, fresh.currency));
  };
  const balance = h("strong", { class: "big", id: "balance" }, money(account.current_balance, account.currency));
  clear(
    view,
    h("section", { class: "card summary", "aria-labelledby": "acct-title" },
      h("div", { class: "row" },
        h("h1", { id: "acct-title" }, account.debtor_name),
        h("span", { class: `badge ${account.status}` }, words(account.status))),
      h("p", { class: "notice", role: "note" },
        `Assigned to ${owner}. You see a summary: take the call, log it and take a payment; the account stays theirs.`),
      h("div", { class: "figures" },
        h("div", {}, h("span", { class: "muted" }, "Balance"), balance),
        h("div", {}, h("span", { class: "muted" }, "Days past due"), h("strong", {}, String(account.days_past_due ?? 0))),
        h("div", {}, h("span", { class: "muted" }, "Due date"), h("span", {}, account.due_date || "—"))),
      h("dl", { class: "details" },
        h("dt", {}, "Account number"), h("dd", {}, account.account_number),
        h("dt", {}, "Assigned to"), h("dd", { id: "assignee" }, owner),
        h("dt", {}, "Phone"), h("dd", {}, account.phone || "—"),
        h("dt", {}, "Email"), h("dd", {}, account.email || "—"),
        h("dt", {}, "Debtor's time"), h("dd", {}, debtorClock(account.timezone)),
        h("dt", {}, "Last contact"), h("dd", {}, account.last_contact_at ? `${when(account.last_contact_at)} (${words(account.last_outcome)})` : "—"),
        h("dt", {}, "Open promise"), h("dd", {}, account.open_promise ? `${money(account.open_promise.amount, account.currency)} by ${account.open_promise.due_date}` : "—"))),
    h("div", { class: "columns" },
      h("div", {}, wrapUpForm(account, { promise: false, nextAction: false }, refresh)),
      h("div", {}, paymentForm(account, refresh))),
  );
  return null;
}
