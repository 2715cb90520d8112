// Report pieces the dashboard, the payments screen and the operator's view share: SVG
// elements for charts, the collected chart, and report tables that say what each column
// means and download as CSV.

import { download, h, money } from "./dom.js";

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

// A period of a series as a person names it: "day", "week", "month".
const PERIOD = { day: "day", week: "week", month: "month" };

// A bar chart of one currency's completed payments per period (a `/payments/stats`
// currency and its interval), drawn `width` units wide (the width it is shown at, so its
// labels are the page's size): the amount axis from zero to the largest period, the
// periods along the bottom, each bar's figures on hover, and the same periods as a table.
export function collectedChart(currency, interval, width) {
  const series = currency.series;
  const period = PERIOD[interval] || "day";
  const max = Math.max(1, ...series.map((d) => Number(d.amount)));
  const [height, left, bottom] = [200, 96, 22];
  const step = (width - left) / Math.max(series.length, 1);
  const y = (amount) => (Number(amount) / max) * (height - bottom - 10);
  const bars = series.map((d, i) => svg("rect", {
    x: left + i * step + 1, y: height - bottom - y(d.amount), width: Math.max(step - 2, 1), height: y(d.amount), class: "bar",
  }, svg("title", {}, `${d.date}: ${money(d.amount, currency.currency)} (${d.count})`)));
  const last = series.length - 1;
  const digits = (series[0]?.amount.split(".")[1] || "").length;
  const total = series.reduce((sum, d) => sum + Number(d.amount), 0);
  return h("figure", {},
    svg("svg", {
      viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img",
      "aria-label": `Collected per ${period} in ${currency.currency}, ${series[0]?.date ?? ""} to ${series[last]?.date ?? ""}: the most in a ${period} ${money(max.toFixed(digits), currency.currency)}, ${money(total.toFixed(digits), currency.currency)} in all`,
    },
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svg("line", { x1: left, y1: 6, x2: left, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 4, y: 14, class: "tick end" }, money(max.toFixed(digits), currency.currency)),
    svg("text", { x: left - 4, y: height - bottom, class: "tick end" }, "0"),
    svg("text", { x: left, y: height - 4, class: "tick" }, series[0]?.date ?? ""),
    svg("text", { x: width - 2, y: height - 4, class: "tick end" }, series[last]?.date ?? ""),
    ...bars),
    h("figcaption", {}, `Today ${money(currency.today.amount, currency.currency)} · this week ${money(currency.this_week.amount, currency.currency)} · this month ${money(currency.this_month.amount, currency.currency)}`),
    h("details", {},
      h("summary", {}, `Collected per ${period} in ${currency.currency} as a table`),
      table(`Collected per ${period} in ${currency.currency}`, [period === "day" ? "Day" : `First day of the ${period}`, "Days", "Collected", "Payments"],
        series.map((d) => [d.date, String(d.days), money(d.amount, currency.currency), String(d.count)]))));
}
