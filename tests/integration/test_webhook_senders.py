"""Issue 18: webhook senders as they really behave -- Slack's URL-verification
handshake, per-source delivery ids (`webhooks.<source>.id`, Slack's
`event_id`, Shopify's X-Shopify-Webhook-Id), and the startup warning for a
stream whose duplicate window is shorter than senders retry. Against a real
nats-server with JetStream and a real herald; requests are signed with the
senders' own libraries (slack_sdk, standardwebhooks, stripe) or against
their published test vectors (GitHub)."""
import base64
import datetime
import hashlib
import hmac
import json
import queue
import re
import time

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from conftest import SLACK, assert_problem, wait_for
from natsclient import NatsClient

SLACK_SECRET = "slack-signing-secret-0123456789"
SHOPIFY_SECRET = "shopify-app-secret-0123456789"
GH_SECRET = "It's a Secret to Everybody"  # GitHub's documented test vector
STRIPE_SECRET = "whsec_stripe_test_0123456789"
SVIX_SECRET = "whsec_" + base64.b64encode(b"svix-key-0123456789abcdef012345").decode()

ENV = {"SLACK_SECRET": SLACK_SECRET, "SHOPIFY_SECRET": SHOPIFY_SECRET, "GH_SECRET": GH_SECRET,
       "STRIPE_SECRET": STRIPE_SECRET, "SVIX_SECRET": SVIX_SECRET}

# The README's "setting up" examples, verbatim in spirit.
SOURCES = {
    "slack": {"verify": {"scheme": "slack", "secret_env": "SLACK_SECRET"},
              "subject": "webhooks.slack.{json:/event/type}"},
    "slackform": {"verify": {"scheme": "slack", "secret_env": "SLACK_SECRET"},
                  "subject": "core.slack.commands", "delivery": "core"},
    "shopify": {"verify": {"scheme": "hmac-sha256", "secret_env": "SHOPIFY_SECRET",
                           "header": "X-Shopify-Hmac-Sha256", "encoding": "base64"},
                "subject": "webhooks.shopify.{+header:X-Shopify-Shop-Domain}",
                "type": "com.shopify.{header:X-Shopify-Topic}",
                "id": "{header:X-Shopify-Webhook-Id}", "delivery": "jetstream"},
    "github": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
               "subject": "webhooks.github.{header:X-GitHub-Event}"},
    "stripe": {"verify": {"scheme": "stripe", "secret_env": "STRIPE_SECRET"},
               "subject": "webhooks.stripe.{+json:/type}"},
    "svix": {"verify": {"scheme": "standard-webhooks", "secret_env": "SVIX_SECRET"},
             "subject": "webhooks.svix.{+json:/type}"},
    "bodyid": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
               "subject": "webhooks.bodyid", "id": "evt-{json:/delivery/id}"},
}


# Identical signed requests are resent on purpose here (id rules, 422s): the
# replay cache, which would answer them from memory, is tested on its own
# (test_hardening.py).
for _src in SOURCES.values():
    _src["verify"]["replay_window_s"] = 0


@pytest.fixture
def env(make_herald, nats):
    nc = NatsClient(nats.url)
    nc.add_stream("WH", ["webhooks.>"], duplicate_window=7200)
    h = make_herald(config={"webhooks": SOURCES}, env=ENV, nats_url=nats.url)
    yield h, nc
    nc.close()


def post(h, source, body, headers):
    return h.get(f"/v1/webhooks/{source}", headers=headers, method="POST", data=body)


def slack_headers(body, secret=SLACK_SECRET, ctype="application/json"):
    ts = str(int(time.time()))
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts, "Content-Type": ctype}


def shopify_headers(body, webhook_id, topic="orders/create", shop="example.myshopify.com"):
    # Shopify: base64 HMAC-SHA256 of the raw body with the app's secret
    # (shopify.dev, "Verify webhooks"); the id is the delivery's, stable over retries.
    sig = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest())
    h = {"X-Shopify-Hmac-Sha256": sig.decode(), "X-Shopify-Topic": topic,
         "X-Shopify-Shop-Domain": shop, "Content-Type": "application/json"}
    if webhook_id is not None:
        h["X-Shopify-Webhook-Id"] = webhook_id
    return h


def metrics(h):
    return h.get("/metrics").body.decode()


# ---- Slack -----------------------------------------------------------------------

