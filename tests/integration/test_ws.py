"""Issue 3: the herald.v1 WebSocket protocol (contract §2, §3) against a real
herald, a real nats-server and real WebSocket clients."""
import asyncio
import json
import re
import signal
import time

import pytest
import websockets

from conftest import SLACK, wait_for
from wsclient import (ENV, RawClient, call, closed_with, config, connect, nats_connect,
                      recv, run, token)


@pytest.fixture
def wsh(make_herald, nats):
    """herald with the test permission table (anonymous role present)."""
    return make_herald(config(), env=ENV, nats_url=nats.url)


def metrics(h):
    return h.get("/metrics").body.decode()


def metric_value(h, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", metrics(h), re.M)
    return float(m.group(1)) if m else None


# ---- authentication ---------------------------------------------------------

def test_anonymous_ready_then_first_frame_auth(wsh):
    async def go():
        async with await connect(wsh) as ws:
            assert ws.subprotocol == "herald.v1"
            ready = await recv(ws)
            assert ready["type"] == "ready" and ready["roles"] == ["anonymous"]
            assert "sub" not in ready and "expires" not in ready and ready["session"]
            r = await call(ws, {"type": "auth", "id": "0", "token": token()})
            assert r["type"] == "ready" and r["sub"] == "u42" and r["roles"] == ["user"]
            assert r["expires"] > time.time()
            assert (await call(ws, {"type": "subscribe", "id": "1",
                                    "subject": "deployments.u42.>"}))["type"] == "ok"
    run(go())


def test_auth_required_without_anonymous_role(make_herald, nats):
    roles = {k: v for k, v in config()["permissions"]["roles"].items() if k != "anonymous"}
    h = make_herald(config(permissions={"roles": roles}, ws={"auth_timeout_ms": 600}),
                    env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h) as ws:
            r = await call(ws, {"type": "subscribe", "id": "1", "subject": "public.x"})
            assert r["type"] == "error" and r["code"] == "unauthorized"
            r = await call(ws, {"type": "auth", "id": "2", "token": token()})
            assert r["type"] == "ready"
        async with await connect(h) as ws:  # silent client: auth timeout
            t0 = time.monotonic()
            code, frames = await closed_with(ws)
            assert code == 4001
            assert frames and frames[-1]["code"] == "unauthorized"
            assert time.monotonic() - t0 >= 0.5
    run(go())
    assert 'herald_auth_failures_total{reason="auth_timeout"} 1' in metrics(h)


def test_authorization_header(wsh):
    async def go():
        async with await connect(wsh, tok=token()) as ws:
            ready = await recv(ws)
            assert ready["type"] == "ready" and ready["sub"] == "u42"
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(wsh, tok=token(secret="wrong-secret-0123456789abcdef0123"))
        assert e.value.response.status_code == 401
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(wsh, tok=token(exp_in=-60))
        assert e.value.response.status_code == 401
    run(go())


def test_cookie_and_query_token_off_by_default(wsh):
    async def go():
        async with await connect(wsh, headers={"Cookie": f"herald_token={token()}"}) as ws:
            assert (await recv(ws))["roles"] == ["anonymous"]
        async with await connect(wsh, query=f"?token={token()}") as ws:
            assert (await recv(ws))["roles"] == ["anonymous"]
    run(go())


def test_cookie_and_query_token_when_enabled(make_herald, nats):
    h = make_herald(config(ws={"auth_cookie": "herald_token", "query_token": True,
                               "allowed_origins": ["https://app.example"]}), env=ENV,
                    nats_url=nats.url)

    async def go():
        async with await connect(h, headers={"Cookie": f"a=1; herald_token={token()}; b=2"}) as ws:
            assert (await recv(ws))["sub"] == "u42"
        async with await connect(h, query=f"?x=1&token={token(sub='u7')}") as ws:
            assert (await recv(ws))["sub"] == "u7"
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h, query="?token=garbage")
        assert e.value.response.status_code == 401
    run(go())


