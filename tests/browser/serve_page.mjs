// Browser test of the `dualtune serve` page, in Debian's headless chromium driven by
// puppeteer-core (no browser download). Run by tests/torch/test_serve_cli.cc against a
// real server:
//   node serve_page.mjs --url http://127.0.0.1:PORT/ --out DIR --token TOKEN --k 6 --step 40
// It loads the page, runs a query from the keyboard (arrow keys + Enter in the gallery
// grid), checks that k results with version badges appear and agree with the API, runs
// one backfill step through the page and checks that the page's status reflects it,
// searches again, and saves screenshots in DIR. Exit 0 = pass; otherwise the failure is
// printed and the exit code is 1.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

function args() {
  const a = { chromium: "/usr/bin/chromium", k: 6, step: 40, width: 1366, height: 900 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const need of ["url", "out", "token"]) if (!a[need]) throw new Error("missing --" + need);
  a.k = Number(a.k); a.step = Number(a.step); a.width = Number(a.width); a.height = Number(a.height);
  return a;
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function api(base, path, options) {
  const res = await fetch(new URL(path, base), options);
  const body = await res.json();
  if (!res.ok) throw new Error(path + ": HTTP " + res.status + " " + JSON.stringify(body));
  return body;
}

/// Badges, keys and scores of the result cards on the page.
async function pageResults(page) {
  return page.$$eval("#results .result", (cards) => cards.map((c) => ({
    badge: c.querySelector(".badge").textContent,
    score: c.querySelector(".score").textContent,
    label: c.getAttribute("aria-label"),
    embedding: c.dataset.embedding,
    imageLoaded: c.querySelector("img") !== null && c.querySelector("img").complete && c.querySelector("img").naturalWidth > 0,
  })));
}

async function waitResults(page, k) {
  await page.waitForFunction((k) => {
    const cards = document.querySelectorAll("#results .result");
    return cards.length === k && document.querySelector("#results").getAttribute("aria-busy") === null &&
      [...cards].every((c) => { const i = c.querySelector("img"); return i && i.complete && i.naturalWidth > 0; });
  }, { timeout: 20000 }, k);
}

async function main() {
  const a = args();
  mkdirSync(a.out, { recursive: true });
  const profile = join(a.out, "chromium-profile");
  rmSync(profile, { recursive: true, force: true });
  // Flags that work in this sandbox (no GPU, no network besides loopback, root).
  const browser = await puppeteer.launch({
    executablePath: a.chromium,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const problems = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
    page.on("requestfailed", (r) => problems.push("request failed: " + r.url() + " " + r.failure().errorText));
    page.on("request", (r) => { if (!r.url().startsWith(a.url) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) problems.push("request outside the server: " + r.url()); });
    await page.setViewport({ width: a.width, height: a.height });
    await page.goto(a.url, { waitUntil: "networkidle0", timeout: 30000 });
    await page.waitForSelector("#picker .cell", { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector("#health").classList.contains("ok"));
    const status = await api(a.url, "/api/status");
    check((await page.$eval("#health", (e) => e.textContent)).includes(status.gallery.items.toLocaleString("en-US") + " items"),
      "the header does not show the gallery's item count");
    // The rollout panel: the current gate's decision and one line per lifecycle event.
    await page.waitForFunction((n) => document.querySelectorAll("#history li").length === n, { timeout: 10000 },
      status.history.length);
    check(status.gate && (await page.$eval("#gate", (e) => e.textContent)).includes("gate " + status.gate.gate.decision),
      "the rollout panel does not show the gate's decision " + JSON.stringify(status.gate));

    // --- a query from the keyboard: k, then the third gallery item, Enter.
    await page.focus("#q-k");
    await page.keyboard.down("Control"); await page.keyboard.press("a"); await page.keyboard.up("Control");
    await page.keyboard.type(String(a.k));
    await page.focus("#picker .cell[tabindex='0']");
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowRight");
    const focused = await page.evaluate(() => ({
      index: document.activeElement.dataset.index,
      outline: getComputedStyle(document.activeElement).outlineStyle,
    }));
    check(focused.index === "2", "arrow keys did not move the focus in the gallery grid (focus on " + focused.index + ")");
    check(focused.outline !== "none", "the focused gallery item has no visible focus outline");
    await page.keyboard.press("Enter");
    await waitResults(page, a.k);
    let shown = await pageResults(page);
    check(shown.length === a.k, "expected " + a.k + " results, the page shows " + shown.length);
    for (const r of shown) check(["new", "old"].includes(r.badge), "result without an old/new badge: " + JSON.stringify(r));
    const items = await api(a.url, "/api/items?offset=2&limit=1");
    let expected = await api(a.url, "/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item: items.items[0].id, k: a.k }) });
    check(JSON.stringify(shown.map((r) => r.badge)) === JSON.stringify(expected.results[0].map((h) => h.embedding)),
      "badges " + shown.map((r) => r.badge) + " differ from the API's " + expected.results[0].map((h) => h.embedding));
    check(JSON.stringify(shown.map((r) => r.score)) === JSON.stringify(expected.results[0].map((h) => h.score.toFixed(3))),
      "scores differ from the API's");
    await page.screenshot({ path: join(a.out, "serve_page_query.png") });

    // --- one backfill step through the page: token, items per step, Start.
    const before = status.models.find((m) => m.role === "rolling_out");
    await page.type("#bf-token", a.token);
    await page.click("#bf-step", { clickCount: 3 });
    await page.type("#bf-step", String(a.step));
    await page.click("#bf-start");
    await page.waitForFunction(() => ["stopped", "finished", "failed"].includes(document.querySelector("#bf-state").dataset.state),
      { timeout: 60000 });
    const after = await api(a.url, "/api/status");
    const rolled = after.models.find((m) => m.role === "rolling_out");
    check(after.backfill.state !== "failed", "the backfill failed: " + after.backfill.error);
    check(rolled.embeddings >= before.embeddings + a.step, "the backfill step embedded " + (rolled.embeddings - before.embeddings) +
      " items, expected at least " + a.step);
    const pct = (100 * rolled.backfilled).toFixed(1) + " %";
    await page.waitForFunction((pct) => document.querySelector("#bf-numbers").textContent.startsWith(pct), { timeout: 10000 }, pct);
    const bar = await page.$eval("#bf-bar", (e) => Number(e.getAttribute("aria-valuenow")));
    check(Math.abs(bar - 100 * rolled.backfilled) < 0.1, "the progress bar shows " + bar + " %, the API " + pct);
    await page.waitForFunction(() => document.querySelectorAll("#picker .cell.backfilled").length > 0, { timeout: 10000 });

    // --- search again (Enter in the k field submits): badges follow the backfill.
    await page.focus("#q-k");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /\d+ new, \d+ old/.test(document.querySelector("#results-hint").textContent), { timeout: 10000 });
    await waitResults(page, a.k);
    shown = await pageResults(page);
    expected = await api(a.url, "/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item: items.items[0].id, k: a.k }) });
    check(JSON.stringify(shown.map((r) => r.badge)) === JSON.stringify(expected.results[0].map((h) => h.embedding)),
      "after the backfill step, badges " + shown.map((r) => r.badge) + " differ from the API's " + expected.results[0].map((h) => h.embedding));
    await page.waitForFunction(() => !document.querySelector("#verdict").textContent.startsWith("No report"), { timeout: 10000 });
    await page.screenshot({ path: join(a.out, "serve_page.png"), fullPage: true });
    console.log("page: " + shown.length + " results (" + shown.map((r) => r.badge).join(" ") + "), backfill " + pct +
      "; screenshots in " + a.out);
  } finally {
    await browser.close();
  }
  if (problems.length) throw new Error(problems.join("\n"));
}

main().catch((e) => {
  console.error("serve page test failed: " + e.message);
  process.exit(1);
});
