// Issue 50 in the browser: the Documents panel of the account screen. An agent uploads
// an image and a text to their account, sees the image's thumbnail and the text read
// (then finds the account by a word of the text), previews both (the image from a blob URL, the
// text as text), downloads one, is refused an executable and a duplicate beside the
// form, and opens a PDF in the browser's viewer; a manager deletes a document, asked
// twice; a viewer reads the list with nothing to upload or delete, and pages through a
// long one; a manager uploads a zip of documents for several accounts from the imports
// screen and reads which files were not kept, and why. At a phone's width and a
// desktop's.

import assert from "node:assert/strict";
import { crc32, deflateSync } from "node:zlib";
import { BASE, PHONE, accessible, api, login, open, shot, suite, upload } from "./harness.js";

const run = Date.now().toString(36);
const ids = {};

// A real PNG (stripes, 48×32), so the browser has something to draw.
function png(width = 48, height = 32) {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    rows.push(0);
    for (let x = 0; x < width; x += 1) rows.push(...(Math.floor(x / 8) % 2 ? [29, 78, 216] : [253, 230, 138]));
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.from(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const PNG = png();
// Over a KiB, so its size is shown in KiB.
const TEXT = Buffer.from(`Payment of 40.00 USD received ${run}.\n<b>Not bold</b> — thanks, José.\n${"Paid in full. ".repeat(90)}\n`, "utf8");
// As the console writes a size: 512 B, 1.5 KiB.
const sized = (bytes) => (bytes < 1024 ? `${bytes} B` : `${Number((bytes / 1024).toFixed(1))} KiB`);
// A Windows executable's header: neither of the kinds kept, nor text (it holds NULs).
const EXE = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(62), Buffer.from("This program cannot be run in DOS mode.")]);
const PDF = Buffer.from(`%PDF-1.4
1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj
trailer<</Root 1 0 R>>
%%EOF
`);

