// Report pieces the dashboard and the operator's view share: SVG elements for charts, and
// report tables that say what each column means and download as CSV.

import { download, h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// A CSV field. A text a spreadsheet would run as a formula (=, +, -, @, tab, return first)
// is kept as text by a leading apostrophe: names and notes come from users.
export function csvField(value) {
  let text = String(value ?? "");
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll("\"", "\"\"")}"` : text;
}

// Rows of fields as CSV text, with the byte-order mark a spreadsheet needs to read UTF-8.
export function csv(rows) {
  return `\ufeff${rows.map((row) => row.map(csvField).join(",")).join("\r\n")}\r\n`;
}

const fileName = (caption) => `${caption.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "table"}.csv`;

// A report table. A head is its label, or [label, definition]: the definition shows on
// hover and describes the column to a screen reader. A cell is text or a node (a link);
// the CSV holds each cell's text. On a phone the table scrolls sideways inside itself, so
// it takes the focus (a keyboard scrolls it too).
export function table(caption, heads, rows, { csvName } = {}) {
  const headCells = heads.map((head) => {
    const [label, definition] = Array.isArray(head) ? head : [head];
    return h("th", { scope: "col", title: definition }, definition ? h("span", { class: "defined" }, label) : label);
  });
  const bodyRows = rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))));
  const labels = heads.map((head) => (Array.isArray(head) ? head[0] : head));
  const save = () => {
    const text = csv([labels, ...bodyRows.map((row) => [...row.cells].map((cell) => cell.textContent))]);
    download(new Blob([text], { type: "text/csv;charset=utf-8" }), csvName || fileName(caption));
  };
  return h("div", { class: "report-table" },
    h("table", { class: "report", tabindex: "0" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headCells)),
      h("tbody", {}, bodyRows)),
    rows.length ? h("button", { type: "button", class: "link csv", onclick: save, "aria-label": `Download CSV: ${caption}` }, "Download CSV") : null);
}
