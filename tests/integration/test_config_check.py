"""Issue 15: `herald --check-config` runs the code startup runs.

Every configuration herald ships or the suite uses is loaded both ways --
`herald --check-config FILE` and a real start against a real nats-server --
and the two must agree: check passes <=> startup passes. Then a table of
bad configurations, each refused by `--check-config` with exit 2 and the
JSON path of the fault, and refused by startup (exit 2) with the same
problem lines. The first rows are faults --check-config used to pass
(issue 15): startup then failed to compile a template, a verifier or a
permission."""
import glob
import json
import os
import shutil
import subprocess

import pytest

import test_http_framing
import test_openapi_statuses
import test_publish_api
import test_webhook_senders
import test_webhooks
import wsclient
from conftest import HERALD_BIN, SLACK, Herald, NatsServer, wait_for

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "jwt")
HELM_CHART = os.path.join(ROOT, "helm", "herald")


@pytest.fixture(scope="module")
def mod_tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("config-check"))


@pytest.fixture(scope="module")
def nats_mod(mod_tmp):
    n = NatsServer(mod_tmp).start()
    yield n
    n.stop()


def both_ways(tmp, nats, config, env=None):
    """(check, start) for one configuration: check = (exit code, stderr
    lines); start = (exit code or None when it came up healthy, problem
    lines it logged)."""
    h = Herald(tmp, config, env, nats.url)
    chk = subprocess.run([HERALD_BIN, "--check-config", h.config_path], env=h.env,
                         capture_output=True, text=True, timeout=30 * SLACK)
    h.start(wait=False)
    try:
        wait_for(lambda: h.proc.poll() is not None or h.get("/healthz", timeout=1).status == 200,
                 timeout=20, what="herald to come up or exit")
    finally:
        rc = h.proc.poll()
        h.stop()  # also: no sanitizer report
    problems = [l.get("problem") for l in h.log_lines() if l.get("msg") == "invalid configuration"]
    return (chk.returncode, chk.stderr.splitlines()), (rc, problems), h


def assert_agree(check, start, h):
    (crc, cerr), (src, _) = check, start
    assert crc in (0, 2), (crc, cerr)
    if crc == 0:
        assert src is None, f"--check-config passed, startup exited {src}:\n{h.logs()[-3000:]}"
    else:
        assert src is not None, f"--check-config failed ({cerr}), yet herald started"


# ---- every configuration herald ships or the suite uses ------------------------------------


def example_configs():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.json"))):
        with open(path) as f:
            cfg = json.load(f)
        for k in ("http", "ws"):  # Herald puts both on free loopback ports
            cfg.get(k, {}).pop("listen", None)
        env = {"HERALD_DEV_JWT_SECRET": "dev-secret-0123456789abcdef0123456789"}
        out.append(pytest.param(cfg, env, id="examples/" + os.path.basename(path)))
    return out


