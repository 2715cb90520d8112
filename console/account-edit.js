// Editing an account's fields. Agents change the workflow fields of their own accounts
// (status, next action, tags, contact flags); managers and admins also the debtor's
// details. Only the fields that changed are sent, with If-Match naming the version the
// form was filled from, so a change made meanwhile by someone else is never overwritten
// unseen: the server refuses it (412) and the form is filled again from the account as
// it now stands. Custom fields are edited with a control per type (agents too: they are
// a workflow field); managers and admins also choose the account's portfolio.

import { ACCOUNT_STATUSES, api, assignees, atLeast, nameOf } from "./api.js";
import { clear, field, h, select, showProblem, toast, words } from "./dom.js";
import { applying, changedControl as changed, editedValues, valueControl } from "./custom-fields.js";

const FLAGS = [["do_not_call", "Do not call"], ["do_not_email", "Do not email"], ["cease_communication", "Cease communication"]];
const ADDRESS = [["line1", "Address line 1"], ["line2", "Address line 2"], ["city", "City"], ["region", "Region"], ["postal_code", "Postal code"], ["country", "Country"]];
// Text fields a manager may change; the nullable ones are cleared by leaving them empty.
const DETAILS = [["debtor_name", "Debtor name", false], ["email", "Email", true], ["phone", "Phone", true], ["external_ref", "External reference", true]];

