#!/usr/bin/env bash
# replay.sh — replay (resume) benchmark for herald's history streams (CONTRACT §3).
# Starts its own nats-server with JetStream (file storage in a temp dir) and a
# release herald with history [{stream BENCH, subjects [bench.>]}], fills stream
# BENCH with MSGS (100,000) messages of ~200 bytes (bench/jsfill, nats.c async
# JetStream publish), then measures, all in the same run:
#   1. replay throughput to one client: bench/wsreplay (subscribe bench.> since 0,
#      count events until synced) vs the peer bench/jsread (nats.c ordered
#      consumer, DeliverAll, bench.>), REPS alternating runs each, medians;
#   3. herald RSS (VmRSS every 100 ms) during REPLAYERS (10) concurrent replays;
#   2. p99 latency of CLIENTS (1,000) wsload clients on the stream-fed subject
#      bench.live (RATE 200 ev/s, DURATION 10 s), alone and while REPLAYERS
#      wsreplay clients replay the stream in a loop.
# (RSS runs before the latency pair so that the RSS replays read exactly MSGS.)
# Loopback only, every wait bounded, every started process killed on exit.
# Prints a table and writes bench/results/replay-<UTC stamp>.md.
#
# Environment: MSGS (100000), BYTES (200), REPS (3), REPLAYERS (10), CLIENTS (1000),
# RATE (200), DURATION (10), HERALD_BIN (skip the build; use this binary), ports
# NATS_PORT (24322), NATS_WS_PORT (24380), HERALD_WS_PORT (24181), HERALD_HTTP_PORT (24180).
set -uo pipefail
cd "$(dirname "$0")"
BENCH=$(pwd)
CMD="$0${*:+ $*}"
ENVDESC=""
for v in MSGS BYTES REPS REPLAYERS CLIENTS RATE DURATION HERALD_BIN; do
  [ -n "${!v:-}" ] && ENVDESC+="$v=${!v} "
done
MSGS=${MSGS:-100000} BYTES=${BYTES:-200} REPS=${REPS:-3} NREP=${REPLAYERS:-10}
CLIENTS=${CLIENTS:-1000} RATE=${RATE:-200} DUR=${DURATION:-10}
export NATS_PORT=${NATS_PORT:-24322} NATS_WS_PORT=${NATS_WS_PORT:-24380}
export HERALD_WS_PORT=${HERALD_WS_PORT:-24181} HERALD_HTTP_PORT=${HERALD_HTTP_PORT:-24180}
export HERALD_HISTORY=BENCH
QBYTES=${HERALD_MAX_QUEUE_BYTES:-8388608}
export HERALD_MAX_QUEUE_BYTES=$QBYTES
NURL="nats://127.0.0.1:$NATS_PORT"

. "$BENCH/lib.sh"
bench_init replay-bench replay- wsload wsreplay jsfill jsread

