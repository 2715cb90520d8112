// What every browser test file shares: the server bin/e2e started, sign-in, the browser,
// accessibility and screenshot checks, workbook reading, and the seeded test order.

import { before, after, describe, test as register } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { inflateRawSync } from "node:zlib";
import { chromium } from "playwright-core";

export const BASE = process.env.BASE_URL;

export const PASSWORD = process.env.E2E_PASSWORD;
assert.ok(BASE && PASSWORD, "run through bin/e2e (BASE_URL and E2E_PASSWORD)");
const SHOTS = new URL("./screenshots/", import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
export const email = (role) => `${role}@e2e.example.com`;

// The tests run in an order drawn from E2E_SEED (bin/e2e picks and prints one), so a test
// that leans on what another left behind fails on some seed, which then reproduces it.
const SEED = Number(process.env.E2E_SEED ?? 1);

function shuffled(items, seed) {
  let state = seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// Formats an amount as the console's money() does: "1234.50", "USD" -> "1,234.50 USD".
export const shown = (amount, currency) => {
  const [whole, fraction] = String(amount).replace("-", "").split(".");
  const sign = String(amount).startsWith("-") ? "−" : "";
  return `${sign}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}${fraction ? "." + fraction : ""} ${currency}`;
};

let browser;
const problems = [];

// A fresh browser context of the given size; the desktop by default.
export const newContext = (options = {}) => browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, ...options });

// The role of each access token login() took. bin/e2e gives tokens 10 s, which a test's
// own request can outlive on a loaded machine: one of these that expired is taken again
// for its role and the request sent again. The console's own refreshes are what the
// tests check; a test's setup requests are not.
const rolesOfTokens = new Map();

// `send(bearer)` with `token`, and again with a new token for its role if it expired; the
// response and its text.
async function sendAs(token, send) {
  let response = await send(token);
  let text = await response.text();
  if (response.status === 401 && rolesOfTokens.has(token) && JSON.parse(text).code === "token_expired") {
    response = await send(await tokenOf(rolesOfTokens.get(token)));
    text = await response.text();
  }
  return { response, text };
}

