"""Issue 4: POST /v1/publish/{subject} — JWT or API-key authenticated
publishing of raw bodies and CloudEvents, against a real nats-server with
JetStream and a real herald process."""
import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from conftest import SLACK, assert_problem, wait_for
from natsclient import NatsClient

JWT_SECRET = "publish-api-jwt-secret-0123456789abcdef"
API_KEY = "hk_live_0123456789abcdef"
READONLY_KEY = "hk_ro_0123456789abcdef"

CONFIG = {
    "auth": {"jwt": {"keys": [{"alg": "HS256", "secret_env": "PUB_JWT_SECRET"}]}},
    "permissions": {"roles": {
        "svc": {"publish": {"allow": ["orders.>", "raw.>"], "deny": ["orders.secret"]}},
        "user": {"publish": {"allow": ["ui.{sub}.>"]}},
        "reader": {"subscribe": {"allow": [">"]}},
    }},
    "publish_api": {"max_body_bytes": 2048, "api_keys": [
        {"name": "billing", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
         "roles": ["svc"]},
        {"name": "ro", "sha256": hashlib.sha256(READONLY_KEY.encode()).hexdigest(),
         "roles": ["reader"]},
    ]},
}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret=JWT_SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def token(sub="u42", roles=("user",), exp_in=300, secret=JWT_SECRET):
    return jwt({"sub": sub, "roles": list(roles), "exp": int(time.time()) + exp_in}, secret)


class Env:
    def __init__(self, herald, nats, nc):
        self.herald, self.nats, self.nc = herald, nats, nc

    def pub(self, subject, body=b"", headers=None, quote=True):
        path = "/v1/publish/" + (urllib.parse.quote(subject, safe="") if quote else subject)
        return self.herald.get(path, headers=headers or {}, method="POST", data=body)


@pytest.fixture
def env(make_herald, nats):
    nc = NatsClient(nats.url)
    nc.add_stream("ORDERS", ["orders.>"])
    h = make_herald(config={**CONFIG, "nats": {"publish_timeout_ms": 1000}},
                    env={"PUB_JWT_SECRET": JWT_SECRET}, nats_url=nats.url)
    e = Env(h, nats, nc)
    yield e
    nc.close()
    e.nc.close()




KEY = {"X-Api-Key": API_KEY}


def test_credentials(env):
    assert_problem(env.pub("raw.a", b"x"), 401)
    r = env.pub("raw.a", b"x", {"X-Api-Key": "wrong"})
    assert_problem(r, 401)
    assert "Bearer" in r.headers.get("WWW-Authenticate", "")
    assert_problem(env.pub("raw.a", b"x", {"Authorization": "Bearer not.a.jwt"}), 401)
    assert_problem(env.pub("raw.a", b"x", {"Authorization": "Bearer " + token(
        roles=["svc"], secret="another-secret-0123456789abcdefghij")}), 401)
    assert_problem(env.pub("raw.a", b"x", {"Authorization": "Bearer " + token(
        roles=["svc"], exp_in=-100)}), 401)
    assert_problem(env.pub("raw.a", b"x", {"Authorization": "Basic dXNlcjpwdw=="}), 401)
    # a valid JWT with the svc role, and a valid API key
    assert env.pub("raw.a", b"x", {"Authorization": "Bearer " + token(roles=["svc"])}
                   ).status == 202
    assert env.pub("raw.a", b"x", KEY).status == 202


def test_permissions_and_subjects(env):
    user = {"Authorization": "Bearer " + token(sub="u42", roles=["user"])}
    assert env.pub("ui.u42.click", b"{}", user).status == 202
    assert_problem(env.pub("ui.u43.click", b"{}", user), 403)
    assert_problem(env.pub("orders.new", b"{}", user), 403)
    assert_problem(env.pub("orders.secret", b"{}", KEY), 403)
    assert_problem(env.pub("raw.x", b"{}", {"X-Api-Key": READONLY_KEY}), 403)
    for bad in ["orders.*", "orders.>", "orders..x", "orders.", "a b", "orders.x*"]:
        assert_problem(env.pub(bad, b"{}", KEY), 400)
    # percent-decoded: %2A is '*'
    assert_problem(env.pub("orders.%2A", b"{}", KEY, quote=False), 400)
    # 413 from Content-Length over publish_api.max_body_bytes
    assert_problem(env.pub("raw.big", b"x" * 3000, KEY), 413)
    r = env.herald.get("/v1/publish/raw.a", headers=KEY)
    assert_problem(r, 405)
    assert r.headers["Allow"] == "POST"


def test_raw_body_core(env):
    q = env.nc.subscribe("raw.>")
    body = bytes(range(256))
    r = env.pub("raw.bytes", body, {**KEY, "Content-Type": "application/octet-stream",
                                    "Idempotency-Key": "idem-1"})
    assert r.status == 202, r.body
    assert r.json() == {"id": "idem-1", "subject": "raw.bytes"}
    m = q.get(timeout=5 * SLACK)
    assert m.subject == "raw.bytes" and m.data == body
    assert m.headers["Content-Type"] == "application/octet-stream"
    assert m.headers["Nats-Msg-Id"] == "idem-1"
    assert not any(k.startswith("ce-") for k in m.headers)