def test_bad_token_in_auth_frame(wsh):
    async def go():
        async with await connect(wsh) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "auth", "id": "a", "token": "not.a.jwt"}))
            code, frames = await closed_with(ws)
            assert code == 4001 and frames[0]["code"] == "unauthorized" and frames[0]["id"] == "a"
        async with await connect(wsh) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "auth", "id": "b", "token": token(exp_in=-30)}))
            code, frames = await closed_with(ws)
            assert code == 4001 and frames[0]["code"] == "token_expired"
    run(go())


def test_empty_token_in_auth_frame_is_a_bad_token(wsh):
    """v1.2 §3: an empty-string token (or one hiding a NUL) is a bad token:
    unauthorized and close 4001, not bad_request."""
    async def go():
        for tok in ["", "good\u0000junk"]:
            async with await connect(wsh) as ws:
                await recv(ws)
                await ws.send(json.dumps({"type": "auth", "id": "e", "token": tok}))
                code, frames = await closed_with(ws)
                assert code == 4001, (tok, code, frames)
                assert frames[0]["code"] == "unauthorized" and frames[0]["id"] == "e"
    run(go())


def test_undefined_fields_are_ignored(wsh):
    """v1.2 §3: fields a request type does not define are ignored."""
    async def go():
        async with await connect(wsh) as ws:
            await recv(ws)
            r = await call(ws, {"type": "ping", "id": "p", "extra": 1, "trace": {"a": [1]}})
            assert r == {"type": "pong", "id": "p"}
            r = await call(ws, {"type": "subscribe", "id": "s", "subject": "public.x",
                                "data": 1, "hint": "newer-client"})
            assert r["type"] == "ok"
            r = await call(ws, {"type": "unsubscribe", "id": "u", "subject": "public.x",
                                "since": "whatever"})
            assert r["type"] == "ok"
            r = await call(ws, {"type": "auth", "id": "a", "token": token(), "x": True})
            assert r["type"] == "ready"
    run(go())


def test_token_expiry_closes_session(wsh):
    async def go():
        async with await connect(wsh, tok=token(exp_in=2)) as ws:
            assert (await recv(ws))["type"] == "ready"
            code, frames = await closed_with(ws, timeout=10)
            assert code == 4001
            assert frames[-1]["code"] == "token_expired"
    run(go())


def test_refresh(wsh):
    async def go():
        async with await connect(wsh, tok=token(roles=["user"])) as ws:
            await recv(ws)
            for i, subj in enumerate(["deployments.u42.>", "public.news"]):
                assert (await call(ws, {"type": "subscribe", "id": str(i),
                                        "subject": subj}))["type"] == "ok"
            # Same sub, fewer rights: the deployments subscription is ended.
            await ws.send(json.dumps({"type": "auth", "id": "r", "token": token(roles=["viewer"])}))
            got = [await recv(ws), await recv(ws)]
            err = next(m for m in got if m["type"] == "error")
            assert err["code"] == "forbidden" and err["subject"] == "deployments.u42.>"
            ready = next(m for m in got if m["type"] == "ready")
            assert ready["id"] == "r" and ready["roles"] == ["viewer"]
            r = await call(ws, {"type": "unsubscribe", "id": "u", "subject": "deployments.u42.>"})
            assert r["code"] == "bad_request"
            # A token for someone else: refused and closed.
            await ws.send(json.dumps({"type": "auth", "id": "x", "token": token(sub="u43")}))
            code, frames = await closed_with(ws)
            assert code == 4001 and frames[0]["code"] == "unauthorized"
        async with await connect(wsh, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "auth", "id": "y", "token": "bad"}))
            code, _ = await closed_with(ws)
            assert code == 4001
    run(go())


# ---- upgrade checks -------------------------------------------------------------

def test_origin_allow_list(make_herald, nats):
    h = make_herald(config(ws={"allowed_origins": ["https://app.example.com",
                                                   "https://*.example.org"]}),
                    env=ENV, nats_url=nats.url)

    async def go():
        for origin, ok in [("https://app.example.com", True), ("https://APP.example.com:443", True),
                           ("https://evil.com", False), ("http://app.example.com", False),
                           ("https://a.b.example.org", True), ("https://example.org", False),
                           ("null", False)]:
            if ok:
                async with await connect(h, headers={"Origin": origin}) as ws:
                    assert (await recv(ws))["type"] == "ready"
            else:
                with pytest.raises(websockets.InvalidStatus) as e:
                    await connect(h, headers={"Origin": origin})
                assert e.value.response.status_code == 403, origin
        async with await connect(h) as ws:  # no Origin: not refused for it
            assert (await recv(ws))["type"] == "ready"
        # Origin is checked before the token.
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h, tok="garbage", headers={"Origin": "https://evil.com"})
        assert e.value.response.status_code == 403
    run(go())


