// Custom field definitions (admins manage them, managers read them): the list, paged,
// with the deleted ones for admins; a form that defines a field or changes one, its
// rules per type; deleting and restoring, each asked twice.

import { api, atLeast } from "./api.js";
import { announce, clear, confirmStep, field, h, select, showProblem, toast, when, words } from "./dom.js";
import { TYPES, changedControl as changed, portfolios } from "./custom-fields.js";

// The flags, and the types each applies to (the API refuses the others).
const FLAGS = [
  ["searchable", "Searchable: the search box finds accounts by its words", ["text"]],
  ["filterable", "Filterable: search filters and facets on it", null],
  ["sortable", "Sortable: search sorts by it", ["number", "money", "date"]],
  ["exported", "Exported: exports carry it", null],
  ["shown", "Shown on the account", null],
];
// What a new field starts with: filtered on, exported and shown (an admin who wants it
// narrower unticks it; one not filterable could not be found by it until edited).
const NEW_FIELD_FLAGS = ["filterable", "exported", "shown"];
const TYPE_NAMES = Object.fromEntries(TYPES);
const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);

// A definition's rules in words, for the list.
function ruleWords(d) {
  const r = d.rules || {};
  const parts = [];
  if (r.min !== undefined) parts.push(`min ${r.min}`);
  if (r.max !== undefined) parts.push(`max ${r.max}`);
  if (r.min_length !== undefined) parts.push(`at least ${r.min_length} characters`);
  if (r.max_length !== undefined) parts.push(`at most ${r.max_length} characters`);
  if (r.pattern) parts.push(`pattern ${r.pattern}`);
  if (r.allowed) parts.push(r.allowed.join(", "));
  return parts.join("; ") || "—";
}

// The rule inputs a type takes, named as the API names its field errors (`rules.min`).
function ruleInputs(type, rules = {}) {
  const value = (v) => (v === undefined || v === null ? "" : String(v));
  const bound = (name, label, attrs) => field(label, h("input", { name: `rules.${name}`, value: value(rules[name]), ...attrs }));
  switch (type) {
    case "number":
      return [bound("min", "Smallest value", { type: "number", step: "any" }), bound("max", "Largest value", { type: "number", step: "any" })];
    case "money":
      return [bound("min", "Smallest amount", { inputmode: "decimal" }), bound("max", "Largest amount", { inputmode: "decimal" })];
    case "date":
      return [bound("min", "Earliest date", { type: "date" }), bound("max", "Latest date", { type: "date" })];
    case "text":
      return [
        bound("min_length", "Fewest characters", { type: "number", min: 0, max: 2000, step: 1 }),
        bound("max_length", "Most characters", { type: "number", min: 1, max: 2000, step: 1 }),
        field("Pattern", h("input", { name: "rules.pattern", value: value(rules.pattern), maxlength: 200, autocomplete: "off" }), "A regular expression the whole value matches; optional"),
      ];
    case "list":
    case "multi_list":
      return [field("Allowed values", h("textarea", { name: "rules.allowed", rows: 4, required: true }, (rules.allowed || []).join("\n")), "One a line")];
    default:
      return [h("p", { class: "muted" }, "Yes or no fields take no rules.")];
  }
}

// The rules the form's inputs give for `type`, in their wire form.
function readRules(els, type) {
  const rules = {};
  const text = (name) => els.namedItem(`rules.${name}`)?.value.trim() ?? "";
  for (const name of ["min", "max"]) {
    if (!text(name)) continue;
    rules[name] = type === "number" ? Number(text(name)) : text(name);
  }
  for (const name of ["min_length", "max_length"]) if (text(name)) rules[name] = Number(text(name));
  if (text("pattern")) rules.pattern = text("pattern");
  if (els.namedItem("rules.allowed")) rules.allowed = lines(els.namedItem("rules.allowed").value);
  return rules;
}

// The default's control for `type`; a list's is typed as text (the allowed values are
// being written in the same form), a multi-list's one value a line.
function defaultInput(type, value) {
  const shown = value === undefined || value === null ? "" : Array.isArray(value) ? value.join("\n") : String(value);
  if (type === "boolean") return select("default", [["", "None"], ["true", "Yes"], ["false", "No"]], shown);
  if (type === "multi_list") return h("textarea", { name: "default", rows: 2 }, shown);
  const attrs = { number: { type: "number", step: "any" }, date: { type: "date" }, money: { inputmode: "decimal" } }[type] || {};
  return h("input", { name: "default", value: shown, ...attrs });
}

function readDefault(input, type) {
  const text = input.value.trim();
  if (!text) return null;
  if (type === "number") return Number(text);
  if (type === "boolean") return text === "true";
  if (type === "multi_list") return lines(input.value);
  return text;
}