def suite_configs():
    ws, wenv = wsclient.config, wsclient.ENV
    return [
        pytest.param({}, {}, id="defaults"),
        pytest.param({"webhooks": test_webhooks.WEBHOOKS}, test_webhooks.ENV, id="test_webhooks"),
        pytest.param({"webhooks": test_webhook_senders.SOURCES}, test_webhook_senders.ENV,
                     id="test_webhook_senders"),
        pytest.param(test_publish_api.CONFIG, {"PUB_JWT_SECRET": test_publish_api.JWT_SECRET},
                     id="test_publish_api"),
        pytest.param(test_http_framing.CONFIG, {"GH_SECRET": "s3cret"}, id="test_http_framing"),
        pytest.param(test_openapi_statuses.config(), test_openapi_statuses.ENV,
                     id="test_openapi_statuses"),
        pytest.param(ws(), wenv, id="wsclient"),
        pytest.param(ws(ws={"auth_cookie": "herald_token", "query_token": True,
                            "allowed_origins": ["https://app.example.com", "null"]}), wenv,
                     id="ws-cookie-origins"),
        pytest.param(ws(ws={"max_queue_bytes": 16384, "slow_consumer": "drop", "max_frame_bytes":
                            2048, "ping_interval_s": 1, "ping_timeout_s": 1}), wenv,
                     id="ws-limits"),
        pytest.param(ws(limits={"ws_messages_per_session": {"rate_per_s": 1, "burst": 3},
                                "ws_upgrades_per_ip": {"rate_per_s": 0.5, "burst": 2},
                                "http_requests_per_ip": {"rate_per_s": 5},
                                "max_ws_connections": 3, "max_ws_connections_per_ip": 2,
                                "max_http_connections": 50, "max_http_connections_per_ip": 4,
                                "max_buffered_body_bytes": 1 << 20}), wenv, id="limits"),
        pytest.param(ws(http={"trusted_proxies": ["127.0.0.0/8", "fd00::/8"]}), wenv,
                     id="trusted-proxies"),
        pytest.param(ws(history=[{"stream": "DEPLOYMENTS", "subjects": ["deployments.>"]}]), wenv,
                     id="history"),
        pytest.param({"auth": {"jwt": {"keys": [
            {"alg": "RS256", "public_key_file": os.path.join(FIXTURES, "rsa_a_public.pem"),
             "kid": "a"},
            {"alg": "RS256", "public_key_file": os.path.join(FIXTURES, "rsa_a_pkcs1_public.pem"),
             "kid": "a1"},
            {"alg": "ES256", "public_key_file": os.path.join(FIXTURES, "ec_p256_public.pem")},
            {"alg": "HS256", "secret_env": "HS"}],
            "issuer": "https://issuer.example", "audience": "herald",
            "roles_claim": "realm_access.roles"}}}, {"HS": "hs-secret"}, id="jwt-keys"),
        pytest.param({"webhooks": {"sw": {
            "verify": {"scheme": "standard-webhooks", "secrets_env": ["A", "B"],
                       "replay_window_s": 0},
            "subject": "w.{source}.{+header:X-Kind}", "id": "{json:/event_id}",
            "type": "t.{json:/t}", "publish": {"allow": ["w.>"]}}}},
            {"A": "whsec_AAAA", "B": "BBBB"}, id="webhook-templates"),
    ]


