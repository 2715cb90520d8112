// An account's documents (issue 50): the files kept with it, newest first, a page at a
// time; each downloaded or previewed through the API with the console's own token (never
// in a URL). Whoever works the account uploads (a file chosen or dropped on the panel);
// managers and admins delete, asked twice. A document is never rendered as markup:
// images show in an <img> from a blob URL, text as text in a <pre>, PDFs in the browser's
// viewer in a new tab; other kinds are downloaded.

import { api, atLeast, learnNames, nameOf, works } from "./api.js";
import { clear, confirmStep, download, field, h, showProblem, toast, when } from "./dom.js";

// The kinds the API keeps (its `accepted`), as a person names them.
const KINDS = {
  pdf: "PDF",
  png: "PNG image",
  jpeg: "JPEG image",
  heic: "HEIC image",
  tiff: "TIFF image",
  docx: "Word document",
  xlsx: "Excel workbook",
  eml: "email message",
  text: "plain text",
};
const kindName = (kind) => KINDS[kind] || kind;

// What the browser shows itself; HEIC and TIFF it does not.
const IMAGES = new Set(["png", "jpeg"]);
const TEXTS = new Set(["text", "eml"]);
const PREVIEW_BYTES = 64 * 1024;
// How long a PDF's tab may take to read its blob before the URL is revoked.
const PDF_URL_LIFETIME_MS = 60000;

