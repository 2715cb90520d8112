// One account: details, balance, delinquency, what the contact guard allows now, the
// activity timeline, payments, promises and plan; and the forms to work it (shown only
// to whoever may: an agent on their own accounts, managers and admins): log, pay,
// promise, plan, settle or fail a pending payment, cancel a promise or plan, edit the
// account; managers also refund and reverse payments, verify disputes and override the
// contact guard.

import { api, atLeast, currentUser, learnNames, nameOf, works } from "./api.js";
import { clear, confirmStep, debounce, field, h, localDate, money, select, showProblem, toast, when, words } from "./dom.js";
import { live } from "./live.js";
import { accountEditor } from "./account-edit.js";
import { overridesSection } from "./overrides.js";

const CHANNELS = ["call", "sms", "email", "letter", "visit", "note"];
const OUTCOMES = ["right_party", "wrong_party", "no_answer", "left_message", "refused", "promise_to_pay", "dispute", "paid"];
const METHODS = ["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

function today() {
  return localDate();
}

export async function accountScreen(main, [id]) {
  const view = h("div", { class: "account" });
  main.append(view);
  let account;
  try {
    account = await api("GET", `/accounts/${id}`);
  } catch (error) {
    clear(view, h("h1", {}, "Account"), h("p", { role: "alert" }, error.message));
    return null;
  }
  // Agents work the accounts assigned to them; the console takes them to no other.
  if (currentUser().role === "agent" && account.assigned_agent_id !== currentUser().id) {
    clear(
      view,
      h("h1", {}, "Not your account"),
      h("p", { role: "alert" }, "This account is assigned to someone else, so it is not open to you."),
      h("a", { href: "#/queue" }, "Back to my queue"),
    );
    return null;
  }

  const sections = {
    summary: h("section", { class: "card summary", "aria-labelledby": "acct-title" }),
    contact: h("section", { class: "card", "aria-labelledby": "contact-title" }),
    timeline: h("section", { class: "card", "aria-labelledby": "timeline-title" }),
    payments: h("section", { class: "card", "aria-labelledby": "payments-title" }),
    promises: h("section", { class: "card", "aria-labelledby": "promises-title" }),
    plan: h("section", { class: "card", "aria-labelledby": "plan-title" }),
  };
  const actions = h("div", { class: "actions" });
  const overrides = atLeast("manager") ? overridesSection(id) : null;
  const editor = works(account) ? accountEditor(id, () => reload()) : null;
  clear(
    view,
    sections.summary,
    h("div", { class: "columns" },
      h("div", {}, sections.contact, overrides?.section, actions),
      h("div", {}, sections.timeline, sections.payments, sections.promises, sections.plan)),
  );

  const renderAll = () => Promise.all([
    renderContact(), renderTimeline(), renderPayments(), renderPromises(), renderPlan(), overrides?.load(),
  ]);

  async function reload() {
    account = await api("GET", `/accounts/${id}`);
    renderSummary();
    editor?.show(account);
    await renderAll();
  }

  // A small form around one item's actions: their refusal shows in it, beside the item.
  function itemForm(label, ...children) {
    return h("form", { class: "item-actions", "aria-label": label },
      h("div", { class: "form-alert", role: "alert" }),
      h("div", { class: "item-buttons" }, children));
  }

  // Runs an item's action; a refusal stays in its form, success reloads the screen.
  async function act(form, request, done) {
    try {
      await request();
      showProblem(form, null);
      toast(done);
      await reload();
    } catch (error) {
      showProblem(form, error);
    }
  }

  function renderSummary() {
    const a = account;
    learnNames([a.assigned_agent_id]).then((learned) => learned && account === a && renderSummary()).catch(() => {});
    const address = a.address ? [a.address.line1, a.address.line2, a.address.city, a.address.region, a.address.postal_code, a.address.country].filter(Boolean).join(", ") : "";
    const flags = [a.do_not_call && "do not call", a.do_not_email && "do not email", a.cease_communication && "cease communication"].filter(Boolean);
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
        h("dt", {}, "Phone"), h("dd", {}, a.phone || "—"),
        h("dt", {}, "Email"), h("dd", {}, a.email || "—"),
        h("dt", {}, "Address"), h("dd", {}, address || "—"),
        h("dt", {}, "Time zone"), h("dd", {}, a.timezone || "—"),
        h("dt", {}, "Next action"), h("dd", {}, when(a.next_action_at)),
        h("dt", {}, "Last contact"), h("dd", {}, a.last_contact_at ? `${when(a.last_contact_at)} (${words(a.last_outcome)})` : "—"),
        h("dt", {}, "Open promise"), h("dd", {}, a.open_promise ? `${money(a.open_promise.amount, a.currency)} by ${a.open_promise.due_date}` : "—"),
        h("dt", {}, "Tags"), h("dd", {}, a.tags?.length ? a.tags.join(", ") : "—"),
        h("dt", {}, "Contact flags"), h("dd", {}, flags.length ? flags.join(", ") : "none"),
      ),
    );
  }

  async function renderContact() {
    const standing = await api("GET", `/accounts/${id}/contact`);
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
      h("p", { class: "muted" }, "The debtor disputes this debt: no contact until the dispute is verified."),
      h("button", {
        type: "button",
        onclick: () => act(form, () => api("POST", `/accounts/${id}/dispute-verification`), "Dispute verified."),
      }, "Mark the dispute verified"),
    );
    return form;
  }

  // A paged list section: its title, a fetch of one page, and how an item is shown.
  async function paged(section, title, titleId, path, item) {
    const list = h("ul", { class: "plain timeline" });
    const more = h("button", { type: "button", class: "more", hidden: true }, "Older");
    const load = async (cursor) => {
      const page = await api("GET", path, { params: { page_size: 10, cursor } });
      for (const entry of page.data) list.append(item(entry));
      if (!page.data.length && !cursor) list.append(h("li", { class: "muted" }, "None yet."));
      more.hidden = !page.next_cursor;
      more.onclick = () => load(page.next_cursor);
    };
    clear(section, h("h2", { id: titleId }, title), list, more);
    await load();
  }

  const renderTimeline = () => paged(sections.timeline, "Activity", "timeline-title", `/accounts/${id}/activities`, (a) =>
    h("li", {},
      h("strong", {}, `${words(a.type)}${a.direction ? ` (${a.direction})` : ""}`),
      a.outcome ? ` — ${words(a.outcome)}` : "",
      h("small", {}, when(a.occurred_at)),
      a.notes ? h("p", { class: "notes" }, a.notes) : null));

  const renderPayments = () => paged(sections.payments, "Payments", "payments-title", `/accounts/${id}/payments`, (p) =>
    h("li", {},
      h("strong", {}, money(p.amount, p.currency)), ` ${words(p.method)} · ${p.status}`,
      p.reference ? ` · ${p.reference}` : "",
      h("small", {}, when(p.received_at)),
      p.failure_reason ? h("p", { class: "notes" }, `Failed: ${p.failure_reason}`) : null,
      paymentActions(p)));

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

  const renderPromises = () => paged(sections.promises, "Promises to pay", "promises-title", `/accounts/${id}/promises`, (p) => {
    const amount = money(p.amount, account.currency);
    const form = p.status === "open" && works(account)
      ? itemForm(`Promise of ${amount}`, confirmStep("Cancel promise", `Cancel the promise of ${amount} by ${p.due_date}?`, "Yes, cancel the promise",
        () => act(form, () => api("POST", `/promises/${p.id}/cancel`), "Promise cancelled.")))
      : null;
    return h("li", {}, h("strong", {}, amount), ` by ${p.due_date} · ${p.status}`, form);
  });

  async function renderPlan() {
    const plans = await api("GET", `/accounts/${id}/plans`, { params: { page_size: 1 } });
    const latest = plans.data[0];
    if (!latest) {
      clear(sections.plan, h("h2", { id: "plan-title" }, "Payment plan"), h("p", { class: "muted" }, "No plan."));
      return;
    }
    const plan = await api("GET", `/plans/${latest.id}`);
    const cancel = plan.status === "active" && works(account)
      ? itemForm("Active plan", confirmStep("Cancel plan", "Cancel this plan? Later payments no longer pay its instalments.", "Yes, cancel the plan",
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
  }

  // A form that posts to the API, shows the refusal next to its fields, and reloads.
  function actionForm(title, fields, submit) {
    const slug = title.toLowerCase().replace(/\W+/g, "-");
    const form = h(
      "form",
      { class: "card", "aria-labelledby": `${slug}-title`, dataset: { shortcut: slug } },
      h("h2", { id: `${slug}-title` }, title),
      h("div", { class: "form-alert", role: "alert" }),
      fields,
      h("button", { type: "submit", class: "primary" }, title),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await submit(form.elements);
        showProblem(form, null);
        form.reset();
        toast(`${title}: done.`);
        await reload();
      } catch (error) {
        showProblem(form, error);
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  const optional = (value) => (value.trim() ? value.trim() : undefined);
  const instant = (value) => (value ? new Date(value).toISOString() : undefined);

  function renderActions() {
    if (!works(account)) {
      clear(actions, h("p", { class: "muted" }, "Your role reads accounts; it does not work them."));
      return;
    }
    clear(
      actions,
      actionForm("Log contact", [
        field("Channel", select("type", CHANNELS.map((c) => [c, words(c)]), "call")),
        field("Direction", select("direction", [["outbound", "Outbound"], ["inbound", "Inbound"]], "outbound")),
        field("Outcome", select("outcome", [["", "—"], ...OUTCOMES.map((o) => [o, words(o)])], "")),
        field("Notes", h("textarea", { name: "notes", rows: 2 })),
        field("Next action", h("input", { name: "next_action_at", type: "datetime-local" })),
      ], (els) => api("POST", `/accounts/${id}/activities`, {
        body: {
          type: els.type.value,
          direction: els.type.value === "note" ? undefined : els.direction.value,
          outcome: els.outcome.value || undefined,
          notes: optional(els.notes.value),
          next_action_at: instant(els.next_action_at.value),
        },
      })),
      actionForm("Record payment", [
        field("Amount", h("input", { name: "amount", inputmode: "decimal", required: true }), `In ${account.currency}, e.g. 50.00`),
        field("Method", select("method", METHODS.map((m) => [m, words(m)]), "card")),
        field("Reference", h("input", { name: "reference" })),
      ], (els) => api("POST", `/accounts/${id}/payments`, {
        body: { amount: els.amount.value.trim(), currency: account.currency, method: els.method.value, reference: optional(els.reference.value) },
        headers: { "idempotency-key": crypto.randomUUID() },
      })),
      actionForm("Make promise", [
        field("Amount", h("input", { name: "amount", inputmode: "decimal", required: true })),
        field("Due date", h("input", { name: "due_date", type: "date", min: today(), required: true })),
      ], (els) => api("POST", `/accounts/${id}/promises`, { body: { amount: els.amount.value.trim(), due_date: els.due_date.value } })),
      actionForm("Set up plan", [
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
      })),
      editor.details,
    );
    editor.show(account);
  }

  renderSummary();
  renderActions();
  await renderAll();

  // Changes by anyone else show up without a reload.
  const changed = debounce(() => reload(), 300);
  const mine = (event) => event.detail?.account_id === id && changed();
  const names = ["payment.created", "payment.updated", "activity.logged", "plan.instalment_missed", "plan.broken", "plan.completed"];
  for (const name of names) live.addEventListener(name, mine);
  return () => names.forEach((name) => live.removeEventListener(name, mine));
}
