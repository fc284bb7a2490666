#!/usr/bin/env bash
# overlap.sh — issue 17, defect 2: herald's CPU for EVENTS events while an
# anonymous client holds SUBS overlapping patterns that all match the events'
# subject (slow_consumer: drop, 4 KiB receive buffer, never reads) and an
# ordinary client (one subscription) reads every event. Compares the herald
# built from BEFORE_REF (default: main) with the working tree, in one run on
# this machine, each target started fresh for every measurement (nats-server
# + herald via start-nats.sh / start-herald.sh, ws.max_queue_bytes 1 MiB as
# herald's default). Herald's CPU is utime+stime from /proc/PID/stat, from the
# first publish until herald's delivered/dropped counters settle; peak RSS is
# VmHWM. The driver is overlap.py (stdlib Python: raw WebSocket and NATS).
# Prints a table and writes bench/results/overlap-<UTC stamp>.md.
#
# Environment: EVENTS (2000), SUBS (100), REPEAT (3 measurements per target
# and load), BEFORE_REF (main), BEFORE_BIN / AFTER_BIN (skip a build; use this
# binary). Ports: NATS_PORT (24522), NATS_WS_PORT (24580), HERALD_WS_PORT
# (24581), HERALD_HTTP_PORT (24582) — apart from the other bench scripts.
set -uo pipefail
cd "$(dirname "$0")"
BENCH=$(pwd)
ROOT=$(cd .. && pwd)
EVENTS=${EVENTS:-2000}
SUBS=${SUBS:-100}
REPEAT=${REPEAT:-3}
BEFORE_REF=${BEFORE_REF:-main}
export NATS_PORT=${NATS_PORT:-24522} NATS_WS_PORT=${NATS_WS_PORT:-24580}
export HERALD_WS_PORT=${HERALD_WS_PORT:-24581} HERALD_HTTP_PORT=${HERALD_HTTP_PORT:-24582}
export HERALD_MAX_QUEUE_BYTES=1048576
CMD="$(printf '%q ' "$0" "$@")"
ENVS=""
for v in EVENTS SUBS REPEAT BEFORE_REF BEFORE_BIN AFTER_BIN; do
  [ -n "${!v:-}" ] && ENVS+="$v=$(printf '%q' "${!v}") "
done
CMD="$ENVS${CMD% }"

. "$BENCH/lib.sh"
bench_init overlap overlap-

build() { # ref|"" (working tree) dir -> path of herald
  local ref=$1 dir=$2 src=$ROOT
  if [ -n "$ref" ]; then
    src="$dir/src"
    mkdir -p "$src"
    git -C "$ROOT" archive "$ref" | tar -x -C "$src" || return 1
  fi
  cmake -S "$src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$dir/build" --target herald >/dev/null || return 1
  echo "$dir/build/herald"
}

BEFORE=${BEFORE_BIN:-}
if [ -z "$BEFORE" ]; then
  log "building $BEFORE_REF ($(git -C "$ROOT" rev-parse --short "$BEFORE_REF"))"
  BEFORE=$(build "$BEFORE_REF" "$RUN/before") || { log "build of $BEFORE_REF failed"; exit 1; }
fi
AFTER=${AFTER_BIN:-}
if [ -z "$AFTER" ]; then
  log "building the working tree ($(git -C "$ROOT" rev-parse --short HEAD))"
  AFTER=$(build "" "$RUN/after") || { log "build of the working tree failed"; exit 1; }
fi

measure() { # name bin subs -> one key=value line
  local name=$1 bin=$2 subs=$3 d
  d=$(mktemp -d "$RUN/$name.XXXX")
  local npid hpid
  npid=$("$BENCH/start-nats.sh" "$d") || { log "nats-server did not start"; return 1; }
  PIDS+=("$npid")
  hpid=$(HERALD_BIN=$bin "$BENCH/start-herald.sh" "$d") || { log "herald did not start"; return 1; }
  PIDS+=("$hpid")
  timeout 120 python3 "$BENCH/overlap.py" "$hpid" "$HERALD_WS_PORT" "$HERALD_HTTP_PORT" \
    "$NATS_PORT" "$EVENTS" "$subs" || log "$name: driver failed"
  cleanup
}

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

RAW="$RUN/results.txt"
: >"$RAW"
for rep in $(seq "$REPEAT"); do # interleaved, so both targets see the same load
  for t in before after; do
    bin=$BEFORE
    [ $t = after ] && bin=$AFTER
    for subs in 0 "$SUBS"; do
      measure "$t" "$bin" "$subs" >"$RUN/line" # not in a subshell: cleanup sees the PIDs
      line=$(cat "$RUN/line")
      log "$t subs=$subs #$rep: $line"
      echo "target=$t rep=$rep $line" >>"$RAW"
    done
  done
done

{
  echo "# overlapping subscriptions (issue 17, defect 2) — $STAMP"
  echo
  echo "Command: \`$CMD\`  "
  echo "before: \`$BEFORE_REF\` ($(git -C "$ROOT" rev-parse --short "$BEFORE_REF")), after: working tree at $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src include || echo ' (modified)')  "
  echo "Host: $(nproc) CPUs, load average at start $(cut -d' ' -f1-3 /proc/loadavg). $EVENTS events of ~120 bytes to one subject; the attacker holds $SUBS overlapping patterns (drop, never reads), one ordinary client reads every event."
  echo
  echo "| target | attacker subs | herald CPU s (median of $REPEAT) | all runs | peak RSS KiB (max) | frames encoded | deliveries | dropped |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in before after; do
    for subs in 0 "$SUBS"; do
      sel=$(grep "^target=$t " "$RAW" | grep " subs=$subs ")
      cpu=$(echo "$sel" | field herald_cpu_s | median)
      runs=$(echo "$sel" | field herald_cpu_s | paste -sd' ')
      rss=$(echo "$sel" | field peak_rss_kib | sort -n | tail -1)
      enc=$(echo "$sel" | field encoded | tail -1)
      del=$(echo "$sel" | field delivered | tail -1)
      drp=$(echo "$sel" | field dropped | tail -1)
      [ "$t" = before ] && enc="(no metric)"
      echo "| $t | $subs | $cpu | $runs | $rss | $enc | $del | $drp |"
    done
  done
  echo
  echo "Raw lines: \`$RAW\`."
} | tee "$OUT"
log "wrote $OUT"
