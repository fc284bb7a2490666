"""Issue 17: the defects an attacker finds first, each reproduced against a
real herald and a real nats-server (127.0.0.1 only, bounded in count and
time)."""
import base64
import concurrent.futures
import hashlib
import http.client
import hmac
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import SANITIZED, SLACK, assert_problem, free_port, run_herald, wait_for
from natsclient import NatsClient
from wsclient import ENV, RawClient, SECRET, config, token

import jwt as pyjwt


def raw_upgrade(h, extra_headers=""):
    """Send a WebSocket upgrade with hand-written headers; returns the status."""
    with socket.create_connection(("127.0.0.1", h.ws_port), timeout=10 * SLACK) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n").encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return int(buf.split()[1]) if buf else None


@pytest.fixture
def wsh(make_herald, nats):
    return make_herald(config(), env=ENV, nats_url=nats.url)


# ---- defect 8: an absurd exp is malformed, never an overflow ----------------

def test_absurd_exp_refused_as_malformed(wsh):
    far = pyjwt.encode({"sub": "u42", "roles": ["user"], "exp": 9_200_000_000_000_000},
                       SECRET, algorithm="HS256")
    c = RawClient(wsh.ws_port)
    try:
        assert c.status == 101
        op, first = c.read_frame()
        assert json.loads(first)["roles"] == ["anonymous"]
        c.send_text(json.dumps({"type": "auth", "id": "a", "token": far}))
        code, frames = c.read_until_close()
        assert code == 4001
        assert frames[0]["type"] == "error" and frames[0]["code"] == "unauthorized"
    finally:
        c.close()
    assert raw_upgrade(wsh, f"Authorization: Bearer {far}\r\n") == 401
    assert wsh.proc.poll() is None  # the sanitizer build did not abort
    assert 'herald_auth_failures_total{reason="malformed"}' in wsh.get("/metrics").body.decode()


# ---- defect 9: an unusable Authorization header is a bad token -----------------

@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer\tx",
                                   "Token abc"])
def test_unusable_authorization_header_is_401(wsh, value):
    assert raw_upgrade(wsh, f"Authorization: {value}\r\n") == 401


def test_usable_bearer_header_still_works(wsh):
    assert raw_upgrade(wsh, f"Authorization: Bearer {token()}\r\n") == 101
    assert raw_upgrade(wsh, f"Authorization: bearer  {token()}\r\n") == 101
    assert raw_upgrade(wsh, "") == 101  # no header at all: anonymous


# ---- defect 5: cookie auth needs an Origin allow-list -----------------------

def test_auth_cookie_without_allowed_origins_is_a_config_error(make_herald, tmp):
    path = os.path.join(tmp, "cookie.json")
    with open(path, "w") as f:
        json.dump({"ws": {"auth_cookie": "herald_token"}}, f)
    for args in (["--check-config", path], ["--config", path]):
        r = run_herald(args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "ws.auth_cookie: requires ws.allowed_origins" in r.stdout + r.stderr
    with open(path, "w") as f:
        json.dump({"ws": {"auth_cookie": "herald_token",
                          "allowed_origins": ["https://app.example"]}}, f)
    assert run_herald(["--check-config", path]).returncode == 0


# ---- defect 6: the HTTP rate limit covers every route but the probes -----------

def test_rate_limit_applies_to_every_route_but_probes(make_herald, nats):
    h = make_herald({"limits": {"http_requests_per_ip": {"rate_per_s": 0.01, "burst": 2}}},
                    nats_url=nats.url)
    assert h.get("/metrics").status == 200
    assert h.get("/openapi.json").status == 200
    for path in ("/metrics", "/openapi.json", "/static/app.js", "/", "/docs", "/no-such-route"):
        r = h.get(path)
        assert r.status == 429, (path, r.status)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert int(r.headers["Retry-After"]) >= 1
    for _ in range(20):  # probes stay answered, however often they are called
        assert h.get("/healthz").status == 200
        assert h.get("/readyz").status == 200


# ---- defect 3: no MHD worker ever waits on NATS --------------------------------

GH_SECRET = "gh-secret-0123456789"


def gh_post(h, body, event, delivery, timeout=30):
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return h.get("/v1/webhooks/github", method="POST", data=body, timeout=timeout,
                 headers={"X-Hub-Signature-256": sig, "X-GitHub-Event": event,
                          "X-GitHub-Delivery": delivery, "Content-Type": "application/json"})


@pytest.fixture
def hung_jetstream(tmp):
    """A nats-server without JetStream plus a client that takes every
    $JS.API request and never answers: JetStream 'hung', not absent."""
    port = free_port()
    proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    nc = None
    try:
        nc = wait_for(lambda: NatsClient(url), what="nats-server without JetStream")
        nc.subscribe("$JS.API.>")
        yield url
    finally:
        if nc:
            nc.close()
        proc.terminate()
        proc.wait(10)


def test_hung_jetstream_never_blocks_healthz(make_herald, hung_jetstream):
    h = make_herald({"webhooks": {
        "github": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                   "subject": "webhooks.github.{header:X-GitHub-Event}"},
        "strict": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                   "subject": "strict.x", "delivery": "jetstream"}},
        "nats": {"publish_timeout_ms": 4000}},
        env={"GH_SECRET": GH_SECRET}, nats_url=hung_jetstream)
    body = b"{}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(gh_post, h, body, "push", f"d{i}") for i in range(8)]
        time.sleep(0.3 * SLACK)  # the webhooks now wait for the stream lookup
        worst = 0.0
        for _ in range(10):
            for path in ("/healthz", "/readyz"):
                t0 = time.monotonic()
                r = h.get(path, timeout=5)
                worst = max(worst, time.monotonic() - t0)
                assert r.status == (200 if path == "/healthz" else 503)
            time.sleep(0.1)
        assert worst < 0.5 * SLACK, f"a probe took {worst:.2f}s"
        for f in futs:  # the lookup times out: 503, never a hang
            assert_problem(f.result(30), 503)
    assert "JetStream does not answer" in h.get("/readyz").json()["detail"]


