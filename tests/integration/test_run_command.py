"""`./herald.sh run` (issue 14): the demo publisher and herald come up wired
together (the dev token the demo mints opens a session that sees the demo's
deployments), and Ctrl-C stops everything gracefully: herald receives one
SIGTERM, shuts down cleanly (never "second signal: exiting at once"), and the
demo, herald and the dev token are gone afterwards. Runs the script on free
ports against this variant's build and the test's nats-server."""
import json
import os
import signal
import subprocess
import time

from natsclient import NatsClient
from conftest import HERALD_BIN, SLACK, check_sanitizer_clean, free_port, wait_for
from wsclient import call, recv, run
from websockets.asyncio.client import connect as ws_connect

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def procs_mentioning(text):
    """PIDs whose command line mentions text (our own temp paths only)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_run_command_wires_the_demo_and_stops_gracefully_on_ctrl_c(nats, tmp):
    with open(os.path.join(ROOT, "examples", "dev.json")) as f:
        cfg = json.load(f)
    http_port, ws_port = free_port(), free_port()
    cfg["http"]["listen"] = f"127.0.0.1:{http_port}"
    cfg["ws"]["listen"] = f"127.0.0.1:{ws_port}"
    cfg_path = os.path.join(tmp, "dev.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    token_file = os.path.join(tmp, "dev-token.json")
    env = dict(os.environ, NATS_ADDR=nats.url,
               HERALD_RUN_BUILD_DIR=os.path.dirname(os.path.abspath(HERALD_BIN)),
               HERALD_RUN_CONFIG=cfg_path, HERALD_RUN_STATE=tmp,
               HERALD_RUN_TOKEN_FILE=token_file, HERALD_RUN_HTTP=f"127.0.0.1:{http_port}")
    env.pop("HERALD_DEV_JWT_SECRET", None)  # the script's own default
    err_path = os.path.join(tmp, "run.err")
    # A terminal's Ctrl-C goes to the foreground process group: the script's.
    proc = subprocess.Popen([os.path.join(ROOT, "herald.sh"), "run"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(err_path, "wb"),
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: os.path.exists(token_file) and os.path.getsize(token_file) > 0,
                 timeout=20, what="the demo's dev token")

        def ready():
            import urllib.request
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                return r.status == 200
        wait_for(ready, timeout=20, what="herald /readyz")
        with open(token_file) as f:
            dev = json.load(f)
        assert dev["sub"] == "demo" and dev["expires"] > time.time() + 600

        async def first_snapshot():
            ws = await ws_connect(f"ws://127.0.0.1:{ws_port}/v1/ws", subprotocols=["herald.v1"])
            try:
                assert (await recv(ws))["roles"] == ["anonymous"]
                ready = await call(ws, {"type": "auth", "id": "a", "token": dev["token"]})
                assert ready["type"] == "ready" and ready["sub"] == "demo", ready
                ok = await call(ws, {"type": "subscribe", "id": "s",
                                     "subject": "deployments.demo.*.status", "since": "last"})
                assert ok["type"] == "ok", ok
                ev = await recv(ws, 10)
                assert ev["type"] == "event", ev
                return ev
            finally:
                await ws.close()
        ev = run(first_snapshot())
        assert ev["data"]["status"] in ("pending", "building", "deploying", "ready", "failed")
        assert set(ev["data"]) == {"id", "name", "status", "progress", "updated_at"}
        assert ev["subject"] == f"deployments.demo.{ev['data']['id']}.status"
        assert isinstance(ev["seq"], int)

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30 * SLACK) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        err = f.read()
    logs = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    shutting = [l for l in logs if l.get("msg") == "shutting down"]
    assert len(shutting) == 1 and shutting[0]["signal"] == "SIGTERM", err[-3000:]
    assert any(l.get("msg") == "herald stopped" for l in logs), err[-3000:]
    assert not any("second signal" in l.get("msg", "") for l in logs), err[-3000:]
    check_sanitizer_clean(err)
    with open(os.path.join(tmp, "demo.log"), encoding="utf-8", errors="replace") as f:
        check_sanitizer_clean(f.read())
    assert not os.path.exists(token_file), "the dev token outlived the run"
    # The demo ended what it had running: no deployment looks stuck in a snapshot.
    nc = NatsClient(nats.url)
    try:
        info = nc.run(nc.js.stream_info("DEPLOYMENTS", subjects_filter=">"))
        subjects = list(info.state.subjects or {})
        assert subjects and all(s.startswith("deployments.demo.") for s in subjects), subjects
        last = [json.loads(nc.run(nc.js.get_last_msg("DEPLOYMENTS", s)).data) for s in subjects]
        assert all(m["status"] in ("ready", "failed") for m in last), last
    finally:
        nc.close()
    wait_for(lambda: not procs_mentioning(cfg_path) and not procs_mentioning(token_file),
             timeout=5, what="herald and the demo gone")
