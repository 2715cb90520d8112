// Report pieces the dashboard, the payments screen and the operator's view share: SVG
// elements for charts, the collected chart, and report tables that say what each column
// means and download as CSV.

import { download, h, localDate, money } from "./dom.js";

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

// Exact sums of decimal amounts as the API writes them ("40.00"): as integers of the
// smallest unit, never as floats.
function units(text, digits) {
  const [whole, fraction = ""] = String(text).replace("-", "").split(".");
  const value = BigInt(whole + fraction.padEnd(digits, "0"));
  return String(text).startsWith("-") ? -value : value;
}

function decimal(value, digits) {
  const negative = value < 0n;
  const text = (negative ? -value : value).toString().padStart(digits + 1, "0");
  const out = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return negative ? `-${out}` : out;
}

function add(a, b, times) {
  const digits = Math.max(...[a, b].map((t) => (String(t).split(".")[1] || "").length));
  return decimal(units(a, digits) + BigInt(times) * units(b, digits), digits);
}

function tallyOf(list, value) {
  let entry = list.find((v) => v.value === value);
  if (!entry) {
    entry = { value, count: 0, sum: "0" };
    list.push(entry);
  }
  return entry;
}

// Applies the payment changes a `stats.updated` carries (docs/features/live-events.md)
// to `stats`, an answer of GET /payments/stats in the browser's zone: the collected
// series, today, this week and this month, the counts and sums by status and method,
// the failures and the success rate. Returns false when they cannot be applied (a
// currency the answer lacks) and the statistics must be read again.
export function applyPaymentChanges(stats, changes, today = localDate()) {
  const weekOf = (day) => {
    const date = new Date(`${day}T00:00:00Z`);
    date.setUTCDate(date.getUTCDate() - ((date.getUTCDay() + 6) % 7));
    return date.toISOString().slice(0, 10);
  };
  for (const change of changes) {
    const currency = stats.currencies.find((c) => c.currency === change.currency);
    if (!currency) return false;
    // A payment on an account an agent does not work comes as a summary, without its
    // method: the statistics are read again.
    if (!change.from && change.method == null) return false;
    const day = localDate(new Date(change.received_at));
    const completed = (change.to === "completed" ? 1 : 0) - (change.from === "completed" ? 1 : 0);
    if (completed) {
      const tallies = [
        [currency.today, day === today],
        [currency.this_week, weekOf(day) === weekOf(today)],
        [currency.this_month, day.slice(0, 7) === today.slice(0, 7)],
      ];
      for (const [tally, counts] of tallies) {
        if (counts) {
          tally.count += completed;
          tally.amount = add(tally.amount, change.amount, completed);
        }
      }
    }
    if (day < stats.from || day > stats.to) continue;
    const period = currency.series.filter((p) => p.date <= day).pop();
    if (period && completed) {
      period.count += completed;
      period.amount = add(period.amount, change.amount, completed);
    }
    if (change.from) {
      const left = tallyOf(currency.by_status, change.from);
      left.count -= 1;
      left.sum = add(left.sum, change.amount, -1);
    } else {
      const method = tallyOf(currency.by_method, change.method);
      method.count += 1;
      method.sum = add(method.sum, change.amount, 1);
    }
    const took = tallyOf(currency.by_status, change.to);
    took.count += 1;
    took.sum = add(took.sum, change.amount, 1);
    const count = (status) => currency.by_status.find((v) => v.value === status)?.count ?? 0;
    currency.failed_count = count("failed");
    const decided = count("completed") + count("failed");
    currency.success_rate = decided ? count("completed") / decided : null;
  }
  return true;
}
