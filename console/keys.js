// Keyboard shortcuts: one handler for the whole console. A screen offers a shortcut by
// marking an element with `data-shortcut="<name>"` (a form: its first field takes the
// focus; anything else is clicked); the handler ignores keys typed into a field (Escape
// leaves the field), and `?` lists the shortcuts in an overlay that Escape closes.

import { h, reveal, toast } from "./dom.js";

// Each shortcut: its key, its target's name, what it does, and where to go when the
// screen shown has no such target (none: it is said so).
export const SHORTCUTS = [
  { key: "/", target: "search", label: "Back to the search box", fallback: "#/search" },
  { key: "n", target: "next-account", label: "Next account from my queue (on the queue it claims and opens it)", fallback: "#/queue" },
  { key: "l", target: "log-contact", label: "Log contact (on an account)" },
  { key: "p", target: "record-payment", label: "Record payment (on an account)" },
  { key: "m", target: "make-promise", label: "Make a promise to pay (on an account)" },
  { key: "?", target: null, label: "Show these shortcuts; Escape closes them" },
];

const TEXT_INPUTS = new Set(["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"]);

// Whether the key goes to a field the user is typing in.
function typing(element) {
  if (!element) return false;
  if (element.isContentEditable || ["TEXTAREA", "SELECT"].includes(element.tagName)) return true;
  return element.tagName === "INPUT" && !TEXT_INPUTS.has(element.type);
}

// The first shown element marked for `target`, else the first behind a tab, shown.
function marked(target) {
  const all = [...document.querySelectorAll(`[data-shortcut="${target}"]`)];
  return all.find((el) => el.getClientRects().length > 0) ?? all.find((el) => reveal(el));
}

function act(element) {
  element.scrollIntoView({ block: "nearest" });
  if (element.tagName === "FORM") {
    const first = [...element.elements].find((el) => !el.disabled && el.type !== "hidden" && el.getClientRects().length > 0);
    (first || element).focus();
  } else if (element.tagName === "INPUT") {
    element.focus();
  } else {
    element.click();
  }
}

let overlay = null;
let returnTo = null;

function closeHelp() {
  if (!overlay) return;
  overlay.remove();
  overlay = null;
  returnTo?.focus?.();
  returnTo = null;
}

export function showHelp() {
  if (overlay) return;
  returnTo = document.activeElement;
  const close = h("button", { type: "button", onclick: closeHelp }, "Close");
  overlay = h(
    "div",
    { class: "overlay", onclick: (event) => event.target === overlay && closeHelp() },
    h("section", { class: "card help", role: "dialog", "aria-modal": "true", "aria-labelledby": "keys-title" },
      h("h2", { id: "keys-title" }, "Keyboard shortcuts"),
      h("p", { class: "muted" }, "Not while typing in a field: Escape leaves the field first."),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Does"))),
        h("tbody", {}, SHORTCUTS.map((s) => h("tr", {}, h("td", {}, h("kbd", {}, s.key)), h("td", {}, s.label))),
          h("tr", {}, h("td", {}, h("kbd", {}, "↓"), " ", h("kbd", {}, "↑")), h("td", {}, "Move through the search results; Enter opens one")))),
      close),
  );
  // The dialog keeps the focus while it is open.
  overlay.addEventListener("keydown", (event) => {
    if (event.key === "Tab") {
      event.preventDefault();
      close.focus();
    }
  });
  document.body.append(overlay);
  close.focus();
}

// Installs the handler; `signedIn()` says whether shortcuts apply (not on the sign-in page).
export function installKeys(signedIn) {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && overlay) {
      event.preventDefault();
      closeHelp();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (overlay || !signedIn()) return;
    // Escape leaves the field being typed in, so the next key is a shortcut again.
    if (typing(document.activeElement)) {
      if (event.key === "Escape") document.activeElement.blur();
      return;
    }
    const shortcut = SHORTCUTS.find((s) => s.key === event.key);
    if (!shortcut) return;
    event.preventDefault();
    if (!shortcut.target) {
      showHelp();
      return;
    }
    const element = marked(shortcut.target);
    if (element) act(element);
    else if (shortcut.fallback) location.hash = shortcut.fallback;
    else toast(`${shortcut.label.replace(/ \(.*\)$/, "")}: not on this screen.`);
  });
}
