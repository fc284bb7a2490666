"""Issue 18: the spec is the server. A live herald (real nats-server) is
driven through each documented route's error paths; every status it
answers must be listed for that route and method in its own /openapi.json.
Then schemathesis (property-based, bounded) generates requests from the
document against a herald with a bearer source and the publish API: every
response must be documented and schema-valid, and never a 5xx."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import SLACK, wait_for
from natsclient import NatsClient
from wsclient import ENV as WS_ENV, token

import hashlib
import hmac

GH = "gh-secret-0123456789"
SLACK_SECRET = "slack-secret-0123456789"
API_KEY = "spec-key-0123456789"
ENV = {**WS_ENV, "GH": GH, "SLACK_SECRET": SLACK_SECRET}


def config(extra=None):
    cfg = {
        "auth": {"jwt": {"keys": [{"alg": "HS256", "secret_env": "HERALD_TEST_JWT"}]}},
        "permissions": {"roles": {"pub": {"publish": {"allow": ["spec.>"]}}}},
        "publish_api": {"api_keys": [{"name": "svc", "sha256": hashlib.sha256(
            API_KEY.encode()).hexdigest(), "roles": ["pub"]}], "max_body_bytes": 64},
        "webhooks": {
            "gh": {"verify": {"scheme": "github", "secret_env": "GH"},
                   "subject": "spec.gh.{json:/kind}", "max_body_bytes": 64,
                   "publish": {"allow": ["spec.gh.>"], "deny": ["spec.gh.no"]}},
            "shop": {"verify": {"scheme": "github", "secret_env": "GH"},
                     "subject": "spec.shop", "id": "{header:X-Id}"},
            "strict": {"verify": {"scheme": "github", "secret_env": "GH"},
                       "subject": "nostream.strict", "delivery": "jetstream"},
            "slack": {"verify": {"scheme": "slack", "secret_env": "SLACK_SECRET"},
                      "subject": "spec.slack"},
        },
    }
    # identical signed requests are resent on purpose (e.g. the 503 once NATS
    # is down): the replay cache would answer them from memory
    for src in cfg["webhooks"].values():
        src["verify"]["replay_window_s"] = 0
    cfg.update(extra or {})
    return cfg


def raw(port, data, timeout=10):
    """Send raw bytes; return (status, content-type) of the first response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLACK)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    assert m, f"no HTTP response to {data[:80]!r}: {buf[:200]!r}"
    ct = re.search(rb"(?i)\r\ncontent-type:\s*([^\r\n;]+)", buf)
    return int(m.group(1)), (ct.group(1).decode().strip() if ct else None)


def request(method, target, headers=(), body=b""):
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def gh(body, kind_sig=GH):
    return [("X-Hub-Signature-256", "sha256=" + hmac.new(kind_sig.encode(), body,
                                                         hashlib.sha256).hexdigest()),
            ("X-GitHub-Event", "push"), ("Content-Type", "application/json")]


def slack(body, secret=SLACK_SECRET):
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body,
                           hashlib.sha256).hexdigest()
    return [("X-Slack-Signature", sig), ("X-Slack-Request-Timestamp", ts),
            ("Content-Type", "application/json")]


def template_of(doc, path):
    for tmpl in doc["paths"]:
        if "{" in tmpl:
            prefix = tmpl[:tmpl.index("{")]
            if path.startswith(prefix) and len(path) > len(prefix):
                return tmpl
        elif path == tmpl:
            return tmpl
    return None


