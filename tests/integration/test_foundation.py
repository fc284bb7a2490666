"""Issue 2: configuration, NATS link, health, metrics, routing, logging and
shutdown, against a real nats-server and a real herald process."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (SLACK, check_sanitizer_clean, free_port, run_herald,
                      wait_for)


def write(tmp, name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    return p


# ---- command line and configuration ---------------------------------------

def test_version():
    r = run_herald(["--version"])
    assert r.returncode == 0
    assert r.stdout.startswith("herald ")


def test_check_config_ok(tmp):
    p = write(tmp, "ok.json", json.dumps({"ws": {"max_frame_bytes": 2048}}))
    r = run_herald(["--check-config", p])
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_check_config_reports_every_problem_with_its_path(tmp):
    p = write(tmp, "bad.json", json.dumps({
        "ws": {"max_frame_bytes": 10, "slow_consumer": "explode", "max_frme": 1},
        "http": {"listen": "nope"},
        "shutdown_timeout_s": 0,
        "webhooks": {"github": {"verify": {"scheme": "github", "secret_env": "NOPE_UNSET"},
                                "subject": "webhooks.github.{hdr:X}"}},
    }))
    r = run_herald(["--check-config", p])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    expected = [
        "ws.max_frame_bytes: must be an integer between 1024 and 16777216",
        "ws.slow_consumer: must be one of disconnect, drop",
        "ws.max_frme: unknown key",
        "http.listen: must be",
        "shutdown_timeout_s: must be an integer between 1 and 300",
        "webhooks.github.subject: unknown placeholder {hdr:X}",
        "webhooks.github.verify.secret_env: environment variable NOPE_UNSET is not set",
    ]
    for e in expected:
        assert any(l.startswith(e) for l in lines), (e, lines)
    assert len(lines) == len(expected), lines


def test_check_config_missing_file(tmp):
    r = run_herald(["--check-config", os.path.join(tmp, "missing.json")])
    assert r.returncode == 2
    assert "missing.json" in r.stderr and "No such file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_check_config_invalid_json_has_line_and_column(tmp):
    p = write(tmp, "broken.json", '{\n  "ws": {\n    "listen": "127.0.0.1:1",\n  }\n}\n')
    r = run_herald(["--check-config", p])
    assert r.returncode == 2
    assert "line 4" in r.stderr and "column" in r.stderr


def test_check_config_wrong_types(tmp):
    p = write(tmp, "types.json", json.dumps({
        "ws": {"max_subscriptions": "100", "query_token": "yes"},
        "nats": {"servers": "nats://x:4222"}, "log": {"level": 3}}))
    r = run_herald(["--check-config", p])
    assert r.returncode == 2
    for e in ("ws.max_subscriptions: must be an integer",
              "ws.query_token: must be true or false",
              "nats.servers: must be an array of strings",
              "log.level: must be one of"):
        assert e in r.stderr, (e, r.stderr)


def test_secret_env_is_resolved_and_never_logged(tmp, make_herald, nats):
    secret = "S3CRET-value-that-must-not-leak"
    h = make_herald({"auth": {"jwt": {"keys": [{"alg": "HS256", "secret_env": "T_JWT"}]}}},
                    env={"T_JWT": secret}, nats_url=nats.url)
    assert h.get("/readyz").status == 200
    h.stop()
    assert secret not in h.logs()


def test_startup_with_bad_config_exits_2_before_listening(tmp, make_herald):
    h = make_herald({"ws": {"ping_interval_s": 0}}, start=False)
    h.start(wait=False)
    assert h.wait() == 2
    lines = h.log_lines()
    assert any("ws.ping_interval_s: must be an integer between 1 and 3600" in l.get("problem", "")
               for l in lines), lines
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", h.http_port), timeout=0.5).close()


def test_herald_config_env_var(tmp, nats):
    port = free_port()
    p = write(tmp, "env.json", json.dumps({"http": {"listen": f"127.0.0.1:{port}"},
                                           "ws": {"listen": f"127.0.0.1:{free_port()}"}}))
    env = {k: v for k, v in os.environ.items()}
    env.update({"HERALD_CONFIG": p, "NATS_ADDR": nats.url})
    proc = subprocess.Popen([os.environ.get("HERALD_BIN", "build/herald")], env=env,
                            stderr=subprocess.PIPE)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.5), what="listener")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20 * SLACK)
    assert proc.returncode == 0
    check_sanitizer_clean(err.decode())


def test_missing_secret_env_is_a_startup_error(make_herald):
    h = make_herald({"auth": {"jwt": {"keys": [{"alg": "HS256", "secret_env": "UNSET_X"}]}}},
                    start=False)
    h.start(wait=False)
    assert h.wait() == 2
    assert "auth.jwt.keys[0].secret_env: environment variable UNSET_X is not set" in h.logs()


def test_port_in_use_is_a_one_line_startup_error(make_herald, nats):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        for key in ("http", "ws"):
            h = make_herald({key: {"listen": f"127.0.0.1:{busy}"}}, nats_url=nats.url,
                            start=False)
            h.start(wait=False)
            assert h.wait() == 1
            errors = [l for l in h.log_lines() if l["level"] == "error"]
            assert len(errors) == 1, errors
            assert "Address already in use" in errors[0]["error"]


# ---- NATS link ------------------------------------------------------------

def test_nats_addr_overrides_config(make_herald, nats):
    h = make_herald({"nats": {"servers": ["nats://127.0.0.1:1"]}}, nats_url=nats.url)
    wait_for(lambda: h.get("/readyz").status == 200, what="readyz 200")


def test_readyz_follows_nats(herald, nats):
    assert herald.get("/readyz").status == 200
    nats.stop()
    r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(herald.get("/readyz")),
                 what="readyz 503")
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 503 and "NATS" in body["detail"]
    assert herald.get("/healthz").status == 200
    nats.start()
    wait_for(lambda: herald.get("/readyz").status == 200, what="readyz back to 200")
    m = herald.get("/metrics").body.decode()
    assert "herald_nats_reconnects_total 1" in m
    assert "herald_nats_connected 1" in m
    # Logged once per transition, not per retry.
    msgs = [l["msg"] for l in herald.log_lines()]
    assert msgs.count("nats disconnected, reconnecting") == 1
    assert msgs.count("nats reconnected") == 1


def test_starts_without_nats_and_connects_when_it_appears(tmp, make_herald):
    from conftest import NatsServer
    n = NatsServer(tmp)
    h = make_herald(nats_url=n.url)
    assert h.get("/healthz").status == 200
    r = h.get("/readyz")
    assert r.status == 503
    assert "no server reachable yet" in r.json()["detail"]
    assert "herald_nats_connected 0" in h.get("/metrics").body.decode()
    n.start()
    try:
        wait_for(lambda: h.get("/readyz").status == 200, what="readyz after nats started")
    finally:
        n.stop()


# ---- HTTP surface ---------------------------------------------------------

def test_metrics_exposition(herald):
    herald.get("/healthz")
    herald.get("/does-not-exist")
    r = herald.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    for name in ("herald_build_info{version=", "herald_uptime_seconds ",
                 "herald_nats_connected 1", "herald_nats_reconnects_total 0",
                 'herald_http_requests_total{route="/healthz",code="2xx"}',
                 'herald_http_requests_total{route="unmatched",code="4xx"} 1',
                 "process_resident_memory_bytes ", "process_open_fds ",
                 "process_cpu_seconds_total "):
        assert name in text, name
    assert "# TYPE herald_http_requests_total counter" in text
    assert "# TYPE herald_nats_connected gauge" in text


def test_unknown_route_404_problem_json(herald):
    r = herald.get("/nope")
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    b = r.json()
    assert set(b) >= {"type", "title", "status", "detail"} and b["status"] == 404


def test_wrong_method_405_with_allow(herald):
    for path in ("/healthz", "/readyz", "/metrics"):
        r = herald.get(path, method="POST", data=b"x")
        assert r.status == 405
        assert r.headers["Allow"] == "GET, HEAD"
        assert r.json()["status"] == 405
    r = herald.get("/healthz", method="DELETE")
    assert r.status == 405


def raw_request(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLACK) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def test_encoded_control_characters_in_path_are_400(herald):
    for path in (b"/static/%00index.html", b"/healthz%0a", b"/static/a%1Fb"):
        out = raw_request(herald.http_port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out
        assert b"application/problem+json" in out


def test_ambiguous_framing_is_400_and_closes(herald):
    out = raw_request(herald.http_port,
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out
    assert b"Connection: close" in out


def test_static_files_and_no_escape(herald):
    r = herald.get("/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"herald" in r.body
    for bad in (b"/static/../CMakeLists.txt", b"/static/%2e%2e/CMakeLists.txt",
                b"/static/..%2fCMakeLists.txt", b"/static/", b"/static/nope.js"):
        out = raw_request(herald.http_port, b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 404"), (bad, out[:200])
        assert b"cmake_minimum_required" not in out


def test_openapi_document(herald):
    r = herald.get("/openapi.json")
    assert r.status == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    for p in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs"):
        assert p in doc["paths"], p
    # issue 4: webhooks and the publish API, every response documented
    for p, codes in (("/v1/webhooks/{source}",
                      ["202", "400", "401", "403", "404", "413", "415", "422", "429", "503"]),
                     ("/v1/publish/{subject}",
                      ["202", "400", "401", "403", "413", "503"])):
        op = doc["paths"][p]["post"]
        assert op["requestBody"]["content"], p
        assert set(codes) <= set(op["responses"]), (p, sorted(op["responses"]))
        for code in codes:
            assert set(op["responses"][code]) & {"$ref", "content"}, (p, code)
    assert "Retry-After" in doc["components"]["responses"]["Unavailable"]["headers"]
    assert {"id", "subject"} <= set(doc["components"]["schemas"]["Accepted"]["required"])


# ---- WebSocket listener -----------------------------------------------------

def test_ws_listener_accepts_connections(herald):
    with socket.create_connection(("127.0.0.1", herald.ws_port), timeout=2):
        pass


# ---- logging ----------------------------------------------------------------

def test_logs_are_json_lines(herald):
    herald.get("/healthz")
    herald.stop()
    lines = herald.logs().splitlines()
    assert lines
    for l in lines:
        o = json.loads(l)
        assert {"ts", "level", "msg"} <= set(o), o
        assert o["level"] in ("debug", "info", "warn", "error")
        assert o["ts"].endswith("Z")


def test_log_level_from_env(make_herald, nats):
    h = make_herald({"log": {"level": "error"}}, nats_url=nats.url)
    h.stop()
    assert all(l["level"] == "error" for l in h.log_lines())
    h2 = make_herald({"log": {"level": "error"}}, env={"HERALD_LOG_LEVEL": "info"},
                     nats_url=nats.url)
    h2.stop()
    assert any(l["msg"] == "herald started" for l in h2.log_lines())


# ---- shutdown ---------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(herald, sig):
    t0 = time.monotonic()
    herald.signal(sig)
    assert herald.wait() == 0
    assert time.monotonic() - t0 < herald.config.get("shutdown_timeout_s", 10) * SLACK
    assert any(l["msg"] == "herald stopped" for l in herald.log_lines())


def test_shutdown_finishes_in_flight_request(make_herald, nats):
    h = make_herald({"shutdown_timeout_s": 10}, nats_url=nats.url)
    s = socket.create_connection(("127.0.0.1", h.http_port), timeout=10 * SLACK)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers not finished yet
    wait_for(lambda: b"herald" in b"herald", what="noop")
    time.sleep(0.3)
    h.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert h.proc.poll() is None, "exited with a request in flight"
    # New connections are refused once shutdown began.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", h.http_port), timeout=1).close()
    s.sendall(b"Connection: close\r\n\r\n")
    resp = s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 200"), resp
    assert h.wait() == 0


def test_second_signal_exits_at_once(make_herald, nats):
    h = make_herald({"shutdown_timeout_s": 30}, nats_url=nats.url)
    s = socket.create_connection(("127.0.0.1", h.http_port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    h.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert h.proc.poll() is None
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    rc = h.wait()
    assert time.monotonic() - t0 < 2 * SLACK
    assert rc != 0
    s.close()


def test_shutdown_timeout_bounds_exit(make_herald, nats):
    h = make_herald({"shutdown_timeout_s": 1}, nats_url=nats.url)
    s = socket.create_connection(("127.0.0.1", h.http_port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    assert h.wait() == 0
    assert time.monotonic() - t0 < 3 * SLACK
    s.close()


def test_readyz_requires_jetstream_when_a_source_needs_it(tmp, make_herald):
    from conftest import NatsServer
    n = NatsServer(tmp)
    # core NATS only: no -js
    n.proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(n.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for(n._accepting, what="nats-server")
    try:
        cfg = {"webhooks": {"billing": {"verify": {"scheme": "bearer",
                                                   "tokens_sha256": ["0" * 64]},
                                        "subject": "webhooks.billing", "delivery": "jetstream"}}}
        h = make_herald(cfg, nats_url=n.url)
        r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(h.get("/readyz")),
                     what="readyz 503")
        assert "JetStream" in r.json()["detail"]
        h2 = make_herald(nats_url=n.url)  # nothing needs JetStream: ready
        wait_for(lambda: h2.get("/readyz").status == 200, what="readyz 200")
    finally:
        n.stop()


def test_readyz_with_jetstream_source_and_jetstream_up(make_herald, nats):
    cfg = {"webhooks": {"billing": {"verify": {"scheme": "bearer", "tokens_sha256": ["0" * 64]},
                                    "subject": "webhooks.billing", "delivery": "jetstream"}}}
    h = make_herald(cfg, nats_url=nats.url)
    wait_for(lambda: h.get("/readyz").status == 200, what="readyz 200")


def test_oversized_requests_get_problem_json(herald):
    out = raw_request(herald.http_port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414"), out[:100]
    assert b"application/problem+json" in out
    out = raw_request(herald.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                      + b"b" * 20000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431"), out[:100]
    assert b"application/problem+json" in out


def test_transfer_encoding_other_than_chunked_is_refused(herald):
    out = raw_request(herald.http_port, b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501"), out[:100]


def test_identical_content_lengths_are_not_ambiguous(herald):
    out = raw_request(herald.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                      b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:100]
    out = raw_request(herald.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                      b"Content-Length: 1\r\nConnection: close\r\n\r\nx")
    assert out.startswith(b"HTTP/1.1 400"), out[:100]


def test_new_requests_on_kept_alive_connections_are_refused_during_shutdown(make_herald, nats):
    h = make_herald({"shutdown_timeout_s": 10}, nats_url=nats.url)
    keep = socket.create_connection(("127.0.0.1", h.http_port), timeout=10 * SLACK)
    keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert keep.recv(65536).startswith(b"HTTP/1.1 200")  # connection stays open
    slow = socket.create_connection(("127.0.0.1", h.http_port), timeout=10 * SLACK)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # in flight
    time.sleep(0.3)
    h.signal(signal.SIGTERM)
    time.sleep(0.5)
    # Not taken: MHD closes idle kept-alive connections when quiesced, and a
    # request that still arrives is refused with 503 problem+json.
    try:
        keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = keep.recv(65536)
    except OSError:
        resp = b""
    assert resp == b"" or (resp.startswith(b"HTTP/1.1 503") and b"Retry-After" in resp), resp
    slow.sendall(b"\r\n")
    assert slow.recv(65536).startswith(b"HTTP/1.1 200")
    keep.close()
    slow.close()
    assert h.wait() == 0
