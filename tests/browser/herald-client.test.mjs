// herald.js in Node's test runner against a real herald and nats-server
// (no fake server): reply matching, typed errors, backoff bounds,
// resubscription after restarts, no reconnect after 4001 without getToken,
// re-authentication and in-place refresh, and no leaked timers or listeners
// over 100 reconnects. Needs Node >= 20 with --experimental-websocket (or 22+).
// Run: node --experimental-websocket --test tests/browser/herald-client.test.mjs
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  backoffDelay, connect, ErrorCodes, HeraldError, refreshLead, resumeSince, subjectMatches,
} from "../../static/herald.js";
import { mintToken, SLACK, sleep, startStack, status, waitFor } from "./lib/stack.mjs";

// A WebSocket that counts what the client creates and leaves open.
const sockets = new Set();
let created = 0;
class CountingWS extends WebSocket {
  constructor(...args) {
    super(...args);
    created++;
    sockets.add(this);
    this.addEventListener("close", () => sockets.delete(this));
  }
}
const FAST = { baseMs: 5, maxMs: 50 };
// A WebSocket that records the frames the client sends.
const sent = [];
class RecordingWS extends WebSocket {
  send(text) {
    sent.push(JSON.parse(text));
    super.send(text);
  }
}

function collector() {
  const events = [];
  const fn = (ev) => events.push(ev);
  fn.events = events;
  return fn;
}

function states(client) {
  const seen = [];
  client.on("state", (s, d) => seen.push({ s, d }));
  return seen;
}

describe("pure client logic", () => {
  test("backoff: full jitter within [0, min(max, base*2^attempt))", () => {
    const opts = { baseMs: 100, maxMs: 5000 };
    for (let a = 0; a < 40; a++) {
      const cap = Math.min(5000, 100 * 2 ** a);
      assert.equal(backoffDelay(a, opts, () => 0), 0);
      assert.equal(backoffDelay(a, opts, () => 0.999999), Math.floor(0.999999 * cap));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(a, opts);
        assert.ok(d >= 0 && d < cap, `attempt ${a}: ${d} not in [0, ${cap})`);
      }
    }
    // Jitter: delays for one attempt spread out instead of synchronising clients.
    const ds = new Set(Array.from({ length: 50 }, () => backoffDelay(6, opts)));
    assert.ok(ds.size > 25, `only ${ds.size} distinct delays`);
    assert.equal(backoffDelay(1e6, opts, () => 0.5), 2500); // huge attempt: capped, not NaN
  });

  test("subject matching follows NATS rules", () => {
    assert.ok(subjectMatches("deployments.u42.>", "deployments.u42.a.status"));
    assert.ok(!subjectMatches("deployments.u42.>", "deployments.u42"));
    assert.ok(subjectMatches("deployments.*.*.status", "deployments.u42.a.status"));
    assert.ok(!subjectMatches("deployments.*.status", "deployments.u42.a.status"));
    assert.ok(subjectMatches("a.b", "a.b") && !subjectMatches("a.b", "a.b.c") && !subjectMatches("a.b.c", "a.b"));
  });

  test("since bookkeeping: the last seq seen wins, else what was asked", () => {
    assert.equal(resumeSince(null, undefined), undefined);
    assert.equal(resumeSince(null, "last"), "last");
    assert.equal(resumeSince(null, 7), 7);
    assert.equal(resumeSince(131, "last"), 131);
    assert.equal(resumeSince(0, undefined), 0);
    assert.equal(refreshLead(3600), 60);
    assert.equal(refreshLead(3), 1);
  });
});

describe("package", () => {
  test("herald.d.ts declares every export of herald.js; package.json points at both", async () => {
    const fs = await import("node:fs");
    const dir = new URL("../../static/", import.meta.url);
    const mod = await import(new URL("herald.js", dir).href);
    const dts = fs.readFileSync(new URL("herald.d.ts", dir), "utf8");
    const declared = new Set([...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]));
    assert.deepEqual([...declared].sort(), Object.keys(mod).sort());
    const pkg = JSON.parse(fs.readFileSync(new URL("package.json", dir), "utf8"));
    assert.equal(pkg.type, "module");
    assert.deepEqual(pkg.files, ["herald.js", "herald.d.ts"]);
    assert.equal(pkg.exports["."].default, "./herald.js");
    assert.equal(pkg.exports["."].types, "./herald.d.ts");
    // No dependencies, nothing but the standard library: the file is served as is.
    assert.equal(pkg.dependencies, undefined);
    assert.doesNotMatch(fs.readFileSync(new URL("herald.js", dir), "utf8"), /^import /m);
  });
});

