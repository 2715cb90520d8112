// A portfolio's contact policy: the rules the guard applies to its accounts (the
// agency's where the portfolio sets nothing) and, for admins, a form that sets its own
// hours and numbers. An empty input follows the agency's value; the channels and
// outcomes it sets are kept as they are (they are changed through the API).

import { api } from "./api.js";
import { clear, field, h, showProblem, toast, words } from "./dom.js";

// The fields the form edits: [API name, label, input type, unit].
const EDITED = [
  ["window_start", "Contact allowed from", "time", "local time in the debtor's zone"],
  ["window_end", "Contact allowed until", "time", "local time in the debtor's zone"],
  ["call_attempt_limit", "Call attempts at most", "number", "calls"],
  ["call_attempt_days", "Within", "number", "days"],
  ["conversation_days", "No calls after a conversation for", "number", "days"],
  ["override_minutes", "A manager's override lasts", "number", "minutes"],
];

const shownTime = (t) => (t ? t.slice(0, 5) : "");
const shown = (name, value) => (name.startsWith("window_") ? shownTime(value) : String(value));

// What the policy in force says, as a definition list.
function summary(policy) {
  const list = (values) => values.map(words).join(", ") || "none";
  return h("dl", { class: "policy-summary" },
    h("dt", {}, "Hours"), h("dd", {}, `${shownTime(policy.window_start)}–${shownTime(policy.window_end)} in the debtor's zone, for ${list(policy.window_channels)}`),
    h("dt", {}, "Calls"), h("dd", {}, `at most ${policy.call_attempt_limit} in ${policy.call_attempt_days} days; none for ${policy.conversation_days} days after a conversation (${list(policy.conversation_outcomes)})`),
    h("dt", {}, "Overrides"), h("dd", {}, `usable for ${policy.override_minutes} minutes`));
}

// Fills `box` with portfolio `p`'s policy; `admin` adds the form when `p` is live.
export async function showContactPolicy(box, p, admin) {
  const alert = h("div", { class: "form-alert", role: "alert" });
  const title = h("h3", { id: `policy-title-${p.id}` }, "Contact rules");
  clear(box, title, alert);
  let policy;
  try {
    policy = await api("GET", `/portfolios/${p.id}/contact-policy`);
  } catch (error) {
    clear(alert, error.message);
    return;
  }
  const current = h("div");
  const render = (answer) => {
    clear(current,
      summary(answer.in_force),
      h("p", { class: "muted" }, Object.values(answer.own).some((v) => v !== null)
        ? "This portfolio sets some of these rules; the rest follow the agency's policy."
        : "Follows the agency's policy."));
  };
  render(policy);
  box.append(current);
  if (!admin || p.deleted_at) return;

  const form = h("form", { class: "policy-form", "aria-labelledby": title.id },
    h("div", { class: "form-alert", role: "alert" }),
    EDITED.map(([name, label, type, unit]) => field(label,
      h("input", { name, type, min: type === "number" ? 0 : undefined, step: type === "number" ? 1 : undefined, inputmode: type === "number" ? "numeric" : undefined }),
      `${unit}; empty follows the agency's (${shown(name, policy.agency[name])})`)),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, "Save contact rules"),
      h("button", { type: "button", onclick: () => save({}) }, "Follow the agency's")));
  const fill = (own) => {
    for (const [name] of EDITED) form.elements.namedItem(name).value = own[name] === null ? "" : shown(name, own[name]);
  };
  fill(policy.own);

  async function save(body) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      policy = await api("PUT", `/portfolios/${p.id}/contact-policy`, { body });
      showProblem(form, null);
      fill(policy.own);
      render(policy);
      toast(`Contact rules of ${p.name} saved.`);
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {
      window_channels: policy.own.window_channels,
      conversation_outcomes: policy.own.conversation_outcomes,
    };
    for (const [name, , type] of EDITED) {
      const text = form.elements.namedItem(name).value.trim();
      body[name] = text === "" ? null : type === "number" ? Number(text) : text;
    }
    save(body);
  });
  box.append(form);
}
