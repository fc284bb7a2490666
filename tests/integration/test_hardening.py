"""Issue 17: the defects an attacker finds first, each reproduced against a
real herald and a real nats-server (127.0.0.1 only, bounded in count and
time)."""
import base64
import json
import os
import socket
import time

import pytest

from conftest import SLACK, run_herald, wait_for
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
