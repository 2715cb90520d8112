// DOM helpers. Everything is built as nodes: text from the server or a user becomes text
// nodes, never markup.

// h("p", {class: "x", onclick: fn}, "text", child) builds an element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#39;": "'" };

// A highlight from the API ("José <em>Álvarez</em>", the rest escaped) as nodes: the
// <em> marks become <mark> elements, everything else text.
export function highlighted(html) {
  const out = document.createDocumentFragment();
  const text = (s) => s.replace(/&(amp|lt|gt|quot|#39);/g, (m) => ENTITIES[m]);
  let inside = false;
  for (const part of html.split(/(<em>|<\/em>)/)) {
    if (part === "<em>") inside = true;
    else if (part === "</em>") inside = false;
    else if (part) out.append(inside ? h("mark", {}, text(part)) : document.createTextNode(text(part)));
  }
  return out;
}

export function money(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  const [whole, fraction] = String(amount).replace("-", "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const sign = String(amount).startsWith("-") ? "−" : "";
  return `${sign}${grouped}${fraction ? "." + fraction : ""} ${currency || ""}`.trim();
}

// Amounts of several currencies, each in its own (never added together).
export function sums(amounts) {
  return amounts.length ? amounts.map((a) => money(a.amount, a.currency)).join(" · ") : "—";
}

// An instant in the agent's own zone, labelled with that zone ("25 Nov 2026, 14:05 GMT+1"):
// a time without its zone is read in the wrong one.
export function when(iso) {
  if (!iso) return "—";
  return zoned(new Date(iso));
}

// An instant in `zone` (the agent's own when not given) with the zone's abbreviation,
// e.g. "25 Nov 2026, 08:00 EST".
export function zoned(date, zone, { dateShown = true } = {}) {
  const format = new Intl.DateTimeFormat(undefined, {
    ...(dateShown ? { day: "numeric", month: "short", year: "numeric" } : {}),
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
    ...(zone ? { timeZone: zone } : {}),
  });
  return format.format(date);
}

// The debtor's local clock: the time now in `zone` with its name, e.g. "08:02 EST
// (America/New_York)". An unknown or missing zone says so rather than guessing.
export function localClock(zone, now = new Date()) {
  if (!zone) return "time zone unknown";
  try {
    return `${zoned(now, zone, { dateShown: false })} (${zone})`;
  } catch {
    return `time zone ${zone} unknown`;
  }
}

// Today as YYYY-MM-DD in the agent's own zone (not UTC: at 20:00 in New York the UTC
// date is already tomorrow), for date inputs' defaults and limits.
export function localDate(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// A list's total as the API counted it: "10,000+" where counting stopped
// (`total_is_lower_bound`), the number itself otherwise.
export function counted(page) {
  return page.total_is_lower_bound ? `${page.total.toLocaleString("en-US")}+` : String(page.total);
}

export function words(value) {
  return value ? String(value).replaceAll("_", " ") : "—";
}

// One toast at a time: a new message (a refusal after a refusal) replaces the shown
// one and restarts its timer, so messages never stack up or outlive the next.
export function toast(message, { refusal = false } = {}) {
  const box = document.getElementById("toast");
  clear(box, message);
  box.classList.toggle("refusal", refusal);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => clear(box), 5000);
}

// Runs `request` and says how it went: `done`, or the server's refusal.
export async function announce(request, done) {
  try {
    await request();
    toast(done);
  } catch (error) {
    toast(error.message, { refusal: true });
  }
}

// Shows a refusal: the problem's detail in the form's alert, and each field error next
// to its field (inputs are found by name), linked with aria-describedby.
export function showProblem(form, error) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const alert = form.querySelector(".form-alert");
  if (!error) {
    if (alert) clear(alert);
    return;
  }
  // A success said before does not stay beside this refusal.
  const said = document.getElementById("toast");
  if (said && !said.classList.contains("refusal")) clear(said);
  const problem = error.problem || {};
  const errors = problem.errors || [];
  // The API's own detail of field errors names its fields ("patch.portfolio_id: …", "3
  // fields are invalid"); said here by the labels a person reads. A detail written for
  // the case is kept.
  const phrase = ({ field, message }) => `${labelOf(form, field)}: ${message}`;
  const generic = errors.length === 1
    ? problem.detail === `${errors[0].field}: ${errors[0].message}`
    : errors.length > 1 && problem.detail === `${errors.length} fields are invalid`;
  const lead = generic
    ? errors.length === 1 ? phrase(errors[0]) : `${errors.length} fields need a change.`
    : problem.detail || problem.title || error.message;
  const lines = [lead];
  if (problem.rule) lines.push(`Rule: ${words(problem.rule)}.`);
  if (problem.code === "contact_blocked") {
    lines.push(problem.next_allowed_at ? `Allowed again ${when(problem.next_allowed_at)}.` : "Waiting will not open it.");
  }
  const unplaced = [];
  for (const { field, message } of errors) {
    const input = form.elements.namedItem(field);
    if (input && input.id) {
      const id = `${input.id}-error`;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
      input.after(h("span", { class: "field-error", id }, message));
    } else {
      unplaced.push(phrase({ field, message }));
    }
  }
  // One field error is the lead already.
  const listed = unplaced.length && lead !== phrase(errors[0]) ? h("ul", {}, unplaced.map((u) => h("li", {}, u))) : null;
  if (alert) clear(alert, lines.map((line) => h("div", {}, line)), listed);
}

// What a person calls the API's field `name` in `form`: its input's label, else the
// field's own words.
function labelOf(form, name) {
  const input = form.elements.namedItem(name);
  const label = input?.labels?.[0]?.textContent.trim();
  return label || fieldWords(name);
}

// An API field's name in words: "patch.portfolio_id" reads "Portfolio",
// "assigned_agent_id" "Assigned agent".
export function fieldWords(name) {
  const last = String(name).split(".").filter((part) => part !== "patch").at(-1) || String(name);
  const text = last.replace(/\[\d+\]$/, "").replace(/_id$/, "").replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// Tabs over `entries` ([name, title, element, onShow?]), one panel shown at a time, the
// first to start with; arrow keys move between the tabs, as WAI-ARIA's tab pattern asks.
// The container is labelled `label`; `onShow` runs when its panel is chosen.
export function tabs(label, entries) {
  const slug = label.toLowerCase().replace(/\W+/g, "-");
  const list = h("div", { role: "tablist", class: "tabs", "aria-label": label });
  const parts = entries.map(([name, title, element, onShow]) => {
    const tab = h("button", { type: "button", role: "tab", id: `tab-${slug}-${name}`, "aria-controls": `panel-${slug}-${name}` }, title);
    const panel = h("div", { role: "tabpanel", id: `panel-${slug}-${name}`, "aria-labelledby": tab.id }, element);
    return { tab, panel, onShow };
  });
  const choose = (chosen, focus) => {
    for (const part of parts) {
      const on = part === chosen;
      part.tab.setAttribute("aria-selected", String(on));
      part.tab.tabIndex = on ? 0 : -1;
      part.panel.hidden = !on;
    }
    chosen.onShow?.();
    if (focus) chosen.tab.focus();
  };
  parts.forEach((part, i) => {
    part.tab.addEventListener("click", () => choose(part));
    part.tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      choose(parts[(i + step + parts.length) % parts.length], true);
    });
    list.append(part.tab);
  });
  choose(parts[0]);
  return h("div", { class: "tabbed" }, list, parts.map((part) => part.panel));
}

// Shows `element` if a tab it sits behind is not chosen; whether it is shown now.
export function reveal(element) {
  const panel = element.closest("[role=tabpanel][hidden]");
  if (panel) document.getElementById(panel.getAttribute("aria-labelledby"))?.click();
  return element.getClientRects().length > 0;
}

// Ids made up for elements that must name each other (labels, hints, questions).
let idSeq = 0;

// A labelled field: field("Amount", h("input", {name: "amount"})).
export function field(label, input, hint) {
  idSeq += 1;
  if (!input.id) input.id = `f${idSeq}`;
  const hintEl = hint ? h("span", { class: "hint", id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}

export function select(name, options, value, attrs) {
  return h(
    "select",
    { name, ...attrs },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

// A destructive action asked twice, without a modal dialog: the first button shows the
// question with a button that does it (the focus moves there) and one that keeps things
// as they are. `run` shows its own outcome (a refusal too); the question closes after.
export function confirmStep(label, question, yesLabel, run) {
  idSeq += 1;
  const questionId = `q${idSeq}`;
  const start = h("button", { type: "button" }, label);
  const yes = h("button", { type: "button", class: "danger", "aria-describedby": questionId }, yesLabel);
  const no = h("button", { type: "button" }, "No, keep it");
  const ask = h("span", { class: "confirm", role: "group", "aria-labelledby": questionId, hidden: true },
    h("span", { id: questionId }, question), " ", yes, " ", no);
  const close = () => {
    ask.hidden = true;
    start.hidden = false;
  };
  start.addEventListener("click", () => {
    start.hidden = true;
    ask.hidden = false;
    yes.focus();
  });
  no.addEventListener("click", () => {
    close();
    start.focus();
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await run();
    } finally {
      yes.disabled = false;
      close();
      // The focus was on the hidden question: back to the button, if it is still shown.
      const lost = document.activeElement === document.body || ask.contains(document.activeElement);
      if (lost && start.isConnected) start.focus();
    }
  });
  return h("span", { class: "confirm-step", dataset: { step: label } }, start, ask);
}

// The questions open under `root` (confirm steps asked, not yet answered), to put back
// with reopenQuestions after `root`'s content is drawn anew: a live event that redraws a
// list must not take away the question its reader is about to answer.
export function openQuestions(root, itemOf) {
  return [...root.querySelectorAll(".confirm-step")]
    .filter((step) => !step.querySelector(".confirm").hidden)
    .map((step) => ({ item: itemOf(step), step: step.dataset.step, focused: step.contains(document.activeElement) }))
    .filter((open) => open.item);
}

export function reopenQuestions(open, stepsOf) {
  for (const { item, step, focused } of open) {
    const drawn = [...stepsOf(item)].find((s) => s.dataset.step === step);
    if (!drawn) continue;
    const [start, ask] = drawn.children;
    start.hidden = true;
    ask.hidden = false;
    if (focused && (!document.activeElement || document.activeElement === document.body)) ask.querySelector("button.danger").focus();
  }
}

// Saves a fetched Blob under a file name.
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