def test_slack_url_verification_handshake(env):
    h, nc = env
    core = nc.subscribe(">")
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
                       "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    hdrs = slack_headers(body)
    # the signature is Slack's own: its SDK's verifier accepts it
    assert SignatureVerifier(SLACK_SECRET).is_valid(
        body=body, timestamp=hdrs["X-Slack-Request-Timestamp"],
        signature=hdrs["X-Slack-Signature"])
    r = post(h, "slack", body, hdrs)
    assert r.status == 200, r.body
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    # a bad signature: 401, and the challenge is not echoed
    bad = {**hdrs, "X-Slack-Signature": SignatureVerifier("not-the-secret").generate_signature(
        timestamp=hdrs["X-Slack-Request-Timestamp"], body=body)}
    r = post(h, "slack", body, bad)
    assert_problem(r, 401)
    assert b"3eZbrw1aBm2rZgRNFdxV2595" not in r.body
    # a handshake without a string challenge is malformed
    body2 = json.dumps({"type": "url_verification", "challenge": 5}).encode()
    assert_problem(post(h, "slack", body2, slack_headers(body2)), 400)
    # nothing was published, on any subject, nor stored
    with pytest.raises(queue.Empty):
        core.get(timeout=0.3)
    assert nc.run(nc.js.stream_info("WH")).state.messages == 0
    text = metrics(h)
    assert 'herald_webhooks_total{source="slack",outcome="url_verification"} 1' in text
    assert 'herald_webhooks_total{source="slack",outcome="accepted"} 0' in text