def test_subprotocol_negotiation(wsh):
    async def go():
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(wsh, subprotocols=["mqtt"])
        assert e.value.response.status_code == 400
        async with await connect(wsh, subprotocols=["foo", "herald.v1"]) as ws:
            assert ws.subprotocol == "herald.v1"
            assert (await recv(ws))["type"] == "ready"
    run(go())
    raw = RawClient(wsh.ws_port)  # offers none: served, no protocol header echoed
    assert raw.status == 101
    op, p = raw.read_frame()
    assert json.loads(p)["type"] == "ready"
    raw.close()


def test_wrong_path_is_404(wsh):
    async def go():
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(wsh, path="/v2/ws")
        assert e.value.response.status_code == 404
    run(go())


# ---- subscribe / unsubscribe --------------------------------------------------------

def test_subscribe_checks_in_contract_order(make_herald, nats):
    h = make_herald(config(ws={"max_subscriptions": 2}), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)

            async def sub(subject, i, **kw):
                return await call(ws, {"type": "subscribe", "id": str(i), "subject": subject, **kw})

            for bad in ["a..b", "foo*", "a.>.b", "", "a b", ">x", "deployments.u42."]:
                r = await sub(bad, 1)
                assert r["code"] == "invalid_subject", bad
            assert (await sub("deployments.u43.>", 2))["code"] == "forbidden"
            assert (await sub("deployments.u42.internal", 3))["code"] == "forbidden"
            assert (await sub(">", 4))["code"] == "forbidden"
            assert (await sub("deployments.u42.>", 5, since=10))["code"] == "bad_request"
            assert (await sub("deployments.u42.>", 6))["type"] == "ok"
            assert (await sub("deployments.u42.>", 7))["code"] == "duplicate_subscription"
            assert (await sub("users.u42.*", 8))["type"] == "ok"
            r = await sub("public.x", 9)
            assert r["code"] == "too_many_subscriptions" and r["subject"] == "public.x"
            assert (await call(ws, {"type": "unsubscribe", "id": "10",
                                    "subject": "users.u42.*"}))["type"] == "ok"
            assert (await sub("public.x", 11))["type"] == "ok"
            r = await call(ws, {"type": "unsubscribe", "id": "12", "subject": "nope.x"})
            assert r["code"] == "bad_request"
    run(go())


def test_template_escalation_attempts(wsh):
    async def go():
        for sub in ["u42.>", "*", ">", "", "u 42", "u42\u00a0x"]:
            async with await connect(wsh, tok=token(sub=sub)) as ws:
                await recv(ws)
                for subj in ["deployments.u42.>", "deployments.*.>", "deployments.>", ">"]:
                    r = await call(ws, {"type": "subscribe", "id": "1", "subject": subj})
                    assert r["code"] == "forbidden", (sub, subj)
                # the rest of the role still applies
                r = await call(ws, {"type": "subscribe", "id": "2", "subject": "public.x"})
                assert r["type"] == "ok"
    run(go())


# ---- events ----------------------------------------------------------------------------

