"""herald.js and the deployments dashboard (issue 14), run from the suite:
Node's test runner for herald.js against a real herald, and Debian's chromium
(playwright-core) for the dashboard. The JavaScript tests start their own
nats-server -js, herald (this variant's HERALD_BIN, restarted on the same
ports) and demo publisher (herald-demo next to it), so this file only runs
them and checks what they leave behind."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import HERALD_BIN, SLACK

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
VARIANT = os.environ.get("HERALD_VARIANT", "dev")
SHOT_DIR = os.path.join(tempfile.gettempdir(), f"herald-browser-{VARIANT}")


def node_or_skip():
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed: herald.js and dashboard tests need Node.js >= 20")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        pytest.fail("tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` "
                    "(./herald.sh test does it)")
    return node


def node_test(script, timeout):
    node = node_or_skip()
    args = [node]
    # Node 20 has WebSocket behind a flag; 22+ has it by default.
    probe = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"])
    if probe.returncode != 0:
        args.append("--experimental-websocket")
    herald = os.path.abspath(HERALD_BIN)
    demo = os.path.join(os.path.dirname(herald), "herald-demo")
    assert os.access(demo, os.X_OK), f"{demo} missing: the CMake build makes it"
    env = {k: v for k, v in os.environ.items() if k != "NATS_ADDR"}
    env.update(HERALD_BIN=herald, HERALD_DEMO_BIN=demo, HERALD_SCREENSHOT_DIR=SHOT_DIR)
    r = subprocess.run(args + ["--test", "--test-reporter=spec", os.path.join(BROWSER_DIR, script)],
                       capture_output=True, text=True, timeout=timeout * SLACK, env=env, cwd=ROOT)
    print(r.stdout[-20000:])
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-5000:]
    # The runner must have run tests, not skipped its way to success.
    assert "ℹ fail 0" in r.stdout and "ℹ skipped 0" in r.stdout, r.stdout[-3000:]
    return r.stdout


def test_herald_js_against_real_herald():
    out = node_test("herald-client.test.mjs", 240)
    assert "100 reconnects leak no timers" in out


def test_dashboard_in_a_real_browser():
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    assert os.access(chromium, os.X_OK), f"{chromium} missing: apt-get install chromium"
    shot = os.path.join(SHOT_DIR, "herald-dashboard.png")
    if os.path.exists(shot):
        os.unlink(shot)
    node_test("dashboard.test.mjs", 300)
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {shot}")


def test_static_assets_are_served(herald):
    """The dashboard, herald.js (+ typings) and the protocol console are plain
    files under static/, served with the right types; no dev token unless the
    demo of ./herald.sh run wrote one."""
    page = herald.get("/").body.decode()
    assert '<script type="module" src="/static/dashboard.js">' in page
    for path, ctype in (("/static/herald.js", "text/javascript"),
                        ("/static/dashboard.js", "text/javascript"),
                        ("/static/dashboard.css", "text/css"),
                        ("/static/console.html", "text/html"),
                        ("/static/package.json", "application/json")):
        r = herald.get(path)
        assert r.status == 200 and r.headers["Content-Type"].startswith(ctype), (path, r.status)
    assert b"export function connect" in herald.get("/static/herald.js").body
    assert b"/static/demo.js" in herald.get("/static/console.html").body
    assert herald.get("/static/herald.d.ts").status == 200
    if not os.path.exists(os.path.join(ROOT, "static", "dev-token.json")):
        assert herald.get("/static/dev-token.json").status == 404
