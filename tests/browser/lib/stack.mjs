// The real parts the JavaScript tests run against: nats-server with JetStream,
// herald (HERALD_BIN, restartable on the same ports), the demo publisher
// (HERALD_DEMO_BIN), HS256 tokens signed like a frontend's backend would, and a
// small NATS publisher that waits for JetStream's PubAck (no npm NATS client).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const SLACK = ["asan", "tsan"].includes(process.env.HERALD_VARIANT) ? 3 : 1;
export const SECRET = "test-secret-0123456789abcdef0123456789";
export const HERALD_BIN = process.env.HERALD_BIN || path.join(ROOT, "build", "herald");
export const DEMO_BIN = process.env.HERALD_DEMO_BIN || path.join(path.dirname(HERALD_BIN), "herald-demo");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, { timeoutMs = 10000, intervalMs = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs * SLACK;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await pred();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last && (last.stack || JSON.stringify(last))})`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "herald-js-"));
}

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

/** An HS256 JWT as the frontend's own backend would mint it. */
export function mintToken({ sub = "demo", roles = ["user"], ttlS = 3600, iat, secret = SECRET, extra = {} } = {}) {
  const now = iat ?? Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub, roles, iat: now, exp: now + ttlS, ...extra }));
  const sig = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

function onceExit(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode ?? proc.signalCode);
    else proc.once("exit", (code, sig) => resolve(code ?? sig));
  });
}

async function stopProc(proc, sig = "SIGTERM", graceMs = 20000) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(sig);
  const t = setTimeout(() => proc.kill("SIGKILL"), graceMs * SLACK);
  await onceExit(proc);
  clearTimeout(t);
}

export class NatsServer {
  constructor(dir) {
    this.dir = dir;
    this.proc = null;
  }
  get url() { return `nats://127.0.0.1:${this.port}`; }
  async start() {
    this.port ??= await freePort();
    const log = fs.openSync(path.join(this.dir, `nats-${this.port}.log`), "a");
    this.proc = spawn("nats-server", ["-js", "-sd", path.join(this.dir, "js"), "-a", "127.0.0.1", "-p", String(this.port)],
      { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    await waitFor(() => new Promise((resolve) => {
      const s = net.connect(this.port, "127.0.0.1");
      s.once("data", (d) => { s.destroy(); resolve(d.toString().startsWith("INFO")); });
      s.once("error", () => resolve(false));
    }), { what: "nats-server" });
    return this;
  }
  async stop() { await stopProc(this.proc); this.proc = null; }
}

const SANITIZER = ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer"];

/** A herald process on fixed ports, so that a restart comes back where clients expect it. */
export class Herald {
  constructor(dir, { natsUrl, config = {} }) {
    this.dir = dir;
    this.natsUrl = natsUrl;
    this.extra = config;
    this.proc = null;
    this.starts = 0;
  }
  get base() { return `http://127.0.0.1:${this.httpPort}`; }
  get wsUrl() { return `ws://127.0.0.1:${this.wsPort}/v1/ws`; }
  get logPath() { return path.join(this.dir, `herald-${this.httpPort}.log`); }

  config() {
    const cfg = {
      http: { listen: `127.0.0.1:${this.httpPort}` },
      ws: { listen: `127.0.0.1:${this.wsPort}` },
      auth: { jwt: { keys: [{ alg: "HS256", secret_env: "HERALD_TEST_JWT_SECRET" }], leeway_s: 0 } },
      permissions: {
        roles: {
          anonymous: { subscribe: { allow: ["public.>"] } }, // as in examples/dev.json
          user: {
            subscribe: { allow: ["deployments.{sub}.>", "public.>"],
                         deny: ["deployments.*.internal", "deployments.*.internal.>"] },
            publish: { allow: ["ui.{sub}.>"] },
          },
        },
      },
      history: [{ stream: "DEPLOYMENTS", subjects: ["deployments.>"] }],
      shutdown_timeout_s: 5,
    };
    for (const [k, v] of Object.entries(this.extra)) {
      cfg[k] = v && typeof v === "object" && !Array.isArray(v) && cfg[k] ? { ...cfg[k], ...v } : v;
    }
    return cfg;
  }

  async start() {
    this.httpPort ??= await freePort();
    this.wsPort ??= await freePort();
    const cfgPath = path.join(this.dir, `herald-${this.httpPort}.json`);
    fs.writeFileSync(cfgPath, JSON.stringify(this.config()));
    const log = fs.openSync(this.logPath, "a");
    const env = { ...process.env, NATS_ADDR: this.natsUrl, HERALD_TEST_JWT_SECRET: SECRET };
    this.proc = spawn(HERALD_BIN, ["--config", cfgPath], { env, stdio: ["ignore", "ignore", log] });
    fs.closeSync(log);
    this.starts++;
    const proc = this.proc;
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error("herald exited: " + this.logs().slice(-2000));
      const r = await fetch(this.base + "/readyz");
      return r.status === 200;
    }, { what: "herald /readyz" });
    return this;
  }

  logs() {
    try { return fs.readFileSync(this.logPath, "utf8"); } catch { return ""; }
  }

  checkSanitizer() {
    const text = this.logs();
    for (const m of SANITIZER) if (text.includes(m)) throw new Error("sanitizer report in herald's log:\n" + text.slice(-4000));
  }

  /** SIGTERM: herald closes its WebSocket clients with 1001 and exits 0. */
  async stop() {
    const p = this.proc;
    this.proc = null;
    await stopProc(p, "SIGTERM");
    this.checkSanitizer();
    return p ? p.exitCode : null;
  }

  /** SIGKILL: the clients see the TCP connection vanish (1006). */
  async kill() {
    const p = this.proc;
    this.proc = null;
    await stopProc(p, "SIGKILL");
  }
}