def test_events_encoding_and_deny_filtering(wsh, nats):
    async def go():
        nc = await nats_connect(nats.url)
        async with await connect(wsh, tok=token()) as ws:
            await recv(ws)
            await call(ws, {"type": "subscribe", "id": "1", "subject": "deployments.u42.>"})
            await nc.publish("deployments.u42.internal", b'{"secret":1}')
            await nc.publish("deployments.u42.internal.x", b'{"secret":2}')
            await nc.publish("deployments.u42.status", b'{"state":"ready","n":[1,2.5,null]}')
            await nc.publish("deployments.u42.text", "héllo \"world\"\n".encode())
            await nc.publish("deployments.u42.bin", b"\xff\x00\x01")
            await nc.publish("deployments.u42.empty", b"")
            await nc.publish("deployments.u42.num", b"42")
            await nc.flush()
            got = [await recv(ws) for _ in range(5)]
            by = {m["subject"]: m for m in got}
            assert set(by) == {"deployments.u42.status", "deployments.u42.text",
                               "deployments.u42.bin", "deployments.u42.empty",
                               "deployments.u42.num"}
            assert by["deployments.u42.status"]["data"] == {"state": "ready", "n": [1, 2.5, None]}
            assert by["deployments.u42.text"]["data"] == "héllo \"world\"\n"
            assert by["deployments.u42.bin"]["data_b64"] == "/wAB"
            assert "data" not in by["deployments.u42.bin"]
            assert by["deployments.u42.empty"]["data"] == ""
            assert by["deployments.u42.num"]["data"] == 42
            for m in got:
                assert m["type"] == "event" and "seq" not in m
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m["time"])
            # nothing else (the denied ones) arrives
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
        await nc.close()
    run(go())


def test_one_delivery_per_matching_subscription(wsh, nats):
    async def go():
        nc = await nats_connect(nats.url)
        async with await connect(wsh) as ws:
            await recv(ws)
            for i, s in enumerate(["public.a.>", "public.*.b"]):
                await call(ws, {"type": "subscribe", "id": str(i), "subject": s})
            await nc.publish("public.a.b", b"1")
            await nc.flush()
            assert [(await recv(ws))["subject"] for _ in range(2)] == ["public.a.b"] * 2
        await nc.close()
    run(go())


def test_shared_nats_subscription_per_pattern(wsh, nats):
    async def go():
        socks = [await connect(wsh) for _ in range(3)]
        for ws in socks:
            await recv(ws)
            await call(ws, {"type": "subscribe", "id": "1", "subject": "public.shared"})
        assert metric_value(wsh, "herald_nats_subscriptions") == 1
        assert metric_value(wsh, "herald_ws_subscriptions") == 3
        assert metric_value(wsh, "herald_ws_sessions") == 3
        nc = await nats_connect(nats.url)
        await nc.publish("public.shared", b'"x"')
        await nc.flush()
        for ws in socks:
            assert (await recv(ws))["data"] == "x"
        for ws in socks:
            await ws.close()
        wait_for(lambda: metric_value(wsh, "herald_nats_subscriptions") == 0, what="interest gone")
        assert metric_value(wsh, "herald_ws_sessions") == 0
        assert metric_value(wsh, "herald_events_delivered_total") == 3
        await nc.close()
    run(go())


# ---- publish ------------------------------------------------------------------------------

def test_publish(wsh, nats):
    async def go():
        nc = await nats_connect(nats.url)
        got = []

        async def on_msg(m):
            got.append(m)
        await nc.subscribe("ui.>", cb=on_msg)
        await nc.flush()
        async with await connect(wsh, tok=token()) as ws:
            await recv(ws)
            r = await call(ws, {"type": "publish", "id": "1", "subject": "ui.u42.click",
                                "data": {"x": [1, "two"]}})
            assert r == {"type": "ok", "id": "1"}
            r = await call(ws, {"type": "publish", "id": "2", "subject": "ui.u42.blob",
                                "data_b64": "AAE="})
            assert r["type"] == "ok"
            for subj, code in [("ui.u43.click", "forbidden"), ("ui.u42.*", "invalid_subject"),
                               ("ui.u42.>", "invalid_subject"), ("deployments.u42.x", "forbidden")]:
                r = await call(ws, {"type": "publish", "id": "3", "subject": subj, "data": 1})
                assert r["code"] == code, subj
            r = await call(ws, {"type": "publish", "id": "4", "subject": "ui.u42.x", "data": 1,
                                "data_b64": "AA=="})
            assert r["code"] == "bad_request"
            r = await call(ws, {"type": "publish", "id": "5", "subject": "ui.u42.x",
                                "data_b64": "!!"})
            assert r["code"] == "bad_request"
        for _ in range(200):  # let nats-py's loop run: no blocking waits here
            if len(got) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(got) == 2, got
        assert got[0].subject == "ui.u42.click" and got[0].data == b'{"x":[1,"two"]}'
        assert got[0].headers["Content-Type"] == "application/json"
        assert got[1].data == b"\x00\x01"
        assert got[1].headers["Content-Type"] == "application/octet-stream"
        await nc.close()
    run(go())


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_frames_keep_connection_open(wsh):
    async def go():
        async with await connect(wsh) as ws:
            await recv(ws)
            cases = ["not json", "[1,2]", '"str"', "42", '{"id":"7"}', '{"type":"nope","id":"8"}',
                     '{"type":"subscribe","id":"9"}', '{"type":"subscribe","id":"10","subject":5}',
                     '{"type":"ping","id":11}',
                     '{"type":"ping","id":"13","id":"13"}']
            for c in cases:
                await ws.send(c)
                m = await recv(ws)
                assert m["type"] == "error" and m["code"] == "bad_request", (c, m)
            await ws.send(b"\x00\x01binary")
            m = await recv(ws)
            assert m["code"] == "bad_request"
            assert (await call(ws, {"type": "ping", "id": "p"}))["type"] == "pong"
    run(go())


