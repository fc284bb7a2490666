"""Contract §3 "Resume (history streams)": stream-fed subscriptions carry
`seq`; `since: N` replays then joins the live feed with no gap and no
duplicate; `since: "last"` snapshots; `synced`; `history_gap`. Real
nats-server with JetStream (file storage), real herald, real clients."""
import asyncio
import json
import random
import time

import pytest

from conftest import SLACK, NatsCluster, wait_for
from natsclient import NatsClient
from wsclient import ENV, call, config, connect, recv, run, token

STREAM = "DEPLOYMENTS"
HISTORY = [{"stream": STREAM, "subjects": ["deployments.>"]}]


def hconfig(**over):
    over.setdefault("history", HISTORY)
    return config(**over)


@pytest.fixture
def nc(nats):
    c = NatsClient(nats.url)
    yield c
    c.close()


def publish(nc, subject, data):
    """Publish through JetStream; returns the stored sequence."""
    payload = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return nc.run(nc.js.publish(subject, payload)).seq


async def until_synced(ws, sub_id, timeout=10):
    """Frames up to and including `synced` for the subscribe `sub_id`."""
    out = []
    while True:
        m = await recv(ws, timeout)
        out.append(m)
        if m["type"] == "synced" and m.get("id") == sub_id:
            return out


def events(frames):
    return [f for f in frames if f["type"] == "event"]


def test_stream_fed_events_carry_seq_core_ones_do_not(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            assert (await call(ws, {"type": "subscribe", "id": "1",
                                    "subject": "deployments.u42.>"}))["type"] == "ok"
            assert (await call(ws, {"type": "subscribe", "id": "2",
                                    "subject": "users.u42.>"}))["type"] == "ok"
            seq = publish(nc, "deployments.u42.d1.status", {"status": "pending"})
            m = await recv(ws)
            assert m["subject"] == "deployments.u42.d1.status" and m["seq"] == seq
            await nc.nc.publish("users.u42.x", b"1")
            m = await recv(ws)
            assert m["subject"] == "users.u42.x" and "seq" not in m
    run(go())


def test_since_replays_then_synced_then_live(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    seqs = [publish(nc, f"deployments.u42.d{i}.status", {"n": i}) for i in range(5)]
    publish(nc, "deployments.u43.d1.status", {"other": True})  # not matched
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "r", "subject": "deployments.u42.>",
                                      "since": seqs[1]}))
            frames = await until_synced(ws, "r")
            assert frames[0] == {"type": "ok", "id": "r"}
            ev = events(frames)
            assert [e["seq"] for e in ev] == seqs[2:]
            assert [e["data"]["n"] for e in ev] == [2, 3, 4]
            assert frames[-1] == {"type": "synced", "id": "r", "subject": "deployments.u42.>",
                                  "seq": seqs[-1]}
            assert len(frames) == 2 + len(ev)
            s6 = publish(nc, "deployments.u42.d9.status", {"n": 9})
            m = await recv(ws)
            assert m["type"] == "event" and m["seq"] == s6
            assert (await call(ws, {"type": "ping", "id": "p"}))["type"] == "pong"
        async with await connect(h, tok=token()) as ws:  # since = everything: nothing to replay
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "a", "subject": "deployments.u42.>",
                                      "since": s6}))
            frames = await until_synced(ws, "a")
            assert [f["type"] for f in frames] == ["ok", "synced"]
            assert frames[1]["seq"] == s6
    run(go())


