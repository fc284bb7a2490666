// The deployments dashboard served at `/`: one card per deployment of the
// signed-in user, live over herald.v1 through herald.js. No build step.
//
// Where the token comes from: getToken() fetches `token_url` (default
// /static/dev-token.json, which `./herald.sh run` keeps fresh for the demo
// user; local development only). A real frontend points it at its own
// backend, which returns a short-lived JWT for the logged-in user.
// Query parameters: ?ws=<WebSocket URL>&token_url=<URL>&filter=<pattern>
import { connect, ErrorCodes } from "./herald.js";

const MAX_CARDS = 12;
const MAX_LOG = 50;
const STATUSES = ["pending", "building", "deploying", "ready", "failed"];
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") ||
  `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname || "localhost"}:8081/v1/ws`;
const tokenUrl = params.get("token_url") || "/static/dev-token.json";

const cards = new Map(); // deployment id -> card element
let sub = null;
let pattern = null;

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function setConn(state) {
  const label = { open: "live", reconnecting: "reconnecting", closed: "offline", connecting: "connecting" }[state] || state;
  $("conn").dataset.state = label;
  $("conn").textContent = label;
}

function setSynced(synced, text) {
  document.body.dataset.synced = String(synced);
  $("sub-state").textContent = text;
  $("sub-state").dataset.synced = String(synced);
}

async function getToken() {
  const r = await fetch(tokenUrl, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(`token endpoint ${tokenUrl} answered ${r.status}`);
  const body = await r.json();
  if (!body || typeof body.token !== "string") throw new Error(`no token from ${tokenUrl}`);
  return body.token;
}

function fmtTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function cardFor(id, subject) {
  let card = cards.get(id);
  if (card) return card;
  card = el("article", "card");
  card.dataset.id = id;
  card.dataset.subject = subject;
  const head = el("div", "card-head");
  head.append(el("h3", "name", id), el("span", "status"));
  const bar = el("div", "bar");
  bar.append(el("div", "fill"));
  const meta = el("dl", "meta");
  meta.append(el("dt", "", "id"), el("dd", "id", id), el("dt", "", "first seen"), el("dd", "started"),
              el("dt", "", "updated"), el("dd", "updated"));
  card.append(head, bar, el("div", "progress"), meta);
  $("cards").prepend(card);
  cards.set(id, card);
  $("empty").hidden = true;
  trimCards();
  return card;
}

// Keep the newest MAX_CARDS: finished deployments leave first.
function trimCards() {
  while (cards.size > MAX_CARDS) {
    const all = [...$("cards").children];
    const victim = all.reverse().find((c) => c.dataset.done === "true") || all[0];
    cards.delete(victim.dataset.id);
    victim.remove();
  }
}

function render(ev) {
  const d = ev.data;
  const tokens = ev.subject.split(".");
  const ok = d && typeof d === "object" && STATUSES.includes(d.status);
  logEvent(ev, ok ? `${d.status} ${Number(d.progress) || 0}%` : "unrecognised payload");
  if (!ok) return;
  const id = typeof d.id === "string" && d.id ? d.id : tokens[2];
  const card = cardFor(id, ev.subject);
  const progress = Math.max(0, Math.min(100, Number(d.progress) || 0));
  card.dataset.status = d.status;
  card.dataset.done = String(d.status === "ready" || d.status === "failed");
  card.dataset.progress = String(progress);
  if (ev.seq !== undefined) card.dataset.seq = String(ev.seq);
  card.querySelector(".name").textContent = d.name || id;
  card.querySelector(".status").textContent = d.status;
  card.querySelector(".fill").style.width = progress + "%";
  card.querySelector(".progress").textContent = `${progress}%`;
  const started = card.querySelector(".started");
  if (!started.textContent) started.textContent = fmtTime(d.updated_at);
  card.querySelector(".updated").textContent = fmtTime(d.updated_at);
  card.querySelector(".updated").dateTime = d.updated_at || "";
}

function logEvent(ev, text) {
  const li = el("li");
  li.dataset.subject = ev.subject;
  if (ev.seq !== undefined) li.dataset.seq = String(ev.seq);
  // A replayed event's `time` is when herald read it; the payload knows when it happened.
  const when = ev.data && typeof ev.data === "object" && ev.data.updated_at ? ev.data.updated_at : ev.time;
  li.append(el("time", "", fmtTime(when)), " ", el("code", "", ev.subject), " ", el("span", "what", text));
  $("log").prepend(li);
  while ($("log").children.length > MAX_LOG) $("log").lastChild.remove();
}

function clearCards() {
  cards.clear();
  $("cards").replaceChildren();
  $("empty").hidden = false;
}

async function follow(client, p) {
  if (sub) await sub.unsubscribe().catch(() => {});
  sub = null;
  pattern = p;
  clearCards();
  notice("");
  setSynced(false, "loading…");
  // The current state of every deployment first (snapshot), then live.
  let s = client.subscribe(p, render, { since: "last" });
  try {
    await s.ready;
  } catch (e) {
    if (pattern !== p) return;
    if (e.code !== ErrorCodes.BAD_REQUEST) {
      notice(`${p}: ${e.code} (${e.message})`);
      setSynced(false, "not subscribed");
      return;
    }
    // No history stream holds this pattern: live events only.
    notice(`No history for ${p}: showing live events only.`);
    s = client.subscribe(p, render);
  }
  if (pattern !== p) { s.unsubscribe(); return; }
  sub = s;
  s.on("synced", () => setSynced(true, "up to date"));
  s.on("gap", () => notice("Some history expired while offline; showing what the stream still holds."));
  s.on("error", (e) => { notice(`${p}: ${e.code} (${e.message})`); setSynced(false, "not subscribed"); });
  try {
    await s.synced;
    if (sub === s) setSynced(true, "up to date");
  } catch { /* reported by the error listener */ }
}

function main() {
  const client = connect({ url: wsUrl, getToken });
  window.heraldClient = client; // for the console and the browser tests
  setConn(client.state);
  client.on("state", (s, detail) => {
    setConn(s);
    if (s === "reconnecting") setSynced(false, "reconnecting…");
    if (s === "closed" && detail && detail.code) notice(`Disconnected: ${detail.code} (${detail.message})`);
  });
  client.on("error", (e) => {
    if (e.message && e.message.startsWith("getToken failed")) {
      notice(`Not signed in: ${e.message.replace("getToken failed: ", "")}. Run ./herald.sh run, or pass ?token_url= pointing at your backend.`);
    }
  });
  client.on("dropped", (n) => notice(`${n} events dropped (slow connection).`));
  client.opened.then((ready) => {
    $("user").textContent = ready.sub ? `signed in as ${ready.sub}` : "anonymous";
    const p = params.get("filter") || `deployments.${ready.sub}.*.status`;
    $("filter").value = p;
    follow(client, p);
  }, () => {});
  $("filter-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const p = $("filter").value.trim();
    if (p && p !== pattern && client.state !== "closed") follow(client, p);
  });
}

main();
