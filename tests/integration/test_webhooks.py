"""Issue 4: signed webhooks republished to NATS (core or JetStream), against a
real nats-server with JetStream and a real herald process. Requests are
signed with the senders' own libraries where they exist on PyPI
(standardwebhooks, stripe, slack_sdk); GitHub per its documented HMAC."""
import base64
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import time

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from conftest import SLACK, assert_problem, wait_for
from natsclient import NatsClient

GH_SECRET = "gh-secret-0123456789"
GH_OLD = "gh-old-secret-9876543210"
BILLING_SECRET = "whsec_" + base64.b64encode(b"billing-key-0123456789abcdef0123").decode()
BILLING_OLD = "whsec_" + base64.b64encode(b"billing-old-key-0123456789abcdef").decode()
STRIPE_SECRET = "whsec_stripe_test_0123456789"
SLACK_SECRET = "slack-signing-secret-0123456789"
HMAC_SECRET = "hmac-secret-0123456789"
BEARER_TOKEN = "bearer-token-0123456789"

ENV = {"GH_SECRET": GH_SECRET, "GH_OLD": GH_OLD, "BILLING_SECRET": BILLING_SECRET,
       "BILLING_OLD": BILLING_OLD, "STRIPE_SECRET": STRIPE_SECRET,
       "SLACK_SECRET": SLACK_SECRET, "HMAC_SECRET": HMAC_SECRET}

WEBHOOKS = {
    "github": {"verify": {"scheme": "github", "secrets_env": ["GH_SECRET", "GH_OLD"]},
               "subject": "webhooks.github.{header:X-GitHub-Event}"},
    "billing": {"verify": {"scheme": "standard-webhooks",
                           "secrets_env": ["BILLING_SECRET", "BILLING_OLD"], "tolerance_s": 300},
                "subject": "webhooks.billing.{+json:/type}", "delivery": "jetstream"},
    "stripe": {"verify": {"scheme": "stripe", "secret_env": "STRIPE_SECRET"},
               "subject": "webhooks.stripe.events"},
    "slack": {"verify": {"scheme": "slack", "secret_env": "SLACK_SECRET"},
              "subject": "core.slack.events"},
    "hmac": {"verify": {"scheme": "hmac-sha256", "secret_env": "HMAC_SECRET",
                        "header": "X-Signature", "encoding": "base64", "prefix": "sha256="},
             "subject": "core.hmac.{header:X-Kind}", "delivery": "core"},
    "bearer": {"verify": {"scheme": "bearer",
                          "tokens_sha256": [hashlib.sha256(BEARER_TOKEN.encode()).hexdigest()]},
               "subject": "core.bearer.{json:/kind}", "type": "com.example.{json:/kind}",
               "publish": {"allow": ["core.bearer.>"], "deny": ["core.bearer.secret"]}},
    "small": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
              "subject": "core.small", "max_body_bytes": 100},
    "plain": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
              "subject": "core.plain", "content_types": ["text/plain", "application/*+json"]},
    "strict": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
               "subject": "core.strict.{header:X-GitHub-Event}", "delivery": "jetstream"},
}


# These suites resend identical signed requests on purpose (JetStream
# deduplication, delivery ids, outages): the replay cache, which would
# answer those from memory, has its own tests (test_hardening.py).
for _src in WEBHOOKS.values():
    if _src["verify"]["scheme"] != "bearer":
        _src["verify"]["replay_window_s"] = 0


def gh_sig(body, secret=GH_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def gh_headers(body, event="push", delivery=None, secret=GH_SECRET, ctype="application/json"):
    h = {"X-Hub-Signature-256": gh_sig(body, secret), "X-GitHub-Event": event,
         "Content-Type": ctype}
    if delivery:
        h["X-GitHub-Delivery"] = delivery
    return h


def sw_headers(body, msg_id, secret=BILLING_SECRET, ts=None, prefix="webhook"):
    when = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(),
                                           tz=datetime.timezone.utc)
    sig = Webhook(secret).sign(msg_id, when, body.decode())
    return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(int(when.timestamp())),
            f"{prefix}-signature": sig, "Content-Type": "application/json"}