// 512 B, 1.5 KiB, 25 MiB.
export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number(value.toFixed(value < 10 ? 1 : 0))} ${units[unit]}`;
}

const content = (doc, headers) => api("GET", `/documents/${doc.id}/content`, { raw: true, headers });

// What processing read from a document, in words: its pages and whether its words are
// searchable, that it is still being read, or why it could not be.
export function processingNote(doc) {
  const processing = doc.processing || { status: "pending" };
  if (processing.status === "pending") return "being read";
  if (processing.status === "failed") return `could not be read: ${processing.error}`;
  const parts = [];
  if (processing.page_count != null) parts.push(processing.page_count === 1 ? "1 page" : `${processing.page_count} pages`);
  if (processing.text_chars > 0) parts.push("words searchable");
  return parts.join(" · ");
}

// Reading a document takes a moment after its upload: asked again this often, this
// many times, while it is pending.
const PENDING_RECHECK_MS = 1500;
const PENDING_RECHECKS = 8;

// The thumbnail processing made of an image, from a blob URL revoked once drawn.
async function thumbnailOf(doc) {
  const blob = await (await api("GET", `/documents/${doc.id}/thumbnail`, { raw: true })).blob();
  const url = URL.createObjectURL(blob);
  const img = h("img", { class: "thumbnail", alt: "", width: 64 });
  const revoke = () => URL.revokeObjectURL(url);
  img.addEventListener("load", revoke, { once: true });
  img.addEventListener("error", revoke, { once: true });
  img.src = url;
  return img;
}

// The section listing `account`'s documents; `load()` fills it.
export function documentsSection(account) {
  const section = h("section", { class: "card documents", "aria-labelledby": "documents-title" });
  // Where the focus goes when the document it was on is deleted.
  const title = h("h2", { id: "documents-title", tabindex: "-1" }, "Documents");
  const count = h("span", { class: "muted", id: "documents-count" });
  const list = h("ul", { class: "plain document-list" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "More documents");
  const known = new Map();
  let total = 0;
  const mayUpload = works(account);
  const mayDelete = atLeast("manager");

  const counted = () => clear(count, total === 1 ? "1 document" : `${total} documents`);

  function showEmpty() {
    if (!list.children.length) list.append(h("li", { class: "muted empty" }, "No documents yet."));
  }

  // One document with its actions; a refusal of one shows beside it.
  function item(doc) {
    known.set(doc.id, doc);
    const alert = h("div", { class: "form-alert", role: "alert" });
    const preview = h("div", { class: "preview", hidden: true });
    const buttons = h("div", { class: "item-buttons" });
    const form = h("form", { class: "item-actions", "aria-label": doc.name }, alert, buttons);
    const note = h("small", { class: "muted processing" }, processingNote(doc));
    const picture = h("div", { class: "document-thumbnail" });
    const li = h("li", { dataset: { id: doc.id } },
      picture,
      h("div", { class: "document-body" },
        h("div", { class: "document-head" }, h("strong", { class: "document-name" }, doc.name), " ", h("span", { class: "badge" }, kindName(doc.kind))),
        h("small", { class: "muted" }, `${fileSize(doc.size)} · uploaded by ${doc.uploaded_by ? nameOf(doc.uploaded_by) : "—"} · ${when(doc.created_at)}`),
        note,
        form,
        preview));
    const showThumbnail = (current) => {
      if (current.processing?.has_thumbnail) thumbnailOf(current).then((img) => clear(picture, img)).catch(() => false);
    };
    showThumbnail(doc);
    // A document still being read is asked for again until it is read (or fails).
    (async () => {
      let current = doc;
      for (let tries = 0; current.processing?.status === "pending" && tries < PENDING_RECHECKS; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, PENDING_RECHECK_MS));
        if (!li.isConnected) return;
        current = await api("GET", `/documents/${doc.id}`).catch(() => current);
      }
      clear(note, processingNote(current));
      showThumbnail(current === doc ? { processing: {} } : current);
    })();
    const attempt = async (request) => {
      try {
        await request();
        showProblem(form, null);
      } catch (error) {
        showProblem(form, error);
      }
    };
    buttons.append(h("button", {
      type: "button",
      onclick: () => attempt(async () => download(await (await content(doc)).blob(), doc.file_name)),
    }, "Download"));
    if (IMAGES.has(doc.kind) || TEXTS.has(doc.kind)) {
      const toggle = h("button", { type: "button", "aria-expanded": "false" }, "Preview");
      toggle.addEventListener("click", () => attempt(async () => {
        if (!preview.hidden) {
          closePreview(preview, toggle);
          return;
        }
        toggle.disabled = true;
        try {
          await showPreview(doc, preview);
          toggle.setAttribute("aria-expanded", "true");
          clear(toggle, "Hide preview");
        } finally {
          toggle.disabled = false;
        }
      }));
      buttons.append(toggle);
    } else if (doc.kind === "pdf") {
      buttons.append(h("button", { type: "button", onclick: () => attempt(() => openPdf(doc)) }, "Open PDF"));
    }
    if (mayDelete) {
      buttons.append(confirmStep("Delete", `Delete ${doc.name}? It leaves the account's documents.`, "Yes, delete", () => attempt(async () => {
        await api("DELETE", `/documents/${doc.id}`);
        li.remove();
        known.delete(doc.id);
        total -= 1;
        counted();
        showEmpty();
        title.focus();
        toast(`${doc.name} deleted.`);
      })));
    }
    return li;
  }

  async function load(cursor) {
    const page = await api("GET", `/accounts/${account.id}/documents`, { params: { page_size: 20, cursor } });
    await learnNames(page.data.map((doc) => doc.uploaded_by)).catch(() => false);
    if (!cursor) clear(list);
    for (const doc of page.data) list.append(item(doc));
    total = page.total;
    counted();
    showEmpty();
    more.hidden = !page.next_cursor;
    more.onclick = async () => {
      more.disabled = true;
      try {
        await load(page.next_cursor);
      } catch (error) {
        toast(error.message, { refusal: true });
      } finally {
        more.disabled = false;
      }
    };
  }

  clear(section,
    h("div", { class: "row-head" }, title, count),
    mayUpload ? uploadForm() : null,
    list,
    more);

  // The form that sends one file (chosen, or dropped anywhere on the panel); the
  // button is off while it is sent. A refusal says what the API's problem says.
  function uploadForm() {
    const input = h("input", { type: "file", name: "file" });
    const button = h("button", { type: "submit", class: "primary" }, "Upload");
    const form = h("form", { class: "upload", "aria-label": "Upload a document" },
      h("div", { class: "form-alert", role: "alert" }),
      field("File", input, "Or drop it on this panel. PDF, images, Word, Excel, plain text or email."),
      button);
    const send = async (file) => {
      if (!file) {
        showProblem(form, { problem: { detail: "Choose or drop a file first." } });
        return;
      }
      const body = new FormData();
      body.append("file", file, file.name);
      button.disabled = true;
      try {
        const doc = await api("POST", `/accounts/${account.id}/documents`, { form: body });
        showProblem(form, null);
        form.reset();
        await learnNames([doc.uploaded_by]).catch(() => false);
        list.querySelector(".empty")?.remove();
        list.prepend(item(doc));
        total += 1;
        counted();
        toast(`${doc.name} uploaded.`);
      } catch (error) {
        showProblem(form, error);
        const lines = await refusalLines(error);
        form.querySelector(".form-alert").append(...lines.map((line) => h("div", {}, line)));
      } finally {
        button.disabled = false;
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(input.files[0]);
    });
    section.addEventListener("dragover", (event) => {
      event.preventDefault();
      section.classList.add("over");
    });
    section.addEventListener("dragleave", (event) => {
      if (!section.contains(event.relatedTarget)) section.classList.remove("over");
    });
    section.addEventListener("drop", (event) => {
      event.preventDefault();
      section.classList.remove("over");
      if (!button.disabled) send(event.dataTransfer.files[0]);
    });
    return form;
  }

  // What a refusal's problem adds to its detail: the kinds kept, the size limit, or the
  // document that already holds the same file.
  async function refusalLines(error) {
    const problem = error.problem || {};
    if (problem.accepted) return [`Accepted kinds: ${problem.accepted.map(kindName).join(", ")}.`];
    if (problem.limit_bytes) return [`The limit is ${fileSize(problem.limit_bytes)} a file.`];
    if (problem.duplicate_of) {
      const original = known.get(problem.duplicate_of) || (await api("GET", `/documents/${problem.duplicate_of}`).catch(() => null));
      if (original) return [`It is the same file as “${original.name}”, uploaded ${when(original.created_at)}.`];
    }
    return [];
  }

  // A list that cannot be read says why in its place.
  const first = () => load().catch((error) => clear(list, h("li", { role: "alert" }, error.message)));
  return { section, load: first };
}

