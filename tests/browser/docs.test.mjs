// Real-browser check of herald's /docs page: Debian's chromium driven by
// playwright-core (no browser download). Usage:
//   node tests/browser/docs.test.mjs <base-url> [screenshot.png]
// Exits 0 when every check passes; prints one JSON summary line either way.
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
  console.error("usage: docs.test.mjs <base-url> [screenshot.png]");
  process.exit(2);
}
const shot = process.argv[3] || path.join(os.tmpdir(), "herald-docs.png");
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

const t0 = Date.now();
const failures = [];
const foreign = [];
const consoleErrors = [];
const badResponses = [];
let requests = 0;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("request", (r) => {
    requests++;
    let host = "";
    try { host = new URL(r.url()).hostname; } catch { /* not a URL */ }
    if (!LOOPBACK.has(host)) foreign.push(r.url());
  });
  // Nothing may leave the machine even if the page tried: abort, after recording.
  await context.route("**/*", (route) => {
    let host = "";
    try { host = new URL(route.request().url()).hostname; } catch { /* not a URL */ }
    return LOOPBACK.has(host) ? route.continue() : route.abort();
  });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push("page error: " + e.message));
  page.on("response", (r) => { if (r.status() >= 400) badResponses.push(`${r.status()} ${r.url()}`); });

  const resp = await page.goto(new URL("/docs", base).href, { waitUntil: "load" });
  if (!resp || resp.status() !== 200) failures.push(`GET /docs: ${resp && resp.status()}`);
  await page.waitForSelector('body[data-rendered="true"]', { timeout: 20000 });

  const healthz = page.locator("#op-get-healthz h2 code.path");
  if ((await healthz.count()) !== 1 || (await healthz.textContent()) !== "/healthz" || !(await healthz.isVisible()))
    failures.push("no visible /healthz path heading");
  for (const p of ["/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs"])
    if ((await page.locator("h2 code.path", { hasText: p }).count()) < 1) failures.push(`no heading for ${p}`);

  // The subscribe message, reached through the left navigation.
  await page.click('#nav a[href="#msg-subscribe"]');
  const sub = page.locator("#msg-subscribe");
  if ((await sub.count()) !== 1) failures.push("no #msg-subscribe section");
  else {
    if ((await sub.locator("h3 code.path").textContent()) !== "subscribe") failures.push("subscribe heading text");
    if (!(await sub.isVisible())) failures.push("subscribe message not visible");
    const props = await sub.locator("table.props td.pname code").allTextContents();
    for (const p of ["type", "id", "subject", "since"]) if (!props.includes(p)) failures.push(`subscribe payload lacks ${p}`);
    if (!(await page.evaluate(() => location.hash === "#msg-subscribe"))) failures.push("nav anchor did not navigate");
  }
  const names = await page.locator(".message h3 code.path").allTextContents();
  for (const m of ["auth", "subscribe", "unsubscribe", "publish", "ping", "ready", "ok", "pong", "event", "error", "dropped"])
    if (!names.includes(m)) failures.push(`message ${m} not rendered`);
  // Operations link their message and replies.
  for (const href of ["#msg-subscribe", "#msg-ok", "#msg-error"])
    if ((await page.locator(`#operation-subscribe a[href="${href}"]`).count()) !== 1) failures.push(`subscribe operation lacks ${href}`);
  if (/https?:/.test(await page.locator("#ws-operations").innerText())) failures.push("a URL leaked into the operations text");
  // Resolved $ref: the Problem schema of a 405 response is shown as a property table.
  if ((await page.locator("#op-get-healthz table.props td.pname code", { hasText: "detail" }).count()) < 1)
    failures.push("Problem $ref not resolved in /healthz responses");

  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: shot });
} catch (e) {
  failures.push("exception: " + (e && e.stack || e));
} finally {
  await browser.close();
}

if (foreign.length) failures.push("requests to non-loopback origins: " + foreign.join(", "));
if (consoleErrors.length) failures.push("console errors: " + consoleErrors.join(" | "));
if (badResponses.length) failures.push("failed responses: " + badResponses.join(", "));
console.log(JSON.stringify({ ok: failures.length === 0, failures, requests, screenshot: shot,
                             ms: Date.now() - t0 }));
process.exit(failures.length ? 1 : 0);
