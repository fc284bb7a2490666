"""API documents and the docs page (contract §3 and §4 "Operations"):
GET /openapi.json, GET /asyncapi.json (AsyncAPI 3.0), GET /docs with assets
served by herald itself; plus a real-browser check of the page."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from conftest import SLACK

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")

# Contract §3, in the order it lists them.
CLIENT_MESSAGES = ["auth", "subscribe", "unsubscribe", "publish", "ping"]
SERVER_MESSAGES = ["ready", "ok", "pong", "event", "error", "dropped", "synced"]
ERROR_CODES = ["unauthorized", "token_expired", "forbidden", "invalid_subject", "bad_request",
               "duplicate_subscription", "too_many_subscriptions", "history_gap",
               "rate_limited", "unavailable", "internal"]
CLOSE_CODES = ["1001", "1009", "4001", "4002", "4008", "4029"]


def resolve(doc, node):
    """Follow local $refs (#/a/b) until a non-reference; raise on a dangling one."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        cur = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(cur, dict) and part in cur, f"dangling $ref {ref}"
            cur = cur[part]
        node = cur
        seen += 1
        assert seen < 32, f"$ref loop at {ref}"
    return node


def all_refs(node, path="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield path, v
            else:
                yield from all_refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from all_refs(v, f"{path}/{i}")


def check_asyncapi_structure(doc):
    """Structural AsyncAPI 3.0 check: required keys, every local $ref resolves,
    each operation names an existing channel and messages of that channel."""
    for key in ("asyncapi", "info", "channels", "operations", "components"):
        assert key in doc, f"missing top-level {key}"
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"].get("title") and doc["info"].get("version")
    for where, ref in all_refs(doc):
        resolve(doc, {"$ref": ref})  # dangling refs fail here
    for name, server in doc.get("servers", {}).items():
        server = resolve(doc, server)
        assert server.get("host") and server.get("protocol"), name
    for name, ch in doc["channels"].items():
        ch = resolve(doc, ch)
        assert isinstance(ch.get("messages"), dict) and ch["messages"], name
        for mname, m in ch["messages"].items():
            assert "payload" in resolve(doc, m), (name, mname)
        for s in ch.get("servers", []):
            assert s["$ref"].startswith("#/servers/"), s
    for name, op in doc["operations"].items():
        assert op.get("action") in ("send", "receive"), name
        cref = op["channel"]["$ref"]
        assert cref.startswith("#/channels/"), (name, cref)
        ch_name = cref.split("/")[2]
        assert ch_name in doc["channels"], (name, cref)
        assert op.get("messages"), name
        for m in op["messages"] + op.get("reply", {}).get("messages", []):
            # AsyncAPI 3: an operation's messages are references into its channel.
            prefix = f"{cref}/messages/"
            assert m["$ref"].startswith(prefix), (name, m)
            assert m["$ref"][len(prefix):] in resolve(doc, doc["channels"][ch_name])["messages"]
        if "reply" in op:
            assert op["reply"]["channel"]["$ref"].startswith("#/channels/")


def message_names(doc):
    return {resolve(doc, m).get("name", k) for k, m in doc["components"]["messages"].items()}


def test_asyncapi_document(herald):
    r = herald.get("/asyncapi.json")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    doc = r.json()
    check_asyncapi_structure(doc)

    server = next(iter(doc["servers"].values()))
    assert (server["protocol"], server["host"], server["pathname"]) == ("ws", "localhost:8081",
                                                                        "/v1/ws")
    ch = next(iter(doc["channels"].values()))
    headers = ch["bindings"]["ws"]["headers"]["properties"]
    assert "herald.v1" in json.dumps(headers["Sec-WebSocket-Protocol"])

    names = message_names(doc)
    for m in CLIENT_MESSAGES + SERVER_MESSAGES:
        assert m in names, m
    # Direction: client requests are received by herald, the rest sent.
    received = {resolve(doc, m)["name"] for op in doc["operations"].values()
                if op["action"] == "receive" for m in op["messages"]}
    sent = {resolve(doc, m)["name"] for op in doc["operations"].values()
            if op["action"] == "send" for m in op["messages"]}
    assert received == set(CLIENT_MESSAGES)
    assert {"event", "dropped", "error", "ready", "synced"} <= sent

    schemas = doc["components"]["schemas"]
    payload = lambda name: resolve(doc, resolve(doc, doc["components"]["messages"][name])["payload"])
    assert "since" in payload("subscribe")["properties"]
    assert {"data", "data_b64"} <= set(payload("publish")["properties"])
    assert {"data", "data_b64", "seq", "time", "subject"} <= set(payload("event")["properties"])
    assert payload("dropped")["required"] == ["type", "count"]
    assert payload("synced")["required"] == ["type", "subject", "seq"]
    since = payload("subscribe")["properties"]["since"]
    assert {"type": "string", "const": "last"} in since["oneOf"]
    err = payload("error")
    assert "first_seq" in err["properties"]
    assert resolve(doc, err["properties"]["code"])["enum"] == ERROR_CODES
    assert err["then"]["required"] == ["first_seq"]
    assert schemas["ErrorCode"]["enum"] == ERROR_CODES

    desc = doc["info"]["description"]
    for code in CLOSE_CODES:
        assert f"| {code} |" in desc, code
    for status in ("400", "401", "403", "404", "429", "503"):
        assert f"| {status} |" in desc, status
    for auth in ('"type":"auth"', "Authorization: Bearer", "ws.auth_cookie", "?token="):
        assert auth in desc, auth

    head = herald.get("/asyncapi.json", method="HEAD")
    assert head.status == 200 and head.body == b""
    r = herald.get("/asyncapi.json", method="POST", data=b"x")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"


def node_or_skip():
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed: the AsyncAPI parser and browser checks need "
                    "Node.js; install nodejs to run them")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        pytest.fail("tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` "
                    "(./herald.sh test does it)")
    return node


def test_asyncapi_passes_official_parser(herald, tmp):
    node = node_or_skip()
    path = os.path.join(tmp, "asyncapi.json")
    with open(path, "wb") as f:
        f.write(herald.get("/asyncapi.json").body)
    r = subprocess.run([node, os.path.join(BROWSER_DIR, "validate-asyncapi.mjs"), path],
                       capture_output=True, text=True, timeout=60 * SLACK)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout


def route_labels():
    """The route labels of src/http.c's route table."""
    with open(os.path.join(ROOT, "src", "http.c")) as f:
        src = f.read()
    table = src[src.index("static const route routes[]"):]
    table = table[:table.index("};")]
    # {path, prefix, methods, allow, fn, label, body handler}
    return re.findall(r'\{"[^"]*",\s*(?:true|false),\s*[^,]+,\s*"[^"]*",\s*\w+,\s*"([^"]+)"',
                      table)


def test_openapi_documents_every_route(herald):
    doc = herald.get("/openapi.json").json()
    labels = route_labels()
    assert "/asyncapi.json" in labels and "/docs" in labels
    for label in labels:
        assert label in doc["paths"], label
    for p in ("/asyncapi.json", "/docs"):
        op = doc["paths"][p]["get"]
        assert op["summary"] and op["description"] and "200" in op["responses"], p
    # Every local $ref in the OpenAPI document resolves.
    for where, ref in all_refs(doc):
        resolve(doc, {"$ref": ref})


class AssetRefs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.refs.append((tag, k, v))


def test_docs_page_is_self_contained(herald):
    r = herald.get("/docs")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    parser = AssetRefs()
    parser.feed(r.body.decode())
    refs = parser.refs
    assert any(t == "script" and v == "/static/docs.js" for t, _, v in refs), refs
    assert any(t == "link" and v == "/static/docs.css" for t, _, v in refs), refs
    for tag, attr, v in refs:
        parts = urlsplit(v)
        assert not parts.scheme and not parts.netloc, f"<{tag} {attr}={v!r}> leaves the origin"
        if parts.path:  # fragments (#top) need no request
            url = urljoin("/docs", v)
            got = herald.get(url.split("#")[0])
            assert got.status == 200, (v, got.status)
    # The assets themselves name no other origin (fetch/url() targets included).
    for asset in ("/static/docs.js", "/static/docs.css"):
        body = herald.get(asset).body.decode()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body, re.I), asset
        assert "@import" not in body
    assert herald.get("/docs", method="HEAD").status == 200
    r = herald.get("/docs", method="POST", data=b"x")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"


def test_docs_page_in_a_real_browser(herald):
    """Debian's chromium, driven by playwright-core: the page renders both
    documents, loads nothing from another origin and logs no error."""
    node = node_or_skip()
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    assert os.access(chromium, os.X_OK), f"{chromium} missing: apt-get install chromium"
    shot = os.path.join(tempfile.gettempdir(),
                        f"herald-docs-{os.environ.get('HERALD_VARIANT', 'dev')}.png")
    if os.path.exists(shot):
        os.unlink(shot)
    t0 = time.monotonic()
    r = subprocess.run([node, os.path.join(BROWSER_DIR, "docs.test.mjs"), herald.base, shot],
                       capture_output=True, text=True, timeout=120 * SLACK)
    elapsed = time.monotonic() - t0
    print(f"browser test: {elapsed:.1f}s, screenshot {shot}\n{r.stdout}")
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and not summary["failures"]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 10_000
