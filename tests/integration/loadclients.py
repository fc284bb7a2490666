"""Load the fault and abuse suites put on herald while something goes wrong:
signed webhook deliveries from worker threads (every answer recorded, so a
test can check each 202'd id against the stream), a fan-out publisher that
rides out nats-server restarts, and WebSocket receivers that record what
reached them."""
import asyncio
import base64
import json
import threading
import time

import nats as nats_py

from conftest import SLACK, standard_webhook_headers
from wsclient import call, connect, recv

WH_SECRET = "whsec_" + base64.b64encode(b"abuse-key-0123456789abcdef012345").decode()
WH_ENV = {"WH_SECRET": WH_SECRET}
# A Standard Webhooks source stored in JetStream (the stream must capture
# webhooks.>), and one delivered on core NATS.
WEBHOOKS = {
    "billing": {"verify": {"scheme": "standard-webhooks", "secret_env": "WH_SECRET"},
                "subject": "webhooks.billing.{+json:/type}", "delivery": "jetstream"},
    "core": {"verify": {"scheme": "standard-webhooks", "secret_env": "WH_SECRET"},
             "subject": "core.billing.{+json:/type}", "delivery": "core"},
}


def post_webhook(h, msg_id, source="billing", timeout=10):
    body = json.dumps({"type": "invoice.paid", "id": msg_id}).encode()
    return h.get(f"/v1/webhooks/{source}", method="POST", data=body, timeout=timeout,
                 headers=standard_webhook_headers(WH_SECRET, msg_id, body))


class WebhookLoad:
    """`workers` threads each POSTing signed deliveries back to back (with
    `pause` s between them) until stop(). results: id -> (status, detail)."""

    def __init__(self, h, workers=4, pause=0.02, prefix="w", source="billing"):
        self.h, self.pause, self.prefix, self.source = h, pause, prefix, source
        self.results = {}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(workers)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, worker):
        i = 0
        while not self._stop.is_set():
            d = f"{self.prefix}{worker}-{i}"
            i += 1
            try:
                r = post_webhook(self.h, d, self.source)
                detail = r.json().get("detail", "") if r.status != 202 else ""
                self.results[d] = (r.status, detail)
            except Exception as e:  # refused or reset: not accepted
                self.results[d] = (None, repr(e))
            time.sleep(self.pause)

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(30 * SLACK)
        assert not any(t.is_alive() for t in self.threads)

    def accepted(self):
        return {d for d, (s, _) in self.results.items() if s == 202}

    def statuses(self):
        return {s for s, _ in self.results.values()}


def stored_ids(nc, stream):
    return [m.headers["Nats-Msg-Id"] for m in nc.stream_messages(stream)]


class Publisher:
    """Publishes {"n": 1, 2, ...} on `subject` every `every` s through a
    nats-py connection that reconnects forever (asyncio task)."""

    def __init__(self, url, subject, every=0.02):
        self.url, self.subject, self.every = url, subject, every
        self.n = 0
        self.task = None

    async def start(self):
        self.nc = await nats_py.connect(self.url, allow_reconnect=True,
                                        max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self):
        while True:
            self.n += 1
            try:
                await self.nc.publish(self.subject, json.dumps({"n": self.n}).encode())
            except Exception:  # disconnected: the event is simply not published
                pass
            await asyncio.sleep(self.every)

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        try:
            await self.nc.flush(2)
        except Exception:
            pass
        await self.nc.close()


class Receivers:
    """n anonymous WebSocket sessions subscribed to one subject, each
    recording the "n" of every event that reaches it."""

    def __init__(self, h, subject, n):
        self.h, self.subject, self.count = h, subject, n
        self.got = [[] for _ in range(n)]
        self.closed = [None] * n  # what ended a session: its close code, or the exception
        self.tasks = []

    async def start(self):
        self.socks = []
        for i in range(0, self.count, 50):
            self.socks += await asyncio.gather(
                *[connect(self.h) for _ in range(min(50, self.count - i))])
        await asyncio.gather(*[recv(ws, 30) for ws in self.socks])
        await asyncio.gather(*[call(ws, {"type": "subscribe", "id": "s",
                                         "subject": self.subject}, 30) for ws in self.socks])
        self.tasks = [asyncio.ensure_future(self._read(i)) for i in range(self.count)]
        return self

    async def _read(self, i):
        ws = self.socks[i]
        try:
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "event":
                    self.got[i].append(m["data"]["n"])
                elif m["type"] == "pong":
                    self.got[i].append(("pong", m["id"]))
        except Exception as e:
            self.closed[i] = e
        else:  # a close handshake: its code
            self.closed[i] = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None

    def all_past(self, n):
        return all(any(isinstance(x, int) and x > n for x in g) for g in self.got)

    async def wait_all_past(self, n, timeout):
        t0 = time.monotonic()
        while not self.all_past(n):
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"not every session got an event past {n} in {timeout}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - t0

    async def ping_all(self, timeout=10):
        for i, ws in enumerate(self.socks):
            await ws.send(json.dumps({"type": "ping", "id": f"p{i}"}))
        t0 = time.monotonic()
        while not all(("pong", f"p{i}") in g for i, g in enumerate(self.got)):
            assert time.monotonic() - t0 < timeout * SLACK, "a session did not answer a ping"
            await asyncio.sleep(0.05)

    async def close(self):
        await asyncio.gather(*[ws.close() for ws in self.socks], return_exceptions=True)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Bystander:
    """A well-behaved client beside an attack, in its own thread: every
    `every` s it calls /healthz (which must answer 200 within 2 s), POSTs a
    signed webhook (core delivery: 202), and publishes an event that its
    WebSocket session must receive. check() asserts that all of it kept
    working; `counts` says how often it did."""

    def __init__(self, h, nats_url, every=0.25, tok=None):
        from natsclient import NatsClient
        from websockets.sync.client import connect as sync_connect
        self.h, self.every = h, every
        self.nc = NatsClient(nats_url)
        self.ws = sync_connect(h.ws_url, subprotocols=["herald.v1"], open_timeout=10 * SLACK,
                               additional_headers={"Authorization": f"Bearer {tok}"} if tok
                               else None)
        assert json.loads(self.ws.recv(10 * SLACK))["type"] == "ready"
        self.ws.send(json.dumps({"type": "subscribe", "id": "s", "subject": "public.bystander"}))
        assert json.loads(self.ws.recv(10 * SLACK))["type"] == "ok"
        self.failures, self.worst_healthz = [], 0.0
        self.counts = {"healthz": 0, "webhooks": 0, "events": 0}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                t0 = time.monotonic()
                r = self.h.get("/healthz", timeout=2)
                took = time.monotonic() - t0
                self.worst_healthz = max(self.worst_healthz, took)
                if r.status != 200 or took > 2:
                    self.failures.append(("healthz", r.status, took))
                self.counts["healthz"] += 1
                r = post_webhook(self.h, f"bystander-{i}", "core")
                if r.status != 202:
                    self.failures.append(("webhook", r.status, r.body[:200]))
                self.counts["webhooks"] += 1
                self.nc.run(self.nc.nc.publish("public.bystander", json.dumps({"n": i}).encode()))
                while True:
                    m = json.loads(self.ws.recv(5 * SLACK))
                    if m["type"] == "event" and m["data"]["n"] == i:
                        break
                self.counts["events"] += 1
            except Exception as e:
                self.failures.append(("exception", repr(e)))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self.thread.join(30 * SLACK)
        self.ws.close()
        self.nc.close()

    def check(self, least=3):
        assert not self.failures, self.failures[:5]
        assert min(self.counts.values()) >= least, self.counts