def helm_configs():
    """The chart's rendered herald.json (default values), when helm is at hand."""
    helm = os.environ.get("HELM") or shutil.which("helm")
    for cand in ("/var/cache/herald-tools/bin/helm", os.path.join(ROOT, ".tools", "bin", "helm")):
        if not helm and os.access(cand, os.X_OK):
            helm = cand
    if not helm:
        return [pytest.param(None, None, id="helm-default",
                             marks=pytest.mark.skip(reason="helm not installed"))]
    import yaml
    r = subprocess.run([helm, "template", "t", HELM_CHART], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    cms = [d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "ConfigMap"]
    cfg = json.loads(cms[0]["data"]["herald.json"])
    for k in ("http", "ws"):
        cfg.get(k, {}).pop("listen", None)
    return [pytest.param(cfg, {}, id="helm-default")]


@pytest.mark.parametrize("config,env", example_configs() + suite_configs() + helm_configs())
def test_good_configs_check_and_start(mod_tmp, nats_mod, config, env):
    check, start, h = both_ways(mod_tmp, nats_mod, config, env)
    assert_agree(check, start, h)
    assert check[0] == 0, check[1]


# ---- bad configurations: refused by both, with the JSON path -------------------------------

GH = {"scheme": "github", "secret": "s"}
PASSED, PATH = "check passed, startup failed", "path doubled"
SW_BAD_B64 = "whsec_" + "!not*base64!"


def pem(name):
    return os.path.join(FIXTURES, name)


BAD = [
    # (id, config, env, the JSON path the problem names, what herald did before issue 15:
    #  PASSED = --check-config said OK and startup failed; PATH = refused, but the line
    #  began "auth.jwt.keys: auth.jwt.keys[i]: ..."; "" = refused as now)
    ("json-pointer-with-brace",
     {"webhooks": {"gh": {"verify": GH, "subject": "gh.{json:/a{b}"}}}, {},
     "webhooks.gh.subject", PASSED),
    ("standard-webhooks-secret-not-base64",
     {"webhooks": {"sw": {"verify": {"scheme": "standard-webhooks", "secret_env": "SW"},
                          "subject": "a.b"}}}, {"SW": SW_BAD_B64},
     "webhooks.sw.verify.secret_env", PASSED),
    ("standard-webhooks-rotated-secret-not-base64",
     {"webhooks": {"sw": {"verify": {"scheme": "standard-webhooks",
                                     "secrets_env": ["SW_OK", "SW"]}, "subject": "a.b"}}},
     {"SW_OK": "whsec_AAAA", "SW": SW_BAD_B64}, "webhooks.sw.verify.secrets_env[1]", PASSED),
    ("type-template-json-pointer-with-brace",
     {"webhooks": {"gh": {"verify": GH, "subject": "a.b", "type": "t.{json:/x{y}"}}}, {},
     "webhooks.gh.type", PASSED),
    ("webhook-publish-bad-placeholder",
     {"webhooks": {"gh": {"verify": GH, "subject": "gh.x",
                          "publish": {"allow": ["gh.{hdr:x}"]}}}}, {},
     "webhooks.gh.publish.allow[0]", PASSED),
    ("hmac-header-not-a-token",
     {"webhooks": {"h": {"verify": {"scheme": "hmac-sha256", "secret": "k", "header": "X Sig"},
                         "subject": "a.b"}}}, {}, "webhooks.h.verify.header", PASSED),
    ("hmac-prefix-with-space",
     {"webhooks": {"h": {"verify": {"scheme": "hmac-sha256", "secret": "k", "header": "X-Sig",
                                    "prefix": "sha 256="}, "subject": "a.b"}}}, {},
     "webhooks.h.verify.prefix", PASSED),
    # Caught before too; they must stay caught.
    ("unknown-placeholder",
     {"webhooks": {"gh": {"verify": GH, "subject": "webhooks.github.{hdr:X}"}}}, {},
     "webhooks.gh.subject", ""),
    ("subject-with-wildcard",
     {"webhooks": {"gh": {"verify": GH, "subject": "webhooks.*"}}}, {}, "webhooks.gh.subject",
     False),
    ("unknown-scheme",
     {"webhooks": {"gh": {"verify": {"scheme": "gitlab", "secret": "s"}, "subject": "a.b"}}}, {},
     "webhooks.gh.verify.scheme", ""),
    ("key-of-another-scheme",
     {"webhooks": {"gh": {"verify": {**GH, "tolerance_s": 60}, "subject": "a.b"}}}, {},
     "webhooks.gh.verify.tolerance_s", ""),
    ("bearer-with-secret",
     {"webhooks": {"b": {"verify": {"scheme": "bearer", "secret": "s", "tokens_sha256": ["0" * 64]},
                         "subject": "a.b"}}}, {}, "webhooks.b.verify.secret", ""),
    ("webhook-secret-env-unset",
     {"webhooks": {"gh": {"verify": {"scheme": "github", "secret_env": "NOT_SET_X"},
                          "subject": "a.b"}}}, {}, "webhooks.gh.verify.secret_env", ""),
    ("content-type-not-a-media-type",
     {"webhooks": {"gh": {"verify": GH, "subject": "a.b", "content_types": ["json"]}}}, {},
     "webhooks.gh.content_types[0]", ""),
    ("permission-bad-claim-template",
     {"permissions": {"roles": {"user": {"subscribe": {"allow": ["users.{claim:a..b}"]}}}}}, {},
     "permissions.roles.user.subscribe.allow[0]", ""),
    ("permission-bad-pattern",
     {"permissions": {"roles": {"user": {"publish": {"deny": ["a.>.b"]}}}}}, {},
     "permissions.roles.user.publish.deny[0]", ""),
    ("history-bad-pattern",
     {"history": [{"stream": "S", "subjects": ["a.>.b"]}]}, {}, "history[0].subjects[0]", ""),
    ("trusted-proxy-bad-cidr",
     {"http": {"trusted_proxies": ["10.0.0.0/33"]}}, {}, "http.trusted_proxies[0]", ""),
    ("allowed-origin-bad",
     {"ws": {"allowed_origins": ["app.example.com"]}}, {}, "ws.allowed_origins[0]", ""),
    ("jwt-key-file-missing",
     {"auth": {"jwt": {"keys": [{"alg": "RS256", "public_key_file": "/nonexistent/k.pem"}]}}}, {},
     "auth.jwt.keys[0].public_key_file", ""),
    ("jwt-key-file-not-pem",
     {"auth": {"jwt": {"keys": [{"alg": "RS256", "public_key_file": pem("tokens.json")}]}}}, {},
     "auth.jwt.keys[0]", PATH),
    ("jwt-key-file-private",
     {"auth": {"jwt": {"keys": [{"alg": "RS256", "public_key_file": pem("rsa_a_private.pem")}]}}},
     {}, "auth.jwt.keys[0]", PATH),
    ("jwt-key-wrong-family",
     {"auth": {"jwt": {"keys": [{"alg": "RS256", "public_key_file": pem("ec_p256_public.pem")}]}}},
     {}, "auth.jwt.keys[0]", PATH),
    ("jwt-rsa-too-small",
     {"auth": {"jwt": {"keys": [{"alg": "RS256", "public_key_file": pem("rsa_1024_public.pem")}]}}},
     {}, "auth.jwt.keys[0]", PATH),
    ("jwt-duplicate-kid",
     {"auth": {"jwt": {"keys": [{"alg": "HS256", "secret": "a", "kid": "k"},
                                {"alg": "HS256", "secret": "b", "kid": "k"}]}}}, {},
     "auth.jwt.keys[1]", PATH),
]


@pytest.mark.parametrize("config,env,path", [pytest.param(*r[1:4], id=r[0]) for r in BAD])
def test_bad_configs_refused_with_their_path(mod_tmp, nats_mod, config, env, path):
    (crc, cerr), (src, problems), h = both_ways(mod_tmp, nats_mod, config, env)
    assert crc == 2, f"--check-config exited {crc}: {cerr}"
    assert any(l.startswith(path + ": ") for l in cerr), (path, cerr)
    assert src == 2, f"startup exited {src}:\n{h.logs()[-3000:]}"
    # Startup refuses for the same reasons, word for word: one code path.
    assert problems == cerr, (problems, cerr)


def test_all_problems_at_once_across_modules(mod_tmp, nats_mod):
    """Template, verifier, permission and JWT key problems of one file are
    reported together, each with its path."""
    config = {
        "auth": {"jwt": {"keys": [{"alg": "ES256", "public_key_file": pem("rsa_a_public.pem")}]}},
        "webhooks": {
            "a": {"verify": {"scheme": "standard-webhooks", "secret": SW_BAD_B64},
                  "subject": "a.{json:/x{y}"},
            "b": {"verify": GH, "subject": "b.x", "publish": {"deny": ["b.{nope}"]}},
        },
    }
    (crc, cerr), (src, problems), _ = both_ways(mod_tmp, nats_mod, config)
    assert crc == 2 and src == 2
    for path in ("auth.jwt.keys[0]", "webhooks.a.verify.secret", "webhooks.a.subject",
                 "webhooks.b.publish.deny[0]"):
        assert any(l.startswith(path + ": ") for l in cerr), (path, cerr)
    assert problems == cerr