class Env:
    def __init__(self, herald, nats, client):
        self.herald, self.nats, self.nc = herald, nats, client

    def post(self, source, body, headers, timeout=10):
        return self.herald.get(f"/v1/webhooks/{source}", headers=headers, method="POST",
                               data=body, timeout=timeout)


@pytest.fixture
def env(make_herald, nats):
    nc = NatsClient(nats.url)
    nc.add_stream("WH", ["webhooks.>"])
    h = make_herald(config={"webhooks": WEBHOOKS, "nats": {"publish_timeout_ms": 1000}},
                    env=ENV, nats_url=nats.url)
    e = Env(h, nats, nc)
    yield e
    nc.close()
    e.nc.close()




def next_msg(q, timeout=5):
    return q.get(timeout=timeout * SLACK)


# ---- GitHub ---------------------------------------------------------------

def test_github_jetstream_exact_bytes_headers_and_duplicates(env):
    body = b'{"action": "opened",\n  "zen": "caf\xc3\xa9 \\u00e9"}  '
    r = env.post("github", body, gh_headers(body, "issues", "gh-delivery-1"))
    assert r.status == 202, r.body
    a = r.json()
    assert a["id"] == "gh-delivery-1" and a["subject"] == "webhooks.github.issues"
    assert a["stream"] == "WH" and a["duplicate"] is False and a["seq"] >= 1
    msgs = env.nc.stream_messages("WH")
    assert len(msgs) == 1
    m = msgs[0]
    assert m.subject == "webhooks.github.issues"
    assert m.data == body
    h = m.headers
    assert h["ce-specversion"] == "1.0"
    assert h["ce-id"] == "gh-delivery-1"
    assert h["ce-source"] == "/webhooks/github"
    assert h["ce-type"] == "com.github.issues"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", h["ce-time"])
    assert h["Content-Type"] == "application/json"
    assert h["Nats-Msg-Id"] == "gh-delivery-1"
    # redelivery of the same id: acknowledged, not stored twice
    r2 = env.post("github", body, gh_headers(body, "issues", "gh-delivery-1"))
    assert r2.status == 202
    b = r2.json()
    assert b["duplicate"] is True and b["seq"] == a["seq"] and b["stream"] == "WH"
    assert len(env.nc.stream_messages("WH")) == 1


def test_github_signatures(env):
    body = b'{"ref":"refs/heads/main"}'
    ok = env.post("github", body, gh_headers(body, delivery="d-ok"))
    assert ok.status == 202
    # rotation: the old secret is still accepted
    assert env.post("github", body, gh_headers(body, delivery="d-old", secret=GH_OLD)).status == 202
    cases = [
        gh_headers(body, secret="wrong-secret"),
        {**gh_headers(body), "X-Hub-Signature-256": gh_sig(body + b" ")},  # tampered
        {k: v for k, v in gh_headers(body).items() if k != "X-Hub-Signature-256"},
        {**gh_headers(body), "X-Hub-Signature-256": "sha1=" + "0" * 40},
        {**gh_headers(body), "X-Hub-Signature-256": "sha256=zz"},
        {**gh_headers(body), "X-Hub-Signature-256": ""},
    ]
    for h in cases:
        assert_problem(env.post("github", body, h), 401)
    # the tampered body with the original signature
    h = gh_headers(body)
    assert_problem(env.post("github", body.replace(b"main", b"evil"), h), 401)


# ---- Standard Webhooks (and Svix headers) -----------------------------------