def test_frame_too_large_closes_1009(make_herald, nats):
    h = make_herald(config(ws={"max_frame_bytes": 2048}), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "ping", "id": "x" * 1900}))
            assert (await recv(ws))["type"] == "pong"
            await ws.send(json.dumps({"type": "ping", "id": "x" * 3000}))
            code, _ = await closed_with(ws)
            assert code == 1009
    run(go())


def test_rate_limited(make_herald, nats):
    h = make_herald(config(limits={"ws_messages_per_session": {"rate_per_s": 1, "burst": 3}}),
                    env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h) as ws:
            await recv(ws)
            for i in range(3):
                await ws.send(json.dumps({"type": "ping", "id": str(i)}))
            for i in range(3):
                assert (await recv(ws))["type"] == "pong"
            await ws.send(json.dumps({"type": "ping", "id": "x"}))
            m = await recv(ws)
            assert m["code"] == "rate_limited" and m["id"] == "x"
            for i in range(20):
                await ws.send(json.dumps({"type": "ping", "id": str(i)}))
            code, frames = await closed_with(ws)
            assert code == 4029
    run(go())


# ---- keepalive and slow consumers ---------------------------------------------------------------

def test_ping_timeout_closes_4002(make_herald, nats):
    h = make_herald(config(ws={"ping_interval_s": 1, "ping_timeout_s": 1}), env=ENV,
                    nats_url=nats.url)
    raw = RawClient(h.ws_port)
    op, _ = raw.read_frame()  # ready
    op, _ = raw.read_frame()
    assert op == 9  # PING, which we ignore
    code, _ = raw.read_until_close()
    assert code == 4002
    raw.close()

    async def go():  # a client that answers pings stays
        async with await connect(h) as ws:
            await recv(ws)
            await asyncio.sleep(3)
            assert (await call(ws, {"type": "ping", "id": "1"}))["type"] == "pong"
    run(go())


def test_slow_consumer_disconnect_while_others_receive(make_herald, nats):
    h = make_herald(config(ws={"max_queue_bytes": 262144}), env=ENV, nats_url=nats.url)
    raw = RawClient(h.ws_port, rcvbuf=4096)
    raw.read_frame()
    raw.send_text(json.dumps({"type": "subscribe", "id": "1", "subject": "public.flood"}))
    assert json.loads(raw.read_frame()[1])["type"] == "ok"

    async def go():
        nc = await nats_connect(nats.url)
        async with await connect(h) as good:
            await recv(good)
            await call(good, {"type": "subscribe", "id": "1", "subject": "public.flood"})
            payload = json.dumps({"pad": "x" * 1000}).encode()
            received = 0

            total = 8000  # 8 MB: more than the kernel buffers and herald's queue hold

            async def reader():
                nonlocal received
                while received < total:
                    m = await recv(good, 20)
                    if m["type"] == "event":
                        received += 1
            task = asyncio.ensure_future(reader())
            for i in range(total):
                await nc.publish("public.flood", payload)
                if i % 50 == 0:  # paced so that a reading client keeps up
                    await nc.flush()
                    await asyncio.sleep(0.01)
            await nc.flush()
            await asyncio.wait_for(task, 60 * SLACK)
            assert received == total
        await nc.close()
    run(go())
    code, frames = raw.read_until_close()
    assert code == 4008
    raw.close()
    wait_for(lambda: metric_value(h, "herald_slow_consumers_total") == 1, what="metric")
    # counted when lws reports the connection closed, a moment after the close frame
    wait_for(lambda: 'herald_ws_sessions_closed_total{reason="slow_consumer"} 1' in metrics(h),
             what="the close counted")