export async function api(token, method, path, body) {
  const { response, text } = await sendAs(token, (bearer) => fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { "content-type": "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
  const json = text ? JSON.parse(text) : null;
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return json;
}

// Uploads `bytes` as the document `name` of `account`; the document.
export async function upload(token, account, name, bytes) {
  const { response, text } = await sendAs(token, (bearer) => {
    const form = new FormData();
    form.append("file", new Blob([bytes]), name);
    return fetch(`${BASE}/api/v1/accounts/${account}/documents`, { method: "POST", headers: { authorization: `Bearer ${bearer}` }, body: form });
  });
  assert.equal(response.status, 201, `upload ${name}: ${text}`);
  return JSON.parse(text);
}

export async function login(role) {
  const session = await api(null, "POST", "/auth/login", { email: email(role), password: PASSWORD });
  rolesOfTokens.set(session.access_token, role);
  return session;
}
// A fresh access token: bin/e2e gives them 10 s.
export const tokenOf = async (role) => (await login(role)).access_token;

// A zone where it is now between 09:00 and 19:00, so the contact guard's calling window
// is open whatever time the tests run.
export function daytimeZone() {
  const zones = ["America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland"];
  return zones.find((zone) => {
    const hour = Number(new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", hourCycle: "h23" }).format(new Date()));
    return hour >= 9 && hour < 19;
  });
}

// A fresh browser context (its own sessionStorage) with a page that records what the
// console must never do: script errors and policy violations.
export async function open(role, prepare, options) {
  const context = await newContext(options);
  const page = await context.newPage();
  if (prepare) await prepare(page);
  page.on("pageerror", (error) => problems.push(`${role}: page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) problems.push(`${role}: console: ${message.text()}`);
  });
  await page.goto(BASE);
  if (role) await signIn(page, role);
  return page;
}

export async function signIn(page, role) {
  await page.getByLabel("Email").fill(email(role));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

// The header's navigation, unfolded first on a phone (where it sits behind "Menu" with
// "My account").
export async function screens(page) {
  const menu = page.getByRole("button", { name: "Menu" });
  if (await menu.isVisible() && (await menu.getAttribute("aria-expanded")) === "false") await menu.click();
  return page.getByRole("navigation", { name: "Screens" });
}

// axe-core over the page as it stands: no serious or critical violation.
export async function accessible(page, screen) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `${screen}: accessibility violations`,
  );
}

export const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

// A page whose live socket reaches no server: nothing it shows is refreshed by events, as
// on a screen someone left open while others changed the account.
export const offline = (role) => open(role, (page) => page.routeWebSocket(/\/api\/v1\/ws$/, () => {}));

// The files of a zip archive (an xlsx workbook is one), read from its central directory.
export function unzip(bytes) {
  const end = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, "a zip archive ends with its central directory");
  const files = new Map();
  let at = bytes.readUInt32LE(end + 16);
  for (let i = 0; i < bytes.readUInt16LE(end + 10); i += 1) {
    assert.equal(bytes.readUInt32LE(at), 0x02014b50, "a central directory entry");
    const method = bytes.readUInt16LE(at + 10);
    const size = bytes.readUInt32LE(at + 20);
    const nameLength = bytes.readUInt16LE(at + 28);
    const local = bytes.readUInt32LE(at + 42);
    const name = bytes.toString("utf8", at + 46, at + 46 + nameLength);
    const start = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    const data = bytes.subarray(start, start + size);
    files.set(name, (method === 8 ? inflateRawSync(data) : data).toString("utf8"));
    at += 46 + nameLength + bytes.readUInt16LE(at + 30) + bytes.readUInt16LE(at + 32);
  }
  return files;
}

// The text of each cell of a sheet's rows, by column (empty cells are left out of the
// XML), shared strings resolved.
export function sheetRows(files, sheet) {
  const shared = [...(files.get("xl/sharedStrings.xml") || "").matchAll(/<si>([\s\S]*?)<\/si>/g)]
    .map(([, item]) => [...item.matchAll(/<t[^>]*>([^<]*)<\/t>/g)].map(([, t]) => t).join(""));
  const column = (letters) => [...letters].reduce((n, letter) => n * 26 + letter.charCodeAt(0) - 64, 0) - 1;
  return [...files.get(sheet).matchAll(/<row[^>]*>([\s\S]*?)<\/row>/g)].map(([, row]) => {
    const cells = [];
    for (const [, attrs, body = ""] of row.matchAll(/<c ([^>]*?)(?:\/>|>([\s\S]*?)<\/c>)/g)) {
      const value = body.match(/<v>([^<]*)<\/v>/)?.[1];
      cells[column(attrs.match(/r="([A-Z]+)/)[1])] = /t="s"/.test(attrs) ? shared[Number(value)] : body.match(/<t[^>]*>([^<]*)<\/t>/)?.[1] ?? value ?? "";
    }
    return Array.from(cells, (cell) => cell ?? "");
  });
}

// A phone-sized viewport: what agents on a phone see.
export const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

// Registers a file's tests under `name` in the order drawn from E2E_SEED (bin/e2e picks
// and prints one), so a test that leans on what another left behind fails on some seed,
// which then reproduces it. `setup` runs once the browser is up; the last test checks that
// nothing broke in the browser. A test's `options` are node's (`{skip: "why"}`).
export function suite(name, setup, define) {
  const cases = [];
  define((title, fn, options = {}) => cases.push([title, fn, options]));
  before(async () => {
    // Playwright gives the browser a fresh, empty profile directory of its own.
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
    });
    await setup();
  });
  after(async () => {
    await browser?.close();
  });
  describe(name, () => {
    for (const [title, fn, options] of shuffled(cases, SEED)) register(title, options, fn);
    register("nothing broke in the browser: no script error, no policy violation", () => {
      assert.deepEqual(problems, []);
    });
  });
}

// No sideways scrolling of the page itself (tables scroll inside themselves).
export async function fits(page, screen) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${screen}: the page scrolls sideways (${scroll} px wide in ${width})`);
}

// The rows of the table captioned `caption`, each as its cells' text.
export const rowsOf = (page, caption) => page.locator("table", { hasText: caption }).locator("tbody tr")
  .evaluateAll((rows) => rows.map((row) => [...row.cells].map((cell) => cell.textContent)));
