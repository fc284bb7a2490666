#!/usr/bin/env bash
# herald's two commands (and fuzz, run on demand):
#   ./herald.sh run    install what is missing, build, start nats-server (JetStream)
#                      unless NATS_ADDR is set, then herald with examples/dev.json
#   ./herald.sh test   install what is missing, build (plain, ASan+UBSan, TSan), run
#                      every suite; exits non-zero on any failure
#   ./herald.sh fuzz [SECONDS] [TARGET...]
#                      build the libFuzzer targets (tests/fuzz, clang) and run each
#                      for SECONDS (default 600); exits non-zero on any crash
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

APT_PACKAGES=(build-essential cmake ninja-build pkg-config clang-format
  libmicrohttpd-dev libwebsockets-dev libnats-dev libjansson-dev libcmocka-dev
  libjwt-dev libssl-dev nats-server python3 python3-venv curl chromium)

# Installed on demand by the commands that need them.
FUZZ_PACKAGES=(clang libclang-rt-14-dev)

log() { printf '\033[1m[herald.sh]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() { # [extra packages...]
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The Python tools the integration suites use, in a project-local venv.
ensure_venv() {
  local req="$ROOT/tests/requirements.txt" stamp="$ROOT/.venv/.installed"
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    python3 -m venv "$ROOT/.venv"
  fi
  if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
    log "installing Python test tools"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
}

# The browser test's npm packages (tests/browser: playwright-core drives
# Debian's chromium, no browser download; @asyncapi/parser validates the
# AsyncAPI document), reinstalled only when the lockfile changes.
ensure_node_tools() {
  local dir="$ROOT/tests/browser" stamp="$ROOT/tests/browser/node_modules/.herald-lock"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm not found: the browser and AsyncAPI-parser tests will be skipped"
    return 0
  fi
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    log "installing browser test tools (npm ci)"
    SCARF_ANALYTICS=false npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund \
      --loglevel=error
    cp "$dir/package-lock.json" "$stamp"
  fi
}

build() { # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir"
}

# For the test of this command (tests/integration/test_run_command.py) only:
# HERALD_RUN_BUILD_DIR (an existing build, not rebuilt), HERALD_RUN_CONFIG,
# HERALD_RUN_STATE, HERALD_RUN_TOKEN_FILE, HERALD_RUN_HTTP (host:port).
cmd_run() {
  local bdir=${HERALD_RUN_BUILD_DIR:-}
  if [ -z "$bdir" ]; then
    ensure_packages
    bdir="$ROOT/build"
    build "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  local state=${HERALD_RUN_STATE:-$ROOT/.state} token_file=${HERALD_RUN_TOKEN_FILE:-$ROOT/static/dev-token.json}
  local config=${HERALD_RUN_CONFIG:-$ROOT/examples/dev.json} http=${HERALD_RUN_HTTP:-127.0.0.1:8080}
  nats_pid="" demo_pid="" herald_pid=""
  mkdir -p "$state"
  export HERALD_DEV_JWT_SECRET=${HERALD_DEV_JWT_SECRET:-dev-secret-change-me-0123456789abcdef}
  # Each child runs in its own session (setsid): Ctrl-C reaches only this
  # script, which stops herald once with SIGTERM (a second signal would make
  # herald exit at once and skip its graceful shutdown), then the demo and NATS.
  stop_all() {
    trap - INT TERM
    log "stopping (herald drains and closes its clients with 1001)"
    if [ -n "$herald_pid" ]; then kill -TERM "$herald_pid" 2>/dev/null || true; wait "$herald_pid" 2>/dev/null || true; fi
    if [ -n "$demo_pid" ]; then kill -TERM "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
    if [ -n "$nats_pid" ]; then kill -TERM "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
    rm -f "$token_file"
    return 0
  }
  trap 'stop_all; exit 0' INT TERM
  if [ -z "${NATS_ADDR:-}" ]; then
    log "starting nats-server with JetStream (store: $state/nats)"
    setsid nats-server -js -sd "$state/nats" -a 127.0.0.1 -p 4222 >"$state/nats-server.log" 2>&1 &
    nats_pid=$!
    export NATS_ADDR=nats://127.0.0.1:4222
  fi
  # The demo publisher: creates the DEPLOYMENTS stream if missing, simulates the
  # deployments of user "demo" and keeps a development token for the dashboard
  # in static/dev-token.json (local use only; deleted on exit).
  rm -f "$token_file"
  setsid "$bdir/herald-demo" --user demo --token-file "$token_file" 2>"$state/demo.log" &
  demo_pid=$!
  for _ in $(seq 100); do [ -s "$token_file" ] && break; sleep 0.1; done
  [ -s "$token_file" ] || log "the demo publisher did not start: see $state/demo.log"
  setsid "$bdir/herald" --config "$config" &
  herald_pid=$!
  for _ in $(seq 50); do curl -fs "http://$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  log "dashboard:  http://localhost:8080/   (demo deployments of user \"demo\", live)"
  log "console:    http://localhost:8080/static/console.html"
  log "WebSocket:  ws://localhost:8081/v1/ws"
  log "health:     http://localhost:8080/readyz   metrics: http://localhost:8080/metrics"
  log "API docs:   http://localhost:8080/docs"
  log "NATS:       $NATS_ADDR   (Ctrl-C stops herald, the demo and the local nats-server)"
  wait "$herald_pid" || true
  herald_pid=""
  stop_all
}

cmd_test() {
  ensure_packages
  ensure_venv
  ensure_node_tools
  local failed=0
  local WS_SUITES=("$ROOT"/tests/integration/test_{ws,ws_threads,scale,resume,invalid_subjects}.py)
  log "format check (clang-format)"
  if ! clang-format --dry-run --Werror "$ROOT"/src/*.c "$ROOT"/src/demo/*.[ch] "$ROOT"/include/herald/*.h \
       "$ROOT"/tests/unit/*.c "$ROOT"/tests/fuzz/*.[ch]; then
    log "clang-format: files need formatting"; failed=1
  fi
  log "include graph (no circle between modules)"
  python3 "$ROOT/tests/check_includes.py" "$ROOT" || failed=1
  for variant in plain asan; do
    # plain = the optimised build `run` uses; asan = Debug + ASan/UBSan
    local dir="$ROOT/build-test-$variant" args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    [ $variant = asan ] && args=(-DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON)
    log "[$variant] build"
    build "$dir" "${args[@]}" || { failed=1; continue; }
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    log "[$variant] unit tests (ctest)"
    (cd "$dir" && ctest --output-on-failure) || failed=1
    log "[$variant] integration tests (pytest, real nats-server)"
    HERALD_BIN="$dir/herald" HERALD_VARIANT=$variant \
      "$ROOT/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider "$ROOT/tests/integration" \
      || failed=1
    if [ $variant = plain ]; then
      # The suites where service threads matter, with one thread and with
      # four (the full run above uses the default: one per core, at most 8).
      for n in 1 4; do
        log "[$variant] WebSocket suites with ws.threads=$n"
        HERALD_BIN="$dir/herald" HERALD_VARIANT=$variant HERALD_WS_THREADS=$n \
          "$ROOT/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider \
          "${WS_SUITES[@]}" || failed=1
      done
    fi
  done
  # ThreadSanitizer: the unit tests and the suites where threads meet (the
  # WebSocket service thread, NATS delivery threads, the hub worker, the
  # replayers): a data race report fails the run.
  local tdir="$ROOT/build-test-tsan"
  log "[tsan] build"
  if build "$tdir" -DCMAKE_BUILD_TYPE=Debug -DHERALD_TSAN=ON; then
    export TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1
    log "[tsan] unit tests (ctest)"
    (cd "$tdir" && ctest --output-on-failure) || failed=1
    log "[tsan] integration tests: WebSocket, scale, resume (ws.threads=4)"
    HERALD_BIN="$tdir/herald" HERALD_VARIANT=tsan HERALD_WS_THREADS=4 \
      "$ROOT/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider "${WS_SUITES[@]}" \
      || failed=1
  else
    failed=1
  fi
  # Once, not per variant: the chart does not depend on how herald is built.
  log "helm chart (helm lint/template, herald --check-config on the rendered config)"
  HERALD_BIN="$ROOT/build-test-plain/herald" PYTHON="$ROOT/.venv/bin/python" \
    "$ROOT/tests/helm/test_chart.sh" || failed=1
  if [ $failed -ne 0 ]; then log "FAILED"; exit 1; fi
  log "all suites passed"
}

# One libFuzzer run of target $1 for $2 seconds: new units go to a scratch
# corpus under build-fuzz (kept between runs), the committed corpus is read
# too, crashers land in $3. Prints one summary line.
fuzz_one() {
  local t=$1 secs=$2 crashes=$3 bdir="$ROOT/build-fuzz"
  local scratch="$bdir/corpus/$t" logf="$bdir/logs/$t.log" dict=() rc=0
  mkdir -p "$scratch" "$bdir/logs"
  [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
  local start=$SECONDS
  (cd "$ROOT" && nice -n 19 "$bdir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$crashes/$t-" "${dict[@]}" \
    "$scratch" "$ROOT/tests/fuzz/corpus/$t") >"$logf" 2>&1 || rc=$?
  local execs cov ft corp added found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$logf" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$logf" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$logf" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$logf" | tail -1 | cut -d' ' -f2)
  found=$(find "$crashes" -maxdepth 1 -name "$t-*" | wc -l)
  printf '%-15s %5ss  execs %-10s cov %-5s ft %-5s corpus %-5s new %-5s crashes %s%s\n' "$t" \
    "$((SECONDS - start))" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${added:-?}" "$found" \
    "$([ "$rc" -ne 0 ] && echo " (exit $rc, see $logf)")"
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]
}

# HERALD_FUZZ_JOBS targets run at once (default 1).
cmd_fuzz() {
  local secs=${1:-600}
  [ $# -gt 0 ] && shift
  ensure_packages "${FUZZ_PACKAGES[@]}"
  local bdir="$ROOT/build-fuzz"
  log "build (clang, libFuzzer + ASan/UBSan) in $bdir"
  local targets=("$@")
  if [ ${#targets[@]} -eq 0 ]; then
    for f in "$ROOT"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
  fi
  CC=clang cmake -S "$ROOT" -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_FUZZ=ON >/dev/null
  cmake --build "$bdir" --target "${targets[@]/#/fuzz_}"
  local crashes
  crashes="$bdir/crashes/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$crashes"
  log "fuzzing ${targets[*]} for ${secs}s each, ${HERALD_FUZZ_JOBS:-1} at a time"
  local failed=0 pids=() out="$bdir/logs/summary.$$"
  mkdir -p "$bdir/logs"
  : >"$out"
  for t in "${targets[@]}"; do
    [ -x "$bdir/fuzz_$t" ] || { log "no fuzz target $t"; failed=1; continue; }
    while [ "$(jobs -rp | wc -l)" -ge "${HERALD_FUZZ_JOBS:-1}" ]; do wait -n || true; done
    (fuzz_one "$t" "$secs" "$crashes" >>"$out") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  sort "$out" >&2
  rm -f "$out"
  if [ $failed -ne 0 ]; then
    log "FAILED: crashers in $crashes (add them to tests/fuzz/corpus/<target>/)"
    exit 1
  fi
  log "no crashes (new corpus units in $bdir/corpus; crashers would be in $crashes)"
}

case "${1:-}" in
  run) cmd_run ;;
  test) cmd_test ;;
  fuzz) shift; cmd_fuzz "$@" ;;
  build) ensure_packages; build "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
  *) echo "usage: $0 run|test|build|fuzz [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
