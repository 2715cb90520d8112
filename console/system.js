// The operator's view (admins): this server process's memory, CPU, database pool, the
// sync's backlog and requests, charted live from GET /admin/system every few seconds
// while the screen is open, each chart with its axes and a table of the same figures;
// the statement families by time taken; the job queue.

import { api } from "./api.js";
import { clear, h, words } from "./dom.js";
import { svg, table } from "./report.js";

// Seconds between two reads, and how many reads the charts keep (ten minutes).
const EVERY = 5;
const KEPT = 120;

const MIB = 1024 * 1024;
const fixed = (value, digits = 1) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));
const uptime = (seconds) => `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// What each chart draws from two reads in a row (`before` may be null for the first).
const SERIES = [
  { key: "rss", title: "Memory", unit: "MiB", value: (v) => v.process.rss_bytes / MIB },
  {
    key: "cpu", title: "CPU", unit: "% of a core",
    value: (v, before, dt) => (before && dt > 0 ? ((v.process.cpu_seconds - before.process.cpu_seconds) / dt) * 100 : null),
  },
  { key: "pool", title: "Database connections in use", unit: "of the pool", value: (v) => v.pool.in_use, max: (v) => v.pool.max },
  { key: "outbox", title: "Changes waiting to be indexed", unit: "changes", value: (v) => v.sync.outbox_depth },
  {
    key: "requests", title: "Requests", unit: "per second",
    value: (v, before, dt) => (before && dt > 0 ? (v.counted.http_requests - before.counted.http_requests) / dt : null),
  },
];

// A line chart of `points` ({t, y}) with a y axis from 0 to its top and a time axis.
function lineChart(series, points, top) {
  const width = 360;
  const height = 150;
  const left = 44;
  const bottom = 20;
  const shown = points.filter((p) => p.y !== null);
  // At least 1, so that an idle figure (no waiting changes) draws along its axis.
  const ceiling = Math.max(top ?? 0, ...shown.map((p) => p.y), 1);
  const first = points.length ? points[0].t : 0;
  const span = Math.max((points.length ? points[points.length - 1].t : 0) - first, 1);
  const x = (t) => left + ((t - first) / span) * (width - left - 4);
  const y = (value) => height - bottom - (value / ceiling) * (height - bottom - 8);
  const path = shown.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
  const latest = shown.length ? shown[shown.length - 1].y : null;
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart line", role: "img",
    "aria-label": `${series.title}, ${series.unit}: now ${fixed(latest)}, the most ${fixed(ceiling)}` },
  svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
  svg("line", { x1: left, y1: 4, x2: left, y2: height - bottom, class: "axis" }),
  svg("text", { x: left - 4, y: 12, class: "tick end" }, fixed(ceiling)),
  svg("text", { x: left - 4, y: height - bottom, class: "tick end" }, "0"),
  svg("text", { x: left, y: height - 4, class: "tick" }, points.length ? clock(first) : ""),
  svg("text", { x: width - 2, y: height - 4, class: "tick end" }, points.length ? clock(points[points.length - 1].t) : ""),
  path ? svg("path", { d: path, class: "trace" }) : svg("text", { x: width / 2, y: height / 2, class: "tick middle" }, "waiting for a second read"));
}

export function systemScreen(main) {
  const reads = [];
  const charts = h("div", { class: "system-charts" });
  const figures = h("div");
  const status = h("p", { class: "muted", role: "status" }, "Reading…");
  let timer = null;
  let stopped = false;

  clear(main,
    h("h1", {}, "System"),
    h("p", { class: "lede" }, `This server process, read every ${EVERY} seconds while this screen is open (the last ten minutes are charted). Each process of a deployment answers for itself.`),
    status,
    h("section", { class: "card", "aria-labelledby": "system-charts-title" },
      h("h2", { id: "system-charts-title" }, "Live"),
      charts),
    figures);

  function draw() {
    const points = Object.fromEntries(SERIES.map((s) => [s.key, []]));
    reads.forEach((read, i) => {
      const before = i ? reads[i - 1] : null;
      const dt = before ? (read.t - before.t) / 1000 : 0;
      for (const s of SERIES) points[s.key].push({ t: read.t, y: s.value(read.view, before?.view, dt) });
    });
    const latest = reads[reads.length - 1].view;
    clear(charts, SERIES.map((s) => h("figure", {},
      h("figcaption", {}, `${s.title} (${s.unit})`),
      lineChart(s, points[s.key], s.max ? s.max(latest) : undefined))));
    const now = SERIES.map((s) => {
      const values = points[s.key].map((p) => p.y).filter((y) => y !== null);
      return [s.title, s.unit, fixed(values[values.length - 1]), fixed(values.length ? Math.max(...values) : null)];
    });
    const families = latest.queries.families.slice(0, 20).map((f) => [
      f.family, String(f.count), fixed(f.total_seconds, 2), String(f.recent), fixed(f.p50_ms, 2), fixed(f.p95_ms, 2), fixed(f.p99_ms, 2), fixed(f.max_ms, 2),
    ]);
    clear(figures,
      h("section", { class: "card" },
        table("The charted figures, now and the most in the last ten minutes", ["Figure", "Unit", "Now", "Most"], now),
        table("The process", ["Up", "Resident memory", "Peak memory", "CPU time", "Threads"], [[
          uptime(latest.uptime_seconds), `${fixed(latest.process.rss_bytes / MIB)} MiB`, `${fixed(latest.process.peak_rss_bytes / MIB)} MiB`,
          `${fixed(latest.process.cpu_seconds)} s`, String(latest.process.threads),
        ]])),
      h("section", { class: "card" },
        latest.queries.timed
          ? table("Database statements by family, the most time first (percentiles over the last one to two minutes, in ms)",
            ["Family", "Statements", "Seconds in all", "Recent", "p50", "p95", "p99", "Slowest"], families)
          : h("p", { class: "muted" }, "Statements are not timed here (QUERY_TIMING=false).")),
      h("section", { class: "card" },
        table("Database pool: connections, and the waits for one (ms, over the last one to two minutes)",
          ["Open", "Idle", "In use", "Limit", "Waits", "p50", "p99", "Longest"], [[
            String(latest.pool.open), String(latest.pool.idle), String(latest.pool.in_use), String(latest.pool.max),
            String(latest.pool.waits.count), fixed(latest.pool.waits.p50_ms, 2), fixed(latest.pool.waits.p99_ms, 2), fixed(latest.pool.waits.max_ms, 2),
          ]])),
      h("section", { class: "card" },
        table("Sync and search", ["Waiting changes", "Oldest (s)", "Lag p50 (ms)", "Lag p99 (ms)", "Search"], [[
          String(latest.sync.outbox_depth), fixed(latest.sync.oldest_change_seconds), latest.sync.lag_p50_ms ?? "—", latest.sync.lag_p99_ms ?? "—", latest.sync.search,
        ]]),
        table("Search indices", ["Of", "Index", "Documents", "Deleted", "Segments", "Size"], latest.sync.indices.map((i) => [
          words(i.entity), i.index, String(i.documents), String(i.deleted_documents), String(i.segments), `${fixed(i.bytes / MIB)} MiB`,
        ])),
        table("Jobs waiting", ["Kind", "Queued"], latest.jobs.map((j) => [words(j.kind), String(j.queued)])),
        table("Counted since the start", ["Requests", "Answered 5xx", "Live sockets", "Refused (429)"], [[
          String(latest.counted.http_requests), String(latest.counted.http_server_errors), String(latest.counted.ws_connections),
          Object.entries(latest.counted.rate_limited).map(([k, n]) => `${k}: ${n}`).join(", ") || "none",
        ]])));
  }

  async function read() {
    try {
      const view = await api("GET", "/admin/system");
      reads.push({ t: Date.now(), view });
      if (reads.length > KEPT) reads.shift();
      status.textContent = `Read at ${clock(reads[reads.length - 1].t)}.`;
      draw();
    } catch (error) {
      status.textContent = `Could not read the system view: ${error.problem?.detail || error.message}`;
    }
    if (!stopped) timer = setTimeout(read, EVERY * 1000);
  }
  read();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
