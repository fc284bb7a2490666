"""Issue 18: http.trusted_proxies. Behind an ingress every request comes from
the ingress controller; with its address trusted, herald keys every per-IP
limit (HTTP requests, WebSocket upgrades, WebSocket connections) on the
right-most X-Forwarded-For address that is not a trusted proxy, ignores the
header from anyone else, and names that address in the log lines of refused
requests. The tests' loopback client plays the ingress controller."""
import http.client

import pytest
import websockets

from conftest import assert_problem, wait_for
from wsclient import ENV, config, connect, recv, run

LIMITS = {"http_requests_per_ip": {"rate_per_s": 0.01, "burst": 2},
          "ws_upgrades_per_ip": {"rate_per_s": 0.01, "burst": 2}}


def publish(h, xff=None):
    hdrs = {"X-Forwarded-For": xff} if xff is not None else {}
    return h.get("/v1/publish/a.b", headers=hdrs, method="POST", data=b"x")


def refused_logs(h, msg):
    return [l for l in h.log_lines() if l.get("msg") == msg]


def test_http_limit_keys_on_forwarded_client(make_herald, nats):
    h = make_herald(config(http={"trusted_proxies": ["127.0.0.0/8", "fd00::/8"]}, limits=LIMITS),
                    env=ENV, nats_url=nats.url)
    # no credentials: 401 until the client's bucket is empty, then 429
    assert [publish(h, "198.51.100.1").status for _ in range(2)] == [401, 401]
    r = publish(h, "198.51.100.1")
    assert_problem(r, 429)
    # another client behind the same ingress has its own bucket
    assert publish(h, "198.51.100.2").status == 401
    # a spoofed left part does not help: the right-most untrusted entry counts
    assert publish(h, "6.6.6.6, 198.51.100.1").status == 429
    # trusted hops to the right of the client are skipped
    assert publish(h, "198.51.100.1, 127.0.0.9").status == 429
    # several header lines are one list (the last line is the nearest hop)
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", h.http_port, timeout=10)
        c.putrequest("POST", "/v1/publish/a.b")
        c.putheader("X-Forwarded-For", "6.6.6.6, 198.51.100.3")
        c.putheader("X-Forwarded-For", "127.0.0.2")
        c.putheader("Content-Length", "1")
        c.endheaders(b"x")
        status = c.getresponse().status
        c.close()
    assert status == 429  # 198.51.100.3's bucket, not 6.6.6.6's nor the proxy's
    # the log lines of refused requests name the client herald believed
    # (written when the request completes, just after its answer)
    want = {(401, "198.51.100.1"), (429, "198.51.100.1"), (401, "198.51.100.2"),
            (401, "198.51.100.3"), (429, "198.51.100.3")}
    wait_for(lambda: {(l["status"], l["client"])
                      for l in refused_logs(h, "request refused")} >= want,
             timeout=5, what="refused-request log lines")
    lines = refused_logs(h, "request refused")
    assert all(l["client"] != "6.6.6.6" for l in lines)


def test_forwarded_for_ignored_from_untrusted_peers(make_herald, nats):
    # the loopback peer is not in the trusted ranges: the header is ignored
    h = make_herald(config(http={"trusted_proxies": ["10.0.0.0/8"]}, limits=LIMITS),
                    env=ENV, nats_url=nats.url)
    assert publish(h, "198.51.100.1").status == 401
    assert publish(h, "198.51.100.2").status == 401
    assert_problem(publish(h, "198.51.100.3"), 429)  # one bucket: 127.0.0.1
    wait_for(lambda: len(refused_logs(h, "request refused")) >= 3, timeout=5, what="log lines")
    lines = refused_logs(h, "request refused")
    assert lines and all(l["client"] == "127.0.0.1" for l in lines), lines
    # and with no trusted_proxies at all (the default)
    h2 = make_herald(config(limits=LIMITS), env=ENV, nats_url=nats.url)
    assert [publish(h2, f"198.51.100.{i}").status for i in range(3)] == [401, 401, 429]


def test_ws_upgrade_limits_key_on_forwarded_client(make_herald, nats):
    h = make_herald(config(http={"trusted_proxies": ["127.0.0.1"]},
                           limits={"ws_upgrades_per_ip": {"rate_per_s": 0.01, "burst": 3},
                                   "max_ws_connections_per_ip": 1}),
                    env=ENV, nats_url=nats.url)

    async def go():
        a = {"X-Forwarded-For": "203.0.113.5"}
        async with await connect(h, headers=a) as ws:
            assert (await recv(ws))["type"] == "ready"
            # one connection per client: the same client is refused...
            with pytest.raises(websockets.InvalidStatus) as e:
                await connect(h, headers=a)
            assert e.value.response.status_code == 429
            # ...another client behind the same proxy is not
            async with await connect(h, headers={"X-Forwarded-For": "203.0.113.6"}) as ws2:
                assert (await recv(ws2))["type"] == "ready"
        # the upgrade bucket (burst 3, two taken above) is per forwarded client too
        async with await connect(h, headers=a) as ws:
            await recv(ws)
        with pytest.raises(websockets.InvalidStatus) as e:
            await connect(h, headers=a)
        assert e.value.response.status_code == 429
        async with await connect(h, headers={"X-Forwarded-For": "203.0.113.7"}) as ws:
            assert (await recv(ws))["type"] == "ready"
    run(go())
    wait_for(lambda: len(refused_logs(h, "websocket upgrade refused")) >= 2, timeout=5,
             what="log lines")
    lines = refused_logs(h, "websocket upgrade refused")
    assert lines and {l["client"] for l in lines} == {"203.0.113.5"}, lines
    assert all(l["status"] == 429 for l in lines)
