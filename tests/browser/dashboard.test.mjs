// The deployments dashboard (`/`) in a real browser (Debian chromium via
// playwright-core) against a real herald + nats-server with JetStream: live
// status on the right card within 1 s, subjects the user may not see never
// shown, the connection indicator through a herald restart without reload,
// expired tokens replaced through getToken, the demo publisher driving the
// cards, and a screenshot of the dashboard as a test artifact.
// Run: node --test tests/browser/dashboard.test.mjs   (HERALD_BIN, HERALD_DEMO_BIN)
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { launch, openDashboard } from "./lib/browser.mjs";
import { mintToken, SLACK, sleep, startStack, status, waitFor } from "./lib/stack.mjs";

const USER = "u9";

describe("dashboard against published statuses", () => {
  let stack, browser;
  before(async () => {
    stack = await startStack();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test("live: a status appears on the right card within 1 s; forbidden subjects never show", async () => {
    const d = await openDashboard(browser, stack.herald, { tokens: () => mintToken({ sub: USER }) });
    try {
      await waitFor(async () => (await d.conn()) === "live", { what: "indicator live" });
      await d.page.waitForFunction(() => document.body.dataset.synced === "true", null, { timeout: 5000 * SLACK });
      assert.equal(await d.page.locator("#user").textContent(), `signed in as ${USER}`);
      assert.equal(await d.page.inputValue("#filter"), `deployments.${USER}.*.status`);
      for (const [id, st, p] of [["d1", "building", 20], ["d2", "pending", 0], ["d1", "deploying", 60]]) {
        await stack.pub.jsPublish(`deployments.${USER}.${id}.status`, status(id, st, p, `app ${id}`));
        const t0 = Date.now();
        await d.waitCard(id, st, p, 1000 * SLACK);
        assert.ok(Date.now() - t0 < 1000 * SLACK, `${id} ${st} took ${Date.now() - t0} ms`);
      }
      const d1 = await d.card("d1");
      assert.equal(d1.name, "app d1");
      assert.match(d1.text, /deploying/);
      assert.match(d1.text, /60%/);
      assert.equal((await d.card("d2")).status, "pending");
      // Another user's deployments, and the denied internal subject of this user.
      await stack.pub.jsPublish("deployments.other.x1.status", status("x1", "failed", 10));
      await stack.pub.jsPublish(`deployments.${USER}.internal.status`, status("internal", "failed", 10));
      await stack.pub.jsPublish(`deployments.${USER}.d2.status`, status("d2", "building", 15, "app d2"));
      await d.waitCard("d2", "building", 15, 1000 * SLACK);
      await sleep(200);
      assert.equal(await d.card("x1"), null);
      assert.equal(await d.card("internal"), null);
      const logged = await d.logSubjects();
      assert.ok(!logged.some((s) => s.includes(".other.") || s.includes(".internal.")), logged.join());
      assert.equal(logged.length, 4);
      // The subject filter: a forbidden pattern is reported, not shown.
      await d.page.fill("#filter", "deployments.other.>");
      await d.page.click("#filter-form button");
      await d.page.waitForFunction(() => /forbidden/.test(document.getElementById("notice").textContent));
      assert.equal(await d.page.locator(".card").count(), 0);
      // Narrowing the filter to one deployment shows only its events.
      await d.page.fill("#filter", `deployments.${USER}.d2.status`);
      await d.page.click("#filter-form button");
      await d.page.waitForFunction(() => document.body.dataset.synced === "true");
      await stack.pub.jsPublish(`deployments.${USER}.d1.status`, status("d1", "ready", 100));
      await stack.pub.jsPublish(`deployments.${USER}.d2.status`, status("d2", "deploying", 70, "app d2"));
      await d.waitCard("d2", "deploying", 70, 1000 * SLACK);
      assert.equal(await d.card("d1"), null);
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });

  test("herald restarts: the indicator goes reconnecting, then live, and cards move again without reload", async () => {
    const d = await openDashboard(browser, stack.herald, { tokens: () => mintToken({ sub: USER }) });
    try {
      await waitFor(async () => (await d.conn()) === "live", { what: "indicator live" });
      await d.page.waitForFunction(() => document.body.dataset.synced === "true");
      for (const how of ["kill", "stop"]) {
        await stack.herald[how]();
        await waitFor(async () => (await d.conn()) === "reconnecting", { what: `reconnecting after ${how}` });
        await sleep(300);
        assert.equal(await d.conn(), "reconnecting"); // not "live" while herald is down
        await stack.herald.start();
        await waitFor(async () => (await d.conn()) === "live", { timeoutMs: 20000, what: "live again" });
        await d.page.waitForFunction(() => document.body.dataset.synced === "true");
        await stack.pub.jsPublish(`deployments.${USER}.r1.status`, status("r1", how === "kill" ? "building" : "ready", how === "kill" ? 30 : 100));
        await d.waitCard("r1", how === "kill" ? "building" : "ready", null, 2000 * SLACK);
      }
      assert.ok(await d.sameLoad(), "the page was reloaded");
      // From the first outage on (the first "open" may land after recording
      // began when the machine is busy).
      const all = await d.states();
      const states = all.slice(all.indexOf("reconnecting"));
      assert.deepEqual(states.filter((s, i) => s !== states[i - 1]).slice(0, 4), ["reconnecting", "open", "reconnecting", "open"]);
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });

  test("tokens: an expired one is replaced through getToken, short-lived ones refreshed in place", async () => {
    let n = 0;
    // First an expired token (herald: token_expired, 4001), then 3-second tokens.
    const tokens = () => (++n === 1 ? mintToken({ sub: USER, ttlS: -10 }) : mintToken({ sub: USER, ttlS: 3 }));
    const d = await openDashboard(browser, stack.herald, { tokens });
    try {
      await waitFor(async () => (await d.conn()) === "live", { what: "indicator live" });
      const callsAtOpen = d.tokenCalls.length;
      const statesAtOpen = (await d.states()).length;
      assert.equal(callsAtOpen, 2, "getToken was not asked again after the expired token");
      // Two token lifetimes later the session is the same one (refreshed in place).
      await sleep(6500);
      assert.ok(d.tokenCalls.length >= callsAtOpen + 2, `only ${d.tokenCalls.length} token calls`);
      const states = (await d.states()).slice(statesAtOpen);
      assert.ok(!states.includes("reconnecting") && !states.includes("closed"), states.join());
      await stack.pub.jsPublish(`deployments.${USER}.t1.status`, status("t1", "building", 25));
      await d.waitCard("t1", "building", 25, 1000 * SLACK);
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });

  test("at most 12 cards: finished deployments leave first", async () => {
    const d = await openDashboard(browser, stack.herald, { tokens: () => mintToken({ sub: "u8" }) });
    try {
      await d.page.waitForFunction(() => document.body.dataset.synced === "true", null, { timeout: 5000 * SLACK });
      const ids = Array.from({ length: 14 }, (_, i) => `m${String(i).padStart(2, "0")}`);
      for (const [i, id] of ids.entries())
        await stack.pub.jsPublish(`deployments.u8.${id}.status`, status(id, i === 1 || i === 4 ? "ready" : "building", 40));
      await d.waitCard("m13", "building", 40, 2000 * SLACK);
      const shown = await d.page.locator(".card").evaluateAll((cs) => cs.map((c) => c.dataset.id));
      assert.equal(shown.length, 12);
      assert.deepEqual(shown, ids.filter((id) => id !== "m01" && id !== "m04").reverse()); // newest first
    } finally {
      await d.close();
    }
  });

  test("a backend that only hands out refused tokens: offline after three 4001s, no reconnect storm", async () => {
    const d = await openDashboard(browser, stack.herald, { tokens: () => mintToken({ sub: USER, ttlS: -60 }) });
    try {
      await waitFor(async () => (await d.conn()) === "offline", { what: "indicator offline" });
      assert.match(await d.page.locator("#notice").textContent(), /token_expired/);
      const calls = d.tokenCalls.length;
      assert.equal(calls, 3);
      await sleep(1500);
      assert.equal(d.tokenCalls.length, calls, "the page kept reconnecting");
      assert.equal(await d.conn(), "offline");
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });

  test("no token from the backend: offline-ish state explained, no crash", async () => {
    const d = await openDashboard(browser, stack.herald, { tokens: () => 401 });
    try {
      await d.page.waitForFunction(() => /Not signed in/.test(document.getElementById("notice").textContent), null,
        { timeout: 5000 * SLACK });
      assert.notEqual(await d.conn(), "live");
      // Only the expected 401s of the token endpoint.
      assert.deepEqual(d.problems.filter((p) => !p.includes("/test-backend/herald-token") && !/status of 401/.test(p)), []);
    } finally {
      await d.close();
    }
  });
});

describe("dashboard snapshot and resume (history stream)", () => {
  let stack, browser;
  before(async () => {
    stack = await startStack();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });
  const U = "u7";
  const pub = async (id, st, p) => (await stack.pub.jsPublish(`deployments.${U}.${id}.status`, status(id, st, p, `svc ${id}`))).seq;

  test("the page opens on the current state (snapshot); a herald restart loses nothing, repeats nothing", async () => {
    // History before the page opens: only the last state of each deployment matters.
    await pub("s1", "pending", 0);
    await pub("s1", "building", 30);
    const s1 = await pub("s1", "deploying", 70);
    await pub("s2", "building", 40);
    const s2 = await pub("s2", "ready", 100);
    const s3 = await pub("s3", "failed", 45);
    await stack.pub.jsPublish("deployments.other.s9.status", status("s9", "ready", 100));
    const d = await openDashboard(browser, stack.herald, { tokens: () => mintToken({ sub: U }) });
    try {
      await d.page.waitForFunction(() => document.body.dataset.synced === "true", null, { timeout: 5000 * SLACK });
      assert.equal(await d.conn(), "live");
      assert.deepEqual([await d.card("s1"), await d.card("s2"), await d.card("s3")].map((c) => [c.status, c.progress]),
        [["deploying", 70], ["ready", 100], ["failed", 45]]);
      assert.equal(await d.page.locator(".card").count(), 3);
      assert.deepEqual((await d.logEntries()).map((e) => e.seq), [s1, s2, s3]);
      assert.equal(await d.page.locator("#notice").isVisible(), false);

      for (const how of ["kill", "stop"]) {
        const before = (await d.logEntries()).length;
        await stack.herald[how]();
        await waitFor(async () => (await d.conn()) === "reconnecting", { what: "reconnecting" });
        assert.equal(await d.page.evaluate(() => document.body.dataset.synced), "false");
        // Every change during the outage, in order.
        const during = [
          [await pub("s1", "ready", 100), "s1", "ready", 100],
          [await pub("s4", "pending", 0), "s4", "pending", 0],
          [await pub("s4", "building", how === "kill" ? 20 : 35), "s4", "building", how === "kill" ? 20 : 35],
          [await pub("s3", "failed", how === "kill" ? 46 : 47), "s3", "failed", how === "kill" ? 46 : 47],
        ];
        await sleep(300);
        assert.equal(await d.conn(), "reconnecting");
        await stack.herald.start();
        await waitFor(async () => (await d.conn()) === "live", { timeoutMs: 20000, what: "live again" });
        await d.page.waitForFunction(() => document.body.dataset.synced === "true", null, { timeout: 5000 * SLACK });
        const entries = (await d.logEntries()).slice(before);
        assert.deepEqual(entries.map((e) => [e.seq, e.subject.split(".")[2], e.what]),
          during.map(([seq, id, st, p]) => [seq, id, `${st} ${p}%`]), "missed, repeated or reordered events");
        assert.deepEqual([await d.card("s1"), await d.card("s3"), await d.card("s4")].map((c) => [c.status, c.progress]),
          [["ready", 100], ["failed", during[3][3]], ["building", during[2][3]]]);
      }
      assert.ok(await d.sameLoad(), "the page was reloaded");
      assert.equal(await d.card("s9"), null);
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });
});

describe("dashboard driven by the demo publisher", () => {
  let stack, browser, tokenFile;
  before(async () => {
    // The demo mints its dev token like under ./herald.sh run; the test's
    // token endpoint hands out exactly that file's token.
    stack = await startStack({ stream: false });
    tokenFile = path.join(stack.dir, "dev-token.json");
    const { Demo } = await import("./lib/stack.mjs");
    stack.demo = await new Demo(stack.dir, {
      natsUrl: stack.nats.url,
      args: ["--user", "demo", "--interval-ms", "150", "--token-file", tokenFile, "--fail-rate", "0.1", "--seed", "7"],
    }).start();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await stack?.demo?.stop();
    await stack?.stop();
  });

  test("demo deployments move through their states; screenshot saved", async () => {
    await waitFor(() => fs.existsSync(tokenFile), { what: "the demo's dev token" });
    const tok = JSON.parse(fs.readFileSync(tokenFile, "utf8"));
    assert.equal(tok.sub, "demo");
    const d = await openDashboard(browser, stack.herald, { tokens: () => JSON.parse(fs.readFileSync(tokenFile, "utf8")).token });
    try {
      await waitFor(async () => (await d.conn()) === "live", { what: "indicator live" });
      assert.equal(await d.page.locator("#user").textContent(), "signed in as demo");
      // Follow every card's status: each must only move forward.
      const order = ["pending", "building", "deploying", "ready"];
      const seen = new Map();
      const finished = new Set();
      await waitFor(async () => {
        const cards = await d.page.locator(".card").evaluateAll((cs) => cs.map((c) => [c.dataset.id, c.dataset.status, Number(c.dataset.progress)]));
        for (const [id, st, p] of cards) {
          const prev = seen.get(id);
          if (prev && prev.st !== st && st !== "failed")
            assert.ok(order.indexOf(st) > order.indexOf(prev.st), `${id}: ${prev.st} -> ${st}`);
          if (prev && st !== "failed" && st === prev.st) assert.ok(p >= prev.p, `${id}: progress ${prev.p} -> ${p}`);
          seen.set(id, { st, p });
          if (st === "ready" || st === "failed") finished.add(id);
        }
        return finished.size >= 2 && seen.size >= 5;
      }, { timeoutMs: 30000, intervalMs: 100, what: "two demo deployments finished" });
      const log = await d.logSubjects();
      assert.ok(log.length >= 5 && log.every((s) => /^deployments\.demo\.[a-z]+-[0-9a-f]{6}\.status$/.test(s)), log.join());
      const shot = await d.screenshot("herald-dashboard.png");
      assert.ok(fs.statSync(shot).size > 10000);
      assert.deepEqual(d.problems, []);
    } finally {
      await d.close();
    }
  });
});