def test_slow_consumer_drop_policy(make_herald, nats):
    h = make_herald(config(ws={"max_queue_bytes": 16384, "slow_consumer": "drop"}), env=ENV,
                    nats_url=nats.url)
    raw = RawClient(h.ws_port, rcvbuf=4096)
    raw.read_frame()
    raw.send_text(json.dumps({"type": "subscribe", "id": "1", "subject": "public.flood"}))
    assert json.loads(raw.read_frame()[1])["type"] == "ok"

    async def go():
        nc = await nats_connect(nats.url)
        for i in range(2000):
            await nc.publish("public.flood", json.dumps({"i": i, "pad": "y" * 500}).encode())
        await nc.flush()
        await asyncio.sleep(1.5 * SLACK)
        await nc.publish("public.flood", json.dumps({"i": "last"}).encode())
        await nc.flush()
        await nc.close()
    run(go())
    events, dropped, seen_last = [], 0, False
    raw.s.settimeout(5 * SLACK)
    while not seen_last:
        op, p = raw.read_frame()
        m = json.loads(p)
        if m["type"] == "dropped":
            assert events or dropped == 0 or True
            dropped += m["count"]
        elif m["type"] == "event":
            events.append(m["data"]["i"])
            seen_last = m["data"]["i"] == "last"
    raw.close()
    assert dropped > 0
    assert len(events) - 1 + dropped == 2000  # every event delivered or counted
    nums = [e for e in events if e != "last"]
    assert nums == sorted(nums)  # oldest dropped, order kept
    assert metric_value(h, "herald_events_dropped_total") == dropped


# ---- scale, outages, shutdown -------------------------------------------------------------------

def test_thousand_clients_receive_every_event(make_herald, nats):
    h = make_herald(config(), env=ENV, nats_url=nats.url)
    n_clients, n_events = 1000, 20

    async def go():
        socks = []
        for i in range(0, n_clients, 100):
            batch = await asyncio.gather(*[connect(h) for _ in range(100)])
            socks.extend(batch)
        await asyncio.gather(*[recv(ws, 30) for ws in socks])
        await asyncio.gather(*[call(ws, {"type": "subscribe", "id": "s", "subject": "public.burst"},
                                    30) for ws in socks])
        assert metric_value(h, "herald_nats_subscriptions") == 1
        nc = await nats_connect(nats.url)
        for i in range(n_events):
            await nc.publish("public.burst", str(i).encode())
        await nc.flush()

        async def collect(ws):
            return [(await recv(ws, 60))["data"] for _ in range(n_events)]
        results = await asyncio.gather(*[collect(ws) for ws in socks])
        assert all(r == list(range(n_events)) for r in results)
        await asyncio.gather(*[ws.close() for ws in socks])
        await nc.close()
    run(go())
    assert metric_value(h, "herald_events_delivered_total") == n_clients * n_events


def test_nats_restart_sessions_survive(wsh, nats):
    async def go():
        async with await connect(wsh, tok=token()) as ws:
            await recv(ws)
            await call(ws, {"type": "subscribe", "id": "1", "subject": "deployments.u42.>"})
            nats.stop()
            wait_for(lambda: wsh.get("/readyz").status == 503, what="outage noticed")
            r = await call(ws, {"type": "publish", "id": "2", "subject": "ui.u42.x", "data": 1})
            assert r["code"] == "unavailable"
            r = await call(ws, {"type": "subscribe", "id": "3", "subject": "users.u42.x"}, 15)
            assert r["code"] == "unavailable"
            assert (await call(ws, {"type": "ping", "id": "4"}))["type"] == "pong"
            nats.start()
            wait_for(lambda: wsh.get("/readyz").status == 200, what="reconnected")
            nc = await nats_connect(nats.url)
            await asyncio.sleep(0.5)  # nats.c resends interest on reconnect
            await nc.publish("deployments.u42.status", b'"back"')
            await nc.flush()
            m = await recv(ws, 10)
            assert m["data"] == "back"
            r = await call(ws, {"type": "publish", "id": "5", "subject": "ui.u42.x", "data": 1})
            assert r["type"] == "ok"
            await nc.close()
    run(go())