def test_synced_with_nothing_stored(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            for sid, since in (("s", 0), ("l", "last")):
                subj = "deployments.u42.>" if sid == "s" else "deployments.u42.*.status"
                await ws.send(json.dumps({"type": "subscribe", "id": sid, "subject": subj,
                                          "since": since}))
                frames = await until_synced(ws, sid)
                assert frames == [{"type": "ok", "id": sid},
                                  {"type": "synced", "id": sid, "subject": subj, "seq": 0}]
            # no synced for a plain subscribe
            r = await call(ws, {"type": "subscribe", "id": "p", "subject": "deployments.u42.x.>"})
            assert r == {"type": "ok", "id": "p"}
            s1 = publish(nc, "deployments.u42.d1.status", {"n": 1})
            got = [await recv(ws), await recv(ws)]  # once per matching subscription
            assert sorted(m["seq"] for m in got) == [s1, s1]
            with pytest.raises(asyncio.TimeoutError):
                await recv(ws, 0.5)
    run(go())


def test_snapshot_last_per_subject_honours_deny_then_live(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    last = {}
    for rnd, status in enumerate(["pending", "building", "ready"]):
        for d in range(30):
            if rnd == 2 and d % 3 == 0:
                continue  # some stop at "building"
            subj = f"deployments.u42.d{d}.status"
            last[subj] = (publish(nc, subj, {"id": f"d{d}", "status": status}), status)
    publish(nc, "deployments.u42.internal", {"secret": 1})  # denied for role user
    publish(nc, "deployments.u7.d1.status", {"id": "d1", "status": "ready"})  # not matched
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "snap",
                                      "subject": "deployments.u42.>", "since": "last"}))
            frames = await until_synced(ws, "snap")
            assert frames[0] == {"type": "ok", "id": "snap"}
            ev = events(frames)
            assert {e["subject"]: (e["seq"], e["data"]["status"]) for e in ev} == last
            assert [e["seq"] for e in ev] == sorted(e["seq"] for e in ev)  # ascending
            assert len(ev) == 30
            assert frames[-1]["seq"] >= max(e["seq"] for e in ev)
            s = publish(nc, "deployments.u42.d0.status", {"id": "d0", "status": "ready"})
            m = await recv(ws)
            assert m["seq"] == s and m["data"]["status"] == "ready"
    run(go())


def test_history_gap_after_eviction(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"], max_msgs=5)
    seqs = [publish(nc, f"deployments.u42.d{i}.status", {"n": i}) for i in range(20)]
    first = seqs[-5]
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "g", "subject": "deployments.u42.>",
                                      "since": 3}))
            frames = await until_synced(ws, "g")
            err = frames[0]
            assert err["type"] == "error" and err["code"] == "history_gap" and err["id"] == "g"
            assert err["first_seq"] == first
            assert [e["seq"] for e in events(frames)] == seqs[-5:]
            assert frames[-1]["seq"] == seqs[-1]
            # the subscription exists: a duplicate is refused, live flows
            r = await call(ws, {"type": "subscribe", "id": "d", "subject": "deployments.u42.>"})
            assert r["code"] == "duplicate_subscription"
        async with await connect(h, tok=token()) as ws:  # first_seq - 1 is not a gap
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "n", "subject": "deployments.u42.>",
                                      "since": first - 1}))
            frames = await until_synced(ws, "n")
            assert frames[0] == {"type": "ok", "id": "n"}
            assert [e["seq"] for e in events(frames)] == seqs[-5:]
    run(go())
    metrics = h.get("/metrics").body.decode()
    assert "herald_history_gaps_total 1" in metrics
    assert 'herald_replays_total{kind="seq"} 2' in metrics
    assert "herald_replayed_events_total 10" in metrics


def test_bad_since_values(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            for i, bad in enumerate(["first", -1, 1.5, {"seq": 1}, [1], None, True, "LAST"]):
                r = await call(ws, {"type": "subscribe", "id": f"b{i}",
                                    "subject": "deployments.u42.>", "since": bad})
                assert r["type"] == "error" and r["code"] == "bad_request", (bad, r)
            r = await call(ws, {"type": "subscribe", "id": "nh", "subject": "users.u42.>",
                                "since": 0})
            assert r["code"] == "bad_request"
            # a pattern only partly inside the history entry
            r = await call(ws, {"type": "subscribe", "id": "op", "subject": ">", "since": 0})
            assert r["code"] == "forbidden"  # checked before since
            # none of them created a subscription
            for sid, subj in (("ok1", "deployments.u42.>"), ("ok2", "users.u42.>")):
                assert (await call(ws, {"type": "subscribe", "id": sid,
                                        "subject": subj}))["type"] == "ok"
        async with await connect(h, tok=token(roles=["operator"])) as ws:
            await recv(ws)
            r = await call(ws, {"type": "subscribe", "id": "w", "subject": ">", "since": 0})
            assert r["code"] == "bad_request"  # not wholly inside deployments.>
    run(go())


def test_resume_under_concurrent_publishing(make_herald, nats, nc):
    """50 clients drop and resume at random points while a publisher runs:
    each sees every stored sequence exactly once, in order."""
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)
    rng = random.Random(1234)
    stop = {"v": False}

    async def publisher():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        n = 0
        while not stop["v"]:
            await js.publish(f"deployments.u42.d{n % 7}.status", json.dumps({"n": n}).encode())
            n += 1
            await asyncio.sleep(0.01)
        await c.close()

    async def client(k):
        last, got, sessions = 0, [], 0
        while True:
            async with await connect(h, tok=token()) as ws:
                await recv(ws)
                sessions += 1
                await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                          "subject": "deployments.u42.>", "since": last}))
                deadline = time.monotonic() + rng.uniform(0.2, 1.5)
                final = stop["v"]
                synced = False
                while True:
                    try:
                        m = await recv(ws, 0.5 if final and synced else 10)
                    except asyncio.TimeoutError:
                        break
                    if m["type"] == "event":
                        assert m["seq"] == last + 1, (k, last, m["seq"])
                        last = m["seq"]
                        got.append(last)
                    elif m["type"] == "synced":
                        assert m["seq"] >= last
                        synced = True
                    else:
                        assert m["type"] == "ok", m
                    if not final and time.monotonic() > deadline:
                        break
                if final:
                    return got, sessions
            await asyncio.sleep(rng.uniform(0, 0.3))

    async def go():
        pub = asyncio.ensure_future(publisher())
        clients = [asyncio.ensure_future(client(k)) for k in range(50)]
        await asyncio.sleep(5)
        stop["v"] = True
        await pub
        return await asyncio.gather(*clients)

    results = run(go())
    stored = [m.seq for m in nc.stream_messages(STREAM)]
    assert len(stored) > 100
    for got, sessions in results:
        assert got == stored
        assert sessions >= 2