def test_standard_webhooks(env):
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1"}}).encode()
    r = env.post("billing", body, sw_headers(body, "msg_1"))
    assert r.status == 202, r.body
    a = r.json()
    assert a["subject"] == "webhooks.billing.invoice.paid" and a["id"] == "msg_1"
    assert a["stream"] == "WH" and a["duplicate"] is False
    m = env.nc.stream_messages("WH")[-1]
    assert m.data == body
    assert m.headers["ce-type"] == "invoice.paid"
    assert m.headers["Nats-Msg-Id"] == "msg_1"
    assert m.headers["ce-source"] == "/webhooks/billing"
    # Svix header names, and the rotated secret
    r = env.post("billing", body, sw_headers(body, "msg_2", secret=BILLING_OLD, prefix="svix"))
    assert r.status == 202 and r.json()["id"] == "msg_2"
    # several signatures in the header: any v1 may match
    h = sw_headers(body, "msg_3")
    h["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode() + " " + \
        sw_headers(body, "msg_3")["webhook-signature"]
    assert env.post("billing", body, h).status == 202
    now = time.time()
    bad = [
        sw_headers(body, "m", secret="whsec_" + base64.b64encode(b"w" * 32).decode()),
        sw_headers(body, "m", ts=now - 1000),  # stale
        sw_headers(body, "m", ts=now + 1000),  # future
        {**sw_headers(body, "m"), "webhook-signature": "v1,!!!notbase64"},
        {**sw_headers(body, "m"), "webhook-timestamp": "12ab"},
        {k: v for k, v in sw_headers(body, "m").items() if k != "webhook-id"},
        {k: v for k, v in sw_headers(body, "m").items() if k != "webhook-signature"},
    ]
    for hdrs in bad:
        assert_problem(env.post("billing", body, hdrs), 401)
    # signed for another id: the id is part of the signed content
    h = sw_headers(body, "m-a")
    h["webhook-id"] = "m-b"
    assert_problem(env.post("billing", body, h), 401)


def test_subject_templates_422_and_400(env):
    for t in ["inv.*", "inv.>", "", "a..b", "a b", ".a", "a.", "*", ">", "x\u00a0y", 1.5, None]:
        body = json.dumps({"type": t}).encode()
        r = env.post("billing", body, sw_headers(body, "t-%s" % hashlib.md5(body).hexdigest()))
        assert_problem(r, 422)
    # more than 16 tokens from one {+json:} placeholder
    body = json.dumps({"type": ".".join(["p"] * 17)}).encode()
    assert_problem(env.post("billing", body, sw_headers(body, "t-17")), 422)
    body = json.dumps({"type": ".".join(["p"] * 16)}).encode()
    assert env.post("billing", body, sw_headers(body, "t-16")).status == 202
    # missing pointer target
    body = json.dumps({"kind": "x"}).encode()
    assert_problem(env.post("billing", body, sw_headers(body, "t-none")), 422)
    # header placeholder: '.', '*', '>' and empty are refused
    for ev in ["a.b", "*", ">", "a*"]:
        body = b"{}"
        assert_problem(env.post("github", body, gh_headers(body, ev)), 422)
    body = b"{}"
    h = gh_headers(body)
    del h["X-GitHub-Event"]
    assert_problem(env.post("github", body, h), 422)
    # a correctly signed body that is not JSON, where {json:} needs it -> 400
    body = b"type=invoice.paid"
    assert_problem(env.post("billing", body, sw_headers(body, "t-nojson")), 400)


# ---- Stripe -----------------------------------------------------------------

def test_stripe(env):
    payload = json.dumps({"id": "evt_123", "type": "charge.succeeded", "object": "event"})
    header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
    # the library's own verifier agrees with the header we send
    stripe.WebhookSignature.verify_header(payload, header, STRIPE_SECRET, 300)
    r = env.post("stripe", payload.encode(),
                 {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"})
    assert r.status == 202, r.body
    assert r.json()["id"] == "evt_123"
    m = env.nc.stream_messages("WH")[-1]
    assert m.headers["Nats-Msg-Id"] == "evt_123"
    assert m.headers["ce-type"] == "charge.succeeded"
    assert m.headers["Content-Type"] == "application/json; charset=utf-8"
    # rotation-style header with two v1 entries, one right
    t = int(time.time())
    good = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET, t)
    two = f"t={t},v1={'0' * 64}," + good.split(",", 1)[1]
    assert env.post("stripe", payload.encode(),
                    {"Stripe-Signature": two, "Content-Type": "application/json"}).status == 202
    for hdr in [
        stripe.WebhookSignature.generate_signature_header(payload, "whsec_wrong"),
        stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET, t - 1000),
        stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET, t + 1000),
        f"t={t}",
        "garbage",
    ]:
        assert_problem(env.post("stripe", payload.encode(),
                                {"Stripe-Signature": hdr, "Content-Type": "application/json"}),
                       401)
    assert_problem(env.post("stripe", payload.encode(), {"Content-Type": "application/json"}),
                   401)


