#!/usr/bin/env python3
"""soak.py — the soak driver behind bench/soak.sh (issue 17). Not a test.

Against a herald and a nats-server that soak.sh started (loopback only):
- CLIENTS anonymous WebSocket sessions, client i subscribed to
  bench.soak.<i % SUBJECTS>;
- a publisher (nats-py, reconnecting) sending RATE events/s round-robin over
  the subjects, each {"s": subject, "n": per-subject sequence};
- WH_RATE signed Standard Webhooks POSTs/s to the source "soak" (delivery
  jetstream, stream SOAKWH on webhooks.soak.>), every answer recorded;
- every RESTART_S seconds nats-server is killed (-9) and started again on
  the same store: the publisher pauses from 1 s before the kill until every
  subject delivers again (a probe per subject reaches a session on it), so
  the counted events are those published while herald could take them (core
  NATS keeps nothing for a disconnected subscriber, by design); the webhooks
  go on throughout (503 while NATS is away);
- every SAMPLE_S seconds herald's VmRSS and open fd count.
At the end: delivered vs expected per session (lost, duplicated, reordered),
202'd vs stored webhooks, the time series and a verdict (growth of RSS and
fds between the first and last third of the samples), as Markdown and JSON.
"""
import argparse
import asyncio
import base64
import concurrent.futures
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import nats as nats_py
from standardwebhooks.webhooks import Webhook
from websockets.asyncio.client import connect as ws_connect

WH_SECRET = "whsec_" + base64.b64encode(b"soak-key-0123456789abcdef0123456").decode()


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        v = dict(l.split(":", 1) for l in f if l.startswith(("VmRSS", "VmHWM")))
    return (int(v["VmRSS"].split()[0]), int(v["VmHWM"].split()[0]),
            len(os.listdir(f"/proc/{pid}/fd")))


