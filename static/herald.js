// herald.js: a dependency-free ES module client of herald's WebSocket
// protocol `herald.v1` (contract §3, v1.2). Served by herald at
// /static/herald.js; the same file is the npm package (static/package.json).
//
//   import { connect } from "/static/herald.js";
//   const h = connect({ url: "wss://events.example.com/v1/ws", getToken });
//   const sub = h.subscribe("deployments.u42.>", (ev) => render(ev.data), { since: "last" });
//   await sub.synced;              // snapshot delivered
//   await h.publish("ui.u42.click", { button: "deploy" });
//
// What it does for the caller: authenticates with the first frame, matches
// replies to requests by `id`, reconnects with capped exponential backoff and
// full jitter, re-authenticates through getToken() (and refreshes the token in
// place shortly before `exp`), and restores every subscription after a
// reconnect, stream-fed ones with `since: <last seq seen>` so that nothing is
// missed and nothing repeated.

export const PROTOCOL = "herald.v1";

/** The protocol's error codes (contract §3) plus the client's own `closed`. */
export const ErrorCodes = Object.freeze({
  UNAUTHORIZED: "unauthorized",
  TOKEN_EXPIRED: "token_expired",
  FORBIDDEN: "forbidden",
  INVALID_SUBJECT: "invalid_subject",
  BAD_REQUEST: "bad_request",
  DUPLICATE_SUBSCRIPTION: "duplicate_subscription",
  TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions",
  HISTORY_GAP: "history_gap",
  RATE_LIMITED: "rate_limited",
  UNAVAILABLE: "unavailable",
  INTERNAL: "internal",
  CLOSED: "closed", // client-side: the client was closed before a reply came
});

/** WebSocket close codes herald uses. */
export const CloseCodes = Object.freeze({
  GOING_AWAY: 1001, // server shutting down: reconnect
  TOO_LARGE: 1009,
  UNAUTHORIZED: 4001, // unauthorized / auth timeout / token expired
  PING_TIMEOUT: 4002,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
});

/** An error reply from herald (`code` is the protocol's code) or a client-side failure. */
export class HeraldError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "HeraldError";
    this.code = code;
    if (details.subject !== undefined) this.subject = details.subject;
    if (details.id !== undefined) this.id = details.id;
    if (details.firstSeq !== undefined) this.firstSeq = details.firstSeq;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
  }
}

