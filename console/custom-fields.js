// Custom fields as the screens share them: the definitions and the portfolios (every
// page, following next_cursor), a value shown per its type, and the control that edits
// a value per its type, read back in the field's wire form.

import { atLeast, everyPage } from "./api.js";
import { field, h, money } from "./dom.js";

export const TYPES = [
  ["text", "Text"],
  ["number", "Number"],
  ["money", "Money (the account's currency)"],
  ["date", "Date"],
  ["boolean", "Yes or no"],
  ["list", "One of a list"],
  ["multi_list", "Several of a list"],
];

// The live definitions by position, then key.
export const definitions = () => everyPage("/fields");

// The portfolios, or null for a role that may not read them (agents, viewers).
export async function portfolios({ includeDeleted = false } = {}) {
  if (!atLeast("manager")) return null;
  return everyPage("/portfolios", includeDeleted ? { include_deleted: true } : {});
}

// Whether an account holds no value under a key.
export const empty = (value) => value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length);

const DATE = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
const NUMBER = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });

// A value as the account screen shows it: `definition` says its type (undefined for a
// key without one: plain text).
export function formatValue(definition, value, currency) {
  if (empty(value)) return "—";
  switch (definition?.type) {
    case "money":
      return money(value, currency);
    case "date": {
      const date = new Date(`${value}T00:00:00Z`);
      return Number.isNaN(date.getTime()) ? String(value) : DATE.format(date);
    }
    case "boolean":
      return value === true ? "Yes" : value === false ? "No" : String(value);
    case "number":
      return typeof value === "number" ? NUMBER.format(value) : String(value);
    case "multi_list":
      return Array.isArray(value) ? value.join(", ") : String(value);
    default:
      return typeof value === "object" ? JSON.stringify(value) : String(value);
  }
}

// The definitions that apply to an account: those of every account and those of its
// portfolio, and any other that holds a value on it.
export function applying(defs, account) {
  const values = account.custom_fields || {};
  return defs.filter((d) => !d.portfolio_id || d.portfolio_id === account.portfolio_id || !empty(values[d.key]));
}

// The control that edits `definition`'s value on an account, named
// `custom_fields.<key>` (the name the API's field errors carry), labelled with the
// field's label. `control.read()` gives the value in its wire form (null for none) and
// `control.changed()` whether it differs from what it was filled with.
export function valueControl(definition, value, currency) {
  const name = `custom_fields.${definition.key}`;
  const rules = definition.rules || {};
  // The bounds are the server's to check (its refusal shows beside the field); the hint
  // says them beforehand.
  const bounds = rules.min !== undefined && rules.max !== undefined ? `From ${rules.min} to ${rules.max}`
    : rules.min !== undefined ? `At least ${rules.min}` : rules.max !== undefined ? `At most ${rules.max}` : undefined;
  const text = (attrs, hint) => {
    const input = h("input", { name, value: empty(value) ? "" : String(value), ...attrs });
    return { element: field(definition.label, input, hint), input, read: () => input.value.trim() || null };
  };
  let made;
  switch (definition.type) {
    case "number":
      made = text({ type: "number", step: "any" }, bounds);
      made.read = () => (made.input.value === "" ? null : Number(made.input.value));
      break;
    case "money":
      made = text({ inputmode: "decimal", autocomplete: "off" }, [`In ${currency}, e.g. 1250.00`, bounds].filter(Boolean).join("; "));
      break;
    case "date":
      made = text({ type: "date" }, bounds);
      break;
    case "boolean": {
      const choice = h("select", { name },
        [["", "—"], ["true", "Yes"], ["false", "No"]].map(([v, label]) => h("option", { value: v, selected: v === (empty(value) ? "" : String(value)) }, label)));
      made = { element: field(definition.label, choice), input: choice, read: () => (choice.value === "" ? null : choice.value === "true") };
      break;
    }
    case "list": {
      const allowed = rules.allowed || [];
      const current = empty(value) ? "" : String(value);
      // A value no longer allowed stays selectable, so saving another field keeps it.
      const options = [...new Set(["", ...allowed, current])];
      const choice = h("select", { name }, options.map((v) => h("option", { value: v, selected: v === current }, v || "—")));
      made = { element: field(definition.label, choice), input: choice, read: () => choice.value || null };
      break;
    }
    case "multi_list":
      made = checkboxGroup(definition, name, Array.isArray(value) ? value.map(String) : []);
      break;
    default:
      made = text({ maxlength: rules.max_length ?? 500 });
  }
  return { ...made, key: definition.key, changed: () => changedControl(made.input) };
}

// A multi_list value as a group of checkboxes. The fieldset carries the field's name
// (and an id) so a field error lands beside the group.
function checkboxGroup(definition, name, values) {
  const allowed = [...new Set([...(definition.rules?.allowed || []), ...values])];
  const group = h("fieldset", { name, class: "checks" }, h("legend", {}, definition.label));
  group.id = `cf-${definition.key}`;
  const boxes = allowed.map((v, i) => {
    const box = h("input", { type: "checkbox", value: v, id: `${group.id}-${i}`, checked: values.includes(v) });
    group.append(h("div", { class: "check" }, box, h("label", { for: box.id }, v)));
    return box;
  });
  return { element: group, input: group, read: () => {
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    return chosen.length ? chosen : null;
  } };
}

// Whether a control (an input, a select, or a group of checkboxes) differs from the
// value it was filled with.
export function changedControl(input) {
  if (input.tagName === "FIELDSET") return [...input.querySelectorAll("input[type=checkbox]")].some(changedControl);
  if (input.type === "checkbox") return input.checked !== input.defaultChecked;
  if (input.tagName === "SELECT") return [...input.options].some((o) => o.selected !== o.defaultSelected);
  return input.value !== input.defaultValue;
}

// The account's whole custom_fields map with the changed controls' values in it (a
// PATCH replaces the object whole), keys without a value left out; null when no
// control changed.
export function editedValues(controls, current) {
  const edited = controls.filter((c) => c.changed());
  if (!edited.length) return null;
  const values = { ...(current || {}) };
  for (const control of edited) values[control.key] = control.read();
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
}
