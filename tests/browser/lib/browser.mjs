// Debian's chromium driven by playwright-core (no browser download), opening
// herald's dashboard with a token endpoint standing in for the frontend's own
// backend (the page fetches `token_url`; the test answers it with tokens it
// mints, and counts the calls). Nothing may leave the machine.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
// Chromium reports a refused WebSocket connection (herald down) on the console.
const EXPECTED_CONSOLE = [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/];

export const SHOT_DIR = process.env.HERALD_SCREENSHOT_DIR || os.tmpdir();

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * Open the dashboard. `tokens()` is called for each token request and
 * returns a JWT string, or a number (HTTP status) to refuse.
 */
export async function openDashboard(browser, herald, { tokens, filter, viewport } = {}) {
  const context = await browser.newContext({ viewport: viewport || { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  const tokenCalls = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (!LOOPBACK.has(url.hostname)) {
      problems.push("request to another origin: " + url.href);
      return route.abort();
    }
    if (url.pathname === "/test-backend/herald-token") {
      tokenCalls.push(Date.now());
      const t = tokens();
      if (typeof t === "number") return route.fulfill({ status: t, body: "" });
      return route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ token: t }) });
    }
    return route.continue();
  });
  page.on("console", (m) => {
    if (m.type() === "error" && !EXPECTED_CONSOLE.some((re) => re.test(m.text()))) problems.push("console: " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  const q = new URLSearchParams({ ws: herald.wsUrl, token_url: "/test-backend/herald-token" });
  if (filter) q.set("filter", filter);
  const resp = await page.goto(`${herald.base}/?${q}`, { waitUntil: "load" });
  if (!resp || resp.status() !== 200) problems.push(`GET /: ${resp && resp.status()}`);
  // Record every connection state the page goes through, and mark this load:
  // a reload would lose the marker.
  await page.waitForFunction(() => window.heraldClient);
  await page.evaluate(() => {
    window.__loadMarker = Math.random();
    window.__states = [];
    window.heraldClient.on("state", (s) => window.__states.push(s));
  });
  const marker = await page.evaluate(() => window.__loadMarker);
  return {
    page, context, problems, tokenCalls,
    async sameLoad() { return (await page.evaluate(() => window.__loadMarker)) === marker; },
    states() { return page.evaluate(() => window.__states.slice()); },
    conn() { return page.locator("#conn").getAttribute("data-state"); },
    async card(id) {
      const c = page.locator(`.card[data-id="${id}"]`);
      if ((await c.count()) === 0) return null;
      return {
        status: await c.getAttribute("data-status"),
        progress: Number(await c.getAttribute("data-progress")),
        name: await c.locator(".name").textContent(),
        text: await c.textContent(),
      };
    },
    /** Wait until card `id` shows `status` (and `progress`), within ms. */
    waitCard(id, status, progress, ms) {
      return page.waitForFunction(([i, s, p]) => {
        const c = document.querySelector(`.card[data-id="${i}"]`);
        return c && c.dataset.status === s && (p === null || c.dataset.progress === String(p));
      }, [id, status, progress ?? null], { timeout: ms });
    },
    /** The recent-events log, oldest first: [{subject, seq, what}]. */
    logEntries() {
      return page.locator("#log li").evaluateAll((lis) => lis.reverse().map((l) => ({
        subject: l.dataset.subject, seq: l.dataset.seq === undefined ? null : Number(l.dataset.seq),
        what: l.querySelector(".what").textContent })));
    },
    logSubjects() { return page.locator("#log li").evaluateAll((lis) => lis.map((l) => l.dataset.subject)); },
    async screenshot(name) {
      fs.mkdirSync(SHOT_DIR, { recursive: true });
      const file = path.join(SHOT_DIR, name);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    close() { return context.close(); },
  };
}