# ---- Slack (core delivery, checked on a core subscriber) -----------------------

def test_slack_form_body_core_delivery(env):
    q = env.nc.subscribe("core.slack.>")
    v = SignatureVerifier(SLACK_SECRET)
    body = b"token=x&team_id=T1&command=%2Fdeploy&text=hello+world"
    ts = str(int(time.time()))
    sig = v.generate_signature(timestamp=ts, body=body)
    h = {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts,
         "Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "slack-1"}
    r = env.post("slack", body, h)
    assert r.status == 202, r.body
    a = r.json()
    assert a == {"id": "slack-1", "subject": "core.slack.events"}  # core: no stream fields
    m = next_msg(q)
    assert m.data == body
    assert m.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert m.headers["ce-type"] == "herald.webhook.slack"
    assert m.headers["Nats-Msg-Id"] == "slack-1"
    # no Idempotency-Key: a generated id
    del h["Idempotency-Key"]
    r = env.post("slack", body, h)
    assert r.status == 202
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        r.json()["id"])
    assert next_msg(q).headers["ce-id"] == r.json()["id"]
    old = str(int(time.time()) - 1000)
    for hh in [{**h, "X-Slack-Signature": v.generate_signature(timestamp=ts, body=body + b"x")},
               {**h, "X-Slack-Request-Timestamp": old,
                "X-Slack-Signature": v.generate_signature(timestamp=old, body=body)},
               {**h, "X-Slack-Signature": SignatureVerifier("wrong").generate_signature(
                   timestamp=ts, body=body)},
               {k: x for k, x in h.items() if k != "X-Slack-Request-Timestamp"}]:
        assert_problem(env.post("slack", body, hh), 401)


# ---- hmac-sha256 and bearer ---------------------------------------------------

def test_hmac_and_bearer_and_source_permission(env):
    q = env.nc.subscribe("core.>")
    body = b'{"n":1}'
    sig = "sha256=" + base64.b64encode(hmac.new(HMAC_SECRET.encode(), body,
                                                hashlib.sha256).digest()).decode()
    h = {"X-Signature": sig, "X-Kind": "created", "Content-Type": "application/json"}
    assert env.post("hmac", body, h).status == 202
    m = next_msg(q)
    assert m.subject == "core.hmac.created" and m.data == body
    assert_problem(env.post("hmac", body, {**h, "X-Signature": sig[7:]}), 401)  # no prefix
    assert_problem(env.post("hmac", b'{"n":2}', h), 401)

    body = json.dumps({"kind": "ok"}).encode()
    bh = {"Authorization": "Bearer " + BEARER_TOKEN, "Content-Type": "application/json"}
    r = env.post("bearer", body, bh)
    assert r.status == 202, r.body
    m = next_msg(q)
    assert m.subject == "core.bearer.ok"
    assert m.headers["ce-type"] == "com.example.ok"
    assert_problem(env.post("bearer", body, {**bh, "Authorization": "Bearer nope"}), 401)
    assert_problem(env.post("bearer", body, {"Content-Type": "application/json"}), 401)
    # the source's publish permission: denied subject -> 403
    body = json.dumps({"kind": "secret"}).encode()
    assert_problem(env.post("bearer", body, bh), 403)


# ---- status codes and check order ----------------------------------------------

