// Users and roles (admins): the list, paged; a new user; a role, team or access change.

import { api, currentUser } from "./api.js";
import { clear, field, h, select, showProblem, toast, when } from "./dom.js";

const ROLES = [["agent", "Agent"], ["manager", "Manager"], ["viewer", "Viewer"], ["admin", "Admin"], ["pending", "Pending"]];

export function adminScreen(main) {
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, "More users");

  function row(user) {
    const self = user.id === currentUser().id;
    const label = `Role of ${user.name}`;
    const role = select("role", ROLES, user.role, { "aria-label": label, disabled: self });
    role.addEventListener("change", () => change(user, { role: role.value }));
    const access = h("button", { type: "button", disabled: self }, user.disabled ? "Enable" : "Disable");
    access.addEventListener("click", () => change(user, { disabled: !user.disabled }));
    const reset = h("button", { type: "button", "aria-label": `Reset password of ${user.name}` }, "Reset password");
    reset.addEventListener("click", () => issueReset(user));
    return h("tr", {},
      h("td", {}, user.name),
      h("td", {}, user.email),
      h("td", {}, role),
      h("td", {}, user.team || "—"),
      h("td", {}, user.disabled ? "disabled" : "active"),
      h("td", {}, when(user.created_at)),
      h("td", {}, h("span", { class: "item-buttons" }, access, reset)));
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

  async function load(cursor) {
    const page = await api("GET", "/users", { params: { page_size: 50, cursor } });
    if (!cursor) clear(body);
    for (const user of page.data) body.append(row(user));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-user-title" },
    h("h2", { id: "new-user-title" }, "New user"),
    h("div", { class: "form-alert", role: "alert" }),
    field("Name", h("input", { name: "name", required: true })),
    field("Email", h("input", { name: "email", type: "email", required: true })),
    field("Role", select("role", ROLES.slice(0, 4), "agent")),
    field("Team", h("input", { name: "team" }), "Optional"),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true }), "At least 10 characters"),
    h("button", { type: "submit", class: "primary" }, "Create user"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const els = form.elements;
    try {
      await api("POST", "/users", {
        body: { name: els.name.value, email: els.email.value, role: els.role.value, password: els.password.value, team: els.team.value.trim() || undefined },
      });
      showProblem(form, null);
      form.reset();
      toast("User created.");
      await load();
    } catch (error) {
      showProblem(form, error);
    }
  });

  clear(
    main,
    h("h1", {}, "Users and roles"),
    resetLink,
    h("div", { class: "columns wide-left" },
      h("section", { class: "card", "aria-label": "Users" },
        h("table", {},
          h("caption", {}, "Users"),
          h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Team", "Access", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
          body),
        more),
      form),
  );
  load().catch((error) => toast(error.message, { refusal: true }));
}