function closePreview(preview, toggle) {
  clear(preview);
  preview.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  clear(toggle, "Preview");
}

// Fills `preview` with `doc`: an image from a blob URL revoked once it is drawn (or
// fails to be), or the first 64 KiB of a text, as text.
async function showPreview(doc, preview) {
  if (IMAGES.has(doc.kind)) {
    const blob = await (await content(doc)).blob();
    const url = URL.createObjectURL(blob);
    const img = h("img", { alt: `Preview of ${doc.name}` });
    const revoke = () => URL.revokeObjectURL(url);
    img.addEventListener("load", revoke, { once: true });
    img.addEventListener("error", revoke, { once: true });
    img.src = url;
    clear(preview, img);
  } else {
    const response = await content(doc, { range: `bytes=0-${PREVIEW_BYTES - 1}` });
    const bytes = new Uint8Array(await response.arrayBuffer()).subarray(0, PREVIEW_BYTES);
    // `stream` holds back a character the 64 KiB cut in two instead of mangling it.
    const text = new TextDecoder("utf-8").decode(bytes, { stream: true });
    clear(preview,
      // A region, so the keyboard can reach and scroll a long text.
      h("pre", { tabindex: "0", role: "region", "aria-label": `Text of ${doc.name}` }, text),
      doc.size > PREVIEW_BYTES ? h("p", { class: "muted" }, `The first ${fileSize(PREVIEW_BYTES)} of ${fileSize(doc.size)}; download it for the rest.`) : null);
  }
  preview.hidden = false;
}

// A PDF in the browser's own viewer, in a new tab. The tab is opened at the click (a
// tab opened after the download would be blocked as a pop-up) and cut from this page.
// The blob is typed as a PDF whatever the response said, and the blob's document keeps
// the console's policy (no inline script), so nothing in it runs as a page.
async function openPdf(doc) {
  const tab = window.open("", "_blank");
  if (!tab) throw new Error("The browser blocked the new tab; allow pop-ups for the console or download the PDF.");
  tab.opener = null;
  try {
    const bytes = await (await content(doc)).arrayBuffer();
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/pdf" }));
    tab.location.href = url;
    setTimeout(() => URL.revokeObjectURL(url), PDF_URL_LIFETIME_MS);
  } catch (error) {
    tab.close();
    throw error;
  }
}