def chunked_post(port, path, chunks, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLACK)
    c.request("POST", path, body=iter(chunks), headers=headers, encode_chunked=True)
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def test_signature_checked_as_the_body_streams(env):
    """The HMAC is fed chunk by chunk as the body arrives (issue 17): a
    600 KB body in 1 KB chunks, with and without a Content-Length, is
    accepted byte-exact when signed and refused when one byte differs."""
    body = json.dumps({"blob": "x" * 600_000, "n": 1}).encode()
    bad = body[:-3] + b"2}"
    chunks = [body[i:i + 1024] for i in range(0, len(body), 1024)]
    bad_chunks = [bad[i:i + 1024] for i in range(0, len(bad), 1024)]
    headers = gh_headers(body, "push", "gh-stream-1")
    st, _, resp = chunked_post(env.herald.http_port, "/v1/webhooks/github", chunks, headers)
    assert st == 202, resp
    assert env.nc.stream_messages("WH")[-1].data == body
    st, _, resp = chunked_post(env.herald.http_port, "/v1/webhooks/github", bad_chunks, headers)
    assert st == 401, resp
    # with a Content-Length, sent in small writes
    c = http.client.HTTPConnection("127.0.0.1", env.herald.http_port, timeout=10 * SLACK)
    c.putrequest("POST", "/v1/webhooks/github")
    for k, v in {**gh_headers(body, "push", "gh-stream-2"),
                 "Content-Length": str(len(body))}.items():
        c.putheader(k, v)
    c.endheaders()
    for ch in chunks:
        c.send(ch)
    r = c.getresponse()
    assert r.status == 202, r.read()
    r.read()
    c.close()
    assert env.nc.stream_messages("WH")[-1].data == body


def test_status_codes_and_order(env):
    body = b'{"a":1}'
    assert_problem(env.post("nope", body, gh_headers(body)), 404)
    r = env.herald.get("/v1/webhooks/github")
    assert_problem(r, 405)
    assert r.headers["Allow"] == "POST"
    # 413 from Content-Length, before the body is read, and before 415/401
    big = b"x" * 101
    assert_problem(env.post("small", big, {"Content-Type": "text/plain"}), 413)
    ok = b"{" + b" " * 98 + b"}"
    assert env.post("small", ok, gh_headers(ok)).status == 202
    # chunked upload passing the limit
    st, hdrs, rb = chunked_post(env.herald.http_port, "/v1/webhooks/small",
                                [b"{" + b" " * 60, b" " * 60 + b"}"],
                                gh_headers(b"whatever"))
    assert st == 413 and json.loads(rb)["status"] == 413
    # chunked and within the limit
    st, _, rb = chunked_post(env.herald.http_port, "/v1/webhooks/small",
                             [b'{"a":', b"1}"], gh_headers(b'{"a":1}'))
    assert st == 202, rb
    # 415: missing or unaccepted content type, before the signature check
    h = gh_headers(body)
    del h["Content-Type"]
    assert_problem(env.post("github", body, h), 415)
    assert_problem(env.post("github", body, {**gh_headers(body, secret="bad"),
                                             "Content-Type": "text/plain"}), 415)
    assert_problem(env.post("github", body, gh_headers(body, ctype="application/xml")), 415)
    assert env.post("github", body, gh_headers(body, ctype="application/vnd.x+json")).status == 202
    assert env.post("github", body,
                    gh_headers(body, ctype="Application/JSON; charset=UTF-8")).status == 202
    # slack's form type is not accepted elsewhere
    assert_problem(env.post("github", body,
                            gh_headers(body, ctype="application/x-www-form-urlencoded")), 415)
    # content_types override
    assert env.post("plain", b"hi", gh_headers(b"hi", ctype="text/plain")).status == 202
    assert env.post("plain", body, gh_headers(body, ctype="application/cloudevents+json")
                    ).status == 202
    assert_problem(env.post("plain", body, gh_headers(body)), 415)
    # 401 before 422 (unbuildable subject with a bad signature)
    h = gh_headers(body, secret="bad")
    del h["X-GitHub-Event"]
    assert_problem(env.post("github", body, h), 401)
    # delivery jetstream but no stream captures the subject -> 503
    r = env.post("strict", body, gh_headers(body))
    assert_problem(r, 503)
    assert r.headers["Retry-After"] == "5"


