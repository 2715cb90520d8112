// Portfolios (admins manage them, managers read them): the list, paged, with the deleted
// ones for admins; a form that creates a portfolio or changes one; deleting and
// restoring, each asked twice; who works each one (its grants to people and to teams),
// granted and revoked by admins; and its contact rules.

import { api, assignees, atLeast, everyPage } from "./api.js";
import { announce, clear, confirmStep, field, h, select, showProblem, toast, when } from "./dom.js";
import { showContactPolicy } from "./contact-policy.js";
import { changedControl as changed, formatValue } from "./custom-fields.js";

const placed = (date) => formatValue({ type: "date" }, date);
const rate = (value) => (value === null || value === undefined ? "—" : `${value} %`);

export function portfoliosScreen(main) {
  const admin = atLeast("admin");
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, "More portfolios");
  const status = h("div", { class: "form-alert", role: "alert" });
  const editorBox = h("div");
  const grantsBox = h("section", { class: "card grants", hidden: true, "aria-labelledby": "grants-title" });
  // Whom an admin may grant to: the people who work accounts and the teams users are in
  // (a failure leaves the choices short, never the screen).
  const choices = admin
    ? Promise.all([
      assignees().catch(() => []),
      everyPage("/users").then((users) => [...new Set(users.map((u) => u.team).filter(Boolean))].sort(), () => []),
    ])
    : Promise.resolve([[], []]);
  // The portfolio whose grants are shown.
  let shown = null;

  function row(p) {
    const actions = h("td", { class: "actions" },
      h("button", { type: "button", "aria-label": `Grants of ${p.name}`, onclick: () => showGrants(p) }, "Grants"));
    if (admin && !p.deleted_at) {
      actions.append(
        h("button", { type: "button", "aria-label": `Edit ${p.name}`, onclick: () => edit(p) }, "Edit"),
        confirmStep("Delete", `Delete the portfolio ${p.name}? Its accounts stay in it; it can be restored.`, "Yes, delete",
          () => act(() => api("DELETE", `/portfolios/${p.id}`), `${p.name} deleted.`)),
      );
    } else if (admin) {
      actions.append(confirmStep("Restore", `Restore the portfolio ${p.name}?`, "Yes, restore",
        () => act(() => api("POST", `/portfolios/${p.id}/restore`), `${p.name} restored.`)));
    }
    return h("tr", { class: p.deleted_at ? "deleted" : "" },
      h("td", {},
        h("strong", {}, p.name),
        p.deleted_at ? h("div", { class: "state" }, `deleted ${when(p.deleted_at)}`) : null),
      h("td", { "data-label": "Client" }, p.client || "—"),
      h("td", { "data-label": "Placed" }, placed(p.placement_date)),
      h("td", { "data-label": "Commission" }, rate(p.commission_rate)),
      actions);
  }

  async function act(request, done) {
    await announce(request, done);
    await load().catch(refused);
  }

  async function load(cursor) {
    const page = await api("GET", "/portfolios", { params: { page_size: 25, cursor, include_deleted: admin ? true : undefined } });
    if (!cursor) clear(body);
    for (const p of page.data) body.append(row(p));
    if (!cursor && !page.data.length) body.append(h("tr", {}, h("td", { colspan: 5 }, "No portfolios yet.")));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor).catch(refused);
    // The grants shown name the portfolio as it is now (renamed, deleted or restored).
    const current = shown && page.data.find((p) => p.id === shown.id);
    if (current) showGrants(current, { focus: false });
  }

  // The form: a new portfolio when `p` is undefined, else a change to `p`. The inputs
  // carry the API's field names, so each refusal shows beside its input.
  function form(p) {
    const editing = Boolean(p);
    const el = h("form", { class: "card portfolio-form", "aria-labelledby": "portfolio-form-title" },
      h("h2", { id: "portfolio-form-title" }, editing ? `Change ${p.name}` : "New portfolio"),
      h("div", { class: "form-alert", role: "alert" }),
      field("Name", h("input", { name: "name", value: p?.name ?? "", required: true, autocomplete: "off" }), "Unique among the live portfolios"),
      field("Client", h("input", { name: "client", value: p?.client ?? "", autocomplete: "off" }), "The creditor who placed the accounts; optional"),
      field("Placement date", h("input", { name: "placement_date", type: "date", value: p?.placement_date ?? "" }), "Optional"),
      field("Commission rate", h("input", { name: "commission_rate", inputmode: "decimal", autocomplete: "off", value: p?.commission_rate ?? "" }),
        "Percent of what is collected, 0 to 100, e.g. 18.5; optional"),
      field("Delinquent after (days past due)", h("input", { name: "delinquent_after_days", type: "number", min: 0, max: 365, step: 1, inputmode: "numeric", autocomplete: "off", value: p?.delinquent_after_days ?? "" }),
        "An active account past its due date by more than this becomes delinquent, 0 to 365; empty: the server's default"),
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary" }, editing ? "Save portfolio" : "Create portfolio"),
        editing ? h("button", { type: "button", onclick: () => showForm() }, "Cancel") : null),
    );
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = el.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        if (!(editing ? await save(el, p) : await create(el))) return;
        showForm();
        await load();
      } catch (error) {
        showProblem(el, error);
      } finally {
        button.disabled = false;
      }
    });
    return el;
  }

  // An optional input's value in its wire form: its text (a number for a number input),
  // or null when empty.
  const optional = (input) => {
    const text = input.value.trim();
    if (!text) return null;
    return input.type === "number" ? Number(text) : text;
  };
  const OPTIONAL = ["client", "placement_date", "commission_rate", "delinquent_after_days"];

  async function create(el) {
    const els = el.elements;
    const body = { name: els.name.value.trim() };
    for (const name of OPTIONAL) {
      const value = optional(els.namedItem(name));
      if (value !== null) body[name] = value;
    }
    const made = await api("POST", "/portfolios", { body });
    toast(`${made.name} created.`);
    return true;
  }

  // Sends what changed (an emptied input clears its field); false when nothing did.
  async function save(el, p) {
    const els = el.elements;
    const patch = {};
    if (changed(els.name)) patch.name = els.name.value.trim();
    for (const name of OPTIONAL) {
      if (changed(els.namedItem(name))) patch[name] = optional(els.namedItem(name));
    }
    if (!Object.keys(patch).length) {
      showProblem(el, { problem: { detail: "Nothing changed." } });
      return false;
    }
    const saved = await api("PATCH", `/portfolios/${p.id}`, { body: patch });
    toast(`${saved.name} saved.`);
    return true;
  }

  function showForm(p) {
    if (!admin) return;
    const el = form(p);
    clear(editorBox, el);
    if (p) el.elements.name.focus();
  }

  function edit(p) {
    showForm(p);
    editorBox.scrollIntoView({ block: "nearest" });
  }

  // Who works `p`: its grants, newest first, each revoked after asking; admins grant it
  // to a person or a team while it is live.
  async function showGrants(p, { focus = true } = {}) {
    shown = p;
    const [people, teams] = await choices;
    const list = h("ul", { class: "plain grant-list" });
    const moreGrants = h("button", { type: "button", class: "more", hidden: true }, "More grants");
    const alert = h("div", { class: "form-alert", role: "alert" });
    const title = h("h2", { id: "grants-title", tabindex: -1 }, `Who works ${p.name}`);

    const reload = () => fill().catch((error) => clear(alert, error.message));
    async function fill(cursor) {
      const page = await api("GET", `/portfolios/${p.id}/grants`, { params: { page_size: 25, cursor } });
      if (!cursor) clear(list);
      for (const g of page.data) list.append(grantItem(g));
      if (!cursor && !page.data.length) list.append(h("li", { class: "muted" }, "Granted to no one: only admins work its accounts."));
      moreGrants.hidden = !page.next_cursor;
      moreGrants.onclick = () => fill(page.next_cursor).catch((error) => clear(alert, error.message));
    }

    function grantItem(g) {
      const who = g.user_id ? g.user_name || `${g.user_id.slice(0, 8)}…` : `Team ${g.team}`;
      return h("li", {},
        h("span", { class: "who-granted" }, who),
        h("small", { class: "muted" }, `${g.user_id ? "person" : "every member, now and later"} · granted ${when(g.granted_at)}`),
        admin ? confirmStep("Revoke", `Revoke ${who}'s grant of ${p.name}?`, "Yes, revoke", async () => {
          try {
            await api("DELETE", `/portfolios/${p.id}/grants/${g.id}`);
            toast(`${who} no longer works ${p.name}.`);
          } catch (error) {
            toast(error.message, { refusal: true });
          }
          await reload();
        }) : null);
    }

    // A grant form: `control` carries the API's field name (`user_id`, `team`).
    const grantForm = (heading, control, read) => {
      const el = h("form", { class: "grant-form", "aria-label": heading },
        h("h3", {}, heading),
        h("div", { class: "form-alert", role: "alert" }),
        control,
        h("button", { type: "submit" }, "Grant"));
      el.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = el.querySelector("button[type=submit]");
        button.disabled = true;
        try {
          const made = await api("POST", `/portfolios/${p.id}/grants`, { body: read(el.elements) });
          showProblem(el, null);
          el.reset();
          toast(`${made.user_name || `Team ${made.team}`} now works ${p.name}.`);
          await reload();
        } catch (error) {
          showProblem(el, error);
        } finally {
          button.disabled = false;
        }
      });
      return el;
    };

    let granting = null;
    if (admin && p.deleted_at) {
      granting = h("p", { class: "muted" }, "A deleted portfolio is granted to no one new until it is restored.");
    } else if (admin) {
      const person = select("user_id", [["", "Choose a person"], ...people.map((u) => [u.id, `${u.name} (${u.role})`])], "");
      const team = h("input", { name: "team", list: "portfolio-teams", autocomplete: "off" });
      granting = h("div", { class: "grant-forms" },
        grantForm("Grant to a person", field("Person", person), (els) => ({ user_id: els.user_id.value || null })),
        grantForm("Grant to a team", field("Team", team, "Every member of the team, present and future"), (els) => ({ team: els.team.value.trim() })),
        h("datalist", { id: "portfolio-teams" }, teams.map((t) => h("option", { value: t }))));
    }

    const rules = h("div", { class: "contact-rules" });
    clear(grantsBox,
      h("div", { class: "row-head" },
        title,
        h("button", { type: "button", onclick: () => { shown = null; grantsBox.hidden = true; } }, "Close")),
      alert,
      list,
      moreGrants,
      granting,
      rules);
    grantsBox.hidden = false;
    reload();
    showContactPolicy(rules, p, admin);
    if (focus) {
      grantsBox.scrollIntoView({ block: "nearest" });
      title.focus();
    }
  }

  const refused = (error) => clear(status, error.message);

  clear(
    main,
    h("h1", {}, "Portfolios"),
    h("p", { class: "muted" }, admin
      ? "The accounts each creditor client placed, worked under that placement's terms. Grants say who works them."
      : "The accounts each creditor client placed, and who works them. Administrators create and change portfolios."),
    h("div", { class: admin ? "columns wide-left" : "" },
      h("div", {},
        h("section", { class: "card", "aria-label": "Portfolios" },
          status,
          h("table", { class: "stacked portfolios" },
            h("caption", {}, admin ? "Portfolios, the deleted ones too" : "Portfolios"),
            h("thead", {}, h("tr", {}, ["Portfolio", "Client", "Placed", "Commission", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
            body),
          more),
        grantsBox),
      admin ? editorBox : null),
  );
  showForm();
  load().catch(refused);
}
