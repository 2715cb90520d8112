// Accounts: search as you type, filters with facet counts (custom fields and portfolios
// too), sort, endless scroll on the cursor, keyboard moves (arrows, Enter), exports and
// bulk updates of the current search.

import { ACCOUNT_STATUSES, api, assignees, atLeast, currentUser, learnNames, nameOf, query } from "./api.js";
import { clear, counted, debounce, download, field, h, highlighted, money, select, showProblem, sums, words } from "./dom.js";
import { live } from "./live.js";
import { follow } from "./jobs.js";
import { definitions, portfolios, valueControl } from "./custom-fields.js";

const BUCKETS = ["current", "1-29", "30-59", "60-89", "90-119", "120+"];
const SORTS = [
  ["", "Relevance / recently updated"],
  ["-balance", "Balance, highest first"],
  ["balance", "Balance, lowest first"],
  ["due_date", "Due date, oldest first"],
  ["next_action", "Next action, soonest first"],
  ["name", "Name, A to Z"],
  ["-queue_score", "Queue score"],
];
const MULTI = ["status", "bucket", "tags"];
const FACETS = "status,bucket,assigned_agent_id,tags";
// A custom field's range filter: `cf.<key>.gte`, `cf.<key>.lte` (and the API's gt, lt,
// exists); any other `cf.<key>` parameter lists values, as does `portfolio_id`.
const CF_RANGE = /^cf\.[a-z][a-z0-9_]*\.(gte|gt|lte|lt|exists)$/;
const listKey = (key) => key === "portfolio_id" || (key.startsWith("cf.") && !CF_RANGE.test(key));

// The current search as list parameters, read from and written to the URL's fragment so
// a reload, a bookmark, an export and a bulk update all see the same search.
function readState(params) {
  const state = { q: params.get("q") || "", sort: params.get("sort") || "" };
  for (const key of MULTI) state[key] = params.getAll(key);
  for (const key of ["assigned_agent_id", "min_balance", "max_balance"]) state[key] = params.get(key) || "";
  for (const key of new Set(params.keys())) {
    if (listKey(key)) state[key] = params.getAll(key);
    else if (CF_RANGE.test(key)) state[key] = params.get(key);
  }
  // Agents search their own accounts, or everyone's when a debtor of another agent calls.
  if (currentUser().role === "agent") state.assigned_agent_id = state.assigned_agent_id === EVERYONE ? EVERYONE : "me";
  return state;
}

// An agent's search over every account: kept in the fragment, not sent to the API.
const EVERYONE = "everyone";

// The state as the fragment keeps it.
function stateParams(state) {
  const params = {};
  for (const [key, value] of Object.entries(state)) {
    if (Array.isArray(value) ? value.length : value) params[key] = value;
  }
  return params;
}

// The state as the API's list parameters: a custom field's or the portfolio's values
// as one comma list (`cf.product=card,loan`).
function listParams(state) {
  const params = stateParams(state);
  if (params.assigned_agent_id === EVERYONE) delete params.assigned_agent_id;
  for (const key of Object.keys(params)) if (listKey(key)) params[key] = params[key].join(",");
  return params;
}

// Custom field types filtered by their values (facets); number, money and date by a range.
const FACETED = new Set(["list", "multi_list", "boolean", "text"]);
const SORTED = { number: ["lowest first", "highest first"], money: ["lowest first", "highest first"], date: ["oldest first", "newest first"] };