export function fieldsScreen(main) {
  const admin = atLeast("admin");
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, "More fields");
  const status = h("div", { class: "form-alert", role: "alert" });
  const editorBox = h("div");
  let names = new Map();

  const portfolioName = (id) => (id ? names.get(id) ?? `${id.slice(0, 8)}…` : "All accounts");

  function row(d) {
    const actions = h("td", { class: "actions" });
    if (admin && !d.deleted_at) {
      actions.append(
        h("button", { type: "button", "aria-label": `Edit ${d.label}`, onclick: () => edit(d) }, "Edit"),
        confirmStep("Delete", `Delete the field ${d.label}? Accounts keep their values; the key stays reserved.`, "Yes, delete",
          () => act(() => api("DELETE", `/fields/${d.key}`), `${d.label} deleted.`)),
      );
    } else if (admin) {
      actions.append(confirmStep("Restore", `Restore the field ${d.label}? Its values are typed and checked again.`, "Yes, restore",
        () => act(() => api("POST", `/fields/${d.key}/restore`), `${d.label} restored.`)));
    }
    const flags = FLAGS.filter(([name]) => d[name]).map(([name]) => name);
    return h("tr", { class: d.deleted_at ? "deleted" : "" },
      h("td", {},
        h("div", {}, h("strong", {}, d.label), d.required ? " (required)" : ""),
        h("small", { class: "key" }, `${d.key} · position ${d.position}`),
        d.deleted_at ? h("div", { class: "state" }, `deleted ${when(d.deleted_at)}`) : null),
      h("td", { "data-label": "Type" }, TYPE_NAMES[d.type] || words(d.type)),
      h("td", { "data-label": "Rules" }, ruleWords(d)),
      h("td", { "data-label": "Flags" }, flags.join(", ") || "—"),
      h("td", { "data-label": "Portfolio" }, portfolioName(d.portfolio_id)),
      admin ? actions : null);
  }

  async function act(request, done) {
    await announce(request, done);
    await load().catch(refused);
  }

  async function load(cursor) {
    const page = await api("GET", "/fields", { params: { page_size: 50, cursor, include_deleted: admin ? true : undefined } });
    if (!cursor) clear(body);
    for (const d of page.data) body.append(row(d));
    if (!cursor && !page.data.length) body.append(h("tr", {}, h("td", { colspan: 6 }, "No custom fields yet.")));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor).catch(refused);
  }

  // The form: a new field when `d` is undefined, else a change to `d` (its key, type and
  // portfolio stay as they are: the API changes neither).
  function form(d, live) {
    const editing = Boolean(d);
    const title = editing ? `Change ${d.label}` : "New field";
    const type = select("type", TYPES, d?.type ?? "text");
    const rules = h("fieldset", { class: "rules" }, h("legend", {}, "Rules"));
    const defaultBox = h("div");
    const flagsBox = h("fieldset", {}, h("legend", {}, "Where it is used"));
    const fillType = () => {
      const t = type.value;
      clear(rules, h("legend", {}, "Rules"), ruleInputs(t, t === d?.type ? d.rules : {}));
      clear(defaultBox, field("Default", defaultInput(t, t === d?.type ? d.default : null), "Given to new accounts without a value; optional"));
      const flags = FLAGS.filter(([, , types]) => !types || types.includes(t)).map(([name, label]) => {
        const box = h("input", { type: "checkbox", name, id: `field-${name}`, checked: d ? d[name] : NEW_FIELD_FLAGS.includes(name) });
        return h("div", { class: "check" }, box, h("label", { for: box.id }, label));
      });
      clear(flagsBox, h("legend", {}, "Where it is used"), flags);
    };
    type.addEventListener("change", fillType);
    const choices = (live || []).map((p) => [p.id, p.name]);
    if (d?.portfolio_id && !choices.some(([id]) => id === d.portfolio_id)) choices.push([d.portfolio_id, portfolioName(d.portfolio_id)]);
    const portfolio = select("portfolio_id", [["", "All accounts"], ...choices], d?.portfolio_id ?? "", { disabled: editing || !live });
    const el = h("form", { class: "card field-form", "aria-labelledby": "field-form-title" },
      h("h2", { id: "field-form-title" }, title),
      h("div", { class: "form-alert", role: "alert" }),
      field("Key", h("input", { name: "key", value: d?.key ?? "", required: true, maxlength: 40, pattern: "[a-z][a-z0-9_]*", autocomplete: "off", disabled: editing }),
        editing ? "A key never changes" : "Lowercase letters, digits and _, starting with a letter, e.g. risk_score"),
      field("Label", h("input", { name: "label", value: d?.label ?? "", required: true, maxlength: 80 })),
      field("Type", type, editing ? "A new type converts the value every account holds; refused, listing them, when some would not convert" : undefined),
      h("div", { class: "check" }, h("input", { type: "checkbox", name: "required", id: "field-required", checked: d?.required }),
        h("label", { for: "field-required" }, "Required: every account of its portfolio has a value")),
      defaultBox,
      rules,
      flagsBox,
      field("Position", h("input", { name: "position", type: "number", min: 0, max: 1000000, step: 1, value: d?.position ?? "" }), editing ? "Lists go by position, then key" : "Optional: after the others when empty"),
      field("Portfolio", portfolio, live ? "Its required rule and default apply to that portfolio's accounts" : "Portfolios could not be read"),
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary" }, editing ? "Save field" : "Create field"),
        editing ? h("button", { type: "button", onclick: () => showForm() }, "Cancel") : null),
    );
    fillType();
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = el.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        if (!(editing ? await save(el, d) : await create(el))) return;
        showForm();
        await load();
      } catch (error) {
        showProblem(el, error);
        unconvertible(el, error.problem?.unconvertible_accounts);
      } finally {
        button.disabled = false;
      }
    });
    return el;
  }

  async function create(el) {
    const els = el.elements;
    const t = els.type.value;
    const body = { key: els.key.value.trim(), label: els.label.value.trim(), type: t, required: els.required.checked, rules: readRules(els, t) };
    const fallback = readDefault(els.default, t);
    if (fallback !== null) body.default = fallback;
    for (const [name] of FLAGS) if (els.namedItem(name)) body[name] = els.namedItem(name).checked;
    if (els.position.value !== "") body.position = Number(els.position.value);
    if (els.portfolio_id.value) body.portfolio_id = els.portfolio_id.value;
    const made = await api("POST", "/fields", { body });
    toast(`${made.label} created.`);
    return true;
  }

  // Sends what changed, the rules whole when any of them did; false when nothing did.
  // A new type sends the rules, the default and every flag as the form holds them for
  // it (a flag the type does not take, off).
  async function save(el, d) {
    const els = el.elements;
    const t = els.type.value;
    const retyped = t !== d.type;
    const patch = {};
    if (retyped) patch.type = t;
    if (changed(els.label)) patch.label = els.label.value.trim();
    if (changed(els.required)) patch.required = els.required.checked;
    if (retyped || changed(els.default)) patch.default = readDefault(els.default, t);
    if (retyped || [...el.querySelectorAll("[name^='rules.']")].some(changed)) patch.rules = readRules(els, t);
    for (const [name] of FLAGS) {
      const box = els.namedItem(name);
      if (retyped) patch[name] = box ? box.checked : false;
      else if (box && changed(box)) patch[name] = box.checked;
    }
    if (changed(els.position) && els.position.value !== "") patch.position = Number(els.position.value);
    if (!Object.keys(patch).length) {
      showProblem(el, { problem: { detail: "Nothing changed." } });
      return false;
    }
    const saved = await api("PATCH", `/fields/${d.key}`, { body: patch });
    toast(`${saved.label} saved.`);
    return true;
  }

  // The accounts whose values a refused type change would not convert, under the
  // form's alert: each links to its account, with its value and why.
  function unconvertible(el, accounts) {
    if (!accounts?.length) return;
    el.querySelector(".form-alert").append(h("ul", { class: "unconvertible" }, accounts.map((a) =>
      h("li", {}, h("a", { href: `#/accounts/${a.account_id}` }, a.account_number), `: ${JSON.stringify(a.value)}, ${a.reason}`))));
  }

  let live = null;
  function showForm(d) {
    if (!admin) return;
    const el = form(d, live);
    clear(editorBox, el);
    if (d) el.elements.label.focus();
  }

  function edit(d) {
    showForm(d);
    editorBox.scrollIntoView({ block: "nearest" });
  }

  const refused = (error) => clear(status, error.message);

  clear(
    main,
    h("h1", {}, "Custom fields"),
    h("p", { class: "muted" }, admin
      ? "The columns each client sends, typed and checked on every account. Imports map columns to them by key or label."
      : "The custom fields accounts carry. Administrators define and change them."),
    h("div", { class: admin ? "columns wide-left" : "" },
      h("section", { class: "card", "aria-label": "Fields" },
        status,
        h("table", { class: "stacked fields" },
          h("caption", {}, admin ? "Fields, the deleted ones too" : "Fields"),
          h("thead", {}, h("tr", {}, ["Field", "Type", "Rules", "Flags", "Portfolio", admin ? "Actions" : null].filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
          body),
        more),
      admin ? editorBox : null),
  );
  // The portfolios name the fields' portfolios; the form offers the live ones.
  portfolios({ includeDeleted: true })
    .then((all) => {
      names = new Map((all || []).map((p) => [p.id, p.name]));
      live = all ? all.filter((p) => !p.deleted_at) : null;
    }, () => {})
    .then(() => {
      showForm();
      return load();
    })
    .catch(refused);
}