# ---- defect 1: slowloris -------------------------------------------------------

def read_all(s, timeout):
    """Read until EOF or timeout; returns (bytes, eof)."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except ConnectionResetError:
        return out, True
    except socket.timeout:
        return out, False


def trickle(s, parts, every):
    """Send parts one at a time; stop when the server hung up."""
    for p in parts:
        try:
            s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(every)


def test_trickled_headers_get_408_at_the_request_deadline(make_herald, nats):
    h = make_herald({"http": {"request_timeout_s": 2}}, nats_url=nats.url)
    with socket.create_connection(("127.0.0.1", h.http_port)) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # one header line every 0.3 s: MHD's idle timeout never fires
        th = concurrent.futures.ThreadPoolExecutor(1).submit(
            trickle, s, [f"X-H{i}: {i}\r\n".encode() for i in range(40)], 0.3)
        data, eof = read_all(s, 8 * SLACK)
        took = time.monotonic() - t0
        th.result(15)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == 408
    assert eof and 1.8 <= took <= 4 * SLACK, took


def test_trickled_body_gets_408_and_others_are_served(make_herald, nats):
    h = make_herald({"http": {"request_timeout_s": 2},
                     "webhooks": {"github": {
                         "verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                         "subject": "webhooks.github.{header:X-GitHub-Event}"}}},
                    env={"GH_SECRET": GH_SECRET}, nats_url=nats.url)
    with socket.create_connection(("127.0.0.1", h.http_port)) as s:
        t0 = time.monotonic()
        s.sendall(b"POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                  b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        th = concurrent.futures.ThreadPoolExecutor(1).submit(
            trickle, s, [b" " * 10] * 40, 0.3)
        assert h.get("/healthz", timeout=2).status == 200  # meanwhile
        data, eof = read_all(s, 8 * SLACK)
        took = time.monotonic() - t0
        th.result(15)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert eof and took <= 4 * SLACK, took


def test_idle_keepalive_connection_is_closed(make_herald, nats):
    h = make_herald({"http": {"idle_timeout_s": 1}}, nats_url=nats.url)
    with socket.create_connection(("127.0.0.1", h.http_port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        data, eof = read_all(s, 6 * SLACK)
        assert eof and data == b"" and time.monotonic() - t0 < 3 * SLACK


def refused(s):
    """True if the server closed this connection without answering."""
    data, eof = read_all(s, 5 * SLACK)  # generous: a busy machine accepts late
    return eof and data == b""


def refused_now(s):
    """True if the server has already closed this connection (no waiting)."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        s.setblocking(True)


