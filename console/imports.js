// Imports: drop a spreadsheet (or choose it), watch its progress live, read the summary
// (with the columns read into custom fields and those left out) and download the
// rejected rows to fix and upload again. Below, a zip of documents for many accounts at
// once: its progress live, then the files not kept and why.

import { api } from "./api.js";
import { clear, download, field, h, select, showProblem, when, words } from "./dom.js";
import { follow } from "./jobs.js";
import { definitions } from "./custom-fields.js";

const CUSTOM = "custom_fields.";

export function importsScreen(main) {
  const input = h("input", { type: "file", name: "file", accept: ".xlsx,.xls,.xlsb,.ods,.csv" });
  const chosen = h("p", { class: "muted", id: "chosen" }, "No file chosen.");
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone" },
    h("p", {}, "Drop a spreadsheet here (xlsx, xls, xlsb, ods or csv), or choose one:"),
    field("Spreadsheet", input),
    chosen,
  );
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Import progress" });
  const outcome = h("p", { role: "status", id: "import-status" });
  const summary = h("div", { id: "import-summary" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "import-title" },
    h("h1", { id: "import-title" }, "Import accounts"),
    h("div", { class: "form-alert", role: "alert" }),
    zone,
    field("Mode", select("mode", [["create", "Create new accounts"], ["upsert", "Create or update by account number"], ["dry_run", "Dry run: check only"]], "create")),
    field("Amounts written as", select("locale", [["", "1250.00 (no thousands separator)"], ["en-US", "1,250.00 (en-US, en-GB)"], ["de-DE", "1.250,00 (de-DE, es-ES, it-IT, nl-NL)"], ["fr-FR", "1 250,00 (fr-FR)"], ["de-CH", "1'250.00 (de-CH)"]], "")),
    h("button", { type: "submit", class: "primary" }, "Upload"),
    " ",
    h("button", {
      type: "button",
      onclick: async () => download(await (await api("GET", "/imports/template.xlsx", { raw: true })).blob(), "accounts-template.xlsx"),
    }, "Download the template"),
    progress,
    outcome,
    summary,
  );
  let dropped = null;
  input.addEventListener("change", () => {
    dropped = null;
    clear(chosen, input.files[0] ? `Chosen: ${input.files[0].name}` : "No file chosen.");
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    dropped = event.dataTransfer.files[0] || null;
    if (dropped) clear(chosen, `Dropped: ${dropped.name}`);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = dropped || input.files[0];
    if (!file) {
      showProblem(form, { problem: { detail: "Choose or drop a spreadsheet first." } });
      return;
    }
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("mode", form.elements.mode.value);
    if (form.elements.locale.value) body.append("locale", form.elements.locale.value);
    clear(summary);
    try {
      const job = await api("POST", "/imports", { form: body, headers: { "idempotency-key": crypto.randomUUID() } });
      showProblem(form, null);
      follow(job.id, progress, outcome, () => showSummary(job.id, summary).then(recent.load));
    } catch (error) {
      showProblem(form, error);
    }
  });

  const recent = recentImports();
  clear(main, form, documentsCard(), recent.section);
  input.focus();
  recent.load();
}

// Why a file of a zip was not kept, from the job's reason (`code: detail`), in words.
const NOT_KEPT = {
  not_found: "No account has this number, or it is not one you may work.",
  forbidden: "You do not work this account.",
  duplicate_document: "The account already holds this file.",
  unsupported_media_type: "Not a kind kept with accounts (PDF, image, Word, Excel, text, email).",
};

function notKept(error) {
  const [code, ...rest] = error.split(": ");
  return NOT_KEPT[code] || (rest.length ? rest.join(": ") : error);
}

async function showNotKept(id, box) {
  const page = await api("GET", `/jobs/${id}/failures?page_size=200`);
  if (!page.data.length) {
    clear(box, h("p", {}, "Every file was kept."));
    return;
  }
  clear(
    box,
    h("h3", {}, `${page.total} ${page.total === 1 ? "file was" : "files were"} not kept`),
    h("ul", { class: "plain not-kept" }, page.data.map((f) => h(
      "li",
      {},
      h("strong", {}, f.file),
      h("span", { class: "muted" }, ` · account ${f.account_number}`),
      h("br"),
      notKept(f.error),
    ))),
    page.next_cursor ? h("p", { class: "muted" }, `The first ${page.data.length} are listed.`) : null,
  );
}