def test_slack_event_id_is_the_delivery_id(env):
    h, nc = env
    ev = {"token": "x", "team_id": "T1", "type": "event_callback", "event_id": "Ev0PV52K25",
          "event_time": 1234567890, "event": {"type": "app_mention", "text": "hi"}}
    body = json.dumps(ev).encode()
    r = post(h, "slack", body, slack_headers(body))
    assert r.status == 202, r.body
    a = r.json()
    assert a["id"] == "Ev0PV52K25" and a["subject"] == "webhooks.slack.app_mention"
    assert a["stream"] == "WH" and a["duplicate"] is False
    # Slack retries with a new signature timestamp (X-Slack-Retry-Num): deduplicated
    time.sleep(1.1)
    retry = {**slack_headers(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"}
    r2 = post(h, "slack", body, retry)
    assert r2.status == 202
    assert r2.json()["duplicate"] is True and r2.json()["seq"] == a["seq"]
    msgs = nc.stream_messages("WH")
    assert len(msgs) == 1
    assert msgs[0].headers["Nats-Msg-Id"] == "Ev0PV52K25" == msgs[0].headers["ce-id"]
    # a form body (slash command) has no event_id: Idempotency-Key, else generated
    q = nc.subscribe("core.slack.>")
    form = b"command=%2Fdeploy&text=now"
    r = post(h, "slackform", form,
             slack_headers(form, ctype="application/x-www-form-urlencoded"))
    assert r.status == 202
    assert re.fullmatch(r"[0-9a-f-]{36}", r.json()["id"])
    assert q.get(timeout=5 * SLACK).headers["ce-id"] == r.json()["id"]


# ---- delivery ids per source -----------------------------------------------------

def test_shopify_webhook_id_template(env):
    h, nc = env
    body = json.dumps({"id": 820982911946154500, "email": "jon@example.com"}).encode()
    wid = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    r = post(h, "shopify", body, shopify_headers(body, wid))
    assert r.status == 202, r.body
    a = r.json()
    assert a["id"] == wid and a["subject"] == "webhooks.shopify.example.myshopify.com"
    m = nc.stream_messages("WH")[-1]
    assert m.headers["Nats-Msg-Id"] == wid and m.headers["ce-id"] == wid
    assert m.headers["ce-type"] == "com.shopify.orders/create"
    # Shopify's retry of the same delivery: deduplicated, not stored twice
    r2 = post(h, "shopify", body, shopify_headers(body, wid))
    assert r2.status == 202 and r2.json()["duplicate"] is True
    assert r2.json()["seq"] == a["seq"]
    # Idempotency-Key does not override the template
    r3 = post(h, "shopify", body, {**shopify_headers(body, "other-1"), "Idempotency-Key": "k"})
    assert r3.json()["id"] == "other-1"


def test_id_template_value_rules_422(env):
    h, nc = env
    body = b'{"n":1}'
    # 1..256 printable ASCII without spaces; '.', '*' and '>' are fine in an id
    for good in ["a", "x" * 256, "evt.1*>", "~!#$%&'()"]:
        r = post(h, "shopify", body, shopify_headers(body, good))
        assert r.status == 202, (good, r.body)
        assert r.json()["id"] == good
    for bad in [None, "", "x" * 257, "has space", "tab\there", "caf\u00e9".encode().decode("latin-1")]:
        r = post(h, "shopify", body, shopify_headers(body, bad))
        p = assert_problem(r, 422)
        assert "id" in p["detail"], p
    # from the body, with literal text around it
    gh = lambda b: {"X-Hub-Signature-256": "sha256=" + hmac.new(
        GH_SECRET.encode(), b, hashlib.sha256).hexdigest(), "X-GitHub-Event": "push",
        "Content-Type": "application/json"}
    b = json.dumps({"delivery": {"id": 42}}).encode()
    r = post(h, "bodyid", b, gh(b))
    assert r.status == 202 and r.json()["id"] == "evt-42"
    for b in [b'{"delivery":{}}', b'{"delivery":{"id":{"x":1}}}', b'{"delivery":{"id":" "}}']:
        assert_problem(post(h, "bodyid", b, gh(b)), 422)
    # a body that is not JSON where the id template reads it: 400
    assert_problem(post(h, "bodyid", b"not json", gh(b"not json")), 400)
    # the signature is still checked first
    assert_problem(post(h, "shopify", body, {**shopify_headers(body, None),
                                             "X-Shopify-Hmac-Sha256": "AAAA"}), 401)
    assert 'herald_webhooks_total{source="shopify",outcome="unbuildable_subject"} 6' \
        in metrics(h)


def test_id_template_config_is_checked(tmp):
    from conftest import run_herald
    import os
    cfg = {"webhooks": {"s": {"verify": {"scheme": "github", "secret_env": "GH_SECRET"},
                              "subject": "a.b", "id": "{hdr:X}"}}}
    path = os.path.join(tmp, "bad.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = run_herald(["--check-config", path], env=ENV)
    assert r.returncode == 2
    assert "webhooks.s.id: unknown placeholder {hdr:X}" in r.stdout + r.stderr


# ---- the duplicate window of the stream behind a source --------------------------

def test_short_duplicate_window_warns_at_startup(make_herald, nats):
    nc = NatsClient(nats.url)
    nc.add_stream("SHORT", ["webhooks.shopify.>"])  # JetStream's default: two minutes
    nc.add_stream("LONG", ["webhooks.github.>"], duplicate_window=7200)
    h = make_herald(config={"webhooks": SOURCES}, env=ENV, nats_url=nats.url)

    def warned():
        return [l for l in h.log_lines() if l.get("level") == "warn" and
                l.get("stream") == "SHORT"]
    lines = wait_for(warned, timeout=10, what="duplicate window warning")
    assert lines[0]["source"] == "shopify" and lines[0]["duplicate_window_s"] == 120
    assert lines[0]["recommended_s"] == 3600
    assert not [l for l in h.log_lines() if l.get("stream") == "LONG"]
    text = metrics(h)
    assert 'herald_webhook_stream_duplicate_window_seconds{source="shopify",stream="SHORT"} ' \
        '120' in text
    assert 'herald_webhook_stream_duplicate_window_seconds{source="github",stream="LONG"} ' \
        '7200' in text
    # logged once, not at every refresh of the stream list
    assert len(warned()) == 1
    nc.close()


# ---- the README's "setting up" recipes, with each sender's own signing --------------

def test_readme_recipes_github_stripe_svix(env):
    h, nc = env
    # GitHub's published test vector (docs.github.com, "Validating webhook deliveries")
    body = b"Hello, World!"
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest() == sig
    r = post(h, "github", body, {"X-Hub-Signature-256": sig, "X-GitHub-Event": "ping",
                                 "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                                 "Content-Type": "application/json"})
    assert r.status == 202, r.body
    assert r.json()["id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    # Stripe, signed by the stripe library
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "charge.succeeded"})
    hdr = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
    r = post(h, "stripe", payload.encode(), {"Stripe-Signature": hdr,
                                             "Content-Type": "application/json"})
    assert r.status == 202 and r.json()["id"] == "evt_1"
    assert r.json()["subject"] == "webhooks.stripe.charge.succeeded"
    # Standard Webhooks / Svix, signed by the standardwebhooks library
    body = json.dumps({"type": "user.created", "data": {}}).encode()
    when = datetime.datetime.now(tz=datetime.timezone.utc)
    sig = Webhook(SVIX_SECRET).sign("msg_2f", when, body.decode())
    r = post(h, "svix", body, {"svix-id": "msg_2f", "svix-timestamp": str(int(when.timestamp())),
                               "svix-signature": sig, "Content-Type": "application/json"})
    assert r.status == 202 and r.json()["id"] == "msg_2f"
    assert r.json()["subject"] == "webhooks.svix.user.created"