def test_http_connection_limit(make_herald, nats):
    h = make_herald({"limits": {"max_http_connections": 10}}, nats_url=nats.url)
    keep = http.client.HTTPConnection("127.0.0.1", h.http_port, timeout=5 * SLACK)
    keep.request("GET", "/healthz")
    assert keep.getresponse().read() == b'{"status":"ok"}'
    local = keep.sock.getsockname()
    socks = []
    try:
        for _ in range(30):
            socks.append(socket.create_connection(("127.0.0.1", h.http_port)))
        time.sleep(0.5 * SLACK)
        n_refused = sum(refused_now(s) for s in socks)
        assert 19 <= n_refused <= 21, n_refused  # 9 or so took the free places
        # the connection that was already open keeps answering /healthz
        for _ in range(3):
            keep.request("GET", "/healthz")
            r = keep.getresponse()
            assert r.status == 200 and r.read() == b'{"status":"ok"}'
        assert keep.sock.getsockname() == local  # the same connection, kept alive
    finally:
        for s in socks:
            s.close()
        keep.close()
    # once the idle ones are gone, new connections are served again
    wait_for(lambda: h.get("/healthz", timeout=2).status == 200, what="a free place")


def test_http_connection_limit_per_ip(make_herald, nats):
    h = make_herald({"limits": {"max_http_connections_per_ip": 3}}, nats_url=nats.url)
    # A kept-alive request on each of three connections: all three are
    # surely accepted and counted before the fourth connects. A connection
    # of the start-up probe may still hold a place for a moment: then one of
    # the three is refused, and the three are tried again.
    socks = []
    for _ in range(20):
        socks = [socket.create_connection(("127.0.0.1", h.http_port)) for _ in range(3)]
        served = 0
        for s in socks:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
                served += b" 200 " in read_response(s).split(b"\r\n", 1)[0]
            except OSError:
                pass  # this one was refused
        if served == 3:
            break
        for s in socks:
            s.close()
        time.sleep(0.2)
    assert served == 3
    try:
        extra = socket.create_connection(("127.0.0.1", h.http_port))
        assert refused(extra)
        extra.close()
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: h.get("/healthz", timeout=2).status == 200, what="a free place")


def read_response(s, timeout=5):
    """Read one response head (and whatever body came with it)."""
    s.settimeout(timeout * SLACK)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


BEARER = "bearer-token-0123456789"


def test_credentials_checked_before_the_body(make_herald, nats):
    h = make_herald({"webhooks": {
        "bearer": {"verify": {"scheme": "bearer",
                              "tokens_sha256": [hashlib.sha256(BEARER.encode()).hexdigest()]},
                   "subject": "core.bearer"},
        "github": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                   "subject": "core.github"}}},
        env={"GH_SECRET": GH_SECRET}, nats_url=nats.url)
    cases = [("/v1/webhooks/bearer", "Authorization: Bearer wrong-token\r\n"),
             ("/v1/webhooks/bearer", ""),
             ("/v1/webhooks/github", ""),  # no signature header at all
             ("/v1/webhooks/github", "X-Hub-Signature-256: md5=abc\r\n"),
             ("/v1/publish/a.b", "Authorization: Bearer not-a-jwt\r\n")]
    for path, extra in cases:
        with socket.create_connection(("127.0.0.1", h.http_port)) as s:
            # headers only: the 1 MB body is never sent, the answer comes anyway
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: 1000000\r\n{extra}\r\n".encode())
            head = read_response(s)
            assert head.startswith(b"HTTP/1.1 401 "), (path, extra, head[:100])
    # a good token is still accepted
    r = h.get("/v1/webhooks/bearer", method="POST", data=b"{}",
              headers={"Authorization": f"Bearer {BEARER}", "Content-Type": "application/json"})
    assert r.status == 202, r.body


