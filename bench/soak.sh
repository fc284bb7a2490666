#!/usr/bin/env bash
# soak.sh [MINUTES] — issue 17's soak (default 10 minutes), loopback only, on
# its own ports (nats 24622, its WebSocket 24680, herald HTTP 24681, WS 24682). Starts
# nats-server (start-nats.sh, JetStream file store) and herald (start-herald.sh,
# the release build unless HERALD_BIN is set) with a Standard Webhooks source
# "soak" stored in JetStream, then runs bench/soak.py: CLIENTS (2000) WebSocket
# sessions on SUBJECTS (100) subjects, RATE (50) events/s, WH_RATE (20) signed
# webhooks/s, nats-server killed (-9) and restarted every RESTART_S (120) s,
# herald's RSS and fds sampled every SAMPLE_S (10) s. Writes
# results/soak-<UTC stamp>.md and .json (time series, delivered/lost, 202'd vs
# stored webhooks, verdict on the RSS/fd trend); exits 1 if the verdict fails.
# The source's replay window is 60 s (default 300): the replay cache, about 1 KB
# per accepted webhook, fills within the first minute, so that growth after it
# would be a leak rather than the cache filling up.
# The run directory /tmp/soak.* keeps the logs. Run it with nice on a shared host.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$BENCH")
cd "$root"
. "$BENCH/lib.sh"
minutes=${1:-10}
bench_init soak soak-
dir=$RUN
export NATS_PORT=${NATS_PORT:-24622} NATS_WS_PORT=${NATS_WS_PORT:-24680}
export HERALD_HTTP_PORT=${HERALD_HTTP_PORT:-24681} HERALD_WS_PORT=${HERALD_WS_PORT:-24682}
export SOAK_WH_SECRET="whsec_$(printf '%s' 'soak-key-0123456789abcdef0123456' | base64)"
py="${PYTHON:-$root/.venv/bin/python}"
# soak.py restarts nats-server: stop whichever one runs at the end
trap 'PIDS+=("$(cat "$dir/nats/nats.pid" 2>/dev/null)"); cleanup' EXIT

"$root/bench/start-nats.sh" "$dir/nats" >/dev/null
HERALD_EXTRA='"webhooks": { "soak": { "verify": { "scheme": "standard-webhooks", "secret_env": "SOAK_WH_SECRET", "replay_window_s": 60 }, "subject": "webhooks.soak.{+json:/type}", "delivery": "jetstream" } },' \
  "$root/bench/start-herald.sh" "$dir" >/dev/null
hpid=$(cat "$dir/herald.pid")
PIDS+=("$hpid")
out="${OUT%.md}"
echo "soak: $minutes min, herald pid $hpid, run dir $dir" >&2
rc=0
"$py" "$root/bench/soak.py" --minutes "$minutes" \
  --clients "${CLIENTS:-2000}" --subjects "${SUBJECTS:-100}" --rate "${RATE:-50}" \
  --wh-rate "${WH_RATE:-20}" --restart-s "${RESTART_S:-120}" --sample-s "${SAMPLE_S:-10}" \
  --ws-port "$HERALD_WS_PORT" --http-port "$HERALD_HTTP_PORT" --nats-port "$NATS_PORT" \
  --nats-ws-port "$NATS_WS_PORT" --nats-dir "$dir/nats" --start-nats "$root/bench/start-nats.sh" \
  --herald-pid "$hpid" --out "$out" --command "bench/soak.sh $minutes" 2>"$dir/soak.log" || rc=$?
kill -0 "$hpid" 2>/dev/null || { echo "herald died during the soak" >&2; rc=1; }
echo "result: $out.md (log: $dir/soak.log)" >&2
exit $rc