def test_jetstream_and_duplicates(env):
    body = b'{"order": 1}'
    h = {**KEY, "Content-Type": "application/json", "Idempotency-Key": "order-1"}
    r1 = env.pub("orders.new", body, h)
    assert r1.status == 202, r1.body
    a = r1.json()
    assert a["stream"] == "ORDERS" and a["duplicate"] is False and a["id"] == "order-1"
    r2 = env.pub("orders.new", body, h)
    b = r2.json()
    assert b["duplicate"] is True and b["seq"] == a["seq"]
    msgs = env.nc.stream_messages("ORDERS")
    assert len(msgs) == 1 and msgs[0].data == body
    assert msgs[0].headers["Nats-Msg-Id"] == "order-1"


def test_cloudevents_structured_to_binary(env):
    q = env.nc.subscribe("raw.>")
    ce = {"specversion": "1.0", "id": "ce-1", "source": "/billing", "type": "invoice.paid",
          "time": "2026-11-22T14:00:00Z", "tenant": "acme", "attempt": 3,
          "data": {"amount": 10, "currency": "EUR"}}
    r = env.pub("raw.ce", json.dumps(ce).encode(),
                {**KEY, "Content-Type": "application/cloudevents+json; charset=utf-8"})
    assert r.status == 202, r.body
    assert r.json()["id"] == "ce-1"
    m = q.get(timeout=5 * SLACK)
    assert json.loads(m.data) == ce["data"]
    assert m.data == b'{"amount":10,"currency":"EUR"}'
    h = m.headers
    assert h["ce-specversion"] == "1.0" and h["ce-id"] == "ce-1"
    assert h["ce-source"] == "/billing" and h["ce-type"] == "invoice.paid"
    assert h["ce-time"] == "2026-11-22T14:00:00Z"
    assert h["ce-tenant"] == "acme" and h["ce-attempt"] == "3"
    assert h["Content-Type"] == "application/json"
    assert h["Nats-Msg-Id"] == "ce-1"
    # data_base64 with its own content type; Idempotency-Key wins over the id
    ce2 = {"specversion": "1.0", "id": "ce-2", "source": "s", "type": "t",
           "datacontenttype": "image/png", "data_base64": base64.b64encode(b"\x89PNG\0").decode()}
    r = env.pub("raw.ce", json.dumps(ce2).encode(),
                {**KEY, "Content-Type": "application/cloudevents+json",
                 "Idempotency-Key": "k-2"})
    assert r.status == 202 and r.json()["id"] == "k-2"
    m = q.get(timeout=5 * SLACK)
    assert m.data == b"\x89PNG\0"
    assert m.headers["Content-Type"] == "image/png"
    assert m.headers["Nats-Msg-Id"] == "k-2" and m.headers["ce-id"] == "ce-2"
    assert "ce-datacontenttype" not in m.headers
    for bad in [b"not json", b"[]", b'{"specversion":"1.0","id":"x","source":"s"}',
                json.dumps({**ce, "specversion": "0.3"}).encode(),
                json.dumps({**ce, "data_base64": "AA=="}).encode(),
                json.dumps({**ce, "Upper": "x"}).encode()]:
        assert_problem(env.pub("raw.ce", bad, {**KEY,
                                               "Content-Type": "application/cloudevents+json"}),
                       400)


def test_nats_down_503(env):
    env.nc.close()
    env.nats.stop()
    wait_for(lambda: env.herald.get("/readyz").status == 503, what="herald notices")
    for subj in ["raw.down", "orders.down"]:
        r = env.pub(subj, b"{}", {**KEY, "Idempotency-Key": "down-" + subj})
        assert_problem(r, 503)
        assert r.headers["Retry-After"] == "5"
    env.nats.start()
    wait_for(lambda: env.herald.get("/readyz").status == 200, what="herald reconnects")
    env.nc = NatsClient(env.nats.url)
    assert env.pub("orders.up", b"{}", {**KEY, "Idempotency-Key": "up-1"}).status == 202
    ids = [m.headers["Nats-Msg-Id"] for m in env.nc.stream_messages("ORDERS")]
    assert ids == ["up-1"]


def test_long_cloudevent_ids_are_never_truncated_into_each_other(env):
    prefix = "x" * 300
    ids = []
    for suffix in ("a", "b", "a"):
        ce = {"specversion": "1.0", "id": prefix + suffix, "source": "/s", "type": "t",
              "data": {"n": suffix}}
        r = env.pub("orders.ce", json.dumps(ce).encode(),
                    {**KEY, "Content-Type": "application/cloudevents+json"})
        assert r.status == 202, r.body
        ids.append(r.json())
    assert ids[0]["id"] != ids[1]["id"]            # different events stay different
    assert ids[2]["id"] == ids[0]["id"]            # a retry keeps its id...
    assert ids[2]["duplicate"] is True             # ...and is deduplicated
    assert len(env.nc.stream_messages("ORDERS")) == 2


def test_content_type_too_long_is_415(env):
    r = env.pub("raw.x", b"x", {**KEY, "Content-Type": "text/plain; p=" + "a" * 400})
    assert_problem(r, 415)