describe("against a real herald", () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: { ws: { max_frame_bytes: 1024 } } });
  });
  after(async () => { await stack?.stop(); });

  test("connect: connecting → open, ready carries the token's sub", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }), WebSocket: CountingWS });
    const seen = states(c);
    assert.equal(c.state, "connecting");
    const ready = await c.opened;
    assert.equal(ready.sub, "u1");
    assert.deepEqual(ready.roles, ["user"]);
    assert.deepEqual(seen.map((x) => x.s), ["open"]);
    c.close();
    assert.equal(c.state, "closed");
  });

  test("anonymous: no token, the anonymous role's session", async () => {
    const c = connect({ url: stack.herald.wsUrl });
    const ready = await c.opened;
    assert.deepEqual(ready.roles, ["anonymous"]);
    assert.equal(ready.sub, undefined);
    const ev = collector();
    await c.subscribe("public.anon", ev).ready;
    await assert.rejects(c.subscribe("deployments.u1.>", () => {}).ready, (e) => e.code === ErrorCodes.FORBIDDEN);
    await stack.pub.publish("public.anon", { a: 1 });
    await waitFor(() => ev.events.length === 1, { what: "anonymous event" });
    c.close();
  });

  test("replies are matched to their requests by id; errors are typed", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }) });
    await c.opened;
    const results = await Promise.allSettled([
      c.publish("ui.u1.click", { n: 1 }),
      c.publish("ui.u2.click", { n: 2 }), // another user's subject
      c.publish("ui.u1.*", {}), // wildcard
      c.ping(),
      c.publish("ui.u1.bytes", undefined, { binary: new Uint8Array([0, 1, 2]) }),
    ]);
    assert.equal(results[0].status, "fulfilled");
    assert.equal(results[0].value.type, "ok");
    assert.equal(results[1].status, "rejected");
    assert.ok(results[1].reason instanceof HeraldError);
    assert.equal(results[1].reason.code, ErrorCodes.FORBIDDEN);
    assert.equal(results[2].reason.code, ErrorCodes.INVALID_SUBJECT);
    assert.equal(results[3].status, "fulfilled");
    assert.equal(typeof results[3].value, "number");
    assert.equal(results[4].status, "fulfilled");
    const forbidden = c.subscribe("deployments.u2.>", () => {});
    await assert.rejects(forbidden.ready, (e) => e.code === "forbidden" && e.subject === "deployments.u2.>");
    assert.equal(forbidden.active, false);
    c.close();
    await assert.rejects(c.ping(), (e) => e.code === ErrorCodes.CLOSED);
  });

  test("subscribe delivers events to the right subscription; unsubscribe stops them", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }) });
    const a = collector(), b = collector();
    const sa = c.subscribe("deployments.u1.*.status", a);
    const sb = c.subscribe("public.news", b);
    await Promise.all([sa.ready, sb.ready]);
    await sa.synced; // no since: synced at ok
    const dup = c.subscribe("public.news", () => {});
    await assert.rejects(dup.ready, (e) => e.code === ErrorCodes.DUPLICATE_SUBSCRIPTION);
    await stack.pub.jsPublish("deployments.u1.d1.status", status("d1", "building", 10));
    await stack.pub.publish("public.news", { hello: 1 });
    await waitFor(() => a.events.length === 1 && b.events.length === 1, { what: "both events" });
    assert.equal(a.events[0].subject, "deployments.u1.d1.status");
    assert.equal(a.events[0].data.status, "building");
    assert.deepEqual(b.events[0].data, { hello: 1 });
    await sb.unsubscribe();
    await stack.pub.publish("public.news", { hello: 2 });
    await stack.pub.jsPublish("deployments.u1.d1.status", status("d1", "deploying", 60));
    await waitFor(() => a.events.length === 2, { what: "second event" });
    await sleep(100);
    assert.equal(b.events.length, 1, "an unsubscribed pattern still received events");
    c.close();
  });

  test("herald restarts (1001, then killed): reconnect with backoff, subscriptions restored", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }), backoff: { baseMs: 100, maxMs: 400 } });
    const seen = states(c);
    const ev = collector();
    const s = c.subscribe("public.restart", ev);
    await s.ready;
    for (const how of ["stop", "kill"]) {
      const n = seen.length;
      await stack.herald[how]();
      await waitFor(() => seen.slice(n).some((x) => x.s === "reconnecting"), { what: "reconnecting" });
      await stack.herald.start();
      await waitFor(() => c.state === "open", { timeoutMs: 15000, what: "open again" });
      const tries = seen.slice(n).filter((x) => x.s === "reconnecting");
      assert.equal(tries[0].d.code, how === "stop" ? 1001 : 1006);
      for (const t of tries) {
        const cap = Math.min(400, 100 * 2 ** (t.d.attempt - 1));
        assert.ok(t.d.delayMs >= 0 && t.d.delayMs < cap, `delay ${t.d.delayMs} not in [0, ${cap})`);
      }
      // The subscription is live again on the new herald: an event published now arrives.
      const before = ev.events.length;
      await waitFor(async () => {
        await stack.pub.publish("public.restart", { how });
        await sleep(50);
        return ev.events.length > before;
      }, { what: `event after ${how}` });
      assert.equal(ev.events.at(-1).data.how, how);
    }
    assert.equal(c.stats().subscriptions, 1);
    c.close();
  });

  test("requests made while herald is down are sent once it is back, or time out", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }), backoff: { baseMs: 50, maxMs: 200 }, requestTimeoutMs: 8000 * SLACK });
    await c.opened;
    await stack.herald.stop();
    await waitFor(() => c.state === "reconnecting", { what: "reconnecting" });
    const queued = c.publish("ui.u1.queued", { n: 1 });
    const refused = c.publish("ui.u2.queued", { n: 2 });
    assert.equal(c.stats().queued, 2);
    await stack.herald.start();
    const ok = await queued;
    assert.equal(ok.type, "ok");
    await assert.rejects(refused, (e) => e.code === ErrorCodes.FORBIDDEN);
    assert.equal(c.stats().queued, 0);
    c.close();
    // With herald gone for longer than the request timeout, the request gives up.
    const d = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }), backoff: { baseMs: 50, maxMs: 200 }, requestTimeoutMs: 300 });
    await d.opened;
    await stack.herald.stop();
    await waitFor(() => d.state === "reconnecting", { what: "reconnecting" });
    await assert.rejects(d.publish("ui.u1.late", 1), (e) => e.code === ErrorCodes.UNAVAILABLE);
    assert.deepEqual([d.stats().queued, d.stats().pending], [0, 0]);
    await stack.herald.start();
    d.close();
  });

  test("4001 without getToken: no reconnect, closed with the server's code", async () => {
    const before = created;
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1", ttlS: 2 }), WebSocket: CountingWS, backoff: FAST });
    const errors = [];
    c.on("error", (e) => errors.push(e));
    const seen = states(c);
    await c.opened;
    const sub = c.subscribe("public.x", () => {});
    await sub.ready;
    await waitFor(() => c.state === "closed", { timeoutMs: 8000, what: "closed after expiry" });
    assert.ok(errors.some((e) => e.code === ErrorCodes.TOKEN_EXPIRED), JSON.stringify(errors.map((e) => e.code)));
    assert.equal(sub.active, false);
    await sleep(300);
    assert.equal(created - before, 1, "the client reconnected after 4001 without a way to get a token");
    assert.ok(!seen.some((x) => x.s === "reconnecting"));
    await assert.rejects(c.publish("ui.u1.x", 1), (e) => e.code === ErrorCodes.CLOSED);
  });

  test("getToken: refresh in place before exp, re-auth after 4001", async () => {
    let calls = 0;
    // The first token is already expired (herald closes 4001); the next live 3 s.
    const getToken = async () => (++calls === 1 ? mintToken({ sub: "u1", ttlS: -5 }) : mintToken({ sub: "u1", ttlS: 3 }));
    const c = connect({ url: stack.herald.wsUrl, getToken, backoff: FAST });
    const seen = states(c);
    const disconnects = [];
    c.on("disconnect", (d) => disconnects.push(d));
    const refreshed = [];
    c.on("refreshed", (r) => refreshed.push(r));
    const ev = collector();
    await c.opened;
    assert.equal(calls, 2, "getToken was not asked again after 4001");
    assert.equal(disconnects[0].code, 4001);
    const s = c.subscribe("deployments.u1.>", ev);
    await s.ready;
    const n = disconnects.length;
    // Two lifetimes of a 3 s token: it must be refreshed in place, twice.
    await waitFor(() => refreshed.length >= 2, { timeoutMs: 8000, what: "two in-place refreshes" });
    assert.equal(disconnects.length, n, "a refresh dropped the connection");
    assert.ok(refreshed[1].expires > refreshed[0].expires);
    await stack.pub.jsPublish("deployments.u1.r.status", status("r", "ready", 100));
    await waitFor(() => ev.events.length === 1, { what: "event after refresh" });
    assert.equal(seen.filter((x) => x.s === "closed").length, 0);
    c.close();
  });

  test("getToken handing back the same token: refreshed once, not in a tight loop", async () => {
    const tok = mintToken({ sub: "u1", ttlS: 3 });
    let calls = 0;
    sent.length = 0;
    const c = connect({ url: stack.herald.wsUrl, getToken: () => { calls++; return tok; }, WebSocket: RecordingWS, backoff: FAST });
    await c.opened;
    await sleep(2600); // the refresh is due 1 s before exp, then not again for 5 s
    assert.equal(sent.filter((f) => f.type === "auth").length, 2);
    assert.equal(calls, 2);
    c.close();
  });

  test("100 reconnects leak no timers, listeners or sockets", async () => {
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }), WebSocket: CountingWS, backoff: FAST });
    let opens = 0;
    c.on("state", (s) => { if (s === "open") opens++; });
    const ev = collector();
    const s = c.subscribe("public.leak", ev);
    await s.ready;
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const base = { timers: timeouts(), stats: c.stats(), listeners: c.listenerCount() };
    const big = "x".repeat(2048); // over ws.max_frame_bytes: herald closes with 1009
    for (let i = 0; i < 100; i++) {
      const target = opens + 1;
      await assert.rejects(c.publish("ui.u1.big", big), (e) => e.code === ErrorCodes.UNAVAILABLE && e.closeCode === 1009);
      await waitFor(() => opens >= target && c.state === "open", { what: `reconnect ${i}` });
    }
    await waitFor(async () => { // the restored subscription is registered again
      await stack.pub.publish("public.leak", { i: 1 });
      await sleep(20);
      return ev.events.length > 0;
    }, { what: "event after 100 reconnects" });
    await sleep(50);
    const now = { timers: timeouts(), stats: c.stats(), listeners: c.listenerCount() };
    assert.equal(opens, 101); // the first open and 100 reconnects
    assert.deepEqual(now.stats, base.stats);
    assert.equal(now.listeners, base.listeners);
    assert.ok(now.timers <= base.timers, `timers grew from ${base.timers} to ${now.timers}`);
    const open = [...sockets].filter((w) => w.readyState !== WebSocket.CLOSED);
    assert.ok(open.length <= 1, `${open.length} sockets still open`);
    c.close();
    await waitFor(() => [...sockets].length === 0, { what: "sockets closed" });
    assert.equal(c.stats().timers, 0);
  });
});

