"""Checks on helm/herald rendered by a real helm (driven by test_chart.sh).

Environment: HELM (helm binary), HERALD_BIN (herald, for --check-config).
Prints one line per check and a final "helm chart: N passed, M failed".
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

import yaml

CHART = sys.argv[1]
HELM = os.environ["HELM"]
HERALD = os.environ["HERALD_BIN"]
RELEASE = "herald-test"
DEFAULT_NATS = "nats://nats.nats.svc.cluster.local:4222"

# Values an HA install would use: more replicas, ingress, a webhook source
# whose secret comes from a Kubernetes Secret, monitoring.
OVERRIDE = {
    "replicaCount": 3,
    "natsAddr": "nats://nats-0.nats.nats.svc:4222,nats://nats-1.nats.nats.svc:4222",
    "config": {
        "webhooks": {
            "github": {
                "verify": {"scheme": "github", "secret_env": "GITHUB_WEBHOOK_SECRET"},
                "subject": "webhooks.github.{header:X-GitHub-Event}",
            }
        },
        "shutdown_timeout_s": 30,
    },
    "secretEnv": [
        {"name": "GITHUB_WEBHOOK_SECRET", "secretName": "herald-webhooks", "key": "github"}
    ],
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": [
            {
                "host": "events.example.com",
                "paths": [
                    {"path": "/v1/ws", "pathType": "Prefix", "port": "ws"},
                    {"path": "/", "pathType": "Prefix", "port": "http"},
                ],
            }
        ],
        "tls": [{"secretName": "events-tls", "hosts": ["events.example.com"]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
}

passed = failed = 0
_tmp = tempfile.TemporaryDirectory(prefix="herald-helm-test-")


def check(name):
    def run(fn):
        global passed, failed
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            detail = str(e) or traceback.extract_tb(e.__traceback__)[-1].line
            print(f"FAIL  {name}: {detail}")
            if not isinstance(e, AssertionError):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok    {name}")
        return fn
    return run


def values_file(values, name):
    path = os.path.join(_tmp.name, name + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def render(values=None, sets=()):
    args = ["template", RELEASE, CHART, "--namespace", "events"]
    if values is not None:
        args += ["-f", values_file(values, "values-%d" % len(os.listdir(_tmp.name)))]
    for s in sets:
        args += ["--set", s]
    r = helm(*args)
    assert r.returncode == 0, f"helm template failed: {r.stderr.strip()}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def render_fails(values=None, sets=()):
    """helm template must fail; returns its stderr."""
    args = ["template", RELEASE, CHART]
    if values is not None:
        args += ["-f", values_file(values, "bad-%d" % len(os.listdir(_tmp.name)))]
    for s in sets:
        args += ["--set", s]
    r = helm(*args)
    assert r.returncode != 0, "helm template accepted bad values"
    return r.stderr


def one(objs, kind):
    found = [o for (k, _), o in objs.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(objs):
    cs = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1, f"expected one container, found {len(cs)}"
    return cs[0]


def env(objs):
    return {e["name"]: e for e in container(objs).get("env", [])}


def herald_json(objs):
    cm = one(objs, "ConfigMap")
    return cm["data"]["herald.json"]


def check_config(text, extra_env=None):
    path = os.path.join(_tmp.name, "herald.json")
    with open(path, "w") as f:
        f.write(text)
    e = {k: v for k, v in os.environ.items() if k not in ("HERALD_CONFIG", "NATS_ADDR")}
    e.update(extra_env or {})
    return subprocess.run([HERALD, "--check-config", path], capture_output=True, text=True,
                          env=e, timeout=30)


def checksum(objs):
    return one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


try:
    DEFAULT = render()
    HA = render(OVERRIDE)
except AssertionError as e:
    print(f"FAIL  render the chart: {e}")
    print("helm chart: 0 passed, 1 failed")
    sys.exit(1)


@check("helm lint --strict (default values)")
def _():
    r = helm("lint", "--strict", CHART)
    assert r.returncode == 0, r.stdout + r.stderr


@check("helm lint --strict (override values)")
def _():
    r = helm("lint", "--strict", CHART, "-f", values_file(OVERRIDE, "lint-override"))
    assert r.returncode == 0, r.stdout + r.stderr


@check("default render: Deployment, Service, ConfigMap, PDB; no Ingress/ServiceMonitor")
def _():
    kinds = sorted(k for k, _ in DEFAULT)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"], kinds


@check("Deployment replicas: 2 by default, 3 with override")
def _():
    assert one(DEFAULT, "Deployment")["spec"]["replicas"] == 2
    assert one(HA, "Deployment")["spec"]["replicas"] == 3


@check("env NATS_ADDR: default nats namespace URL, overridable, omitted when empty")
def _():
    assert env(DEFAULT)["NATS_ADDR"]["value"] == DEFAULT_NATS
    assert env(HA)["NATS_ADDR"]["value"] == OVERRIDE["natsAddr"]
    assert "NATS_ADDR" not in env(render(sets=["natsAddr="]))


@check("env HERALD_CONFIG=/etc/herald/herald.json, mounted from the ConfigMap")
def _():
    assert env(DEFAULT)["HERALD_CONFIG"]["value"] == "/etc/herald/herald.json"
    c = container(DEFAULT)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/herald")
    vols = {v["name"]: v for v in one(DEFAULT, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert vols[mount["name"]]["configMap"]["name"] == one(DEFAULT, "ConfigMap")["metadata"]["name"]


@check("probes: liveness /healthz and readiness /readyz on the http port (8080)")
def _():
    c = container(DEFAULT)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "ws": 8081}, ports
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@check("container ports follow config listen addresses")
def _():
    objs = render(sets=["config.http.listen=0.0.0.0:9000", "config.ws.listen=[::]:9001"])
    ports = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    assert ports == {"http": 9000, "ws": 9001}, ports


@check("Service: http 8080 and ws 8081 to the named container ports, selects the pods")
def _():
    svc = one(DEFAULT, "Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "ws": (8081, "ws")}, ports
    pod_labels = one(DEFAULT, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert one(DEFAULT, "Deployment")["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


@check("securityContext: non-root uid 10001, read-only root, no privilege escalation, drop ALL")
def _():
    pod = one(DEFAULT, "Deployment")["spec"]["template"]["spec"]
    sc = container(DEFAULT)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]


@check("graceful stop: preStop sleep, grace period > preStop + shutdown_timeout_s")
def _():
    for objs, shutdown in ((DEFAULT, 10), (HA, 30)):
        c = container(objs)
        cmd = c["lifecycle"]["preStop"]["exec"]["command"]
        assert cmd[0] == "sleep" and int(cmd[1]) > 0, cmd
        grace = one(objs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > int(cmd[1]) + shutdown, (grace, cmd, shutdown)
    err = render_fails(sets=["terminationGracePeriodSeconds=12"])
    assert "terminationGracePeriodSeconds" in err, err


@check("ConfigMap herald.json: valid JSON carrying the values' config")
def _():
    cfg = json.loads(herald_json(DEFAULT))
    assert cfg["http"]["listen"] == "0.0.0.0:8080"
    assert cfg["ws"]["listen"] == "0.0.0.0:8081"
    assert cfg["permissions"]["roles"]["anonymous"] == {"subscribe": {"allow": ["public.>"]}}
    assert cfg["shutdown_timeout_s"] == 10
    ha = json.loads(herald_json(HA))
    assert ha["webhooks"]["github"]["verify"]["secret_env"] == "GITHUB_WEBHOOK_SECRET"
    assert ha["permissions"] == cfg["permissions"]  # deep merge keeps the defaults


@check("trusted_proxies set together with the per-IP limits (defaults), overridable")
def _():
    cfg = json.loads(herald_json(DEFAULT))
    assert cfg["http"]["trusted_proxies"] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                              "fd00::/8"], cfg["http"]
    lim = cfg["limits"]
    assert lim["http_requests_per_ip"]["rate_per_s"] > 0 and lim["http_requests_per_ip"]["burst"] >= 1
    assert lim["ws_upgrades_per_ip"]["rate_per_s"] > 0 and lim["ws_upgrades_per_ip"]["burst"] >= 1
    assert lim["max_ws_connections_per_ip"] >= 1
    # narrowed to the cluster's pod CIDR; herald accepts what the chart renders
    objs = render({"config": {"http": {"trusted_proxies": ["10.244.0.0/16", "fd12:3456::/48"]}}})
    text = herald_json(objs)
    assert json.loads(text)["http"]["trusted_proxies"] == ["10.244.0.0/16", "fd12:3456::/48"]
    r = check_config(text)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"
    # a range herald cannot parse: the schema or --check-config refuses it
    err = render_fails({"config": {"http": {"trusted_proxies": "10.0.0.0/8"}}})
    assert "trusted_proxies" in err, err
    r = check_config(herald_json(render({"config": {"http": {"trusted_proxies": ["10.0.0.0/33"]}}})))
    assert r.returncode == 2 and "http.trusted_proxies[0]" in r.stderr, (r.returncode, r.stderr)


@check("herald --check-config accepts the default herald.json")
def _():
    r = check_config(herald_json(DEFAULT))
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"


@check("herald --check-config accepts the override herald.json once secretEnv is provided")
def _():
    text = herald_json(HA)
    r = check_config(text, {"GITHUB_WEBHOOK_SECRET": "s3cret-for-the-test"})
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"
    # ...and refuses it without the variable, so secretEnv is what makes it start.
    r = check_config(text)
    assert r.returncode == 2 and "GITHUB_WEBHOOK_SECRET" in r.stderr, (r.returncode, r.stderr)


@check("herald --check-config refuses a chart whose webhook source cannot start (issue 15)")
def _():
    # Both passed --check-config before issue 15, and herald then failed at startup.
    objs = render({"config": {"webhooks": {
        "gh": {"verify": {"scheme": "github", "secret_env": "GITHUB_WEBHOOK_SECRET"},
               "subject": "webhooks.gh.{json:/a{b}"},
        "billing": {"verify": {"scheme": "standard-webhooks", "secret_env": "BILLING_SECRET"},
                    "subject": "webhooks.billing"}}}})
    r = check_config(herald_json(objs), {"GITHUB_WEBHOOK_SECRET": "s",
                                         "BILLING_SECRET": "whsec_not*base64"})
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "webhooks.gh.subject: " in r.stderr, r.stderr
    assert "webhooks.billing.verify.secret_env: not valid base64" in r.stderr, r.stderr


@check("secretEnv maps to env valueFrom.secretKeyRef")
def _():
    e = env(HA)["GITHUB_WEBHOOK_SECRET"]
    assert "value" not in e
    assert e["valueFrom"]["secretKeyRef"] == {"name": "herald-webhooks", "key": "github"}


@check("checksum/config annotation: sha256, changes with the config only")
def _():
    base = checksum(DEFAULT)
    assert re.fullmatch(r"[0-9a-f]{64}", base), base
    assert checksum(render(sets=["config.log.level=debug"])) != base
    assert checksum(render(sets=["replicaCount=5"])) == base
    assert checksum(HA) != base


@check("PodDisruptionBudget: maxUnavailable 1, selects the pods")
def _():
    pdb = one(DEFAULT, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = one(DEFAULT, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "PodDisruptionBudget" not in {k for k, _ in render(sets=["podDisruptionBudget.enabled=false"])}
    render_fails(sets=["podDisruptionBudget.minAvailable=1"])  # both set


@check("topologySpreadConstraints get this release's labelSelector")
def _():
    pod = one(DEFAULT, "Deployment")["spec"]["template"]
    tsc = pod["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in tsc} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for c in tsc:
        assert c["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


@check("Ingress (override): /v1/ws to the ws port, / to http, TLS")
def _():
    ing = one(HA, "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "events.example.com"
    routes = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    svc = one(HA, "Service")["metadata"]["name"]
    assert routes == {"/v1/ws": {"name": svc, "port": {"name": "ws"}},
                      "/": {"name": svc, "port": {"name": "http"}}}, routes
    assert ing["spec"]["tls"] == [{"hosts": ["events.example.com"], "secretName": "events-tls"}]


@check("ServiceMonitor (override): /metrics on the http port, extra labels")
def _():
    sm = one(HA, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"][0]["port"] == "http"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["spec"]["selector"]["matchLabels"].items() <= one(HA, "Service")["metadata"]["labels"].items()


@check("values.schema.json rejects replicaCount: \"x\"")
def _():
    err = render_fails({"replicaCount": "x"})
    assert "replicaCount" in err and "schema" in err, err


@check("values.schema.json rejects a bad natsAddr, secretEnv item, config key, service type")
def _():
    for bad, word in (({"natsAddr": "localhost:4222"}, "natsAddr"),
                      ({"secretEnv": [{"name": "X", "secretName": "s"}]}, "key"),
                      ({"config": {"shutdown_timeout": 5}}, "shutdown_timeout"),
                      ({"config": {"log": {"level": "verbose"}}}, "level"),
                      ({"service": {"type": "Ingress"}}, "type")):
        err = render_fails(bad)
        assert word in err, f"{bad}: {err}"


print(f"helm chart: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