def test_buffered_bodies_are_capped(make_herald, nats):
    h = make_herald({"limits": {"max_buffered_body_bytes": 100000},
                     "webhooks": {"github": {
                         "verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                         "subject": "core.github", "max_body_bytes": 80000}}},
                    env={"GH_SECRET": GH_SECRET}, nats_url=nats.url)
    sig = "X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\nX-GitHub-Event: push\r\n"
    held = socket.create_connection(("127.0.0.1", h.http_port))
    try:
        held.sendall(f"POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 70000\r\n{sig}\r\n"
                     .encode() + b" " * 1000)
        time.sleep(0.3 * SLACK)
        with socket.create_connection(("127.0.0.1", h.http_port)) as s:
            s.sendall(f"POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\n"
                      f"Content-Type: application/json\r\nContent-Length: 70000\r\n{sig}\r\n"
                      .encode())
            head = read_response(s)
            assert head.startswith(b"HTTP/1.1 503 "), head[:200]
            assert b"Retry-After: 5" in head
            assert b"application/problem+json" in head
    finally:
        held.close()
    # the held body's reservation is released with its request
    body = b"{}"
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    wait_for(lambda: h.get("/v1/webhooks/github", method="POST", data=body, headers={
        "X-Hub-Signature-256": sig, "X-GitHub-Event": "push",
        "Content-Type": "application/json"}).status == 202, what="room for bodies again")


# ---- defect 7: replayed signed webhooks are not published again -------------

def test_replayed_webhook_is_a_duplicate_not_a_second_publish(make_herald, nats):
    nc = NatsClient(nats.url)
    try:
        nc.add_stream("WH", ["webhooks.>"])
        core = nc.subscribe("core.>")
        gh = {"verify": {"scheme": "github", "secret_env": "GH_SECRET"}}
        h = make_herald({"webhooks": {
            "github": {**gh, "subject": "core.github.{header:X-GitHub-Event}"},
            "js": {**gh, "subject": "webhooks.js"},
            "off": {"verify": {**gh["verify"], "replay_window_s": 0}, "subject": "core.off"}}},
            env={"GH_SECRET": GH_SECRET}, nats_url=nats.url)
        body = b'{"action":"opened","n":1}'

        def post(source, delivery, event="push"):
            sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
            return h.get(f"/v1/webhooks/{source}", method="POST", data=body,
                         headers={"X-Hub-Signature-256": sig, "X-GitHub-Event": event,
                                  "X-GitHub-Delivery": delivery,
                                  "Content-Type": "application/json"})

        a = post("github", "d-1")
        assert a.status == 202 and a.json() == {"id": "d-1", "subject": "core.github.push"}
        # the unsigned delivery id (and event header) changed: still the same signed request
        b = post("github", "d-2", event="issues")
        assert b.status == 202, b.body
        assert b.json() == {"id": "d-1", "subject": "core.github.push", "duplicate": True}
        first = core.get(timeout=5 * SLACK)
        assert first.headers["Nats-Msg-Id"] == "d-1"
        time.sleep(0.5)
        assert core.empty()  # published once, core delivery included

        j1, j2 = post("js", "j-1").json(), post("js", "j-2").json()
        assert j1["duplicate"] is False and j2["duplicate"] is True
        assert j2["id"] == "j-1" and j2["seq"] == j1["seq"] and j2["stream"] == "WH"
        assert len(nc.stream_messages("WH")) == 1

        assert post("off", "o-1").status == 202 and post("off", "o-2").status == 202
        assert [core.get(timeout=5 * SLACK).headers["Nats-Msg-Id"] for _ in range(2)] == \
            ["o-1", "o-2"]  # replay_window_s 0: the cache is off
        metrics = h.get("/metrics").body.decode()
        assert 'herald_webhooks_total{source="github",outcome="duplicate"} 1' in metrics
    finally:
        nc.close()


def test_replay_window_s_is_validated(tmp):
    path = os.path.join(tmp, "replay.json")
    for verify, ok in ([{"scheme": "github", "secret_env": "GH_SECRET", "replay_window_s": 86401},
                        False],
                       [{"scheme": "bearer", "tokens_sha256": ["0" * 64], "replay_window_s": 5},
                        False],
                       [{"scheme": "github", "secret_env": "GH_SECRET", "replay_window_s": 0},
                        True]):
        with open(path, "w") as f:
            json.dump({"webhooks": {"a": {"verify": verify, "subject": "a"}}}, f)
        r = run_herald(["--check-config", path], env={"GH_SECRET": "x"})
        assert (r.returncode == 0) == ok, (verify, r.stdout, r.stderr)


# ---- defect 2: overlapping subscriptions do not multiply the work -----------

OVERLAP_SUBJECT = "public.a.b.c.d.e.f.g"


def overlapping_patterns(n):
    """n distinct patterns that all match OVERLAP_SUBJECT: each token a
    literal or `*`, optionally cut short by `>`."""
    import itertools
    toks = OVERLAP_SUBJECT.split(".")[1:]
    out = []
    for cut in range(len(toks), 0, -1):
        for stars in itertools.product([False, True], repeat=cut):
            p = ["*" if s else t for s, t in zip(stars, toks)] + ([">"] if cut < len(toks) else [])
            pat = "public." + ".".join(p)
            if pat != OVERLAP_SUBJECT:
                out.append(pat)
            if len(out) == n:
                return out
    raise AssertionError("not enough patterns")


def metric_int(h, name):
    for line in h.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def raw_subscribe(c, patterns):
    c.read_frame()  # ready
    for i, p in enumerate(patterns):
        c.send_text(json.dumps({"type": "subscribe", "id": str(i), "subject": p}))
    for _ in patterns:
        m = json.loads(c.read_frame()[1])
        assert m["type"] == "ok", m


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_overlapping_subscriptions_encode_each_event_once(make_herald, nats):
    """An anonymous client holds 100 patterns that all match one subject,
    under slow_consumer: drop, and never reads. Each of N events then
    arrives from NATS once per pattern (one NATS interest per pattern), but
    is validated and encoded once (herald_frames_encoded_total == N, not
    ~100·N); an ordinary client receives every event, a reading client with
    5 overlapping patterns receives each 5 times (contract §3), and herald's
    memory stays bounded."""
    h = make_herald(config(ws={"slow_consumer": "drop", "max_queue_bytes": 65536}),
                    env=ENV, nats_url=nats.url)
    attacker = RawClient(h.ws_port, rcvbuf=4096)
    reader = RawClient(h.ws_port)
    overlap = RawClient(h.ws_port)
    try:
        pats = overlapping_patterns(100)
        raw_subscribe(attacker, pats)  # from here on it never reads
        raw_subscribe(reader, [OVERLAP_SUBJECT])
        raw_subscribe(overlap, pats[:5])
        interests = metric_int(h, "herald_nats_subscriptions")
        assert interests == 101  # one per distinct pattern, shared
        rss0 = vm_kib(h.proc.pid, "VmRSS")
        n, batch, copies = 300, 10, 100 + 1 + 5
        nc = NatsClient(nats.url)
        try:
            for b in range(0, n, batch):
                async def pub(first=b):
                    for i in range(first, first + batch):
                        await nc.nc.publish(OVERLAP_SUBJECT,
                                            json.dumps({"n": i, "pad": "x" * 100}).encode())
                    await nc.nc.flush()
                nc.run(pub())
                # Every copy of this batch queued (the attacker's by dropping
                # older ones) before the next: the copies of one event then
                # arrive well within herald's reuse window, however slow the
                # build, and the count is exact.
                want = (b + batch) * copies
                wait_for(lambda: metric_int(h, "herald_events_delivered_total") >= want,
                         timeout=30 * SLACK, what=f"batch {b}: {want} deliveries")
        finally:
            nc.close()
        assert metric_int(h, "herald_frames_encoded_total") == n
        assert metric_int(h, "herald_events_dropped_total") > 0  # the attacker overflowed
        got = []
        while len(got) < n:
            m = json.loads(reader.read_frame()[1])
            assert m["type"] == "event", m
            got.append(m["data"]["n"])
        assert got == list(range(n))
        counts = {}
        for _ in range(5 * n):
            m = json.loads(overlap.read_frame()[1])
            assert m["type"] == "event", m
            counts[m["data"]["n"]] = counts.get(m["data"]["n"], 0) + 1
        assert counts == {i: 5 for i in range(n)}
        peak = vm_kib(h.proc.pid, "VmHWM")
        grew = vm_kib(h.proc.pid, "VmRSS") - rss0
        print(f"herald RSS before the flood {rss0} KiB, growth {grew} KiB, peak {peak} KiB")
        assert grew < (256 << 10 if SANITIZED else 32 << 10), (rss0, grew, peak)
        assert h.get("/healthz").status == 200
    finally:
        attacker.close()
        reader.close()
        overlap.close()


def test_never_reading_overlapping_client_is_closed_by_its_ping_timeout(make_herald, nats):
    """What bounds the attacker above in time: a client that never reads
    never answers a ping either, so under `drop` it is still closed at its
    ping timeout (4002), whatever it subscribed to."""
    h = make_herald(config(ws={"slow_consumer": "drop", "max_queue_bytes": 65536,
                               "ping_interval_s": 1, "ping_timeout_s": 1}),
                    env=ENV, nats_url=nats.url)
    attacker = RawClient(h.ws_port, rcvbuf=4096)
    try:
        raw_subscribe(attacker, overlapping_patterns(100))
        nc = NatsClient(nats.url)
        try:
            async def pub():
                for i in range(500):
                    await nc.nc.publish(OVERLAP_SUBJECT, json.dumps({"n": i}).encode())
                await nc.nc.flush()
            nc.run(pub())
        finally:
            nc.close()
        wait_for(lambda: 'herald_ws_sessions_closed_total{reason="ping_timeout"} 1'
                 in h.get("/metrics").body.decode(), timeout=10, what="closed at its ping timeout")
        wait_for(lambda: metric_int(h, "herald_nats_subscriptions") == 0,
                 what="its interests dropped")
    finally:
        attacker.close()
