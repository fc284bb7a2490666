"""Issue 18, contract v1.2 §4 "HTTP framing": a chunked upload that passes
its size limit gets its 413 problem+json with a lingering close (the 413,
a half-close, then the rest of the body read and discarded for a bounded
time and amount), so the sender reads the 413 instead of a reset."""
import hashlib
import http.client
import json
import socket
import time

import pytest

from conftest import SLACK, wait_for

API_KEY = "framing-key-0123456789"
CONFIG = {
    "webhooks": {"gh": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                        "subject": "core.gh"}},  # max_body_bytes: the default 1 MiB
    "publish_api": {"api_keys": [{"name": "svc", "sha256": hashlib.sha256(
        API_KEY.encode()).hexdigest(), "roles": ["svc"]}]},
    "permissions": {"roles": {"svc": {"publish": {"allow": ["core.>"]}}}},
}
MIB = 1024 * 1024


@pytest.fixture
def h(make_herald, nats):
    return make_herald(config=CONFIG, env={"GH_SECRET": "s3cret"}, nats_url=nats.url)


def chunked(port, path, total, headers, chunk=64 * 1024):
    """Send `total` bytes as a chunked body the way a sender does (the whole
    body, then read the answer)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20 * SLACK)
    sent = [0]

    def body():
        while sent[0] < total:
            n = min(chunk, total - sent[0])
            sent[0] += n
            yield b"x" * n
    c.request("POST", path, body=body(), headers=headers, encode_chunked=True)
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


@pytest.mark.parametrize("path,headers", [
    ("/v1/webhooks/gh", {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"}),
    ("/v1/publish/core.x", {"Content-Type": "application/octet-stream", "X-Api-Key": API_KEY}),
])
def test_chunked_upload_over_the_limit_gets_its_413(h, path, headers):
    status, hdrs, body = chunked(h.http_port, path, 2 * MIB, headers)
    assert status == 413, (status, body[:200])
    assert hdrs["content-type"] == "application/problem+json"
    assert hdrs["connection"] == "close"
    p = json.loads(body)
    assert p["status"] == 413 and p["title"] == "Content Too Large" and p["detail"]
    # herald is fine afterwards, and counted it
    assert h.get("/healthz").status == 200
    # (the request completes once herald sees the sender hang up)
    line = 'herald_http_requests_total{route="%s",code="4xx"} 1' % (
        "/v1/webhooks/{source}" if "webhooks" in path else "/v1/publish/{subject}")
    wait_for(lambda: line in h.get("/metrics").body.decode(), timeout=5, what=line)
    if "webhooks" in path:
        assert 'herald_webhooks_total{source="gh",outcome="too_large"} 1' in \
            h.get("/metrics").body.decode()


def test_413_comes_first_and_the_linger_is_bounded(h):
    """A sender that never stops: it can read the 413 while still sending,
    and herald hangs up after a bounded amount (8 MiB past the limit, plus
    what the kernel's socket buffers hold) and time."""
    s = socket.create_connection(("127.0.0.1", h.http_port), timeout=20 * SLACK)
    s.sendall(b"POST /v1/webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
    sent, t0 = 0, time.monotonic()
    s.settimeout(5 * SLACK)
    try:
        while time.monotonic() - t0 < 30 * SLACK:
            sent += s.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - t0
    assert elapsed < 25 * SLACK, "herald kept reading an endless body"
    assert sent < 1 * MIB + 8 * MIB + 16 * MIB, sent
    # the 413 was written before the hang-up (unless a reset discarded it,
    # which is what the bounded linger accepts for a sender that never stops)
    try:
        got = s.recv(4096)
    except ConnectionResetError:
        got = b""
    s.close()
    if got:
        assert got.startswith(b"HTTP/1.1 413 "), got[:100]
    assert h.get("/healthz").status == 200