class Soak:
    def __init__(self, a):
        self.a = a
        self.ws_url = f"ws://127.0.0.1:{a.ws_port}/v1/ws"
        self.http = f"http://127.0.0.1:{a.http_port}"
        self.nats_url = f"nats://127.0.0.1:{a.nats_port}"
        self.got = [dict() for _ in range(a.clients)]   # client -> {n: count}
        self.order_errors = [0] * a.clients
        self.last_n = [0] * a.clients
        self.probes = [0] * a.subjects                  # last probe id seen per subject
        self.dropped = 0
        self.ended = {}                                 # client -> why its session ended
        self.published = [0] * a.subjects               # counted events per subject
        self.paused = True
        self.outages = []
        self.samples = []
        self.wh = {}                                    # id -> status
        self.stop = False

    # ---- WebSocket sessions --------------------------------------------------
    async def client(self, i, ready):
        subj = f"bench.soak.{i % self.a.subjects}"
        try:
            ws = await ws_connect(self.ws_url, subprotocols=["herald.v1"], max_size=None,
                                  open_timeout=60, ping_interval=None, close_timeout=2)
        except Exception as e:
            self.ended[i] = f"connect: {e!r}"
            ready.release()
            return
        self.socks[i] = ws
        try:
            json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "subscribe", "id": "s", "subject": subj}))
            ok = json.loads(await ws.recv())
            assert ok["type"] == "ok", ok
            ready.release()
            async for raw in ws:
                m = json.loads(raw)
                t = m["type"]
                if t == "event":
                    d = m["data"]
                    if "probe" in d:
                        self.probes[d["s"]] = max(self.probes[d["s"]], d["probe"])
                        continue
                    n = d["n"]
                    g = self.got[i]
                    g[n] = g.get(n, 0) + 1
                    if n <= self.last_n[i]:
                        self.order_errors[i] += 1
                    self.last_n[i] = n
                elif t == "dropped":
                    self.dropped += m.get("count", 0)
        except Exception as e:
            if not self.stop:
                self.ended[i] = repr(e)
            return
        if not self.stop:
            self.ended[i] = "closed by herald"

    # ---- publisher -------------------------------------------------------------
    async def publisher(self):
        async def quiet(*_):  # the restarts are on purpose
            pass
        self.pub = await nats_py.connect(self.nats_url, allow_reconnect=True,
                                         max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                         error_cb=quiet, disconnected_cb=quiet)
        every = 1.0 / self.a.rate
        nxt = time.monotonic()
        k = 0
        while not self.stop:
            nxt += every
            if not self.paused:
                s = k % self.a.subjects
                k += 1
                self.published[s] += 1
                try:
                    await self.pub.publish(f"bench.soak.{s}", json.dumps(
                        {"s": s, "n": self.published[s]}).encode())
                except Exception as e:  # should not happen: paused during outages
                    self.published[s] -= 1
                    log("publish failed", repr(e))
            await asyncio.sleep(max(0, nxt - time.monotonic()))

    async def probe_all(self, timeout):
        """Publish a probe on every subject until each has reached a session."""
        t0 = time.monotonic()
        pid = int(t0 * 1000)
        while time.monotonic() - t0 < timeout:
            pending = [s for s in range(self.a.subjects) if self.probes[s] < pid]
            if not pending:
                return time.monotonic() - t0
            for s in pending:
                try:
                    await self.pub.publish(f"bench.soak.{s}",
                                           json.dumps({"s": s, "probe": pid}).encode())
                except Exception:
                    pass
            await asyncio.sleep(0.5)
        return None

    # ---- webhooks (threads) -------------------------------------------------------
    def webhooks(self, worker, nworkers):
        wh = Webhook(WH_SECRET)
        i = 0
        every = nworkers / self.a.wh_rate
        nxt = time.monotonic()
        while not self.stop:
            nxt += every
            d = f"soak-{worker}-{i}"
            i += 1
            body = json.dumps({"type": "soak.tick", "id": d}).encode()
            when = datetime.datetime.now(tz=datetime.timezone.utc)
            req = urllib.request.Request(
                f"{self.http}/v1/webhooks/soak", data=body, method="POST",
                headers={"webhook-id": d, "webhook-timestamp": str(int(when.timestamp())),
                         "webhook-signature": wh.sign(d, when, body.decode()),
                         "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    self.wh[d] = r.status
            except urllib.error.HTTPError as e:
                self.wh[d] = e.code
            except Exception as e:
                self.wh[d] = repr(e)
            time.sleep(max(0, nxt - time.monotonic()))

    # ---- nats-server restarts -------------------------------------------------------
    def nats_pid(self):
        with open(os.path.join(self.a.nats_dir, "nats.pid")) as f:
            return int(f.read())

    def ready(self):
        try:
            with urllib.request.urlopen(self.http + "/readyz", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    async def restart_nats(self):
        self.paused = True
        await asyncio.sleep(1)  # what was published reaches the sessions
        t_kill = time.monotonic()
        os.kill(self.nats_pid(), signal.SIGKILL)
        await asyncio.sleep(1)
        subprocess.run([self.a.start_nats, self.a.nats_dir], check=True,
                       stdout=subprocess.DEVNULL,
                       env={**os.environ, "NATS_PORT": str(self.a.nats_port),
                            "NATS_WS_PORT": str(self.a.nats_ws_port)})
        t_up = time.monotonic()
        while not self.ready() and time.monotonic() - t_up < 60:
            await asyncio.sleep(0.1)
        ready_s = time.monotonic() - t_up
        flow_s = await self.probe_all(60)
        self.outages.append({"at_s": round(t_kill - self.t0), "readyz_after_s": round(ready_s, 2),
                             "events_flow_after_s": None if flow_s is None
                             else round(ready_s + flow_s, 2),
                             "paused_s": round(time.monotonic() - t_kill + 1, 1)})
        log("nats restarted", self.outages[-1])
        self.paused = False

    # ---- sampling ----------------------------------------------------------------
    async def sampler(self):
        while not self.stop:
            rss, hwm, fds = proc_sample(self.a.herald_pid)
            delivered = sum(sum(g.values()) for g in self.got)
            self.samples.append({"t_s": round(time.monotonic() - self.t0), "rss_kib": rss,
                                 "hwm_kib": hwm, "fds": fds, "delivered": delivered,
                                 "published": sum(self.published),
                                 "webhooks_202": sum(v == 202 for v in self.wh.values()),
                                 "sessions_ended": len(self.ended)})
            log("sample", self.samples[-1])
            await asyncio.sleep(self.a.sample_s)

    # ---- the run -----------------------------------------------------------------
    async def run(self):
        a = self.a
        nc = await nats_py.connect(self.nats_url)
        try:
            await nc.jetstream().add_stream(name="SOAKWH", subjects=["webhooks.soak.>"])
        finally:
            await nc.close()
        self.socks = [None] * a.clients
        ready = asyncio.Semaphore(0)
        t_connect = time.monotonic()
        tasks = []
        for i in range(a.clients):
            tasks.append(asyncio.ensure_future(self.client(i, ready)))
            if i % 100 == 99:
                for _ in range(100):
                    await ready.acquire()
        for _ in range(a.clients % 100):
            await ready.acquire()
        log(f"{a.clients} sessions subscribed in {time.monotonic() - t_connect:.1f}s,"
            f" {len(self.ended)} failed")
        await self.publisher_start()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=a.wh_workers)
        loop = asyncio.get_running_loop()
        wh_futs = [loop.run_in_executor(pool, self.webhooks, w, a.wh_workers)
                   for w in range(a.wh_workers)]
        self.t0 = time.monotonic()
        flow = await self.probe_all(30)
        log(f"every subject delivers ({flow})")
        self.paused = False
        samp = asyncio.ensure_future(self.sampler())
        end = self.t0 + a.minutes * 60
        next_restart = self.t0 + a.restart_s
        while time.monotonic() < end:
            if a.restart_s and time.monotonic() >= next_restart and end - time.monotonic() > 20:
                await self.restart_nats()
                next_restart += a.restart_s
            await asyncio.sleep(0.2)
        self.paused = True
        await asyncio.sleep(3)  # the last events reach the sessions
        rss, hwm, fds = proc_sample(a.herald_pid)
        self.samples.append({"t_s": round(time.monotonic() - self.t0), "rss_kib": rss,
                             "hwm_kib": hwm, "fds": fds,
                             "delivered": sum(sum(g.values()) for g in self.got),
                             "published": sum(self.published),
                             "webhooks_202": sum(v == 202 for v in self.wh.values()),
                             "sessions_ended": len(self.ended)})
        self.stop = True
        samp.cancel()
        self.pubtask.cancel()
        await asyncio.gather(*wh_futs, return_exceptions=True)
        stored = await self.stored_webhooks()
        await self.pub.close()
        await asyncio.gather(*[ws.close() for ws in self.socks if ws], return_exceptions=True)
        for t in tasks:
            t.cancel()
        return stored

    async def publisher_start(self):
        self.pubtask = asyncio.ensure_future(self.publisher())
        while not hasattr(self, "pub"):
            await asyncio.sleep(0.05)

    async def stored_webhooks(self):
        nc = await nats_py.connect(self.nats_url)
        js = nc.jetstream()
        sub = await js.pull_subscribe("webhooks.soak.>", stream="SOAKWH")
        ids = []
        while True:
            try:
                msgs = await sub.fetch(500, timeout=3)
            except Exception:  # nothing more
                break
            for m in msgs:
                ids.append(m.headers.get("Nats-Msg-Id"))
                await m.ack()
        await nc.close()
        return ids


def trend(samples, key):
    """Mean of the first and last third of the samples, and the growth."""
    n = len(samples)
    k = max(1, n // 3)
    first = statistics.mean(s[key] for s in samples[:k])
    last = statistics.mean(s[key] for s in samples[-k:])
    return first, last


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--subjects", type=int, default=100)
    p.add_argument("--rate", type=float, default=50, help="events/s")
    p.add_argument("--wh-rate", type=float, default=20, help="webhooks/s")
    p.add_argument("--wh-workers", type=int, default=4)
    p.add_argument("--restart-s", type=float, default=120)
    p.add_argument("--sample-s", type=float, default=10)
    p.add_argument("--ws-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--nats-port", type=int, required=True)
    p.add_argument("--nats-ws-port", type=int, required=True)
    p.add_argument("--nats-dir", required=True)
    p.add_argument("--start-nats", required=True)
    p.add_argument("--herald-pid", type=int, required=True)
    p.add_argument("--out", required=True, help="result path without extension")
    p.add_argument("--command", default="")
    a = p.parse_args()
    s = Soak(a)
    started = datetime.datetime.now(datetime.timezone.utc)
    stored = asyncio.run(s.run())

    expected = {i: s.published[i % a.subjects] for i in range(a.clients)}
    received = sum(len(g) for g in s.got)
    dup = sum(c - 1 for g in s.got for c in g.values() if c > 1)
    lost = sum(max(0, expected[i] - len([n for n in s.got[i] if n <= expected[i]]))
               for i in range(a.clients))
    want = sum(expected.values())
    wh202 = {d for d, st in s.wh.items() if st == 202}
    wh_other = {}
    for st in s.wh.values():
        if st != 202:
            wh_other[str(st)[:60]] = wh_other.get(str(st)[:60], 0) + 1
    stored_set = set(stored)
    wh_lost = sorted(wh202 - stored_set)
    wh_dup = len(stored) - len(stored_set)
    rss0, rss1 = trend(s.samples, "rss_kib")
    fd0, fd1 = trend(s.samples, "fds")
    rss_growth = (rss1 - rss0) / rss0
    ok_rss = rss_growth <= 0.10
    ok_fd = fd1 - fd0 <= 10
    ok = (ok_rss and ok_fd and lost == 0 and dup == 0 and not wh_lost and wh_dup == 0
          and not s.ended and sum(s.order_errors) == 0 and s.dropped == 0)
    summary = {
        "started": started.isoformat(timespec="seconds"), "minutes": a.minutes,
        "clients": a.clients, "subjects": a.subjects, "rate_per_s": a.rate,
        "webhook_rate_per_s": a.wh_rate, "restart_every_s": a.restart_s,
        "nats_restarts": len(s.outages), "outages": s.outages,
        "events_published": sum(s.published), "deliveries_expected": want,
        "deliveries_received": received, "lost": lost, "duplicated": dup,
        "reordered": sum(s.order_errors), "dropped_notices": s.dropped,
        "sessions_ended": len(s.ended), "sessions_ended_why": dict(list(s.ended.items())[:5]),
        "webhooks_sent": len(s.wh), "webhooks_202": len(wh202), "webhooks_other": wh_other,
        "webhooks_stored": len(stored), "webhooks_202_not_stored": len(wh_lost),
        "webhooks_stored_twice": wh_dup,
        "rss_kib_first_third": round(rss0), "rss_kib_last_third": round(rss1),
        "rss_growth_pct": round(rss_growth * 100, 1),
        "peak_rss_kib": max(x["hwm_kib"] for x in s.samples),
        "fds_first_third": round(fd0, 1), "fds_last_third": round(fd1, 1),
        "verdict": "PASS" if ok else "FAIL",
    }
    with open(a.out + ".json", "w") as f:
        json.dump({"summary": summary, "samples": s.samples}, f, indent=1)
    with open(a.out + ".md", "w") as f:
        f.write(f"# Soak {summary['started']} — {summary['verdict']}\n\n")
        f.write(f"Command: `{a.command}`\n\n")
        f.write(f"{a.clients} WebSocket sessions on {a.subjects} subjects, {a.rate:g} events/s "
                f"published (each to {a.clients // a.subjects} sessions), {a.wh_rate:g} signed "
                f"webhooks/s (JetStream), nats-server killed (-9) and restarted every "
                f"{a.restart_s:g} s, {a.minutes:g} min. The publisher pauses from 1 s before "
                "each kill until every subject delivers again (core NATS keeps nothing for a "
                "disconnected subscriber); the webhooks do not pause.\n\n")
        f.write("| | |\n|---|---|\n")
        for k, v in summary.items():
            if k not in ("outages", "started"):
                f.write(f"| {k} | {v} |\n")
        f.write("\n## nats-server restarts\n\n| at (s) | /readyz after (s) | events flow after (s) "
                "| publisher paused (s) |\n|---|---|---|---|\n")
        for o in s.outages:
            f.write(f"| {o['at_s']} | {o['readyz_after_s']} | {o['events_flow_after_s']} "
                    f"| {o['paused_s']} |\n")
        f.write("\n## herald over time\n\n| t (s) | VmRSS (KiB) | VmHWM (KiB) | fds | delivered "
                "| published | webhooks 202 | sessions ended |\n|---|---|---|---|---|---|---|---|\n")
        for x in s.samples:
            f.write(f"| {x['t_s']} | {x['rss_kib']} | {x['hwm_kib']} | {x['fds']} | "
                    f"{x['delivered']} | {x['published']} | {x['webhooks_202']} | "
                    f"{x['sessions_ended']} |\n")
        f.write("\nVerdict: PASS needs RSS (mean of the last third of the samples against the "
                "first third) to grow at most 10 %, fds at most 10, and nothing lost, "
                "duplicated, reordered or dropped, no session ended, every 202'd webhook "
                "stored exactly once.\n")
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
