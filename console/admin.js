// Users (admins: everyone; managers: the agents of their team): the list, paged; a new
// user (a manager's is an agent of their team); a role or team change and a reset of
// two-step sign-in (admins), disabling and enabling, moving an agent's open accounts to
// another, and deleting (admins).

import { api, currentUser } from "./api.js";
import { clear, confirmStep, field, h, select, showProblem, toast, when } from "./dom.js";
import { follow } from "./jobs.js";

const ROLES = [["agent", "Agent"], ["manager", "Manager"], ["viewer", "Viewer"], ["admin", "Admin"], ["pending", "Pending"]];
const WORKS_ACCOUNTS = new Set(["agent", "manager", "admin"]);

export function adminScreen(main) {
  const me = currentUser();
  const admin = me.role === "admin";
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, "More users");
  const users = new Map();

  // What the caller may do to `user`: admins anything but to themselves, managers
  // disable and move the agents of their team (the server holds the same rules).
  const manages = (user) => !user.deleted_at && user.id !== me.id && (admin || user.role === "agent");

  function row(user) {
    const label = `Role of ${user.name}`;
    let role = user.role;
    if (admin && manages(user)) {
      role = select("role", ROLES, user.role, { "aria-label": label });
      role.addEventListener("change", () => change(user, { role: role.value }));
    }
    const actions = h("div", { class: "user-actions" });
    if (manages(user)) {
      const access = h("button", { type: "button" }, user.disabled ? "Enable" : "Disable");
      access.addEventListener("click", () => change(user, { disabled: !user.disabled }));
      const moving = h("button", { type: "button" }, "Move accounts");
      moving.addEventListener("click", () => chooseSource(user));
      actions.append(access, moving);
      if (admin) {
        const reset = h("button", { type: "button", "aria-label": `Reset password of ${user.name}` }, "Reset password");
        reset.addEventListener("click", () => issueReset(user));
        actions.append(reset);
        // A lost phone: the user signs in with the password alone and sets it up again.
        actions.append(confirmStep(
          "Reset two-step sign-in",
          `Turn off ${user.name}'s two-step sign-in? They sign in with their password and set it up again.`,
          "Yes, turn it off",
          () => resetSecondFactor(user),
        ));
        actions.append(confirmStep(
          "Delete",
          `Delete ${user.name}? Their name and email are erased for good.`,
          "Yes, delete",
          () => remove(user),
        ));
      }
    }
    const access = user.deleted_at ? `deleted ${when(user.deleted_at)}` : user.disabled ? "disabled" : "active";
    return h("tr", {},
      h("td", {}, h("div", {}, user.name), h("small", { class: "muted" }, user.email)),
      h("td", { "data-label": "Role" }, role),
      h("td", { "data-label": "Team" }, admin && !user.deleted_at ? teamForm(user) : user.team || "—"),
      h("td", { "data-label": "Access" }, access),
      h("td", { class: "actions" }, actions));
  }

  // The token is shown once, as the link the user opens to set a new password.
  const resetLink = h("section", { class: "card", "aria-live": "polite", hidden: true });

  async function issueReset(user) {
    try {
      const issued = await api("POST", `/users/${user.id}/password-reset`);
      const link = `${location.origin}${location.pathname}#/reset?token=${encodeURIComponent(issued.token)}`;
      const input = h("input", { readonly: true, value: link, name: "reset_link" });
      clear(resetLink,
        h("h2", {}, `Password reset link for ${user.name}`),
        field("Link (shown once; good for one hour and one use)", input),
        h("p", { class: "muted" }, `Give it to ${user.name} in person or by a channel you trust. It expires ${when(issued.expires_at)}; a new link replaces it.`));
      resetLink.hidden = false;
      input.focus();
      input.select();
    } catch (error) {
      toast(error.message, { refusal: true });
    }
  }

  async function change(user, patch) {
    try {
      await api("PATCH", `/users/${user.id}`, { body: patch });
      toast(`${user.name} updated.`);
    } catch (error) {
      toast(error.message, { refusal: true });
    }
    await load();
  }

  // An admin sets or clears a user's team (the team a manager manages, the team whose
  // KPIs an agent's work counts in).
  function teamForm(user) {
    const input = h("input", { name: "team", value: user.team ?? "", maxlength: 100, "aria-label": `Team of ${user.name}`, placeholder: "No team" });
    const form = h("form", { class: "team-form" }, input, h("button", { type: "submit", "aria-label": `Set the team of ${user.name}` }, "Set"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      change(user, { team: input.value.trim() || null });
    });
    return form;
  }

  async function resetSecondFactor(user) {
    try {
      await api("DELETE", `/users/${user.id}/second-factor`);
      toast(`${user.name}'s two-step sign-in is off.`);
    } catch (error) {
      toast(error.message, { refusal: true });
    }
  }

  async function remove(user) {
    try {
      await api("DELETE", `/users/${user.id}`);
      toast(`${user.name} deleted.`);
      await load();
    } catch (error) {
      toast(error.message, { refusal: true });
      if (error.problem?.assigned_accounts) chooseSource(user);
    }
  }

  async function load(cursor) {
    const page = await api("GET", "/users", { params: { page_size: 50, cursor } });
    if (!cursor) {
      clear(body);
      users.clear();
    }
    for (const user of page.data) {
      users.set(user.id, user);
      body.append(row(user));
    }
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor).catch(refused);
    fillMoveChoices();
  }

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-user-title" },
    h("h2", { id: "new-user-title" }, admin ? "New user" : "New agent"),
    h("div", { class: "form-alert", role: "alert" }),
    field("Name", h("input", { name: "name", required: true })),
    field("Email", h("input", { name: "email", type: "email", required: true })),
    admin ? field("Role", select("role", ROLES.slice(0, 4), "agent")) : null,
    admin
      ? field("Team", h("input", { name: "team" }), "Optional")
      : h("p", { class: "muted" }, `The agent joins your team, ${me.team || "—"}.`),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true }), "At least 10 characters"),
    h("button", { type: "submit", class: "primary" }, admin ? "Create user" : "Create agent"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const els = form.elements;
    const user = { name: els.name.value, email: els.email.value, role: admin ? els.role.value : "agent", password: els.password.value };
    if (admin && els.team.value.trim()) user.team = els.team.value.trim();
    try {
      await api("POST", "/users", { body: user });
      showProblem(form, null);
      form.reset();
      toast(admin ? "User created." : "Agent created.");
      await load();
    } catch (error) {
      showProblem(form, error);
    }
  });

  // Moving one user's open accounts to another who works accounts.
  const from = h("select", { name: "from", required: true });
  const to = h("select", { name: "to", required: true });
  const moveForm = h(
    "form",
    { class: "card", "aria-labelledby": "move-title" },
    h("h2", { id: "move-title" }, "Move accounts"),
    h("p", { class: "muted" }, "Gives every open account of one agent to another, for example before a deletion."),
    h("div", { class: "form-alert", role: "alert" }),
    field("From", from),
    field("To", to, "An active person who works accounts"),
    h("button", { type: "submit", class: "primary" }, "Move open accounts"),
  );
  const progress = h("progress", { hidden: true, "aria-label": "Accounts moved" });
  const outcome = h("p", { role: "status" });
  moveForm.append(progress, outcome);

  function fillMoveChoices() {
    const chosen = [from.value, to.value];
    const option = (user) => h("option", { value: user.id }, `${user.name}${user.team ? ` (${user.team})` : ""}`);
    const all = [...users.values()];
    clear(from, h("option", { value: "" }, "Choose…"), all.filter((u) => admin || u.role === "agent").map(option));
    const receivers = all.filter((u) => !u.disabled && !u.deleted_at && (admin ? WORKS_ACCOUNTS.has(u.role) : u.role === "agent"));
    clear(to, h("option", { value: "" }, "Choose…"), receivers.map(option));
    [from.value, to.value] = chosen;
  }

  function chooseSource(user) {
    from.value = user.id;
    to.value = "";
    moveForm.scrollIntoView({ block: "nearest" });
    to.focus();
  }

  moveForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = moveForm.querySelector("button");
    button.disabled = true;
    try {
      const answer = await api("POST", `/users/${from.value}/accounts/move`, { body: { to: to.value } });
      showProblem(moveForm, null);
      moveForm.reset();
      // Many accounts move as a job (202): its progress shows here as it runs.
      if (answer.moved !== undefined) clear(outcome, `${answer.moved} open accounts moved.`);
      else follow(answer.id, progress, outcome);
    } catch (error) {
      showProblem(moveForm, error);
    } finally {
      button.disabled = false;
    }
  });

  const status = h("div", { class: "form-alert", role: "alert" });
  const refused = (error) => clear(status, error.message);

  clear(
    main,
    h("h1", {}, admin ? "Users and roles" : `Team ${me.team || ""}`.trim()),
    resetLink,
    h("div", { class: "columns wide-left" },
      h("section", { class: "card", "aria-label": "Users" },
        status,
        h("table", { class: "users" },
          h("caption", {}, admin ? "Users" : "Your team"),
          h("thead", {}, h("tr", {}, ["Name", "Role", "Team", "Access", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          body),
        more),
      h("div", {}, form, moveForm)),
  );
  load().catch(refused);
}