def test_resume_across_restart_and_replicas(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    a = make_herald(hconfig(), env=ENV, nats_url=nats.url)
    b = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def session(h, since, want):
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                      "subject": "deployments.u42.>", "since": since}))
            frames = await until_synced(ws, "r")
            assert [e["seq"] for e in events(frames)] == want
            return frames[-1]["seq"]

    s = [publish(nc, "deployments.u42.d1.status", {"n": i}) for i in range(3)]
    last = run(session(a, 0, s))
    s2 = [publish(nc, "deployments.u42.d2.status", {"n": i}) for i in range(3)]
    last = run(session(b, last, s2))  # another replica
    a.stop()
    s3 = [publish(nc, "deployments.u42.d3.status", {"n": i}) for i in range(3)]
    a.start()  # the same replica, restarted
    assert run(session(a, last, s3)) == s3[-1]


def test_stream_fed_delivery_survives_losing_a_node(tmp, make_herald):
    c = NatsCluster(tmp, 3, js=True)
    for i in range(3):
        c.start(i)
    try:
        def make_stream():
            n = NatsClient(c.url(0))
            try:
                n.add_stream(STREAM, ["deployments.>"], num_replicas=3)
                return True
            finally:
                n.close()
        wait_for(make_stream, timeout=30, interval=0.5, what="replicated stream")
        h = make_herald(hconfig(), env=ENV, nats_url=",".join(c.url(i) for i in range(3)))
        wait_for(lambda: h.get("/readyz").status == 200, what="ready")

        async def go():
            from nats.aio.client import Client
            async with await connect(h, tok=token()) as ws:
                await recv(ws)
                r = await call(ws, {"type": "subscribe", "id": "1", "subject": "deployments.u42.>",
                                    "since": 0}, timeout=15)
                assert r["type"] == "ok"
                url = next(l["url"] for l in reversed(h.log_lines()) if "url" in l)
                lost = next(i for i in range(3) if url.endswith(str(c.ports[i])))
                live = [i for i in range(3) if i != lost]
                pub = Client()
                await pub.connect(c.url(live[0]), allow_reconnect=False)
                js = pub.jetstream()
                seqs, got = [], []
                seqs.append((await js.publish("deployments.u42.d1.status", b'"before"')).seq)
                while not got or got[-1] != seqs[-1]:
                    m = await recv(ws, 10)
                    if m["type"] == "event":
                        got.append(m["seq"])
                c.kill(lost)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 25 * SLACK:
                    try:
                        seqs.append((await js.publish("deployments.u42.d1.status", b'"after"',
                                                      timeout=2)).seq)
                    except Exception:
                        pass  # the stream is electing a new leader
                    try:
                        while True:
                            m = await recv(ws, 0.25)
                            if m["type"] == "event":
                                got.append(m["seq"])
                    except asyncio.TimeoutError:
                        pass
                    if len(seqs) > 1 and got and got[-1] == seqs[-1]:
                        break
                assert got and got[-1] == seqs[-1], "stream-fed delivery did not resume"
                assert time.monotonic() - t0 < 25 * SLACK
                assert got == sorted(set(got)), "duplicate or out of order"
                assert set(seqs) <= set(got), "a stored event was never delivered"
                await pub.close()
        run(go())
    finally:
        c.stop()