def test_sigterm_closes_clients_with_1001(wsh):
    async def go():
        socks = [await connect(wsh) for _ in range(5)]
        for ws in socks:
            await recv(ws)
        wsh.signal(signal.SIGTERM)
        codes = [(await closed_with(ws))[0] for ws in socks]
        assert codes == [1001] * 5
    run(go())
    assert wsh.wait() == 0


def test_connection_limits(make_herald, nats):
    h = make_herald(config(limits={"max_ws_connections": 3, "max_ws_connections_per_ip": 2}),
                    env=ENV, nats_url=nats.url)

    async def go():
        a, b = await connect(h), await connect(h)
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h)
        assert e.value.response.status_code == 429  # per IP
        await a.close()
        wait_for(lambda: metric_value(h, "herald_ws_sessions") == 1, what="session gone")
        c = await connect(h)  # room again
        assert (await recv(c))["type"] == "ready"
        await b.close()
        await c.close()
    run(go())


def test_global_connection_limit(make_herald, nats):
    h = make_herald(config(limits={"max_ws_connections": 2}), env=ENV, nats_url=nats.url)

    async def go():
        socks = [await connect(h), await connect(h)]
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h)
        assert e.value.response.status_code == 503
        for ws in socks:
            await ws.close()
    run(go())


def test_upgrade_rate_per_ip(make_herald, nats):
    h = make_herald(config(limits={"ws_upgrades_per_ip": {"rate_per_s": 0.5, "burst": 2}}),
                    env=ENV, nats_url=nats.url)

    async def go():
        socks = [await connect(h), await connect(h)]
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h)
        assert e.value.response.status_code == 429
        for ws in socks:
            await ws.close()
    run(go())


def test_offering_internal_protocol_name_is_refused(wsh):
    async def go():
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(wsh, subprotocols=["http-only", "herald.v1"])
        assert e.value.response.status_code == 400
    run(go())


def test_refresh_drops_queued_events_no_longer_allowed(make_herald, nats):
    h = make_herald(config(ws={"max_queue_bytes": 64 << 20}), env=ENV, nats_url=nats.url)
    raw = RawClient(h.ws_port, rcvbuf=4096)
    raw.read_frame()  # anonymous ready
    raw.send_text(json.dumps({"type": "auth", "id": "a", "token": token()}))
    assert json.loads(raw.read_frame()[1])["type"] == "ready"
    raw.send_text(json.dumps({"type": "subscribe", "id": "s", "subject": "deployments.u42.>"}))
    assert json.loads(raw.read_frame()[1])["type"] == "ok"
    total = 20000

    async def go():  # 20 MB: far more than the kernel buffers hold
        nc = await nats_connect(nats.url)
        for i in range(total):
            await nc.publish("deployments.u42.x", json.dumps({"i": i, "pad": "z" * 1000}).encode())
        await nc.flush()
        await nc.close()
    run(go())
    time.sleep(1 * SLACK)
    raw.send_text(json.dumps({"type": "auth", "id": "r", "token": token(roles=["viewer"])}))
    before, after, seen_error = 0, 0, False
    raw.s.settimeout(10 * SLACK)
    while True:
        m = json.loads(raw.read_frame()[1])
        if m["type"] == "event":
            if seen_error:
                after += 1
            else:
                before += 1
        elif m["type"] == "error":
            assert m["code"] == "forbidden" and m["subject"] == "deployments.u42.>"
            seen_error = True
        elif m["type"] == "ready":
            assert m["id"] == "r"
            break
    raw.close()
    assert after == 0
    assert before < total  # the queued rest was dropped, not delivered