// An instant as a datetime-local value in the browser's zone.
function localInput(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())}T${two(at.getHours())}:${two(at.getMinutes())}`;
}

// The PATCH body: the fields that changed, `null` for a cleared nullable one; the
// custom fields as the account's whole map with the changed values in it.
function patchOf(els, controls, account) {
  const patch = {};
  const text = (name) => els.namedItem(name).value.trim();
  for (const [name, , nullable] of DETAILS) {
    const input = els.namedItem(name);
    if (input && changed(input)) patch[name] = nullable ? text(name) || null : text(name);
  }
  if (els.namedItem("timezone") && changed(els.namedItem("timezone"))) patch.timezone = text("timezone");
  if (els.namedItem("due_date") && changed(els.namedItem("due_date"))) patch.due_date = els.namedItem("due_date").value || null;
  if (els.namedItem("address.line1") && ADDRESS.some(([key]) => changed(els.namedItem(`address.${key}`)))) {
    // The address is replaced whole.
    patch.address = Object.fromEntries(ADDRESS.map(([key]) => [key, text(`address.${key}`) || null]));
  }
  const assignee = els.namedItem("assigned_agent_id");
  if (assignee && changed(assignee)) patch.assigned_agent_id = assignee.value || null;
  if (changed(els.status)) patch.status = els.status.value;
  if (changed(els.next_action_at)) {
    patch.next_action_at = els.next_action_at.value ? new Date(els.next_action_at.value).toISOString() : null;
  }
  if (changed(els.tags)) patch.tags = els.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  for (const [name] of FLAGS) if (changed(els.namedItem(name))) patch[name] = els.namedItem(name).checked;
  const portfolio = els.namedItem("portfolio_id");
  if (portfolio && changed(portfolio)) patch.portfolio_id = portfolio.value || null;
  const values = editedValues(controls, account.custom_fields);
  if (values) patch.custom_fields = values;
  return patch;
}

// The account's portfolio among the live ones (its own listed even when deleted).
function portfolioSelect(current, portfolios) {
  const options = [["", "None"], ...portfolios.filter((p) => !p.deleted_at || p.id === current)
    .map((p) => [p.id, p.deleted_at ? `${p.name} (deleted)` : p.name])];
  return select("portfolio_id", options, current || "");
}

// Whom the account is assigned to, among the people who work accounts (by name).
function assigneeSelect(current) {
  const options = [["", "Unassigned"], ...(current ? [[current, nameOf(current)]] : [])];
  const choice = select("assigned_agent_id", options, current || "");
  assignees()
    .then((people) => {
      if (current) choice.options[1].textContent = nameOf(current);
      choice.append(...people.filter((p) => p.id !== current).map((p) => h("option", { value: p.id }, `${p.name} (${words(p.role)})`)));
    })
    .catch(() => {});
  return choice;
}

// The editor: a disclosure holding the form. `show(account)` fills it again from the
// account, unless it holds changes not saved yet. `defs` are the live custom field
// definitions; `portfolios` the ones the caller may read (null: none).
export function accountEditor(id, onSaved, { defs, portfolios }) {
  const details = h("details", { class: "card editor" }, h("summary", {}, h("h2", { id: "edit-title" }, "Edit account")));
  let form = null;
  let controls = [];
  let filledFrom = null;

  function fill(account) {
    const a = account;
    const address = a.address || {};
    const manager = atLeast("manager");
    const assignee = manager ? assigneeSelect(a.assigned_agent_id) : null;
    const portfolio = manager && portfolios ? portfolioSelect(a.portfolio_id, portfolios) : null;
    const custom = h("fieldset", { class: "custom-fields" });
    let placed = [];
    // The controls of the fields that apply in `portfolioId` (a move into a portfolio
    // must bring its required values), keeping those already made and any edited.
    const place = (portfolioId) => {
      const made = new Map(placed.map((c) => [c.key, c]));
      const wanted = applying(defs.filter((d) => d.shown), { ...a, portfolio_id: portfolioId || null });
      placed = [
        ...wanted.map((d) => made.get(d.key) ?? valueControl(d, a.custom_fields?.[d.key], a.currency)),
        ...placed.filter((c) => c.changed() && !wanted.some((d) => d.key === c.key)),
      ];
      clear(custom, h("legend", {}, "Custom fields"), placed.map((c) => c.element));
      custom.hidden = !placed.length;
      controls = placed;
    };
    portfolio?.addEventListener("change", () => place(portfolio.value));
    const next = h("form", { "aria-labelledby": "edit-title" },
      h("div", { class: "form-alert", role: "alert" }),
      manager ? DETAILS.map(([name, label]) => field(label, h("input", { name, value: a[name] ?? "" }))) : null,
      manager ? h("fieldset", {}, h("legend", {}, "Address"),
        ADDRESS.map(([key, label]) => field(label, h("input", { name: `address.${key}`, value: address[key] ?? "" }), key === "country" ? "Two letters, e.g. US" : undefined))) : null,
      manager ? field("Time zone", h("input", { name: "timezone", value: a.timezone ?? "" }), "IANA name, e.g. America/New_York") : null,
      manager ? field("Due date", h("input", { name: "due_date", type: "date", value: a.due_date ?? "" })) : null,
      manager ? field("Assigned to", assignee) : null,
      portfolio ? field("Portfolio", portfolio, "Its custom fields show below") : null,
      field("Status", select("status", ACCOUNT_STATUSES.map((s) => [s, words(s)]), a.status)),
      field("Next action", h("input", { name: "next_action_at", type: "datetime-local", value: localInput(a.next_action_at) })),
      field("Tags", h("input", { name: "tags", value: (a.tags || []).join(", ") }), "Comma separated"),
      h("fieldset", {}, h("legend", {}, "Contact flags"),
        FLAGS.map(([name, label]) => {
          const box = h("input", { type: "checkbox", name, id: `edit-${name}`, checked: a[name] });
          return h("div", { class: "check" }, box, h("label", { for: box.id }, label));
        })),
      custom,
      h("button", { type: "submit", class: "primary" }, "Save changes"),
    );
    next.addEventListener("submit", (event) => {
      event.preventDefault();
      save(next, a.search_version);
    });
    if (form) form.replaceWith(next);
    else details.append(next);
    form = next;
    place(a.portfolio_id);
    filledFrom = a;
    return next;
  }

  async function save(current, version) {
    const patch = patchOf(current.elements, controls, filledFrom);
    if (!Object.keys(patch).length) {
      showProblem(current, { problem: { detail: "Nothing changed." } });
      return;
    }
    const button = current.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      fill(await api("PATCH", `/accounts/${id}`, { body: patch, headers: { "if-match": `"${version}"` } }));
      toast("Account saved.");
      await onSaved();
    } catch (error) {
      if (error.problem?.code !== "precondition_failed") {
        showProblem(current, error);
        return;
      }
      const refilled = fill(await api("GET", `/accounts/${id}`));
      const detail = `${error.problem.detail}. The form now shows the account as it stands: make your change again.`;
      showProblem(refilled, { problem: { ...error.problem, detail } });
    } finally {
      button.disabled = false;
    }
  }

  return {
    details,
    show(account) {
      if (!form || !Object.keys(patchOf(form.elements, controls, filledFrom)).length) fill(account);
    },
  };
}