export function searchScreen(main, _args, params) {
  const state = readState(params);
  let controller = null;
  let cursor = null;
  let total = 0;
  let totalIsLowerBound = false;
  // The custom fields lists filter on, and the portfolios' names (null: the caller may
  // not read them); the first search waits for both.
  let filterable = [];
  let portfolioNames = null;
  // What the server answered when asked for the custom field and portfolio facets (a
  // server without them refuses the request): the search goes on without them.
  let extraRefused = null;

  const box = h("input", {
    id: "q",
    name: "q",
    type: "search",
    value: state.q,
    placeholder: "Name, phone digits, email, account number…",
    autocomplete: "off",
    "aria-controls": "results",
    dataset: { shortcut: "search" },
  });
  const sort = select("sort", SORTS, state.sort, { id: "sort" });
  const summary = h("p", { class: "muted", id: "result-count", role: "status" });
  const everyone = h("div", { class: "everyone" });
  const list = h("ul", { class: "results plain", id: "results", "aria-label": "Accounts found" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "More accounts");
  const facets = h("form", { class: "facets card", "aria-label": "Filters" });
  // Above the results, so they stay in reach however long the list grows.
  const tools = h("section", { class: "card toolbar", "aria-label": "Actions on this search", hidden: true });

  const update = () => {
    const text = new URLSearchParams();
    for (const [key, value] of Object.entries(stateParams(state))) {
      for (const v of Array.isArray(value) ? value : [value]) text.append(key, v);
    }
    history.replaceState(null, "", `#/search?${text}`);
    // The old search's cursor must not page the new one.
    cursor = null;
    more.hidden = true;
    load();
  };

  // The facets asked for: the built-in ones, the filterable custom fields' value lists
  // and the portfolio.
  const facetsWanted = () => {
    if (extraRefused) return FACETS;
    const extra = filterable.filter((d) => FACETED.has(d.type)).map((d) => `cf.${d.key}`);
    return [FACETS, ...extra, "portfolio_id"].join(",");
  };

  // `retried`: this is the same search again without the custom field and portfolio facets.
  async function load(next, retried = false) {
    if (controller) controller.abort();
    controller = new AbortController();
    const params = { ...listParams(state), page_size: 25, facets: facetsWanted() };
    if (next) params.cursor = next;
    let page;
    try {
      page = await api("GET", "/accounts", { params, signal: controller.signal });
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 400 && params.facets !== FACETS) {
        extraRefused = error.message;
        load(next, true);
        return;
      }
      // Refused without those facets too: the search itself was refused, not them.
      if (retried) extraRefused = null;
      clear(summary, error.message);
      return;
    }
    const answered = performance.now();
    if (!next) {
      clear(list);
      renderFacets(page.facets);
    }
    total = page.total;
    totalIsLowerBound = page.total_is_lower_bound;
    for (const account of page.data) list.append(row(account));
    // The agents' names, for the agent filter and the rows' agent column (managers).
    const current = controller;
    const agents = [...(next ? [] : page.facets.assigned_agent_id || []).map((f) => String(f.value)), ...page.data.map((a) => a.assigned_agent_id)];
    learnNames(agents).then((learned) => {
      if (!learned || current !== controller) return;
      if (!next) renderFacets(page.facets);
      for (const span of list.querySelectorAll("span.agent[data-agent]")) clear(span, nameOf(span.dataset.agent));
    }).catch(() => {});
    cursor = page.next_cursor;
    more.hidden = !cursor;
    // Nothing to export or change in an empty search.
    tools.hidden = !total && !totalIsLowerBound;
    clear(summary, `${counted(page)} account${total === 1 && !totalIsLowerBound ? "" : "s"}${state.q ? ` matching “${state.q}”` : ""}`);
    clear(everyone, everyoneHint());
    if (!next) measurePaint(new URL(`/api/v1/accounts${query(params)}`, location.href).href, answered);
  }

  function renderFacets(found) {
    const group = (key, title, values, label) => {
      const counts = new Map((found[key] || []).map((f) => [String(f.value), f]));
      const shown = values ?? [...new Set([...state[key], ...counts.keys()])];
      if (!shown.length) return null;
      return h(
        "fieldset",
        {},
        h("legend", {}, title),
        shown.map((value) => {
          const facet = counts.get(value);
          const input = h("input", {
            type: "checkbox",
            name: key,
            value,
            id: `${key}-${value.replace(/[^\w-]/g, "_")}`.replace(".", "-"),
            checked: state[key].includes(value),
          });
          input.addEventListener("change", () => {
            state[key] = input.checked ? [...state[key], value] : state[key].filter((v) => v !== value);
            update();
          });
          return h(
            "div",
            { class: "check" },
            input,
            h("label", { for: input.id }, label ? label(value) : words(value), " ", h("span", { class: "count" }, facet ? facet.count : 0)),
            facet?.sums?.length ? h("small", { class: "muted" }, sums(facet.sums)) : null,
          );
        }),
      );
    };
    const agent = atLeast("manager")
      ? field(
        "Agent",
        select(
          "assigned_agent_id",
          [
            ["", "Anyone"],
            ["me", "Me"],
            ["unassigned", "Unassigned"],
            ...(found.assigned_agent_id || [])
              .filter((f) => f.value !== "unassigned")
              .map((f) => [String(f.value), `${nameOf(String(f.value))} (${f.count})`]),
          ],
          state.assigned_agent_id,
          { onchange: (e) => { state.assigned_agent_id = e.target.value; update(); } },
        ),
      )
      : currentUser().role === "agent" ? scope() : null;
    const balance = (key, label) =>
      field(label, h("input", {
        name: key,
        inputmode: "decimal",
        value: state[key],
        onchange: (e) => { state[key] = e.target.value.trim(); update(); },
      }));
    // A custom field's bounds, labelled with the field ("Risk score from").
    const range = (d) => {
      const [low, high] = d.type === "date" ? ["from", "to"] : ["at least", "at most"];
      const bound = (suffix, word) => {
        const key = `cf.${d.key}.${suffix}`;
        const input = h("input", {
          name: key,
          type: d.type === "date" ? "date" : "text",
          inputmode: d.type === "date" ? undefined : "decimal",
          value: state[key] || "",
          onchange: (e) => { state[key] = e.target.value.trim(); update(); },
        });
        return field(`${d.label} ${word}`, input);
      };
      return h("fieldset", { class: "range" }, h("legend", {}, d.label), bound("gte", low), bound("lte", high));
    };
    // A server that refused the custom field facets would refuse their filters too: only
    // the filters set (from the address) are offered then, to be taken off.
    const set = (d) => [`cf.${d.key}`, `cf.${d.key}.gte`, `cf.${d.key}.lte`].some((key) => state[key]?.length);
    const custom = filterable.filter((d) => !extraRefused || set(d)).map((d) => {
      const key = `cf.${d.key}`;
      if (!FACETED.has(d.type)) return range(d);
      state[key] ??= [];
      if (d.type === "boolean") return group(key, d.label, ["true", "false"], (v) => (v === "true" ? "Yes" : "No"));
      return group(key, d.label);
    });
    state.portfolio_id ??= [];
    const portfolioLabel = (id) => (id === "none" ? "No portfolio" : portfolioNames?.get(id) ?? `Portfolio ${id.slice(0, 8)}…`);
    clear(
      facets,
      h("h2", {}, "Filters"),
      extraRefused
        ? h("details", { class: "notice refused" },
          h("summary", {}, "Custom field and portfolio filters are not available here."),
          h("p", {}, extraRefused))
        : null,
      group("status", "Status", ACCOUNT_STATUSES.filter((s) => state.status.includes(s) || (found.status || []).some((f) => f.value === s))),
      group("bucket", "Days past due", BUCKETS),
      agent,
      group("portfolio_id", "Portfolio", undefined, portfolioLabel),
      group("tags", "Tags"),
      h("fieldset", {}, h("legend", {}, "Balance"), balance("min_balance", "At least"), balance("max_balance", "At most")),
      custom,
    );
  }

  // The sorts the custom fields add (number, money and date fields marked sortable).
  function addSorts(defs) {
    for (const d of defs.filter((d) => d.sortable && SORTED[d.type])) {
      const [up, down] = SORTED[d.type];
      sort.append(
        h("option", { value: `cf.${d.key}`, selected: state.sort === `cf.${d.key}` }, `${d.label}, ${up}`),
        h("option", { value: `-cf.${d.key}`, selected: state.sort === `-cf.${d.key}` }, `${d.label}, ${down}`),
      );
    }
  }

  // An agent's choice between their own accounts and everyone's (a debtor who calls in
  // about an account another agent works).
  function scope() {
    return field(
      "Accounts",
      select("scope", [["me", "Mine"], [EVERYONE, "Everyone's (a caller)"]], state.assigned_agent_id, {
        onchange: (e) => { state.assigned_agent_id = e.target.value; update(); },
      }),
      "Everyone's shows a summary of accounts you do not work.",
    );
  }

  // When none of an agent's own accounts match, the caller may be another agent's debtor.
  function everyoneHint() {
    if (total || !state.q || state.assigned_agent_id !== "me") return null;
    return h("button", {
      type: "button",
      class: "link",
      onclick: () => { state.assigned_agent_id = EVERYONE; update(); },
    }, "None of your accounts match: search everyone's accounts for this caller");
  }

  function row(account) {
    const name = account.highlight?.debtor_name ? highlighted(account.highlight.debtor_name) : account.debtor_name;
    const matched = Object.entries(account.highlight || {})
      .filter(([key]) => key !== "debtor_name")
      .map(([key, value]) => h("span", { class: "matched" }, `${words(key)}: `, highlighted(value)));
    return h(
      "li",
      {},
      h(
        "a",
        { href: `#/account/${account.id}`, class: atLeast("manager") ? "result with-agent" : "result" },
        h("span", { class: "name" }, name),
        h("span", { class: "muted" }, account.account_number),
        h("span", { class: "balance" }, money(account.current_balance, account.currency)),
        h("span", { class: `badge ${account.status}` }, words(account.status)),
        h("span", { class: "muted" }, `${account.days_past_due ?? 0} days · ${account.bucket ?? "current"}`),
        atLeast("manager")
          ? h("span", { class: "agent", dataset: account.assigned_agent_id ? { agent: account.assigned_agent_id } : {} }, account.assigned_agent_id ? nameOf(account.assigned_agent_id) : "Unassigned")
          : null,
        account.access === "summary"
          ? h("span", { class: "badge summary" }, account.assigned_agent_id ? "Another agent's" : "Unassigned")
          : null,
        matched.length ? h("span", { class: "matches" }, matched) : null,
      ),
    );
  }

  // Arrow keys move between the search box and the results; Enter follows the link.
  main.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const links = [...list.querySelectorAll("a.result")];
    const at = links.indexOf(document.activeElement);
    if (document.activeElement === box && event.key === "ArrowDown" && links.length) {
      event.preventDefault();
      links[0].focus();
    } else if (at >= 0) {
      event.preventDefault();
      if (event.key === "ArrowDown" && at + 1 < links.length) links[at + 1].focus();
      else if (event.key === "ArrowDown" && cursor) more.click();
      else if (event.key === "ArrowUp") (at === 0 ? box : links[at - 1]).focus();
    }
  });

  box.addEventListener("input", debounce(() => { state.q = box.value.trim(); update(); }, 200));
  sort.addEventListener("change", () => { state.sort = sort.value; update(); });
  more.addEventListener("click", () => cursor && load(cursor));
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && cursor) load(cursor);
  });
  observer.observe(more);

  // The definitions and the portfolios (null: the caller may not read them), read once
  // for the filters, the sorts and the bulk update.
  const loaded = Promise.all([definitions().catch(() => []), portfolios().catch(() => null)]);
  tools.append(exportTools(() => listParams(state)));
  if (atLeast("agent")) tools.append(bulkTools(() => listParams(state), exactTotal, loaded));

  clear(
    main,
    h("div", { class: "search-layout" },
      facets,
      h("section", { class: "search-main", "aria-labelledby": "search-title" },
        h("h1", { id: "search-title" }, "Accounts"),
        h("div", { class: "search-bar" },
          field("Search", box, "Type to search; ↓ moves into the results, Enter opens, / comes back here, ? lists every shortcut."),
          field("Sort", sort)),
        summary,
        everyone,
        tools,
        list,
        more)),
  );
  box.focus();
  // The first search waits for the definitions (a few milliseconds), so its facets are
  // the custom fields' too; without them it goes on with the built-in ones.
  let closed = false;
  loaded.then(([defs, folios]) => {
    if (closed) return;
    filterable = defs.filter((d) => d.filterable);
    portfolioNames = folios && new Map(folios.map((p) => [p.id, p.name]));
    addSorts(defs);
    load();
  });

  // How many accounts a bulk update acts on: the page's total, counted to the end when
  // the page's stopped at its bound.
  async function exactTotal() {
    if (!totalIsLowerBound) return total;
    const page = await api("GET", "/accounts", { params: { ...listParams(state), page_size: 0, exact_total: true } });
    return page.total;
  }

  // A changed account elsewhere changes this list: refresh the first page quietly.
  const refresh = debounce(() => load(), 1000);
  live.addEventListener("payment.created", refresh);
  return () => {
    closed = true;
    observer.disconnect();
    controller?.abort();
    live.removeEventListener("payment.created", refresh);
  };
}