/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential
 * Backoff And Jitter"): a uniformly random delay in [0, min(max, base·2^attempt)).
 * Pure; `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt, { baseMs = 500, maxMs = 30000 } = {}, random = Math.random) {
  const a = Math.max(0, Math.min(attempt, 52));
  const cap = Math.min(maxMs, baseMs * Math.pow(2, a));
  return Math.floor(random() * cap);
}

/** NATS subject matching: does concrete `subject` match `pattern` (`*`, `>`)? */
export function subjectMatches(pattern, subject) {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/**
 * What `since` to send when (re)subscribing: the last sequence seen wins
 * (stream-fed: resume exactly after it), else what the caller asked for at
 * first subscribe, else none. Pure.
 */
export function resumeSince(lastSeq, requested) {
  if (typeof lastSeq === "number") return lastSeq;
  return requested;
}

/** Seconds before `expires` at which to refresh a token that lives `lifetime` seconds. */
export function refreshLead(lifetimeS) {
  return Math.max(1, Math.min(60, Math.floor(lifetimeS / 10)));
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // a rejection nobody awaits is not an unhandled one
  return { promise, resolve, reject, settled: false };
}

class Emitter {
  constructor() { this._l = new Map(); }
  on(event, fn) {
    if (!this._l.has(event)) this._l.set(event, new Set());
    this._l.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) {
    const set = this._l.get(event);
    if (set) { set.delete(fn); if (!set.size) this._l.delete(event); }
  }
  emit(event, ...args) {
    const set = this._l.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(...args); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }
  listenerCount() {
    let n = 0;
    for (const s of this._l.values()) n += s.size;
    return n;
  }
}

/** One subscription; lives across reconnects until unsubscribe() or a final error. */
class Subscription extends Emitter {
  constructor(client, pattern, onEvent, opts) {
    super();
    this._client = client;
    this.subject = pattern;
    this._onEvent = onEvent;
    this._requested = opts.since; // undefined, a number or "last"
    this.lastSeq = null; // highest `seq` seen (stream-fed), or from a `synced`
    this.active = true;
    this._ok = deferred();
    this._synced = deferred();
    /** Resolves once herald registered the subscription (first `ok`, or `history_gap`). */
    this.ready = this._ok.promise;
    /** Resolves when the snapshot or replay is complete (at `ok` without `since`). */
    this.synced = this._synced.promise;
    this.isSynced = false;
  }
  /** The `since` to send on the next (re)subscribe. */
  get resumeSince() { return resumeSince(this.lastSeq, this._requested); }
  /** Ends the subscription; resolves when herald confirmed (or at once when offline). */
  unsubscribe() { return this._client._unsubscribe(this); }

  _setSynced(seq) {
    if (typeof seq === "number" && (this.lastSeq === null || seq > this.lastSeq)) this.lastSeq = seq;
    this.isSynced = true;
    if (!this._synced.settled) { this._synced.settled = true; this._synced.resolve(this.lastSeq); }
    this.emit("synced", this.lastSeq);
  }
  _end(err) {
    this.active = false;
    const why = err || new HeraldError(ErrorCodes.CLOSED, "unsubscribed", { subject: this.subject });
    if (!this._ok.settled) { this._ok.settled = true; this._ok.reject(why); }
    if (!this._synced.settled) { this._synced.settled = true; this._synced.reject(why); }
    if (err) this.emit("error", err);
    this._l.clear();
  }
}

const FINAL = Symbol("final");

/**
 * A herald connection. Create with connect(); it connects at once and keeps
 * reconnecting until close() or a close that cannot succeed.
 */
export class HeraldClient extends Emitter {
  constructor(opts) {
    super();
    if (!opts || !opts.url) throw new TypeError("connect: url is required");
    this.url = opts.url;
    this._token = opts.token || null;
    this._getToken = opts.getToken || null;
    this._WS = opts.WebSocket || globalThis.WebSocket;
    if (!this._WS) throw new TypeError("connect: no WebSocket implementation");
    this._backoff = { baseMs: opts.backoff?.baseMs ?? 500, maxMs: opts.backoff?.maxMs ?? 30000 };
    this._random = opts.random || Math.random;
    this._requestTimeoutMs = opts.requestTimeoutMs ?? 10000;
    this._maxAuthFailures = opts.maxAuthFailures ?? 3;
    this.state = "connecting";
    this.session = null; // the `ready` frame of the current session
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, kind}
    this._queue = []; // requests waiting for the session to open: {frame, entry}
    this._subs = new Map(); // pattern -> Subscription
    this._attempt = 0;
    this._authFailures = 0;
    this._reconnectTimer = null;
    this._refreshTimer = null;
    this._closed = false;
    this._needFreshToken = false; // the last close said the token is no good
    this._rr = new Map(); // subject -> round-robin index for overlapping plain subscriptions
    this._opened = deferred();
    this._open();
  }

  /** Resolves when the first session is open; rejects if the client closes first. */
  get opened() { return this._opened.promise; }

  /**
   * Subscribe to a pattern. `onEvent(event)` receives `{subject, data, data_b64?, seq?, time}`.
   * `opts.since`: a sequence number or "last" (snapshot; needs a history stream).
   */
  subscribe(pattern, onEvent, opts = {}) {
    if (typeof pattern !== "string" || !pattern) throw new TypeError("subscribe: pattern must be a non-empty string");
    if (typeof onEvent !== "function") throw new TypeError("subscribe: onEvent must be a function");
    const since = opts.since;
    if (since !== undefined && since !== "last" && !(Number.isInteger(since) && since >= 0))
      throw new TypeError('subscribe: since must be a non-negative integer or "last"');
    const sub = new Subscription(this, pattern, onEvent, { since });
    if (opts.onError) sub.on("error", opts.onError);
    if (opts.onSynced) sub.on("synced", opts.onSynced);
    if (opts.onGap) sub.on("gap", opts.onGap);
    if (this._closed) {
      sub._end(new HeraldError(ErrorCodes.CLOSED, "client is closed", { subject: pattern }));
      return sub;
    }
    if (this._subs.has(pattern)) {
      sub._end(new HeraldError(ErrorCodes.DUPLICATE_SUBSCRIPTION, "already subscribed", { subject: pattern }));
      return sub;
    }
    this._subs.set(pattern, sub);
    if (this.state === "open") this._sendSubscribe(sub);
    return sub;
  }

  /** Publish `data` (any JSON value) to a subject. Resolves on herald's `ok`. */
  publish(subject, data, opts = {}) {
    const frame = { type: "publish", subject };
    if (opts.binary !== undefined) frame.data_b64 = toBase64(opts.binary);
    else frame.data = data === undefined ? null : data;
    return this._request(frame);
  }

  /** Round trip to herald; resolves with the latency in ms. */
  async ping() {
    const t0 = Date.now();
    await this._request({ type: "ping" });
    return Date.now() - t0;
  }

  /** Close for good: no reconnect; pending requests reject with code `closed`. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._teardown(1000, "client closed");
    const err = new HeraldError(ErrorCodes.CLOSED, "client is closed");
    this._failAll(err, true);
    for (const sub of this._subs.values()) sub._end(null);
    this._subs.clear();
    this._setState("closed");
  }

  /** Counts of what the client holds (for tests and diagnostics). */
  stats() {
    return {
      pending: this._pending.size,
      queued: this._queue.length,
      subscriptions: this._subs.size,
      listeners: this.listenerCount(),
      timers: (this._reconnectTimer ? 1 : 0) + (this._refreshTimer ? 1 : 0) +
        [...this._pending.values()].filter((p) => p.timer).length +
        this._queue.filter((q) => q.entry.timer).length,
      socketListeners: this._ws ? 1 : 0,
    };
  }

  // ---- connection --------------------------------------------------------

  _setState(s, detail) {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s, detail);
  }

  _open() {
    this._reconnectTimer = null;
    if (this._closed) return;
    let ws;
    try {
      ws = new this._WS(this.url, PROTOCOL);
    } catch (e) {
      this._scheduleReconnect({ code: 1006, reason: String(e && e.message || e) });
      return;
    }
    this._ws = ws;
    this._authed = false;
    this._authId = undefined; // undecided; null = anonymous; else the auth frame's id
    this._anonReady = null; // an unsolicited `ready` that came before the decision
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (ev) => this._onMessage(ws, ev);
    ws.onclose = (ev) => this._onClose(ws, ev);
    // Browsers follow an error with a close event; some WebSocket
    // implementations (Node 20's) do not when the connection was never
    // established, so a failed attempt is a close (1006) here.
    ws.onerror = () => {
      if (ws.readyState !== 1) {
        this._onClose(ws, { code: 1006, reason: "connection failed" });
        try { ws.close(); } catch { /* not yet open */ }
      }
    };
  }

  async _onOpen(ws) {
    let token = null;
    try {
      token = await this._currentToken(this._needFreshToken || tokenExpiresSoon(this._token));
    } catch (e) {
      this.emit("error", new HeraldError(ErrorCodes.UNAUTHORIZED, "getToken failed: " + (e && e.message || e)));
      if (ws === this._ws) ws.close(1000, "no token");
      return;
    }
    if (ws !== this._ws) return;
    if (token) {
      // Where an anonymous role exists herald has already sent an anonymous
      // `ready`; the session is ours once this auth is answered.
      this._authId = String(this._nextId++);
      ws.send(JSON.stringify({ type: "auth", id: this._authId, token }));
    } else {
      this._authId = null; // anonymous: herald sends an unsolicited `ready`
      if (this._anonReady) this._onReady(this._anonReady);
    }
  }

  // A token for a (re)connect: getToken() when fresh is wanted or there is no static one.
  async _currentToken(fresh) {
    if (this._getToken && (fresh || !this._token)) {
      const t = await this._getToken();
      if (typeof t !== "string" || !t) throw new Error("getToken returned no token");
      this._token = t;
    }
    return this._token;
  }

  _onReady(msg) {
    this.session = msg;
    this._authed = true;
    this._attempt = 0;
    this._authFailures = 0;
    this._needFreshToken = false;
    this._scheduleRefresh(msg.expires);
    this._setState("open", msg);
    if (!this._opened.settled) { this._opened.settled = true; this._opened.resolve(msg); }
    for (const sub of this._subs.values()) this._sendSubscribe(sub);
    const q = this._queue;
    this._queue = [];
    for (const { frame, entry } of q) this._transmit(frame, entry);
  }

  // `minDelayMs`: when getToken keeps returning a token that expires no later
  // than the last one, refresh again only after a pause, not in a tight loop.
  _scheduleRefresh(expires, minDelayMs = 0) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!this._getToken || typeof expires !== "number") return;
    const now = Date.now() / 1000;
    const issued = this._tokenIssuedAt(now);
    const lead = refreshLead(expires - issued);
    const inMs = Math.max(minDelayMs, (expires - lead - now) * 1000);
    this._refreshTimer = setTimeout(() => this._refresh(), Math.min(inMs, 2 ** 31 - 1));
  }

  _tokenIssuedAt(now) {
    const iat = jwtClaims(this._token).iat;
    return typeof iat === "number" ? iat : now;
  }

  // Refresh in place: a new `auth` frame on the live session.
  async _refresh() {
    this._refreshTimer = null;
    const ws = this._ws;
    if (this._closed || !ws || this.state !== "open") return;
    try {
      const token = await this._currentToken(true);
      if (ws !== this._ws || this.state !== "open") return;
      const before = this.session && this.session.expires;
      const ready = await this._request({ type: "auth", token }, { now: true });
      this.session = ready;
      this._scheduleRefresh(ready.expires, before && !(ready.expires > before) ? 5000 : 0);
      this.emit("refreshed", ready);
    } catch (e) {
      this.emit("error", e instanceof HeraldError ? e : new HeraldError(ErrorCodes.UNAUTHORIZED, "token refresh failed: " + (e && e.message || e)));
      // Try again shortly; if the token expires meanwhile herald closes with 4001
      // and the reconnect asks getToken() again.
      if (!this._closed && ws === this._ws && !this._refreshTimer)
        this._refreshTimer = setTimeout(() => this._refresh(), 5000);
    }
  }

  _onClose(ws, ev) {
    if (ws !== this._ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this._ws = null;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const wasAuthed = this._authed;
    this._authed = false;
    // In-flight requests cannot be answered on a new session.
    this._failAll(new HeraldError(ErrorCodes.UNAVAILABLE, "connection lost before the reply", { closeCode: ev.code }), false);
    for (const sub of this._subs.values()) sub.isSynced = false;
    if (this._closed) return;
    this.emit("disconnect", { code: ev.code, reason: ev.reason, wasAuthed });
    if (ev.code === CloseCodes.UNAUTHORIZED) {
      this._authFailures++;
      this._needFreshToken = true;
      const err = this._lastAuthError || new HeraldError(ErrorCodes.UNAUTHORIZED, ev.reason || "unauthorized", { closeCode: ev.code });
      this._lastAuthError = null;
      // Without a way to get a new token the same token fails again.
      if (!this._getToken || this._authFailures >= this._maxAuthFailures) {
        this._final(err);
        return;
      }
    }
    this._scheduleReconnect(ev);
  }

  _final(err) {
    this._closed = true;
    this.emit("error", err);
    this._failAll(err, true);
    for (const sub of this._subs.values()) sub._end(err);
    this._subs.clear();
    if (!this._opened.settled) { this._opened.settled = true; this._opened.reject(err); }
    this._setState("closed", err);
  }

  _scheduleReconnect(ev) {
    const delay = backoffDelay(this._attempt, this._backoff, this._random);
    this._attempt++;
    this._setState("reconnecting", { code: ev.code, reason: ev.reason, delayMs: delay, attempt: this._attempt });
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _teardown(code, reason) {
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._refreshTimer);
    this._reconnectTimer = this._refreshTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
  }

  // ---- requests ----------------------------------------------------------

  _request(frame, { now = false } = {}) {
    if (this._closed) return Promise.reject(new HeraldError(ErrorCodes.CLOSED, "client is closed"));
    const d = deferred();
    const entry = { resolve: d.resolve, reject: d.reject, timer: null, kind: frame.type };
    if (this.state === "open" || now) {
      this._transmit(frame, entry);
    } else {
      // Sent once the session is open; given up after the request timeout.
      const item = { frame, entry };
      this._queue.push(item);
      if (this._requestTimeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this._queue = this._queue.filter((q) => q !== item);
          entry.reject(new HeraldError(ErrorCodes.UNAVAILABLE, "not connected within " + this._requestTimeoutMs + " ms"));
        }, this._requestTimeoutMs);
      }
    }
    return d.promise;
  }

  _transmit(frame, entry) {
    const id = String(this._nextId++);
    frame.id = id;
    this._pending.set(id, entry);
    clearTimeout(entry.timer);
    entry.timer = null;
    if (this._requestTimeoutMs > 0) {
      entry.timer = setTimeout(() => {
        this._pending.delete(id);
        entry.reject(new HeraldError(ErrorCodes.UNAVAILABLE, "no reply within " + this._requestTimeoutMs + " ms", { id }));
      }, this._requestTimeoutMs);
    }
    try {
      this._ws.send(JSON.stringify(frame));
    } catch (e) {
      // The socket is going away; its close event follows and subscriptions are restored.
      this._settle(id, new HeraldError(ErrorCodes.UNAVAILABLE, "send failed: " + (e && e.message || e), { id, closeCode: 1006 }));
    }
    return id;
  }

  _settle(id, err, value) {
    const entry = this._pending.get(id);
    if (!entry) return null;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    if (err) entry.reject(err);
    else entry.resolve(value);
    return entry;
  }

  _failAll(err, includeQueued) {
    for (const id of [...this._pending.keys()]) this._settle(id, err);
    if (includeQueued) {
      for (const { entry } of this._queue) {
        clearTimeout(entry.timer);
        entry.reject(err);
      }
      this._queue = [];
    }
  }

  _sendSubscribe(sub) {
    const frame = { type: "subscribe", subject: sub.subject };
    const since = sub.resumeSince;
    if (since !== undefined) frame.since = since;
    const d = deferred();
    const entry = { resolve: d.resolve, reject: d.reject, timer: null, kind: "subscribe", sub };
    this._transmit(frame, entry);
    d.promise.then((reply) => {
      if (this._subs.get(sub.subject) !== sub) return;
      if (!sub._ok.settled) { sub._ok.settled = true; sub._ok.resolve(reply); }
      if (since === undefined) sub._setSynced(null); // nothing to load
    }, (err) => {
      if (this._subs.get(sub.subject) !== sub) return;
      if (err.code === ErrorCodes.HISTORY_GAP) {
        // The subscription exists and replays from first_seq.
        sub.emit("gap", err);
        if (!sub._ok.settled) { sub._ok.settled = true; sub._ok.resolve({ type: "ok", gap: err.firstSeq }); }
        return;
      }
      if (err.code === ErrorCodes.UNAVAILABLE && err.closeCode !== undefined) return; // restored after reconnect
      this._subs.delete(sub.subject);
      sub._end(err);
    });
  }

  _unsubscribe(sub) {
    if (!sub.active) return Promise.resolve();
    if (this._subs.get(sub.subject) === sub) this._subs.delete(sub.subject);
    sub._end(null);
    if (this.state !== "open" || this._closed) return Promise.resolve();
    return this._request({ type: "unsubscribe", subject: sub.subject }).catch((err) => {
      // Not held on this session (e.g. refused): nothing to undo.
      if (err.code !== ErrorCodes.BAD_REQUEST) throw err;
    });
  }

  // ---- frames from herald ------------------------------------------------

  _onMessage(ws, ev) {
    if (ws !== this._ws || typeof ev.data !== "string") return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "event": this._onEvent(msg); break;
      case "ready":
        if (msg.id !== undefined && this._pending.has(msg.id)) { this._settle(msg.id, null, msg); break; }
        if (this._authed) break;
        if (msg.id === undefined) { // unsolicited: the anonymous session
          if (this._authId === null) this._onReady(msg);
          else if (this._authId === undefined) this._anonReady = msg;
        } else if (msg.id === this._authId) {
          this._onReady(msg);
        }
        break;
      case "ok": case "pong":
        this._settle(msg.id, null, msg);
        break;
      case "synced": {
        const sub = this._subs.get(msg.subject);
        if (sub) sub._setSynced(msg.seq);
        break;
      }
      case "dropped":
        this.emit("dropped", msg.count);
        break;
      case "error": this._onError(msg); break;
      default: break; // newer server frame types are ignored
    }
  }

  _onError(msg) {
    const err = new HeraldError(msg.code, msg.message, { subject: msg.subject, id: msg.id, firstSeq: msg.first_seq });
    if (msg.id !== undefined && msg.id === this._authId && !this._authed) {
      this._lastAuthError = err; // herald closes with 4001 next
      return;
    }
    if (msg.id !== undefined && this._settle(msg.id, err)) return;
    if (msg.code === ErrorCodes.FORBIDDEN && msg.subject && this._subs.has(msg.subject)) {
      // The refreshed token no longer allows this subscription: herald ended it.
      const sub = this._subs.get(msg.subject);
      this._subs.delete(msg.subject);
      sub._end(err);
    }
    if (msg.code === ErrorCodes.UNAUTHORIZED || msg.code === ErrorCodes.TOKEN_EXPIRED) this._lastAuthError = err;
    this.emit("error", err);
  }

  _onEvent(msg) {
    const matching = [];
    for (const sub of this._subs.values()) if (subjectMatches(sub.subject, msg.subject)) matching.push(sub);
    if (!matching.length) return;
    let target;
    if (typeof msg.seq === "number") {
      // One frame per matching subscription; each stream-fed subscription sees
      // ascending seq, so the frame belongs to the first that has not seen it.
      target = matching.find((s) => s.lastSeq === null || msg.seq > s.lastSeq);
      if (!target) return; // already seen (never expected: herald sends no duplicate)
      target.lastSeq = msg.seq;
    } else if (matching.length === 1) {
      target = matching[0];
    } else {
      const i = this._rr.get(msg.subject) || 0;
      target = matching[i % matching.length];
      if (i + 1 >= matching.length) this._rr.delete(msg.subject);
      else this._rr.set(msg.subject, i + 1);
    }
    try { target._onEvent(msg, target); } catch (e) { queueMicrotask(() => { throw e; }); }
  }
}

/** Connect to herald. `token` (a JWT) or `getToken()` (async, returns a JWT); neither = anonymous. */
export function connect(opts) {
  return new HeraldClient(opts);
}

// The claims of a JWT, read without verifying it (herald verifies); {} if opaque.
function jwtClaims(token) {
  try {
    const c = JSON.parse(b64urlDecode(String(token).split(".")[1]));
    return c && typeof c === "object" ? c : {};
  } catch {
    return {};
  }
}

// True when a token is missing or its `exp` is less than 10 s away.
function tokenExpiresSoon(token) {
  if (!token) return true;
  const exp = jwtClaims(token).exp;
  return typeof exp === "number" && exp - Date.now() / 1000 < 10;
}

function b64urlDecode(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function toBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = "";
  for (let i = 0; i < u8.length; i++) bin += String.fromCharCode(u8[i]);
  return btoa(bin);
}