def test_metrics(env):
    body = b"{}"
    env.post("github", body, gh_headers(body, delivery="m1"))
    env.post("github", body, gh_headers(body, delivery="m1"))
    env.post("github", body, gh_headers(body, secret="x"))
    env.post("github", body, {**gh_headers(body), "Content-Type": "text/plain"})
    env.post("small", b"x" * 200, gh_headers(b""))
    text = env.herald.get("/metrics").body.decode()
    for line in ['herald_webhooks_total{source="github",outcome="accepted"} 1',
                 'herald_webhooks_total{source="github",outcome="duplicate"} 1',
                 'herald_webhooks_total{source="github",outcome="bad_signature"} 1',
                 'herald_webhooks_total{source="github",outcome="unsupported_media_type"} 1',
                 'herald_webhooks_total{source="small",outcome="too_large"} 1']:
        assert line in text, line
    assert re.search(r'herald_jetstream_ack_duration_seconds_count [1-9]', text)
    assert re.search(r'herald_publish_duration_seconds_count\{delivery="jetstream"\} [1-9]', text)
    assert "# TYPE herald_publish_duration_seconds histogram" in text


# ---- NATS outages -------------------------------------------------------------

def test_nats_down_503_then_recovers(env):
    body = b'{"x":1}'
    env.nc.close()
    env.nats.stop()
    wait_for(lambda: env.herald.get("/readyz").status == 503, what="herald notices")
    for src, h in [("github", gh_headers(body, delivery="outage-js")),
                   ("hmac", {"X-Signature": "sha256=" + base64.b64encode(
                       hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).digest()).decode(),
                       "X-Kind": "outage", "Content-Type": "application/json"})]:
        r = env.post(src, body, h)
        p = assert_problem(r, 503)
        assert r.headers["Retry-After"] == "5", p
    env.nats.start()
    wait_for(lambda: env.herald.get("/readyz").status == 200, what="herald reconnects")
    nc = NatsClient(env.nats.url)
    env.nc = nc
    q = nc.subscribe("core.hmac.>")
    r = env.post("github", body, gh_headers(body, delivery="after-outage"))
    assert r.status == 202, r.body
    ids = [m.headers["Nats-Msg-Id"] for m in nc.stream_messages("WH")]
    assert "after-outage" in ids and "outage-js" not in ids
    with pytest.raises(queue.Empty):  # the core publish refused during the outage never arrives
        q.get(timeout=0.5)


def test_concurrent_posts_while_nats_is_killed(env):
    """200 concurrent deliveries while nats-server (file storage) is killed
    and restarted: every id answered 202 is stored exactly once."""
    env.nc.close()
    n = 200
    results = {}

    def send(i):
        time.sleep(i * 0.008)  # spread over ~1.6 s: before, during and after the outage
        body = json.dumps({"i": i}).encode()
        d = f"conc-{i}"
        try:
            r = env.post("github", body, gh_headers(body, "load", d), timeout=20)
            results[d] = r.status
        except Exception as e:  # connection-level failures count as "not accepted"
            results[d] = repr(e)

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        futs = [ex.submit(send, i) for i in range(n)]
        time.sleep(0.4)
        env.nats.kill()
        time.sleep(0.3)
        env.nats.start()
        for f in futs:
            f.result(60 * SLACK)
    assert len(results) == n
    statuses = set(results.values())
    assert statuses <= {202, 503}, statuses
    accepted = {d for d, s in results.items() if s == 202}
    print("accepted", len(accepted), "of", n)
    assert accepted, "nothing was accepted"
    wait_for(lambda: env.herald.get("/readyz").status == 200, what="herald reconnects")
    nc = NatsClient(env.nats.url)
    env.nc = nc
    # the stream survives the restart (file storage); a late retry of an id
    # that got a 503 is fine, but nothing that was acknowledged may be missing
    stored = [m.headers["Nats-Msg-Id"] for m in nc.stream_messages("WH")]
    for d in accepted:
        assert stored.count(d) == 1, d
    assert len(stored) == len(set(stored))