// A zip of `files` (name → bytes), stored uncompressed with UTF-8 names, as archivers
// write one (APPNOTE 6.3.10, sections 4.3.7, 4.3.12 and 4.3.16).
function zip(files) {
  const DOS_DATE = ((2026 - 1980) << 9) | (11 << 5) | 27;
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, data] of Object.entries(files)) {
    const bytes = Buffer.from(name, "utf8");
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(bytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(bytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, bytes, data);
    centrals.push(central, bytes);
    offset += local.length + bytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

// No sideways scrolling, and the panel inside the screen.
async function fits(page, screen) {
  const { scroll, width, panel } = await page.evaluate(() => ({
    scroll: document.scrollingElement.scrollWidth,
    width: window.innerWidth,
    panel: document.querySelector(".documents").getBoundingClientRect().right,
  }));
  assert.ok(scroll <= width, `${screen}: the page scrolls sideways (${scroll} px wide in ${width})`);
  assert.ok(panel <= width, `${screen}: the documents panel ends at ${panel} px in ${width}`);
}

async function openAccount(page, id) {
  await page.goto(`${BASE}/#/account/${id}`);
  const panel = page.getByRole("region", { name: "Documents", exact: true });
  await panel.locator("#documents-count").filter({ hasText: /document/ }).waitFor();
  return panel;
}

const row = (panel, name) => panel.locator(".document-list li", { has: panel.page().locator(".document-name", { hasText: new RegExp(`^${name.replace(/\./g, "\\.")}$`) }) });

async function setup() {
  const manager = await login("manager");
  const agent = await login("agent");
  ids.agent = agent.user.id;
  const account = (name) => api(manager.access_token, "POST", "/accounts?wait_for=indexed", {
    debtor_name: `${name} ${run}`, original_balance: "640.00", currency: "USD", assigned_agent_id: agent.user.id,
  });
  ids.uploads = (await account("Dora Documentwell")).id;
  ids.deletes = (await account("Delia Deletewright")).id;
  ids.reads = (await account("Vera Viewerby")).id;
  ids.pdf = (await account("Penny Pdfton")).id;
  ids.kept = (await upload(agent.access_token, ids.deletes, "kept-letter.txt", Buffer.from(`kept ${run}\n`))).id;
  ids.doomed = (await upload(agent.access_token, ids.deletes, "old-statement.png", PNG)).id;
  await upload(agent.access_token, ids.reads, "dispute-letter.txt", Buffer.from(`I dispute this ${run}.\n`));
  await upload(agent.access_token, ids.pdf, "signed-plan.pdf", PDF);
  // Named by a zip's files.
  for (const name of ["Zelda Zipfield", "Zeno Zipworth"]) {
    const created = await account(name);
    (ids.zipped ||= []).push({ id: created.id, number: created.account_number });
  }
  // One more than a page.
  ids.many = (await account("Manfred Manypages")).id;
  for (let n = 1; n <= 21; n += 1) await upload(agent.access_token, ids.many, `note-${n}.txt`, Buffer.from(`note ${n} ${run}\n`));
}

suite("an account's documents", setup, (test) => {
  test("an agent uploads, previews and downloads documents, and is refused an executable and a duplicate beside the form", async () => {
    // Which blob URLs the console revokes.
    const page = await open("agent", (p) => p.addInitScript(() => {
      window.revoked = [];
      const revoke = URL.revokeObjectURL.bind(URL);
      URL.revokeObjectURL = (url) => {
        window.revoked.push(url);
        revoke(url);
      };
    }));
    const panel = await openAccount(page, ids.uploads);
    await panel.getByText("No documents yet.").waitFor();
    const form = panel.getByRole("form", { name: "Upload a document" });
    const button = form.getByRole("button", { name: "Upload" });

    // The first upload is held at the network until the test has seen the button off.
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await page.route(`**/api/v1/accounts/${ids.uploads}/documents`, async (route) => {
      if (route.request().method() === "POST") await held;
      await route.continue();
    });
    await form.getByLabel("File").setInputFiles({ name: "receipt.png", mimeType: "image/png", buffer: PNG });
    await button.click();
    await page.waitForFunction(() => document.querySelector(".upload button[type=submit]").disabled);
    release();
    await page.getByText("receipt.png uploaded.").waitFor();
    assert.equal(await button.isDisabled(), false, "the button is back once the upload is answered");
    await page.unroute(`**/api/v1/accounts/${ids.uploads}/documents`);
    await form.getByLabel("File").setInputFiles({ name: "letter.txt", mimeType: "text/plain", buffer: TEXT });
    await button.click();
    await page.getByText("letter.txt uploaded.").waitFor();

    const listed = await api(await (await login("agent")).access_token, "GET", `/accounts/${ids.uploads}/documents`);
    assert.deepEqual(listed.data.map((d) => [d.name, d.kind, d.size]), [["letter.txt", "text", TEXT.length], ["receipt.png", "png", PNG.length]]);
    await panel.locator("#documents-count", { hasText: "2 documents" }).waitFor();
    assert.deepEqual(await panel.locator(".document-name").allTextContents(), ["letter.txt", "receipt.png"], "newest first");
    const image = row(panel, "receipt.png");
    assert.match(await image.innerText(), new RegExp(`PNG image[\\s\\S]*${sized(PNG.length)} · uploaded by E2E Agent · `));
    assert.match(await row(panel, "letter.txt").innerText(), new RegExp(`plain text[\\s\\S]*${sized(TEXT.length).replace(".", "\\.")} · uploaded by E2E Agent`));
    assert.ok(TEXT.length > 1024 && PNG.length < 1024, "one size in KiB, one in bytes");

    // Processing read both: the image's thumbnail beside it (from a blob URL, revoked once
    // drawn), the text's words searchable.
    const thumbnail = image.locator("img.thumbnail");
    await thumbnail.waitFor();
    const drawnThumbnail = await thumbnail.evaluate((el) => new Promise((resolve) => {
      const done = () => resolve({ width: el.naturalWidth, src: el.src });
      if (el.complete && el.naturalWidth) done();
      else el.addEventListener("load", done, { once: true });
    }));
    assert.equal(drawnThumbnail.width, 48, "a small image's thumbnail keeps its size");
    await page.waitForFunction((src) => window.revoked.includes(src), drawnThumbnail.src);
    await row(panel, "letter.txt").locator(".processing", { hasText: "words searchable" }).waitFor();

    // The image from a blob URL, drawn, and the URL revoked once it is.
    await image.getByRole("button", { name: "Preview" }).click();
    const img = image.getByRole("img", { name: "Preview of receipt.png" });
    await img.waitFor();
    const drawn = await img.evaluate((el) => new Promise((resolve) => {
      const done = () => resolve({ width: el.naturalWidth, src: el.src });
      if (el.complete) done();
      else el.addEventListener("load", done, { once: true });
    }));
    assert.equal(drawn.width, 48, "the image is drawn");
    assert.match(drawn.src, /^blob:/);
    await page.waitForFunction((src) => window.revoked.includes(src), drawn.src);
    assert.equal(await image.getByRole("button", { name: "Hide preview" }).getAttribute("aria-expanded"), "true");

    // The text as text: the markup in it is characters, not an element.
    const letter = row(panel, "letter.txt");
    await letter.getByRole("button", { name: "Preview" }).click();
    const pre = letter.locator(".preview pre");
    await pre.waitFor();
    assert.equal(await pre.textContent(), TEXT.toString("utf8"));
    assert.equal(await letter.locator(".preview b").count(), 0, "no markup from a document");

    // The download: the API's file name and the same bytes.
    const [file] = await Promise.all([page.waitForEvent("download"), letter.getByRole("button", { name: "Download" }).click()]);
    assert.equal(file.suggestedFilename(), "letter.txt");
    assert.deepEqual(Buffer.concat(await (await file.createReadStream()).toArray()), TEXT);

    // Refusals beside the form: the kinds kept (415), the document holding the same file (409).
    const alert = form.locator(".form-alert");
    await form.getByLabel("File").setInputFiles({ name: "setup.exe", mimeType: "application/octet-stream", buffer: EXE });
    await button.click();
    await alert.getByText(/not one of the kinds kept/).waitFor();
    assert.match(await alert.innerText(),
      /Accepted kinds: PDF, PNG image, JPEG image, HEIC image, TIFF image, Word document, Excel workbook, plain text, email message\./);
    await form.getByLabel("File").setInputFiles({ name: "receipt-copy.png", mimeType: "image/png", buffer: PNG });
    await button.click();
    await alert.getByText(/It is the same file as “receipt\.png”, uploaded /).waitFor();
    assert.doesNotMatch(await alert.innerText(), /Accepted kinds/, "the earlier refusal is gone");
    const after = await api(await (await login("agent")).access_token, "GET", `/accounts/${ids.uploads}/documents`);
    assert.equal(after.total, 2, "nothing refused was kept");
    assert.equal(await panel.locator(".document-list li").count(), 2);
    await accessible(page, "documents (desktop)");
    await fits(page, "documents (desktop)");
    // The upload's toast, fixed over the page, gone before the picture.
    await page.locator("#toast:empty").waitFor({ state: "attached", timeout: 10000 });
    await shot(page, "documents-desktop");
    await page.context().close();

    const phone = await open("agent", null, PHONE);
    const small = await openAccount(phone, ids.uploads);
    const phoneImage = row(small, "receipt.png");
    await phoneImage.getByRole("button", { name: "Preview" }).click();
    await phoneImage.getByRole("img", { name: "Preview of receipt.png" }).waitFor();
    await row(small, "letter.txt").getByRole("button", { name: "Preview" }).click();
    await row(small, "letter.txt").locator(".preview pre").waitFor();
    await fits(phone, "documents (phone)");
    await accessible(phone, "documents (phone)");
    await shot(phone, "documents-phone");

    // A word only the letter holds finds its account in the search.
    await phone.goto(`${BASE}/#/search`);
    await phone.getByRole("searchbox", { name: "Search" }).fill(`received ${run}`);
    // The typed search's answer replaces the list shown before it: one result, hers.
    await phone.waitForFunction(() => document.querySelectorAll("#results a.result").length === 1);
    assert.match(await phone.locator("#results a.result").innerText(), /Dora Documentwell/);
    await shot(phone, "documents-search-phone");
    await phone.context().close();
  });

  test("an agent opens a PDF in the browser's viewer in a new tab", async () => {
    const page = await open("agent");
    const panel = await openAccount(page, ids.pdf);
    const [tab] = await Promise.all([
      page.context().waitForEvent("page"),
      row(panel, "signed-plan.pdf").getByRole("button", { name: "Open PDF" }).click(),
    ]);
    await tab.waitForURL(/^blob:/);
    await tab.waitForLoadState();
    assert.equal(await tab.evaluate(() => document.contentType), "application/pdf");
    assert.equal(await tab.evaluate(() => window.opener), null, "the tab is cut from the console");
    await page.context().close();
  });

  test("a manager deletes a document, asked twice, and it leaves the list", async () => {
    const page = await open("manager");
    const panel = await openAccount(page, ids.deletes);
    const doomed = row(panel, "old-statement.png");
    assert.match(await doomed.innerText(), /uploaded by E2E Agent/, "a manager sees the uploader by name");
    await doomed.getByRole("button", { name: "Delete" }).click();
    const no = doomed.getByRole("button", { name: "No, keep it" });
    await no.click();
    await doomed.getByRole("button", { name: "Delete" }).click();
    const yes = doomed.getByRole("button", { name: "Yes, delete" });
    assert.equal(await yes.evaluate((el) => el === document.activeElement), true, "the second button takes the focus");
    assert.match(await doomed.getByRole("group").innerText(), /Delete old-statement\.png\?/);
    await yes.click();
    await page.getByText("old-statement.png deleted.").waitFor();
    await doomed.waitFor({ state: "detached" });
    assert.equal(await panel.getByRole("heading", { name: "Documents" }).evaluate((el) => el === document.activeElement), true, "the focus goes to the panel, not lost");
    await panel.locator("#documents-count", { hasText: /^1 document$/ }).waitFor();
    assert.deepEqual(await panel.locator(".document-name").allTextContents(), ["kept-letter.txt"]);
    const token = (await login("manager")).access_token;
    const gone = await fetch(`${BASE}/api/v1/documents/${ids.doomed}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(gone.status, 404, "the API answers the deleted document 404");
    const left = await api(token, "GET", `/accounts/${ids.deletes}/documents`);
    assert.deepEqual(left.data.map((d) => d.id), [ids.kept]);
    await accessible(page, "documents, a manager");
    await page.context().close();
  });

  test("a viewer reads the list with nothing to upload or delete", async () => {
    for (const options of [undefined, PHONE]) {
      const page = await open("viewer", null, options);
      const panel = await openAccount(page, ids.reads);
      const letter = row(panel, "dispute-letter.txt");
      await letter.waitFor();
      assert.equal(await panel.getByRole("form", { name: "Upload a document" }).count(), 0, "no upload for a viewer");
      assert.equal(await panel.getByLabel("File").count(), 0);
      assert.equal(await panel.getByRole("button", { name: "Delete" }).count(), 0, "no delete for a viewer");
      await letter.getByRole("button", { name: "Preview" }).click();
      assert.equal(await letter.locator(".preview pre").textContent(), `I dispute this ${run}.\n`);
      await letter.getByRole("button", { name: "Download" }).waitFor();
      await fits(page, "documents, a viewer");
      await accessible(page, "documents, a viewer");
      await page.context().close();
    }
  });

  test("more documents than a page load with More documents", async () => {
    const page = await open("viewer");
    const panel = await openAccount(page, ids.many);
    await panel.locator("#documents-count", { hasText: "21 documents" }).waitFor();
    const names = panel.locator(".document-name");
    assert.equal(await names.count(), 20, "a page of 20");
    await panel.getByRole("button", { name: "More documents" }).click();
    await names.nth(20).waitFor();
    assert.deepEqual(await names.allTextContents(), Array.from({ length: 21 }, (_, i) => `note-${21 - i}.txt`), "newest first, each once");
    assert.equal(await panel.getByRole("button", { name: "More documents" }).isHidden(), true, "nothing more to load");
    await page.context().close();
  });

  test("a manager uploads a zip of documents for several accounts and reads which files were not kept", async () => {
    const [first, second] = ids.zipped;
    const bytes = zip({
      [`${first.number}.pdf`]: PDF,
      [`${second.number}/receipt.png`]: PNG,
      [`NO-SUCH-${run}.txt`]: Buffer.from("lost\n"),
      ".DS_Store": Buffer.from([0, 0, 0, 1, 66, 117, 100, 49]),
    });
    const token = (await login("manager")).access_token;
    for (const [options, screen, reasons] of [
      [undefined, "desktop", ["No account has this number, or it is not one you may work."]],
      // The same zip again: both files are already there.
      [PHONE, "phone", Array(2).fill("The account already holds this file.").concat("No account has this number, or it is not one you may work.")],
    ]) {
      const page = await open("manager", null, options);
      await page.goto(`${BASE}/#/imports`);
      const form = page.getByRole("form", { name: "Upload documents" });
      await form.getByLabel("Zip of documents").setInputFiles({ name: "scans.zip", mimeType: "application/zip", buffer: bytes });
      await form.getByRole("button", { name: "Upload zip" }).click();
      const kept = 3 - reasons.length;
      await form.getByRole("status").getByText(`${kept === 2 ? "Partially failed" : "Failed"}: 3 of 3 done, ${kept} succeeded, ${reasons.length} failed.`).waitFor();
      const list = form.locator(".not-kept li");
      await list.first().waitFor();
      assert.match(await form.locator("#bulk-documents-result h3").innerText(), new RegExp(`^${reasons.length} files? (was|were) not kept$`));
      const shown = await list.allInnerTexts();
      assert.deepEqual(shown.map((t) => t.split("\n").at(-1)).sort(), [...reasons].sort());
      assert.ok(shown.some((t) => t.startsWith(`NO-SUCH-${run}.txt · account NO-SUCH-${run}`)), shown.join(" | "));
      const scroll = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
      assert.ok(scroll <= 0, `${screen}: the imports screen scrolls sideways by ${scroll} px`);
      await accessible(page, `bulk documents (${screen})`);
      await shot(page, `bulk-documents-${screen}`);
      await page.context().close();
    }
    const names = async (account) => (await api(token, "GET", `/accounts/${account.id}/documents`)).data.map((d) => d.name);
    assert.deepEqual(await names(first), [`${first.number}.pdf`]);
    assert.deepEqual(await names(second), ["receipt.png"]);
  });
});