/** The demo publisher (src/demo) as ./herald.sh run starts it. */
export class Demo {
  constructor(dir, { natsUrl, args = [] }) {
    this.dir = dir;
    this.natsUrl = natsUrl;
    this.args = args;
    this.proc = null;
  }
  get logPath() { return path.join(this.dir, "demo.log"); }
  async start() {
    const log = fs.openSync(this.logPath, "a");
    const env = { ...process.env, NATS_ADDR: this.natsUrl, HERALD_DEV_JWT_SECRET: SECRET };
    this.proc = spawn(DEMO_BIN, this.args, { env, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    return this;
  }
  logs() {
    try { return fs.readFileSync(this.logPath, "utf8"); } catch { return ""; }
  }
  async stop() {
    const p = this.proc;
    this.proc = null;
    await stopProc(p, "SIGTERM", 5000);
    const text = this.logs();
    for (const m of SANITIZER) if (text.includes(m)) throw new Error("sanitizer report in the demo's log:\n" + text.slice(-4000));
    return p ? p.exitCode : null;
  }
}

/**
 * A minimal NATS client for the tests' own publishing: core PUB, request/reply
 * (JetStream PubAck and API calls). Talks the real protocol to the real server.
 */
export class NatsPublisher {
  static async connect(url) {
    const u = new URL(url);
    const c = new NatsPublisher();
    await c._connect(u.hostname, Number(u.port));
    return c;
  }
  _connect(host, port) {
    this.inbox = "_INBOX." + crypto.randomBytes(8).toString("hex");
    this.waiting = new Map();
    this.n = 0;
    this.buf = Buffer.alloc(0);
    return new Promise((resolve, reject) => {
      this.sock = net.connect(port, host);
      this.sock.once("error", reject);
      this.sock.on("data", (d) => this._data(d));
      this.sock.once("data", () => {
        this.sock.write('CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n');
        this.sock.write(`SUB ${this.inbox}.* 1\r\nPING\r\n`);
        this._pong = resolve;
      });
    });
  }
  _data(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const eol = this.buf.indexOf("\r\n");
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString();
      if (line.startsWith("MSG ")) {
        const parts = line.split(" ");
        const len = Number(parts[parts.length - 1]);
        if (this.buf.length < eol + 2 + len + 2) return;
        const payload = this.buf.subarray(eol + 2, eol + 2 + len).toString();
        this.buf = this.buf.subarray(eol + 2 + len + 2);
        const w = this.waiting.get(parts[1]);
        if (w) { this.waiting.delete(parts[1]); w(payload); }
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (line === "PING") this.sock.write("PONG\r\n");
      else if (line === "PONG" && this._pong) { const p = this._pong; this._pong = null; p(); }
      else if (line.startsWith("-ERR")) console.error("nats:", line);
    }
  }
  request(subject, payload, timeoutMs = 5000) {
    const reply = `${this.inbox}.${++this.n}`;
    const body = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiting.delete(reply); reject(new Error(`no reply on ${subject}`)); }, timeoutMs * SLACK);
      this.waiting.set(reply, (p) => { clearTimeout(t); resolve(p === "" ? null : JSON.parse(p)); });
      this.sock.write(`PUB ${subject} ${reply} ${body.length}\r\n`);
      this.sock.write(Buffer.concat([body, Buffer.from("\r\n")]));
    });
  }
  /** Publish into a stream; resolves with the PubAck ({stream, seq}). */
  async jsPublish(subject, data) {
    const ack = await this.request(subject, data);
    if (!ack || ack.error || !ack.seq) throw new Error(`no PubAck for ${subject}: ${JSON.stringify(ack)}`);
    return ack;
  }
  /** Core publish (no stream, or not waiting for one). */
  publish(subject, data) {
    const body = Buffer.from(typeof data === "string" ? data : JSON.stringify(data));
    this.sock.write(`PUB ${subject} ${body.length}\r\n`);
    this.sock.write(Buffer.concat([body, Buffer.from("\r\n")]));
    return new Promise((resolve) => { this._pong = resolve; this.sock.write("PING\r\n"); });
  }
  async ensureStream(name, subjects) {
    const info = await this.request(`$JS.API.STREAM.INFO.${name}`, "");
    if (info && !info.error) return info;
    const r = await this.request(`$JS.API.STREAM.CREATE.${name}`, { name, subjects, storage: "file" });
    if (r.error) throw new Error("stream create: " + JSON.stringify(r.error));
    return r;
  }
  close() { this.sock.destroy(); }
}

/** Everything a test needs, started; `stop()` stops all of it. */
export async function startStack({ config, demoArgs, stream = true } = {}) {
  const dir = tmpDir();
  const nats = await new NatsServer(dir).start();
  const pub = await NatsPublisher.connect(nats.url);
  if (stream) await pub.ensureStream("DEPLOYMENTS", ["deployments.>"]);
  const herald = await new Herald(dir, { natsUrl: nats.url, config }).start();
  const demo = demoArgs ? await new Demo(dir, { natsUrl: nats.url, args: demoArgs }).start() : null;
  return {
    dir, nats, pub, herald, demo,
    async stop() {
      pub.close();
      if (demo) await demo.stop();
      await herald.stop();
      await nats.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The deployment status payload of the README's schema. */
export function status(id, st, progress, name = id) {
  return { id, name, status: st, progress, updated_at: new Date().toISOString() };
}
