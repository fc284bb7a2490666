"""Contract §7: replicas share nothing but NATS, and a lost NATS node does
not cost the WebSocket clients their subscriptions."""
import asyncio
import time

import pytest

from conftest import SLACK, NatsCluster, wait_for
from wsclient import ENV, call, config, connect, nats_connect, recv, run, token


def test_two_replicas_fan_out_through_nats(make_herald, nats):
    a = make_herald(config(), env=ENV, nats_url=nats.url)
    b = make_herald(config(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(a, tok=token()) as wa, await connect(b, tok=token()) as wb:
            await recv(wa)
            await recv(wb)
            assert (await call(wb, {"type": "subscribe", "id": "1",
                                    "subject": "users.u42.>"}))["type"] == "ok"
            # u42 publishes through replica A with the operator role...
            async with await connect(a, tok=token(roles=["operator"])) as op:
                await recv(op)
                r = await call(op, {"type": "publish", "id": "2", "subject": "users.u42.note",
                                    "data": {"hello": "from A"}})
                assert r["type"] == "ok"
            # ...and the client on replica B sees it.
            m = await recv(wb)
            assert m["subject"] == "users.u42.note" and m["data"] == {"hello": "from A"}
    run(go())


def test_losing_a_nats_node_keeps_clients_subscribed(tmp, make_herald):
    c = NatsCluster(tmp, 2)
    c.start(0)
    c.start(1)
    try:
        # herald knows only node 0 at first; node 1 is also listed.
        h = make_herald(config(), env=ENV, nats_url=f"{c.url(0)},{c.url(1)}")
        wait_for(lambda: h.get("/readyz").status == 200, what="ready")

        async def go():
            async with await connect(h, tok=token()) as ws:
                await recv(ws)
                await call(ws, {"type": "subscribe", "id": "1", "subject": "deployments.u42.>"})
                # Wait until the route carries the interest to node 1.
                nc1 = await nats_connect(c.url(1))
                for _ in range(100):
                    await nc1.publish("deployments.u42.probe", b'"probe"')
                    await nc1.flush()
                    try:
                        if (await recv(ws, 0.1))["data"] == "probe":
                            break
                    except asyncio.TimeoutError:
                        pass
                connected = h.log_lines()
                # Kill whichever node herald is on; publish through the other.
                url = next(l["url"] for l in reversed(connected) if "url" in l)
                lost = 0 if url.endswith(str(c.ports[0])) else 1
                c.kill(lost)
                survivor = await nats_connect(c.url(1 - lost))
                t0 = time.monotonic()
                got = None
                while time.monotonic() - t0 < 20 * SLACK and got is None:
                    await survivor.publish("deployments.u42.status", b'"after-failover"')
                    await survivor.flush()
                    try:
                        while True:
                            m = await recv(ws, 0.25)
                            if m.get("data") == "after-failover":
                                got = m
                                break
                    except asyncio.TimeoutError:
                        pass
                assert got is not None, "no delivery within 20 s of losing a NATS node"
                assert time.monotonic() - t0 < 20 * SLACK
                assert (await call(ws, {"type": "ping", "id": "p"}))["type"] == "pong"
                await survivor.close()
                await nc1.close()
        run(go())
    finally:
        c.stop()
