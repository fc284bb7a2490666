#!/usr/bin/env bash
# start-herald.sh DIR — release build of herald (RelWithDebInfo, as ./herald.sh build)
# in front of the nats-server at NATS_PORT (24222), WebSocket on HERALD_WS_PORT
# (24081), HTTP on HERALD_HTTP_PORT (24080), loopback only. Config written to
# DIR/herald.json: anonymous may subscribe to bench.>, 8 MiB queues, drop policy.
# HERALD_HISTORY=STREAM adds "history": [{"stream": STREAM, "subjects": ["bench.>"]}]
# (the stream must exist first); HERALD_MAX_QUEUE_BYTES overrides the queue size;
# HERALD_WS_THREADS=N adds "threads": N to the ws section (unset: herald's default);
# HERALD_EXTRA is inserted at the top level as is (e.g. '"webhooks": {...},').
# Writes DIR/herald.pid, DIR/herald.log; prints the PID.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:?usage: start-herald.sh DIR}
mkdir -p "$dir"
bin=${HERALD_BIN:-}
if [ -z "$bin" ]; then
  # The release build, as ./herald.sh build makes it.
  bdir="$root/build-bench"
  cmake -S "$root" -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$bdir" --target herald >/dev/null
  bin="$bdir/herald"
fi
nport=${NATS_PORT:-24222} wsport=${HERALD_WS_PORT:-24081} hport=${HERALD_HTTP_PORT:-24080}
qbytes=${HERALD_MAX_QUEUE_BYTES:-8388608}
history=""
threads=""
if [ -n "${HERALD_WS_THREADS:-}" ]; then
  threads="\"threads\": $HERALD_WS_THREADS, "
fi
if [ -n "${HERALD_HISTORY:-}" ]; then
  history="\"history\": [{ \"stream\": \"$HERALD_HISTORY\", \"subjects\": [\"bench.>\"] }],"
fi
cat >"$dir/herald.json" <<CONF
{
  "http": { "listen": "127.0.0.1:$hport" },
  "ws": { "listen": "127.0.0.1:$wsport", ${threads}"max_queue_bytes": $qbytes, "slow_consumer": "drop",
          "max_subscriptions": 100 },
  "nats": { "servers": ["nats://127.0.0.1:$nport"], "name": "herald-bench" },
  $history
  ${HERALD_EXTRA:-}
  "permissions": { "roles": { "anonymous": { "subscribe": { "allow": ["bench.>"] } } } },
  "log": { "level": "${HERALD_LOG_LEVEL:-warn}" }
}
CONF
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
unset NATS_ADDR HERALD_CONFIG
"$bin" --config "$dir/herald.json" >"$dir/herald.log" 2>&1 &
pid=$!
echo $pid >"$dir/herald.pid"
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$wsport) 2>/dev/null && curl -fs "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1; then
    echo $pid; exit 0
  fi
  kill -0 $pid 2>/dev/null || { echo "herald died:" >&2; cat "$dir/herald.log" >&2; exit 1; }
  sleep 0.1
done
echo "herald did not become ready" >&2; cat "$dir/herald.log" >&2; kill $pid; exit 1