def error_paths():
    """(method, target, headers, body) per route: its own error paths plus
    the framing errors every route shares."""
    long_target = "/x" * 4200
    big_header = [("X-Big", "a" * 17000)]
    cases = []
    routes = {"/healthz": "GET", "/readyz": "GET", "/metrics": "GET", "/openapi.json": "GET",
              "/asyncapi.json": "GET", "/docs": "GET", "/": "GET",
              "/static/app.js": "GET", "/v1/webhooks/gh": "POST", "/v1/publish/spec.a": "POST"}
    for path, method in routes.items():
        other = "DELETE" if method == "GET" else "GET"
        cases += [
            (method, path, [], b""),
            (other, path, [], b""),                                     # 405
            ("PUT", path, [], b""),                                     # 405
            (method, path + ("%01" if path.endswith("/") else "/%01"), [], b""),
            (method, path + "?" + "q" * 9000, [], b""),                 # 414
            (method, path, big_header, b""),                            # 431
            (method, path, [("Content-Length", "2"), ("Transfer-Encoding", "chunked")],
             b"0\r\n\r\n"),                                              # 400
            (method, path, [("Content-Length", "1"), ("Content-Length", "2")], b"ab"),
            (method, path, [("Transfer-Encoding", "gzip")], b""),       # 501
        ]
    cases.append(("GET", long_target, [], b""))
    cases += [("GET", "/static/../../etc/passwd", [], b""), ("GET", "/static/", [], b""),
              ("GET", "/static/nope.css", [], b"")]
    ok = b'{"kind":"ok"}'
    cases += [
        ("POST", "/v1/webhooks/nope", gh(ok), ok),                                  # 404
        ("POST", "/v1/webhooks/gh", gh(ok), b"x" * 65),                            # 413
        ("POST", "/v1/webhooks/gh", [("Content-Type", "text/plain")], ok),         # 415
        ("POST", "/v1/webhooks/gh", [h for h in gh(ok) if h[0] != "Content-Type"], ok),
        ("POST", "/v1/webhooks/gh", gh(ok, "wrong"), ok),                          # 401
        ("POST", "/v1/webhooks/gh", gh(b"nope"), b"nope"),                         # 400
        ("POST", "/v1/webhooks/gh", gh(b'{"kind":"a.b"}'), b'{"kind":"a.b"}'),     # 422
        ("POST", "/v1/webhooks/gh", gh(b'{"kind":"no"}'), b'{"kind":"no"}'),       # 403
        ("POST", "/v1/webhooks/gh", gh(ok), ok),                                   # 202
        ("POST", "/v1/webhooks/gh", gh(ok) + [("Content-Length", "x")], ok),
        ("POST", "/v1/webhooks/shop", gh(ok), ok),                                 # 422 id
        ("POST", "/v1/webhooks/shop", gh(ok) + [("X-Id", "a b")], ok),             # 422 id
        ("POST", "/v1/webhooks/shop", gh(ok) + [("X-Id", "id-1")], ok),            # 202
        ("POST", "/v1/webhooks/strict", gh(ok), ok),                               # 503
        ("POST", "/v1/webhooks/slack", slack(b'{"type":"url_verification","challenge":"c"}'),
         b'{"type":"url_verification","challenge":"c"}'),                          # 200
        ("POST", "/v1/webhooks/slack", slack(b'{"type":"url_verification"}', "bad"),
         b'{"type":"url_verification"}'),                                          # 401
        ("POST", "/v1/webhooks/gh", gh(ok) + [("Transfer-Encoding", "chunked")],
         b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n"),    # 413 chunked
    ]
    key = [("X-Api-Key", API_KEY)]
    cases += [
        ("POST", "/v1/publish/spec.a", [], b"x"),                                   # 401
        ("POST", "/v1/publish/spec.a", [("X-Api-Key", "wrong")], b"x"),             # 401
        ("POST", "/v1/publish/spec.a", [("Authorization", "Basic eA==")], b"x"),    # 401
        ("POST", "/v1/publish/spec.a", [("Authorization", "Bearer " + token(roles=["pub"]))],
         b"x"),                                                                    # 202
        ("POST", "/v1/publish/spec.*", key, b"x"),                                  # 400
        ("POST", "/v1/publish/other.a", key, b"x"),                                 # 403
        ("POST", "/v1/publish/spec.a", key, b"x" * 65),                             # 413
        ("POST", "/v1/publish/spec.a", key + [("Content-Type", "a/" + "b" * 300)], b"x"),
        ("POST", "/v1/publish/spec.a", key + [("Content-Type",
                                               "application/cloudevents+json")], b"{}"),
        ("POST", "/v1/publish/spec.a", key + [("Content-Type", "text/plain")], b"x"),  # 202
    ]
    return cases


def test_every_status_is_documented(make_herald, nats):
    h = make_herald(config(), env=ENV, nats_url=nats.url)
    doc = h.get("/openapi.json").json()
    seen = {}
    for method, target, headers, body in error_paths():
        status, ctype = raw(h.http_port, request(method, target, headers, body))
        path = target.split("?")[0]
        tmpl = template_of(doc, path)
        if tmpl is None:
            assert status in (400, 404, 414), (method, target[:60], status)
            continue
        # each route has one operation; a wrong method's 405 is listed there
        op = next(v for v in doc["paths"][tmpl].values() if isinstance(v, dict) and
                  "responses" in v)
        documented = op["responses"]
        assert str(status) in documented, \
            f"{method} {target[:60]} -> {status}, not documented for {tmpl}: {sorted(documented)}"
        # 414/431 beyond 32 KiB and an unparsable Content-Length are answered
        # by the HTTP library itself (contract §4 "HTTP framing"): status only
        library = status in (414, 431) or any(
            k == "Content-Length" and not v.isdigit() for k, v in headers)
        if status >= 400 and not library:
            assert ctype == "application/problem+json", (method, target[:60], status, ctype)
        seen.setdefault(tmpl, set()).add(status)
    # the error paths really were exercised (a test that cannot fail proves nothing)
    assert {200, 202, 400, 401, 403, 404, 405, 413, 414, 415, 422, 431, 501, 503} <= \
        seen["/v1/webhooks/{source}"], seen["/v1/webhooks/{source}"]
    assert {202, 400, 401, 403, 405, 413, 415, 431, 501} <= seen["/v1/publish/{subject}"], \
        seen["/v1/publish/{subject}"]
    # readyz 503 (NATS down), and 429 under a rate limit, are documented too
    nats.stop()
    wait_for(lambda: h.get("/readyz").status == 503, what="readyz 503")
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    r = h.get("/v1/webhooks/gh", headers=dict(gh(b'{"kind":"ok"}')), method="POST",
              data=b'{"kind":"ok"}')
    assert r.status == 503 and "503" in doc["paths"]["/v1/webhooks/{source}"]["post"]["responses"]
    h2 = make_herald(config({"limits": {"http_requests_per_ip": {"rate_per_s": 0.01,
                                                                  "burst": 1}}}),
                     env=ENV, nats_url=nats.url)
    codes = {raw(h2.http_port, request("POST", p, [], b"x"))[0]
             for p in ["/v1/publish/spec.a"] * 2 + ["/v1/webhooks/gh"]}
    assert 429 in codes
    for tmpl in ("/v1/publish/{subject}", "/v1/webhooks/{source}"):
        assert "429" in doc["paths"][tmpl]["post"]["responses"]


# ---- schemathesis ---------------------------------------------------------------------

def test_schemathesis_against_a_live_herald(make_herald, nats, tmp):
    """Property-based: requests generated from /openapi.json (bounded), against
    a herald with a bearer webhook source and the publish API. The bearer
    token is also a valid JWT, so one Authorization header serves both."""
    jwt = token(roles=["pub"], exp_in=3600)
    cfg = config()
    cfg["webhooks"]["hook"] = {"verify": {"scheme": "bearer", "tokens_env": ["HOOK_TOKEN"]},
                               "subject": "spec.hook"}
    nc = NatsClient(nats.url)
    nc.add_stream("SPEC", ["spec.>"], duplicate_window=7200)
    nc.close()
    h = make_herald(cfg, env={**ENV, "HOOK_TOKEN": jwt}, nats_url=nats.url)
    st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    if not os.path.exists(st):
        pytest.fail("schemathesis is not installed (pip install -r tests/requirements.txt)")
    # Reach the routes' core logic: the bearer source and a subject the token
    # may publish to (the other test covers unknown sources and subjects).
    with open(os.path.join(tmp, "schemathesis.toml"), "w") as f:
        f.write('[parameters]\n"path.source" = "hook"\n"path.subject" = "spec.generated"\n'
                '"path.path" = "index.html"\n')
    r = subprocess.run(
        [st, "run", h.base + "/openapi.json", "--url", h.base,
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance,response_headers_conformance",
         "--max-examples", "15", "--workers", "1", "--seed", "18",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", str(10 * SLACK),
         "--generation-deterministic",
         "-H", f"Authorization: Bearer {jwt}", "--no-color"],
        capture_output=True, text=True, timeout=600 * SLACK,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, cwd=tmp)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    # it really ran against every operation, in both generating phases
    n = int(re.search(r"Operations:\s+(\d+) selected", out).group(1))
    assert n >= 9 and re.search(r"Tested: %d\b" % n, out), out[-3000:]
    for phase in ("Coverage", "Fuzzing"):
        m = re.search(phase + r" \(in [^)]*\)\s+✅ (\d+) passed", out)
        assert m and int(m.group(1)) == n, out[-3000:]
    assert "Authentication failed" not in out, out[-3000:]
    assert h.get("/healthz").status == 200
