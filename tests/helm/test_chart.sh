#!/usr/bin/env bash
# Tests helm/herald with a real helm: lint, render with default and overridden
# values, check the rendered objects, validate the rendered herald.json with
# `herald --check-config`, and check that values.schema.json rejects bad values.
#
#   tests/helm/test_chart.sh          (HERALD_BIN, HELM, PYTHON may be set)
#
# helm is not packaged in Debian 12; it is built once from the Go module proxy
# (`go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION`) and cached in
# /var/cache/herald-tools/bin when writable (shared by every clone on the
# machine; HERALD_TOOLS_CACHE overrides that directory), else in $ROOT/.tools/bin.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELM_VERSION=v3.16.3
HELM_INSTALL_TIMEOUT=${HELM_INSTALL_TIMEOUT:-900}
MACHINE_CACHE=${HERALD_TOOLS_CACHE:-/var/cache/herald-tools/bin}
PROJECT_CACHE=$ROOT/.tools/bin

say() { printf '[helm-test] %s\n' "$*" >&2; }

# The module version a Go binary was built from (`go version -m`), or "".
built_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}

usable_helm() { # path -> 0 if it is an executable helm of $HELM_VERSION
  [ -x "$1" ] || return 1
  if command -v go >/dev/null 2>&1; then
    [ "$(built_version "$1")" = "$HELM_VERSION" ]
  else
    "$1" version >/dev/null 2>&1
  fi
}

install_helm() { # dir
  local dir=$1 tmp proxy start
  if ! command -v go >/dev/null 2>&1; then
    say "cannot build helm: 'go' is not installed (install Go, or set HELM=/path/to/helm)"
    return 1
  fi
  proxy=$(go env GOPROXY)
  case "$proxy" in ""|off) proxy=https://proxy.golang.org,direct ;; esac
  tmp=$(mktemp -d "$dir/.install.XXXXXX")
  say "building helm $HELM_VERSION with go install (GOPROXY=$proxy, timeout ${HELM_INSTALL_TIMEOUT}s; takes about 2 minutes the first time)"
  start=$(date +%s)
  local rc=0
  GOBIN=$tmp GOPROXY=$proxy timeout "$HELM_INSTALL_TIMEOUT" \
    go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || rc=$?
  if [ $rc -ne 0 ]; then
    rm -rf "$tmp"
    if [ $rc -eq 124 ]; then
      say "FAILED: 'go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION' timed out after ${HELM_INSTALL_TIMEOUT}s (HELM_INSTALL_TIMEOUT)."
    else
      say "FAILED: 'go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION' exited $rc (helm $HELM_VERSION needs Go >= 1.22)."
    fi
    say "Check that the Go module proxy ($proxy) is reachable, or set HELM=/path/to/helm."
    return 1
  fi
  mv -f "$tmp/helm" "$dir/helm" # atomic: concurrent runs never see half a binary
  rm -rf "$tmp"
  say "helm built in $(($(date +%s) - start))s -> $dir/helm"
}

ensure_helm() {
  if [ -n "${HELM:-}" ]; then
    [ -x "$HELM" ] || { say "HELM=$HELM is not executable"; return 1; }
    return 0
  fi
  local d
  for d in "$MACHINE_CACHE" "$PROJECT_CACHE"; do
    if usable_helm "$d/helm"; then HELM=$d/helm; return 0; fi
  done
  if mkdir -p "$MACHINE_CACHE" 2>/dev/null && [ -w "$MACHINE_CACHE" ]; then
    d=$MACHINE_CACHE
  else
    mkdir -p "$PROJECT_CACHE"; d=$PROJECT_CACHE
  fi
  install_helm "$d" || return 1
  HELM=$d/helm
}

ensure_herald() {
  if [ -n "${HERALD_BIN:-}" ]; then
    [ -x "$HERALD_BIN" ] || { say "HERALD_BIN=$HERALD_BIN is not executable"; return 1; }
    return 0
  fi
  local b
  for b in "$ROOT/build-test-plain/herald" "$ROOT/build/herald"; do
    if [ -x "$b" ]; then HERALD_BIN=$b; return 0; fi
  done
  say "no herald binary: build it (./herald.sh build) or set HERALD_BIN"
  return 1
}

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi

fail_setup() { echo "helm chart: 0 passed, 1 failed ($1)"; exit 1; }
ensure_helm || fail_setup "helm unavailable"
ensure_herald || fail_setup "herald binary unavailable"
"$PYTHON" -c 'import yaml' 2>/dev/null || fail_setup "PyYAML missing for $PYTHON (pip install -r tests/requirements.txt)"

say "helm: $HELM   herald: $HERALD_BIN"
export HELM HERALD_BIN
exec "$PYTHON" "$ROOT/tests/helm/check_chart.py" "$ROOT/helm/herald"