def test_deleted_consumer_is_recreated_without_gap(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            assert (await call(ws, {"type": "subscribe", "id": "1",
                                    "subject": "deployments.u42.>"}))["type"] == "ok"
            s1 = publish(nc, "deployments.u42.d1.status", {"n": 1})
            assert (await recv(ws))["seq"] == s1
            for ci in nc.run(nc.js.consumers_info(STREAM)):
                nc.run(nc.js.delete_consumer(STREAM, ci.name))
            seqs = [publish(nc, "deployments.u42.d1.status", {"n": i}) for i in range(3)]
            got = []
            while len(got) < 3:
                got.append((await recv(ws, 20))["seq"])
            assert got == seqs
    run(go())


def test_nats_restart_recreates_stream_fed_consumers_from_the_next_sequence(
        make_herald, nats, nc):
    """After a reconnection herald re-creates each stream-fed consumer itself,
    from the sequence after the last one it received (contract §7), instead
    of waiting for nats.c to miss its heartbeats: what is published at once
    after the restart arrives, with no gap and no duplicate."""
    nc.add_stream(STREAM, ["deployments.>"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            assert (await call(ws, {"type": "subscribe", "id": "1",
                                    "subject": "deployments.u42.>"}))["type"] == "ok"
            s1 = publish(nc, "deployments.u42.d1.status", {"n": 1})
            assert (await recv(ws))["seq"] == s1
            nats.kill()
            nats.start()  # same store: the stream and its messages survive
            c2 = NatsClient(nats.url)
            try:
                seqs = [wait_for(lambda: c2.run(c2.js.publish("deployments.u42.d1.status",
                                                              b'"after"', timeout=1)).seq,
                                 what="JetStream back") for _ in range(3)]
                got = []
                while len(got) < 3:
                    m = await recv(ws, 20)
                    if m["type"] == "event":
                        got.append(m["seq"])
                assert got == seqs, "gap or duplicate after the restart"
                wait_for(lambda: any(l.get("msg") == "history stream consumers re-created "
                                     "after reconnecting" for l in h.log_lines()),
                         what="the consumers re-created by herald")
                s5 = c2.run(c2.js.publish("deployments.u42.d1.status", b'"later"')).seq
                m = await recv(ws, 10)
                assert m["seq"] == s5, "duplicate or gap once both consumers ran"
            finally:
                c2.close()
    run(go())


def test_paced_replay_with_a_small_queue(make_herald, nats, nc):
    """A replay far larger than the queue limit is delivered whole to a
    client that keeps reading, without closing it as a slow consumer."""
    nc.add_stream(STREAM, ["deployments.>"])
    blob = "x" * 300

    async def fill():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        futs = [js.publish(f"deployments.u42.d{i % 50}.status",
                           json.dumps({"n": i, "pad": blob}).encode()) for i in range(3000)]
        seqs = [a.seq for a in await asyncio.gather(*futs)]
        await c.close()
        return sorted(seqs)
    seqs = run(fill())
    h = make_herald(hconfig(ws={"max_queue_bytes": 16384}), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                      "subject": "deployments.u42.>", "since": 0}))
            frames = await until_synced(ws, "r", timeout=20)
            assert [e["seq"] for e in events(frames)] == seqs
    run(go())
    metrics = h.get("/metrics").body.decode()
    assert "herald_slow_consumers_total 0" in metrics


def test_large_replay_batches_never_stall(make_herald, nats, nc):
    """Replays read in batches larger than the service thread's per-turn
    share: every turn must come back for what arrived meanwhile (a lost
    wake-up once stalled replays midway)."""
    nc.add_stream(STREAM, ["deployments.>"])

    async def fill():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        for k in range(0, 20000, 2000):
            await asyncio.gather(*[js.publish("deployments.u42.d1.status", b"1")
                                   for _ in range(2000)])
        await c.close()
    run(fill())
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        for rnd in range(3):
            async with await connect(h, tok=token()) as ws:
                await recv(ws)
                await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                          "subject": "deployments.u42.>", "since": 0}))
                n = 0
                while True:
                    m = await recv(ws, 10)
                    if m["type"] == "event":
                        n += 1
                    elif m["type"] == "synced":
                        break
                assert n == 20000 and m["seq"] == 20000
    run(go())