kv() { # key line -> value
  awk -v k="$1" '{ for (i=1;i<=NF;i++) { split($i,a,"="); if (a[1]==k) { print a[2]; exit } } }' <<<"$2"
}
median() { sort -g | awk '{v[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.0f\n", (v[NR/2]+v[NR/2+1])/2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||a==""||b==""||b+0==0) print "-"; else printf "%.2f", a/b }'; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_pct() { # ticks0 ticks1 wall0 wall1
  awk -v a="$1" -v b="$2" -v x="$3" -v y="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (y>x) printf "%.0f", (b-a)/hz/(y-x)*100; else print "-" }'
}
alive() { kill -0 "$HPID" 2>/dev/null || { note "herald died (see $RUN/herald/herald.log)"; return 1; }; }

# ---------- servers + fill ----------
log "run dir $RUN"
NPID=$(timeout 30 ./start-nats.sh "$RUN/nats") || { echo "nats-server failed to start" >&2; exit 1; }
PIDS+=("$NPID")
log "filling stream BENCH with $MSGS x $BYTES B"
FILL=$(timeout 300 ./jsfill --url "$NURL" --stream BENCH --subjects 'bench.>' --subject bench.fill \
        --count "$MSGS" --bytes "$BYTES" --timeout 280 2>"$RUN/jsfill.err" | grep '^RESULT')
[ -n "$FILL" ] || { cat "$RUN/jsfill.err" >&2; echo "fill failed" >&2; exit 1; }
echo "$FILL" | tee -a "$RAW" >&2
HPID=$(timeout 600 ./start-herald.sh "$RUN/herald") || { echo "herald failed to start" >&2; exit 1; }
PIDS+=("$HPID")
sleep 1
RSS_START=$(rss_kb "$HPID")

# ---------- 1. replay throughput to one client ----------
WS=(./wsreplay --port "$HERALD_WS_PORT" --subject 'bench.>' --since 0)
: >"$RUN/p1-herald.txt"; : >"$RUN/p1-nats.txt"
for i in $(seq "$REPS"); do
  n0=$(ticks "$NPID"); w0=$(date +%s.%N)
  line=$(timeout 150 ./jsread --url "$NURL" --stream BENCH --subject 'bench.>' --count "$MSGS" --timeout 120 \
          2>>"$RUN/jsread.err" | grep '^RESULT')
  n1=$(ticks "$NPID"); w1=$(date +%s.%N)
  echo "${line:-RESULT tool=jsread status=no-result} rep=$i nats_cpu_pct=$(cpu_pct "$n0" "$n1" "$w0" "$w1")" | tee -a "$RAW" >&2
  [ "$(kv status "$line")" = ok ] && kv rate "$line" >>"$RUN/p1-nats.txt"
  n0=$(ticks "$NPID"); h0=$(ticks "$HPID"); w0=$(date +%s.%N)
  line=$(timeout 150 "${WS[@]}" --loops 1 --timeout 120 --label single-$i 2>>"$RUN/wsreplay-single.err" | grep '^RESULT')
  n1=$(ticks "$NPID"); h1=$(ticks "$HPID"); w1=$(date +%s.%N)
  echo "${line:-RESULT tool=wsreplay status=no-result} rep=$i herald_cpu_pct=$(cpu_pct "$h0" "$h1" "$w0" "$w1") nats_cpu_pct=$(cpu_pct "$n0" "$n1" "$w0" "$w1")" | tee -a "$RAW" >&2
  if [ "$(kv replays "$line")" = 1 ]; then
    kv rate "$line" >>"$RUN/p1-herald.txt"
    [ "$(kv events "$line")" = "$MSGS" ] || note "single replay $i delivered $(kv events "$line") events, expected $MSGS"
    [ "$(kv gaps "$line")$(kv dups "$line")" = 00 ] || note "single replay $i: gaps=$(kv gaps "$line") dups=$(kv dups "$line")"
  else
    note "single replay $i did not reach synced (see $RUN/wsreplay-single.err)"
  fi
  alive || break
done
H1=$(median <"$RUN/p1-herald.txt"); N1=$(median <"$RUN/p1-nats.txt")
log "replay throughput: herald $H1 msg/s, nats.c $N1 msg/s, ratio $(ratio "$H1" "$N1")"

# ---------- 3. RSS during concurrent replays ----------
sleep 1
RSS_BASE=$(rss_kb "$HPID")
( while kill -0 "$HPID" 2>/dev/null; do echo "$(date +%s.%N) $(rss_kb "$HPID")"; sleep 0.1; done ) >"$RUN/rss.txt" &
SAMPLER=$!; PIDS+=("$SAMPLER")
RP=()
for i in $(seq "$NREP"); do
  timeout 200 "${WS[@]}" --loops 1 --timeout 180 --label rss-$i >"$RUN/rss-replay-$i.out" 2>"$RUN/rss-replay-$i.err" &
  RP+=("$!"); PIDS+=("$!")
done
t0=$(date +%s.%N)
for p in "${RP[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
sleep 1
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
RSS_AFTER=$(rss_kb "$HPID")
RSS_PEAK=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$RUN/rss.txt")
RSS_N=$(wc -l <"$RUN/rss.txt")
RSS_OK=0 RSS_EV=0
for i in $(seq "$NREP"); do
  line=$(grep '^RESULT' "$RUN/rss-replay-$i.out")
  echo "${line:-RESULT tool=wsreplay label=rss-$i status=no-result}" >>"$RAW"
  [ "$(kv replays "$line")" = 1 ] && RSS_OK=$((RSS_OK + 1))
  RSS_EV=$((RSS_EV + ${line:+$(kv events "$line")}+0))
  [ "$(kv gaps "$line")$(kv dups "$line")" = 00 ] || [ -z "$line" ] || note "rss replay $i: gaps=$(kv gaps "$line") dups=$(kv dups "$line")"
done
[ "$RSS_OK" = "$NREP" ] || note "only $RSS_OK of $NREP concurrent replays reached synced (see $RUN/rss-replay-*.err)"
RSS_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
RSS_DELTA=$((RSS_PEAK - RSS_BASE))
QLIM_KB=$((NREP * QBYTES / 1024))
UNB_KB=$((NREP * MSGS * BYTES / 1024))
log "RSS: start ${RSS_START} kB, baseline ${RSS_BASE} kB, peak ${RSS_PEAK} kB (+${RSS_DELTA} kB), after ${RSS_AFTER} kB; $RSS_OK/$NREP synced in ${RSS_WALL}s; $RSS_N samples"
alive

# ---------- 2. live p99 with and without concurrent replays ----------
wsload_run() { # label
  timeout $((DUR + 150)) ./wsload --mode herald --port "$HERALD_WS_PORT" --pub-port "$NATS_PORT" \
    --clients "$CLIENTS" --subjects 1 --prefix bench.live --rate "$RATE" --duration "$DUR" \
    --label "$1" --timeout $((DUR + 140)) 2>>"$RUN/wsload-$1.err" | grep '^RESULT'
}
sleep 1
L_ALONE=$(wsload_run alone)
echo "${L_ALONE:-RESULT label=alone status=no-result}" | tee -a "$RAW" >&2
alive
sleep 1
RP=()
for i in $(seq "$NREP"); do
  timeout $((DUR + 400)) "${WS[@]}" --loops 0 --duration $((DUR + 300)) --timeout 120 --label loop-$i \
    >"$RUN/loop-replay-$i.out" 2>"$RUN/loop-replay-$i.err" &
  RP+=("$!"); PIDS+=("$!")
done
L_LOAD=$(wsload_run with-replays)
for p in "${RP[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${RP[@]}"; do wait "$p" 2>/dev/null; done
echo "${L_LOAD:-RESULT label=with-replays status=no-result}" | tee -a "$RAW" >&2
LOOP_DONE=0 LOOP_FAIL=0 LOOP_EV=0
for i in $(seq "$NREP"); do
  line=$(grep '^RESULT' "$RUN/loop-replay-$i.out")
  echo "${line:-RESULT tool=wsreplay label=loop-$i status=no-result}" >>"$RAW"
  [ -n "$line" ] || continue
  LOOP_DONE=$((LOOP_DONE + $(kv replays "$line"))); LOOP_FAIL=$((LOOP_FAIL + $(kv failed "$line")))
  LOOP_EV=$((LOOP_EV + $(kv events "$line")))
  [ "$(kv gaps "$line")$(kv dups "$line")" = 00 ] || note "loop replay $i: gaps=$(kv gaps "$line") dups=$(kv dups "$line")"
done
[ "$LOOP_FAIL" = 0 ] || note "$LOOP_FAIL looping replays failed (see $RUN/loop-replay-*.err)"
P99A=$(kv p99_us "$L_ALONE"); P99B=$(kv p99_us "$L_LOAD")
P50A=$(kv p50_us "$L_ALONE"); P50B=$(kv p50_us "$L_LOAD")
alive
curl -fs --max-time 5 "http://127.0.0.1:$HERALD_HTTP_PORT/metrics" >"$RUN/metrics.txt" 2>/dev/null || true
grep -v '"level":"info"' "$RUN/herald/herald.log" | tail -20 >"$RUN/herald-warnings.log" || true
[ -s "$RUN/herald-warnings.log" ] && note "herald logged warnings/errors (see $RUN/herald-warnings.log)"
cleanup

# ---------- report ----------
mb() { awk -v k="$1" 'BEGIN{ printf "%.1f", k/1024 }'; }
{
  echo "# Replay (resume) benchmark — $STAMP"
  echo
  echo "Command: \`${ENVDESC}./bench/replay.sh\` (invoked as \`$CMD\`)"
  echo
  echo "Host: $(nproc) cores, $(uname -r), shared machine (absolute numbers are noise; ratios matter)."
  echo "herald $(git -C "$BENCH/.." rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH/.." diff --quiet HEAD -- src 2>/dev/null || echo '+dirty') (RelWithDebInfo -O2), $(nats-server --version 2>/dev/null), nats.c $(pkg-config --modversion libnats 2>/dev/null)."
  echo "Stream BENCH (file storage) on bench.>, $MSGS messages of $BYTES B (JSON) on bench.fill;"
  echo "herald \`history\` [{BENCH, [bench.>]}], ws.max_queue_bytes $QBYTES, slow_consumer drop."
  echo
  echo "| # | measure | herald | peer / reference | ratio | goal |"
  echo "|---|---|---|---|---|---|"
  echo "| 1 | replay to one client, msg/s (median of $REPS) | $H1 | nats.c ordered consumer $N1 | $(ratio "$H1" "$N1") | ≥ 0.5 |"
  echo "| 2 | p99 live latency, $CLIENTS clients, $RATE ev/s on bench.live (us) | with $NREP looping replays: ${P99B:--} | alone: ${P99A:--} | $(ratio "$P99B" "$P99A") | < 2 |"
  echo "| 2 | p50 live latency (us) | ${P50B:--} | ${P50A:--} | $(ratio "$P50B" "$P50A") | |"
  echo "| 3 | herald RSS peak − baseline during $NREP concurrent replays (MB) | $(mb "$RSS_DELTA") | $NREP × max_queue_bytes = $(mb "$QLIM_KB") | $(ratio "$RSS_DELTA" "$QLIM_KB") | ≤ 1 (unbounded: $(mb "$UNB_KB")) |"
  echo
  echo "RSS (MB): at start $(mb "$RSS_START"), baseline before the concurrent replays $(mb "$RSS_BASE"),"
  echo "peak $(mb "$RSS_PEAK"), 1 s after they finished $(mb "$RSS_AFTER") ($RSS_N samples at 100 ms;"
  echo "$RSS_OK/$NREP replays reached synced, $RSS_EV events in ${RSS_WALL} s wall)."
  echo "Looping replays during the loaded latency run: $LOOP_DONE complete replays, $LOOP_FAIL failed, $LOOP_EV events"
  echo "(replays still running when wsload finished are stopped and counted as interrupted)."
  echo "Part 1 CPU (% of one core, whole client run incl. connect): see herald_cpu_pct / nats_cpu_pct in the raw lines."
  echo
  for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "- NOTE: $n"; done
  echo
  echo "Raw results (jsfill/jsread/wsreplay/wsload RESULT lines):"
  echo
  echo '```'
  sed 's/^RESULT //' "$RAW"
  echo '```'
  if [ -s "$RUN/metrics.txt" ]; then
    echo
    echo "herald replay metrics at the end:"
    echo
    echo '```'
    grep -E '^herald_(replay|replayed|history|jetstream|ws_dropped|dropped|slow)' "$RUN/metrics.txt" | grep -v _bucket | head -20
    echo '```'
  fi
} >"$OUT"
cat "$OUT"
log "written $OUT (run dir $RUN)"