def test_shutdown_answers_requests_waiting_for_jetstream(make_herald, nats):
    """Requests suspended while JetStream does not answer (nats-server
    paused) get a 503 at shutdown, and herald still exits 0: MHD is never
    stopped with a suspended connection."""
    import signal
    nc = NatsClient(nats.url)
    nc.add_stream("WH", ["webhooks.>"])
    nc.close()
    h = make_herald(config={"webhooks": WEBHOOKS, "shutdown_timeout_s": 4,
                            "nats": {"publish_timeout_ms": 60000}},
                    env=ENV, nats_url=nats.url)
    body = b"{}"
    # warm the stream lookup cache while JetStream still answers
    assert h.get("/v1/webhooks/github", headers=gh_headers(body, "pause", "warm"),
                 method="POST", data=body).status == 202
    nats.proc.send_signal(signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=5) as ex:
            futs = [ex.submit(h.get, "/v1/webhooks/github", gh_headers(body, "pause", f"p{i}"),
                              "POST", body, 30) for i in range(5)]
            time.sleep(0.5 * SLACK)
            waiting = sum(not f.done() for f in futs)  # suspended, waiting for the PubAck
            h.signal(signal.SIGTERM)
            assert waiting >= 1
            for f in futs:
                r = f.result(30)
                assert_problem(r, 503)
                assert r.headers["Retry-After"] == "5"
        assert h.wait(15) == 0
    finally:
        nats.proc.send_signal(signal.SIGCONT)


def test_rate_limited_429(make_herald, nats):
    h = make_herald(config={"webhooks": WEBHOOKS,
                            "limits": {"http_requests_per_ip": {"rate_per_s": 0.2, "burst": 3}}},
                    env=ENV, nats_url=nats.url)
    body = b"{}"
    hdrs = gh_headers(body, "core")
    codes = [h.get("/v1/webhooks/small", headers=hdrs, method="POST", data=body).status
             for _ in range(3)]
    assert codes == [202, 202, 202]
    r = h.get("/v1/webhooks/small", headers=hdrs, method="POST", data=body)
    assert_problem(r, 429)
    assert 1 <= int(r.headers["Retry-After"]) <= 5
    # the publish API shares the per-address budget; the probes do not
    assert_problem(h.get("/v1/publish/a.b", method="POST", data=b"x"), 429)
    assert h.get("/healthz").status == 200
    r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(h.get("/metrics")),
                 timeout=15, what="a token for /metrics")
    text = r.body.decode()
    assert 'herald_webhooks_total{source="small",outcome="rate_limited"} 1' in text


def test_stream_deleted_then_recreated(env):
    """A cached stream that disappears: the refusal is a 503 and the next
    request looks the subject up afresh (core, as no stream captures it)."""
    body = b"{}"
    assert env.post("github", body, gh_headers(body, "gone", "g1")).json()["stream"] == "WH"
    env.nc.run(env.nc.js.delete_stream("WH"))
    assert_problem(env.post("github", body, gh_headers(body, "gone", "g2")), 503)
    r = env.post("github", body, gh_headers(body, "gone", "g3"))
    assert r.status == 202 and "stream" not in r.json()
    env.nc.add_stream("WH2", ["webhooks.github.>"])
    time.sleep(0.05)
    # still cached as "no stream" for up to 60 s: core delivery meanwhile
    assert env.post("github", body, gh_headers(body, "gone", "g4")).status == 202


def test_jetstream_source_uses_a_stream_created_later(env):
    """delivery "jetstream" re-reads the stream list on a miss (at most once a
    second), so a stream created after the first refusal is used at once."""
    body = b"{}"
    assert_problem(env.post("strict", body, gh_headers(body, "late", "s1")), 503)
    env.nc.add_stream("STRICT", ["core.strict.>"])
    time.sleep(1.2)
    r = env.post("strict", body, gh_headers(body, "late", "s2"))
    assert r.status == 202, r.body
    assert r.json()["stream"] == "STRICT"