describe("resume and snapshot against a real herald (contract §3 Resume)", () => {
  let stack;
  before(async () => { stack = await startStack(); });
  after(async () => { await stack?.stop(); });
  const pubs = async (list) => {
    const seqs = [];
    for (const [subject, data] of list) seqs.push((await stack.pub.jsPublish(subject, data)).seq);
    return seqs;
  };

  test("since: 0 replays everything; lastSeq follows events and synced", async () => {
    const seqs = await pubs([1, 2, 3].map((i) => [`deployments.u1.bk${i}.status`, status(`bk${i}`, "building", i)]));
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u1" }) });
    const ev = collector();
    const s = c.subscribe("deployments.u1.*.status", ev, { since: 0 });
    assert.equal(s.isSynced, false);
    const syncedSeq = await s.synced;
    assert.deepEqual(ev.events.map((e) => e.seq), seqs);
    assert.ok(syncedSeq >= seqs[2]);
    assert.equal(s.lastSeq, syncedSeq);
    assert.equal(s.resumeSince, syncedSeq);
    const [s4] = await pubs([["deployments.u1.bk1.status", status("bk1", "ready", 100)]]);
    await waitFor(() => ev.events.length === 4, { what: "live event" });
    assert.equal(ev.events[3].seq, s4);
    assert.equal(s.lastSeq, s4);
    c.close();
  });

  test('since: "last" gives the last message per subject, then live', async () => {
    await pubs([
      ["deployments.u2.a.status", status("a", "pending", 0)],
      ["deployments.u2.a.status", status("a", "building", 30)],
      ["deployments.u2.b.status", status("b", "ready", 100)],
      ["deployments.u2.a.status", status("a", "deploying", 60)],
    ]);
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u2" }) });
    const ev = collector();
    const s = c.subscribe("deployments.u2.*.status", ev, { since: "last" });
    await s.synced;
    assert.deepEqual(ev.events.map((e) => [e.data.id, e.data.status]), [["b", "ready"], ["a", "deploying"]]);
    assert.ok(ev.events[0].seq < ev.events[1].seq);
    c.close();
  });

  test("after herald restarts, stream-fed subscriptions resume with since: <last seq>: nothing missed, nothing repeated", async () => {
    sent.length = 0;
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u3" }), WebSocket: RecordingWS, backoff: { baseMs: 100, maxMs: 400 } });
    const ev = collector();
    const s = c.subscribe("deployments.u3.>", ev, { since: "last" });
    await s.synced;
    const [first] = await pubs([["deployments.u3.x.status", status("x", "building", 10)]]);
    await waitFor(() => ev.events.length === 1, { what: "live event" });
    for (const how of ["kill", "stop"]) {
      const lastBefore = s.lastSeq;
      await stack.herald[how]();
      const during = await pubs([
        ["deployments.u3.x.status", status("x", how, 50)],
        ["deployments.u3.y.status", status("y", how, 1)],
        ["deployments.u3.x.status", status("x", how, 90)],
      ]);
      const n = ev.events.length;
      let resynced = false;
      const off = s.on("synced", () => { resynced = true; });
      await stack.herald.start();
      await waitFor(() => resynced && ev.events.length >= n + 3, { timeoutMs: 15000, what: `outage events after ${how}` });
      off();
      await sleep(200);
      const got = ev.events.slice(n);
      assert.deepEqual(got.map((e) => e.seq), during, "missed or repeated events");
      assert.deepEqual(got.map((e) => [e.data.id, e.data.progress]), [["x", 50], ["y", 1], ["x", 90]]);
      const resub = sent.filter((f) => f.type === "subscribe").at(-1);
      assert.equal(resub.since, lastBefore);
      assert.equal(resub.subject, "deployments.u3.>");
    }
    assert.equal(sent.filter((f) => f.type === "subscribe")[0].since, "last");
    assert.ok(first < s.lastSeq);
    c.close();
  });

  test("history_gap: the subscription exists, reports first_seq and replays from it", async () => {
    const [a] = await pubs([["deployments.u4.g.status", status("g", "pending", 0)]]);
    // Purge the whole stream (this describe's last test): it no longer holds `a`.
    const r = await stack.pub.request("$JS.API.STREAM.PURGE.DEPLOYMENTS", {});
    assert.ok(r.success, JSON.stringify(r));
    const [b] = await pubs([["deployments.u4.g.status", status("g", "building", 5)]]);
    const c = connect({ url: stack.herald.wsUrl, token: mintToken({ sub: "u4" }) });
    const ev = collector();
    const gaps = [];
    const s = c.subscribe("deployments.u4.>", ev, { since: a - 1, onGap: (e) => gaps.push(e) });
    const reply = await s.ready;
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].code, ErrorCodes.HISTORY_GAP);
    assert.equal(reply.gap, gaps[0].firstSeq);
    await s.synced;
    assert.deepEqual(ev.events.map((e) => e.seq), [b]);
    c.close();
  });
});