// The "search-paint" performance measure: from the search answer's last byte (its
// resource timing; the moment the script had it parsed when the browser kept no entry)
// to just after the frame that painted the results; its detail names the answer's URL.
// One is kept at a time.
function measurePaint(url, answered) {
  requestAnimationFrame(() => setTimeout(() => {
    const entry = performance.getEntriesByName(url, "resource").at(-1);
    // Entries would pile up to the browser's buffer limit and then stop being kept.
    performance.clearResourceTimings();
    performance.clearMeasures("search-paint");
    performance.measure("search-paint", {
      start: entry ? entry.responseEnd : answered,
      end: performance.now(),
      detail: { from: entry ? "response_end" : "parsed", url },
    });
  }, 0));
}

function exportTools(current) {
  const alert = h("div", { class: "form-alert", role: "alert" });
  const run = async (format) => {
    try {
      const response = await api("GET", "/accounts/export", { params: { ...current(), format }, raw: true });
      download(await response.blob(), `accounts.${format}`);
      clear(alert);
    } catch (error) {
      clear(alert, error.message);
    }
  };
  return h(
    "div",
    { class: "export", role: "group", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Export this search"),
    h("button", { type: "button", onclick: () => run("csv") }, "Download CSV"),
    h("button", { type: "button", onclick: () => run("xlsx") }, "Download XLSX"),
    alert,
  );
}

// The contact restrictions a bulk update sets or lifts, as the API names them.
const FLAGS = [["do_not_call", "Do not call"], ["do_not_email", "Do not email"], ["cease_communication", "Cease communication"]];

// Bulk update by the current search's filter; progress comes live and by polling, and the
// accounts it could not change are listed with why. `loaded` gives the custom field
// definitions and the live portfolios (null for a role that may not read them). Inputs
// carry the API's field names (`patch.due_date`), so a refusal shows beside its input.
function bulkTools(current, count, loaded) {
  const manager = atLeast("manager");
  const assignTo = select("patch.assigned_agent_id", [["", "Leave as is"]], "");
  if (manager) {
    assignees()
      .then((people) => assignTo.append(...people.map((p) => h("option", { value: p.id }, `${p.name} (${words(p.role)})`))))
      .catch(() => {});
  }
  // Setting a restriction is everyone's; lifting one is for managers and admins.
  const flags = FLAGS.map(([name, label]) => field(label, select(`patch.${name}`,
    [["", "Leave as is"], ["true", "Set"], ...(manager ? [["false", "Lift"]] : [])], "")));
  const dueDate = h("input", { name: "patch.due_date", type: "date", disabled: true });
  const dueField = field("New due date", dueDate);
  dueField.hidden = true;
  const dueChange = select("due_date_change", [["", "Leave as is"], ["set", "Set a date"], ["clear", "Clear it"]], "", {
    onchange: () => {
      dueField.hidden = dueChange.value !== "set";
      dueDate.disabled = dueField.hidden;
    },
  });
  const portfolio = select("patch.portfolio_id", [["", "Leave as is"], ["none", "None: take them out"]], "");
  const custom = customFieldChanges(loaded);
  loaded.then(([, live]) => {
    if (live) portfolio.append(...live.map((p) => h("option", { value: p.id }, p.name)));
  });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Bulk update progress" });
  const outcome = h("p", { role: "status" });
  const failures = h("ul", { class: "failures", "aria-label": "Accounts not changed" });
  const form = h(
    "form",
    { "aria-labelledby": "bulk-title" },
    h("div", { class: "form-alert", role: "alert" }),
    h("div", { class: "bulk-fields" },
      field("Add tags", h("input", { name: "patch.tags_add" }), "Comma separated"),
      field("Remove tags", h("input", { name: "patch.tags_remove" }), "Comma separated"),
      field("Set status", select("patch.status", [["", "Leave as is"], ...ACCOUNT_STATUSES.map((s) => [s, words(s)])], "")),
      manager ? field("Assign to", assignTo) : null,
      flags,
      manager ? field("Due date", dueChange) : null,
      manager ? dueField : null,
      manager ? field("Portfolio", portfolio, "Each account is checked against its new portfolio's required fields") : null),
    custom.element,
    h("button", { type: "submit" }, "Update every account of this search"),
    progress,
    outcome,
    failures,
  );
  const tags = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const patch = {};
    const value = (name) => form.elements.namedItem(`patch.${name}`)?.value ?? "";
    for (const name of ["tags_add", "tags_remove"]) if (tags(value(name)).length) patch[name] = tags(value(name));
    for (const name of ["status", "assigned_agent_id"]) if (value(name)) patch[name] = value(name);
    for (const [name] of FLAGS) if (value(name)) patch[name] = value(name) === "true";
    if (dueChange.value) patch.due_date = dueChange.value === "set" ? dueDate.value || null : null;
    if (value("portfolio_id")) patch.portfolio_id = value("portfolio_id") === "none" ? null : value("portfolio_id");
    const values = custom.read();
    if (values.missing.length) {
      showProblem(form, { problem: { detail: "Give each custom field chosen a value, or mark it to be cleared.", errors: values.missing } });
      return;
    }
    if (Object.keys(values.set).length) patch.custom_fields = values.set;
    const filter = { ...current() };
    for (const key of MULTI) if (filter[key] && !Array.isArray(filter[key])) filter[key] = [filter[key]];
    try {
      if (!window.confirm(`Update ${await count()} accounts?`)) return;
      const job = await api("POST", "/accounts/bulk-update", {
        body: { filter, patch },
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      showProblem(form, null);
      clear(failures);
      follow(job.id, progress, outcome, (ended) => ended.failed && listFailures(ended.id, failures));
    } catch (error) {
      showProblem(form, error);
    }
  });
  // Folded until asked for, so it neither pushes the results down nor invites a change
  // of thousands of accounts by accident.
  return h(
    "details",
    { class: "bulk" },
    h("summary", {}, h("h2", { id: "bulk-title" }, "Bulk update this search")),
    form,
  );
}

// The custom fields a bulk update sets or clears: a field is picked from the
// definitions, then given a value with its type's control or marked to be cleared.
// `read()` gives `{set, missing}`: the keys and their wire values (null clears), and a
// field error for each picked field left without a value.
function customFieldChanges(loaded) {
  const picked = new Map();
  const chosen = h("div", { class: "bulk-custom" });
  const picker = select("cf_pick", [["", "Choose a field"]], "");
  const element = h("fieldset", { class: "bulk-cf", hidden: true },
    h("legend", {}, "Custom fields"),
    chosen,
    field("Set or clear a custom field", picker));
  let defs = [];
  loaded.then(([found]) => {
    defs = found;
    element.hidden = !defs.length;
    picker.append(...defs.map((d) => h("option", { value: d.key }, d.label)));
  });
  picker.addEventListener("change", () => {
    const definition = defs.find((d) => d.key === picker.value);
    picker.value = "";
    if (!definition || picked.has(definition.key)) return;
    picker.querySelector(`option[value="${CSS.escape(definition.key)}"]`).disabled = true;
    const control = valueControl(definition, null, "each account's currency");
    const clearing = h("input", { type: "checkbox", id: `bulk-clear-${definition.key}` });
    clearing.addEventListener("change", () => { control.input.disabled = clearing.checked; });
    const item = h("div", { class: "bulk-cf-item" },
      control.element,
      h("div", { class: "check" }, clearing, h("label", { for: clearing.id }, `Clear ${definition.label} instead`)),
      h("button", {
        type: "button",
        class: "link",
        "aria-label": `Don't change ${definition.label}`,
        onclick: () => {
          item.remove();
          picked.delete(definition.key);
          picker.querySelector(`option[value="${CSS.escape(definition.key)}"]`).disabled = false;
          picker.focus();
        },
      }, "Don't change"));
    picked.set(definition.key, { control, clearing });
    chosen.append(item);
    control.input.focus();
  });
  const read = () => {
    const set = {};
    const missing = [];
    for (const [key, { control, clearing }] of picked) {
      const value = clearing.checked ? null : control.read();
      if (value === null && !clearing.checked) missing.push({ field: `custom_fields.${key}`, message: "give a value, or mark it to be cleared" });
      else set[key] = value;
    }
    return { set, missing };
  };
  return { element, read };
}

// The first accounts a finished job could not change, each a link with the reason.
async function listFailures(jobId, list) {
  const page = await api("GET", `/jobs/${jobId}/failures`, { params: { page_size: 10 } }).catch(() => null);
  if (!page) return;
  clear(list, page.data.map((f) => h("li", {},
    h("a", { href: `#/account/${f.account_id}` }, `Account ${f.account_id.slice(0, 8)}…`), `: ${f.error}`)),
  page.total > page.data.length ? h("li", { class: "muted" }, `and ${page.total - page.data.length} more`) : null);
}