def test_replay_never_delivers_invalid_subjects(make_herald, nats, nc):
    from test_invalid_subjects import raw_publish
    nc.add_stream(STREAM, ["deployments.>"])
    raw_publish(nats.url, [b"deployments.u42.\xff\xfe", b"deployments.u42.a\x01b",
                           b"deployments.u42.ok"])
    h = make_herald(hconfig(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            for sid, since in (("s", 0), ("l", "last")):
                await ws.send(json.dumps({"type": "subscribe", "id": sid,
                                          "subject": f"deployments.u42.>", "since": since}))
                frames = await until_synced(ws, sid)
                assert [e["subject"] for e in events(frames)] == ["deployments.u42.ok"]
                await call(ws, {"type": "unsubscribe", "id": "u" + sid,
                                "subject": "deployments.u42.>"})
    run(go())
    wait_for(lambda: "herald_events_invalid_total 4" in h.get("/metrics").body.decode(),
             what="invalid stored messages counted")


def test_replay_of_large_messages_fits_the_queue(make_herald, nats, nc):
    """Batches are sized by the messages' real size: a replay of 8 KB
    messages to a client that pauses (with a small socket buffer, so the
    kernel holds little) never overflows a 256 KiB queue."""
    from wsclient import RawClient
    nc.add_stream("PUB", ["public.>"])
    big = "b" * 8000

    async def fill():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        await asyncio.gather(*[js.publish(f"public.d{i}", json.dumps({"n": i, "pad": big}).encode())
                               for i in range(3000)])
        await c.close()
    run(fill())
    h = make_herald(hconfig(history=[{"stream": "PUB", "subjects": ["public.>"]}],
                            ws={"max_queue_bytes": 262144}), env=ENV, nats_url=nats.url)
    raw = RawClient(h.ws_port, rcvbuf=4096)
    raw.read_frame()  # ready (anonymous)
    raw.send_text(json.dumps({"type": "subscribe", "id": "r", "subject": "public.>", "since": 0}))
    time.sleep(1.5)  # not reading: herald's queue fills to its pacing bound
    n = 0
    while True:
        op, p = raw.read_frame()
        assert op == 1, (op, p[:2])  # a close (4008) fails here
        m = json.loads(p)
        if m["type"] == "synced":
            break
        n += m["type"] == "event"
    raw.close()
    assert n == 3000
    assert "herald_slow_consumers_total 0" in h.get("/metrics").body.decode()


def test_snapshot_survives_a_lost_consumer_without_superseded_messages(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])

    async def fill():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        # every subject once, then the odd ones again: superseded messages
        # lie between the last ones, where a by-sequence restart finds them
        for rnd in range(2):
            await asyncio.gather(*[js.publish(f"deployments.u42.d{i}.status",
                                              json.dumps({"r": rnd}).encode())
                                   for i in range(2000) if rnd == 0 or i % 2])
        await c.close()
    run(fill())
    h = make_herald(hconfig(ws={"max_queue_bytes": 8192}), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                      "subject": "deployments.u42.>", "since": "last"}))
            got = []
            while len(got) < 100:
                m = await recv(ws)
                if m["type"] == "event":
                    got.append(m)
            for ci in nc.run(nc.js.consumers_info(STREAM)):  # the replay's (and the live one)
                nc.run(nc.js.delete_consumer(STREAM, ci.name))
            frames = await until_synced(ws, "r", timeout=30)
            got += events(frames)
            assert len(got) == 2000
            for e in got:  # only the last of each subject
                i = int(e["subject"].split(".")[2][1:])
                assert e["data"] == {"r": i % 2}, e
            assert len({e["subject"] for e in got}) == 2000
    run(go())


def test_replay_ends_with_an_error_when_its_stream_goes(make_herald, nats, nc):
    nc.add_stream(STREAM, ["deployments.>"])

    async def fill():
        from nats.aio.client import Client
        c = Client()
        await c.connect(nats.url)
        js = c.jetstream()
        await asyncio.gather(*[js.publish("deployments.u42.d1.status", b"1")
                               for _ in range(3000)])
        await c.close()
    run(fill())
    h = make_herald(hconfig(ws={"max_queue_bytes": 8192}), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h, tok=token()) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "id": "r",
                                      "subject": "deployments.u42.>", "since": 0}))
            n = 0
            while n < 50:
                n += (await recv(ws))["type"] == "event"
            nc.run(nc.js.delete_stream(STREAM))
            t0 = time.monotonic()
            while True:
                m = await recv(ws, 30)
                if m["type"] == "error":
                    break
                assert m["type"] == "event"
            assert m["code"] == "unavailable" and m["id"] == "r"
            assert m["subject"] == "deployments.u42.>"
            assert time.monotonic() - t0 < 25 * SLACK
            # the subscription is gone: subscribing again is not a duplicate
            r = await call(ws, {"type": "subscribe", "id": "again",
                                "subject": "deployments.u42.>"}, timeout=15)
            assert r.get("code") != "duplicate_subscription"
    run(go())