// A zip of documents, each file kept with the account its name (or the manifest) gives.
function documentsCard() {
  const input = h("input", { type: "file", name: "file", accept: ".zip,application/zip" });
  const button = h("button", { type: "submit", class: "primary" }, "Upload zip");
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Document upload progress" });
  const outcome = h("p", { role: "status", id: "bulk-documents-status" });
  const result = h("div", { id: "bulk-documents-result" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "bulk-documents-title" },
    h("h2", { id: "bulk-documents-title" }, "Upload documents"),
    h("p", { class: "muted" }, "A zip whose files are named by account number (A-1001.pdf, or any file in a folder A-1001/), or listed in a manifest.csv with the columns file, account_number and name."),
    h("div", { class: "form-alert", role: "alert" }),
    field("Zip of documents", input),
    button,
    progress,
    outcome,
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = input.files[0];
    if (!file) {
      showProblem(form, { problem: { detail: "Choose a zip of documents first." } });
      return;
    }
    const body = new FormData();
    body.append("file", file, file.name);
    clear(result);
    button.disabled = true;
    try {
      const job = await api("POST", "/documents/bulk", { form: body });
      showProblem(form, null);
      follow(job.id, progress, outcome, () => showNotKept(job.id, result));
    } catch (error) {
      showProblem(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The columns read into custom fields ("Product → Product line (product)"), labelled by
// their definitions when these can be read.
async function customColumns(job) {
  const mapped = (job.columns || []).filter((c) => c.field?.startsWith(CUSTOM));
  if (!mapped.length) return null;
  const labels = new Map((await definitions().catch(() => [])).map((d) => [d.key, d.label]));
  return h("ul", { class: "plain", id: "import-custom-columns" }, mapped.map((c) => {
    const key = c.field.slice(CUSTOM.length);
    return h("li", {}, `${c.header} → ${labels.has(key) ? `${labels.get(key)} (${key})` : key}`);
  }));
}

async function showSummary(id, box) {
  const job = await api("GET", `/imports/${id}`);
  const custom = await customColumns(job);
  const unknown = job.unknown_columns || [];
  const result = job.result || {};
  const failed = result.failed ?? job.failed ?? 0;
  // A dry run wrote nothing: its counts say what the import would do.
  const dry = result.dry_run === true;
  const counts = dry
    ? [["Would create", result.would_create], ["Would update", result.would_update], ["Would be rejected", failed]]
    : [["Created", result.created], ["Updated", result.updated], ["Rejected", failed]];
  const ids = ["import-created", "import-updated", "import-failed"];
  clear(
    box,
    h("h2", {}, dry ? "Dry run: nothing was written" : "Summary"),
    h("dl", { class: "details" },
      h("dt", {}, "File"), h("dd", {}, `${job.file_name} (${job.format}, sheet ${job.sheet})`),
      h("dt", {}, "Status"), h("dd", {}, words(job.status)),
      counts.flatMap(([label, count], i) => [h("dt", {}, label), h("dd", { id: ids[i] }, String(count ?? 0))]),
      custom ? [h("dt", {}, "Into custom fields"), h("dd", {}, custom)] : null),
    unknown.length
      ? h("div", { class: "notice refused", id: "import-unknown-columns", role: "note" },
        h("strong", {}, `${unknown.length} column${unknown.length === 1 ? " was" : "s were"} not imported`),
        ": no built-in column or custom field has their name (an administrator can define a field with that key or label under Fields).",
        h("ul", {}, unknown.map((c) => h("li", {}, c))))
      : null,
    failed > 0
      ? h("button", {
        type: "button",
        onclick: async () => download(await (await api("GET", `/imports/${id}/errors.xlsx`, { raw: true })).blob(), `rejected-rows-${id.slice(0, 8)}.xlsx`),
      }, dry ? "Download the rows that would be rejected" : "Download rejected rows")
      : null,
  );
}

function recentImports() {
  const list = h("ul", { class: "plain timeline" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Older jobs");
  const section = h("section", { class: "card", "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "Recent jobs"), list, more);
  const load = async (cursor) => {
    const page = await api("GET", "/jobs", { params: { page_size: 10, cursor } });
    if (!cursor) clear(list);
    for (const job of page.data) {
      list.append(h("li", {}, h("strong", {}, words(job.kind)), ` ${words(job.status)}: ${job.succeeded ?? 0} succeeded, ${job.failed ?? 0} failed`, h("small", {}, when(job.created_at))));
    }
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  };
  return { section, load: () => load() };
}
