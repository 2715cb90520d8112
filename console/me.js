// "My account" (every signed-in role): the phone I take calls on (roles that work
// accounts), change my password, my sessions with an "End"
// button each (this device marked); and "Set a new password" with a reset token from
// the link an admin gave (`#/reset?token=...`), signed in or not.

import { api, atLeast, currentUser, signOut } from "./api.js";
import { clear, field, h, showProblem, toast, when } from "./dom.js";
import { live } from "./live.js";

function passwordInput(name, autocomplete) {
  return h("input", { name, type: "password", autocomplete, required: true, minlength: 10, maxlength: 256 });
}

// A new password typed twice; a mismatch is shown on the second field before anything is sent.
function repeated(form) {
  if (form.elements.new_password.value === form.elements.repeat.value) return true;
  showProblem(form, { problem: { detail: "The new passwords differ.", errors: [{ field: "repeat", message: "must match the new password" }] } });
  return false;
}

function passwordForm() {
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "password-title" },
    h("h2", { id: "password-title" }, "Change my password"),
    h("p", { class: "muted" }, "Your other sessions end; this one stays."),
    h("div", { class: "form-alert", role: "alert" }),
    field("Current password", passwordInput("current_password", "current-password")),
    field("New password", passwordInput("new_password", "new-password"), "At least 10 characters"),
    field("Repeat the new password", passwordInput("repeat", "new-password")),
    h("button", { type: "submit", class: "primary" }, "Change password"),
  );
  return form;
}

// The phone the console rings to place a call (the agent's desk phone, mobile or
// softphone number), and that rings when a debtor calls.
function phoneForm() {
  // Taken once the saved one is read, so what is typed is never overwritten by it.
  const input = h("input", { name: "phone", type: "tel", autocomplete: "tel", maxlength: 40, id: "my-phone", disabled: true });
  const provider = h("p", { class: "muted" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "phone-title" },
    h("h2", { id: "phone-title" }, "My phone for calls"),
    h("p", { class: "muted" }, "\"Call\" on an account rings this phone first; answer it and the debtor is dialled. Debtors' calls ring it too."),
    provider,
    h("div", { class: "form-alert", role: "alert" }),
    field("Phone number", input, "Leave empty to take no calls"),
    h("button", { type: "submit", class: "primary" }, "Save phone"),
  );
  const show = (mine) => {
    input.value = mine.phone ?? "";
    input.disabled = false;
    clear(provider, mine.provider === "local" ? "Calls are not connected on this server (no telephony provider): nothing will ring." : "");
  };
  api("GET", "/me/phone").then(show, (error) => showProblem(form, error));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      show(await api("PUT", "/me/phone", { body: { phone: input.value.trim() || null } }));
      showProblem(form, null);
      toast(input.value ? `Calls will ring ${input.value}.` : "No phone: you take no calls.");
    } catch (error) {
      showProblem(form, error);
    }
  });
  return form;
}

export function meScreen(main) {
  const user = currentUser();
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, "More sessions");
  const form = passwordForm();

  async function end(session) {
    try {
      await api("DELETE", `/auth/sessions/${session.id}`);
      if (session.current) {
        await signOut();
        return;
      }
      toast("Session ended.");
    } catch (error) {
      toast(error.message, { refusal: true });
    }
    await load();
  }

  function row(session) {
    const device = session.device || "Unknown device";
    const name = session.current ? h("span", {}, device, " ", h("span", { class: "badge" }, "This device")) : device;
    const button = h("button", { type: "button", "aria-label": `End the session on ${device}, signed in ${when(session.created_at)}` }, "End");
    button.addEventListener("click", () => end(session));
    return h("tr", { class: session.current ? "current" : "" },
      h("td", {}, name),
      h("td", { dataset: { label: "Address" } }, session.address || "—"),
      h("td", { dataset: { label: "Signed in" } }, when(session.created_at)),
      h("td", { dataset: { label: "Last refreshed" } }, session.last_used_at ? when(session.last_used_at) : "—"),
      h("td", {}, button));
  }

  async function load(cursor) {
    const page = await api("GET", "/auth/sessions", { params: { page_size: 25, cursor } });
    if (!cursor) clear(body);
    for (const session of page.data) body.append(row(session));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!repeated(form)) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/auth/password", {
        body: { current_password: form.elements.current_password.value, new_password: form.elements.new_password.value },
      });
      showProblem(form, null);
      form.reset();
      toast("Password changed. Your other sessions have ended.");
      await load();
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });

  clear(
    main,
    h("h1", {}, "My account"),
    h("p", { class: "muted" }, `${user.name} · ${user.email} · ${user.role}`),
    atLeast("viewer")
      ? h("p", {}, h("a", { href: "#/second-factor" }, "Two-step sign-in"), ": a code from an app on your phone besides your password.")
      : null,
    h("div", { class: "columns wide-left" },
      h("section", { class: "card", "aria-labelledby": "sessions-title" },
        h("h2", { id: "sessions-title" }, "My sessions"),
        h("table", { class: "sessions" },
          h("caption", { class: "sr-only" }, "Where I am signed in, newest first"),
          h("thead", {}, h("tr", {}, ["Device", "Address", "Signed in", "Last refreshed", ""].map((t) => h("th", { scope: "col" }, t)))),
          body),
        more),
      h("div", {}, atLeast("agent") ? phoneForm() : null, form)),
  );
  load().catch((error) => toast(error.message, { refusal: true }));
  // A sign-in, refresh or sign-out of mine elsewhere changes the list.
  const reload = (event) => {
    if (event.detail?.user_id === user.id) load().catch(() => {});
  };
  live.addEventListener("user_activity", reload);
  return () => live.removeEventListener("user_activity", reload);
}

// The page a reset link opens. The token is taken out of the address bar at once, so it
// is not left in the history for the next person at this browser.
export function resetScreen(main, params, done) {
  const token = params.get("token") || "";
  history.replaceState(null, "", `${location.pathname}#/reset`);
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "reset-title" },
    h("h1", { id: "reset-title" }, "Set a new password"),
    h("div", { class: "form-alert", role: "alert" }),
    token
      ? h("p", { class: "muted" }, "Choose a new password. Every session of your account ends; then sign in with it.")
      : h("p", {}, "This link holds no reset token. Ask an administrator for a new link."),
    h("input", { type: "hidden", name: "token", value: token }),
    field("New password", passwordInput("new_password", "new-password"), "At least 10 characters"),
    field("Repeat the new password", passwordInput("repeat", "new-password")),
    h("button", { type: "submit", class: "primary", disabled: !token }, "Set password"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!repeated(form)) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/auth/password-reset", { body: { token, new_password: form.elements.new_password.value } });
      done();
    } catch (error) {
      showProblem(form, error);
      button.disabled = false;
    }
  });
  clear(main, form);
  form.elements.new_password.focus();
}
