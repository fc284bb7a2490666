"""Shared fixtures: a real nats-server (with JetStream) and a real herald
process, each on free loopback ports, started and stopped by the tests."""
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

HERALD_BIN = os.environ.get("HERALD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "herald")
SANITIZED = os.environ.get("HERALD_VARIANT") in ("asan", "tsan")
# Sanitized binaries are slower; give every wait some slack.
SLACK = 3 if SANITIZED else 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout * SLACK
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # the thing may not be up yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class NatsCluster:
    """`n` nats-server nodes routed on loopback (with JetStream when `js`),
    each started, killed and stopped on its own."""

    def __init__(self, tmp, n, js=False):
        self.tmp, self.n, self.js = tmp, n, js
        self.ports = [free_port() for _ in range(n)]
        self.cports = [free_port() for _ in range(n)]
        self.procs = [None] * n

    def start(self, i, wait=True):
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cports) if j != i)
        args = ["nats-server", "-a", "127.0.0.1", "-p", str(self.ports[i]),
                "--server_name", f"n{i}", "--cluster_name", "herald-test",
                "--cluster", f"nats://127.0.0.1:{self.cports[i]}", "--routes", routes]
        if self.js:
            args += ["-js", "-sd", os.path.join(self.tmp, f"js{i}")]
        self.procs[i] = subprocess.Popen(
            args, stdout=open(os.path.join(self.tmp, f"node{i}.log"), "ab"),
            stderr=subprocess.STDOUT)
        if wait:
            wait_for(lambda: socket.create_connection(("127.0.0.1", self.ports[i]), 0.5),
                     what=f"node {i}")

    def url(self, i):
        return f"nats://127.0.0.1:{self.ports[i]}"

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.terminate()
                p.wait()


class NatsServer:
    def __init__(self, tmp):
        self.port = free_port()
        self.store = os.path.join(tmp, f"js-{self.port}")
        self.proc = None
        self.log = os.path.join(tmp, f"nats-{self.port}.log")

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-sd", self.store, "-a", "127.0.0.1",
             "-p", str(self.port)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(self._accepting, what="nats-server")
        return self

    def _accepting(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            return s.recv(4096).startswith(b"INFO")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Herald:
    """One herald process. `config` is a dict written to a temp file."""

    def __init__(self, tmp, config=None, env=None, nats_url=None, nofile=None):
        self.tmp = tmp
        self.nofile = nofile  # RLIMIT_NOFILE for herald (soft and hard), None: inherited
        self.http_port = free_port()
        self.ws_port = free_port()
        cfg = {"http": {"listen": f"127.0.0.1:{self.http_port}"},
               "ws": {"listen": f"127.0.0.1:{self.ws_port}"}}
        if os.environ.get("HERALD_WS_THREADS"):  # the suite runs with 1 and with 4
            cfg["ws"]["threads"] = int(os.environ["HERALD_WS_THREADS"])
        for k, v in (config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = {**cfg[k], **v}
            else:
                cfg[k] = v
        self.config = cfg
        self.config_path = os.path.join(tmp, f"herald-{self.http_port}.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.env = {k: v for k, v in os.environ.items() if k != "NATS_ADDR"}
        if nats_url:
            self.env["NATS_ADDR"] = nats_url
        self.env.update(env or {})
        self.stderr_path = os.path.join(tmp, f"herald-{self.http_port}.log")
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.ws_port}/v1/ws"

    def start(self, wait=True):
        nofile = self.nofile
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) \
            if nofile else None
        self.proc = subprocess.Popen(
            [HERALD_BIN, "--config", self.config_path], env=self.env,
            stdout=subprocess.DEVNULL, stderr=open(self.stderr_path, "wb"),
            preexec_fn=preexec)
        if wait:
            wait_for(lambda: self.proc.poll() is not None or
                     self.get("/healthz").status == 200, what="herald /healthz")
            assert self.proc.poll() is None, self.logs()
        return self

    def get(self, path, headers=None, method="GET", data=None, timeout=10):
        req = urllib.request.Request(self.base + path, headers=headers or {},
                                     method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=timeout * SLACK) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def logs(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        return [json.loads(l) for l in self.logs().splitlines() if l.strip()]

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=15):
        return self.proc.wait(timeout * SLACK)

    def memory_kib(self):
        """(VmHWM, VmRSS) of the running process in KiB: its peak and
        current resident memory."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            v = dict(l.split(":", 1) for l in f if l.startswith(("VmHWM", "VmRSS")))
        return int(v["VmHWM"].split()[0]), int(v["VmRSS"].split()[0])

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20 * SLACK)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        check_sanitizer_clean(self.logs())


def assert_problem(r, status):
    """An RFC 9457 problem+json response with this status."""
    assert r.status == status, (r.status, r.body)
    assert r.headers["Content-Type"] == "application/problem+json"
    p = r.json()
    assert p["status"] == status and p["title"] and p["detail"] and p["type"]
    return p


def standard_webhook_headers(secret, msg_id, body):
    """Headers of a Standard Webhooks delivery signed with the scheme's own
    library (`standardwebhooks`), for the suites that load herald with them."""
    import datetime
    from standardwebhooks.webhooks import Webhook
    when = datetime.datetime.now(tz=datetime.timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
            "Content-Type": "application/json"}


def check_sanitizer_clean(text):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert marker not in text, f"sanitizer report in herald's stderr:\n{text[-4000:]}"


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="herald-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nats(tmp):
    n = NatsServer(tmp).start()
    yield n
    n.stop()


@pytest.fixture
def make_herald(tmp):
    started = []

    def make(config=None, env=None, nats_url=None, start=True, nofile=None):
        h = Herald(tmp, config, env, nats_url, nofile)
        started.append(h)
        return h.start() if start else h

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def herald(make_herald, nats):
    return make_herald(nats_url=nats.url)


def run_herald(args, env=None, timeout=20):
    """Run herald to completion (for --check-config, --version, bad configs)."""
    e = {k: v for k, v in os.environ.items() if k != "NATS_ADDR"}
    e.update(env or {})
    return subprocess.run([HERALD_BIN] + args, env=e, capture_output=True,
                          text=True, timeout=timeout * SLACK)


# ---- figures a test reports (peak RSS and the like) ---------------------------

FIGURES = []


@pytest.fixture
def figures(request):
    """record(**figures): one line per test in the run's summary (and in the
    JSON-lines file HERALD_FIGURES_FILE names, if set), e.g. peak RSS."""
    def record(**kv):
        row = {"test": request.node.name, "variant": os.environ.get("HERALD_VARIANT", "plain"),
               **kv}
        FIGURES.append(row)
        path = os.environ.get("HERALD_FIGURES_FILE")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("herald figures")
        for row in FIGURES:
            terminalreporter.write_line(json.dumps(row))
