#!/usr/bin/env bash
# ws-fanout.sh — WebSocket fan-out benchmark: herald vs nats-server WebSocket vs
# nginx+nchan, scenarios A-D (see bench/README.md). Loopback only, every step
# bounded by timeouts. Prints a table and writes bench/results/<date>.md.
#
# Environment: DURATION (10 s per scenario), CLIENTS_A (1000), CLIENTS_C (2000),
# CLIENTS_D (10000), TARGETS ("herald nats-ws nchan"), THREADS (wsload receiver
# threads, 1), HERALD_BIN (skip the build; use this binary).
set -uo pipefail
cd "$(dirname "$0")"
BENCH=$(pwd)
DUR=${DURATION:-10}
CA=${CLIENTS_A:-1000} CC=${CLIENTS_C:-2000} CD=${CLIENTS_D:-10000}
TARGETS=${TARGETS:-"herald nats-ws nchan"}
THREADS=${THREADS:-1}
export NATS_PORT=${NATS_PORT:-24222} NATS_WS_PORT=${NATS_WS_PORT:-24280}
export HERALD_WS_PORT=${HERALD_WS_PORT:-24081} HERALD_HTTP_PORT=${HERALD_HTTP_PORT:-24080}
export NCHAN_PORT=${NCHAN_PORT:-24090}

# File descriptors: 10,000 connections need > 10,000 fds on each side.
. "$BENCH/lib.sh"
bench_init ws-fanout "" wsload
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CD + 200)) ]; then
  echo "ulimit -n is $(ulimit -n) (< $CD + 200): lowering CLIENTS_D" >&2
  CD=$(( $(ulimit -n) - 500 ))
fi



start_target() { # target -> sets SERVER_PIDS, WS_PORT, PUB_PORT, ALIVE_PID
  local t=$1 d="$RUN/$1"
  mkdir -p "$d"
  case $t in
    herald)
      local np hp
      np=$(timeout 30 ./start-nats.sh "$d/nats") || return 1; PIDS+=("$np")
      hp=$(timeout 300 ./start-herald.sh "$d/herald") || return 1; PIDS+=("$hp")
      SERVER_PIDS=$hp; ALIVE_PID=$hp; WS_PORT=$HERALD_WS_PORT; PUB_PORT=$NATS_PORT ;;
    nats-ws)
      local np
      np=$(timeout 30 ./start-nats.sh "$d/nats") || return 1; PIDS+=("$np")
      SERVER_PIDS=$np; ALIVE_PID=$np; WS_PORT=$NATS_WS_PORT; PUB_PORT=$NATS_PORT ;;
    nchan)
      local pids
      pids=$(timeout 120 ./start-nchan.sh "$d/nchan") || return 1
      PIDS+=("${pids%%,*}")
      SERVER_PIDS=$pids; ALIVE_PID=${pids%%,*}; WS_PORT=$NCHAN_PORT; PUB_PORT=$NCHAN_PORT ;;
  esac
}

run_wsload() { # target scenario args...
  local t=$1 s=$2; shift 2
  local c0 c1 w0 w1 line
  c0=$(cpu_ticks "$SERVER_PIDS"); w0=$(date +%s.%N)
  line=$(timeout $((DUR + 150)) ./wsload --mode "$t" --port "$WS_PORT" --pub-port "$PUB_PORT" \
           --threads "$THREADS" --label "$s" --timeout $((DUR + 140)) "$@" 2>>"$RUN/$t/wsload-$s.err" | grep '^RESULT')
  c1=$(cpu_ticks "$SERVER_PIDS"); w1=$(date +%s.%N)
  local cpu
  cpu=$(awk -v a="$c0" -v b="$c1" -v x="$w0" -v y="$w1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN{printf "%.0f", (b-a)/hz/(y-x)*100}')
  [ -z "$line" ] && line="RESULT label=$s mode=$t status=no-result"
  echo "$line server_cpu_pct=$cpu" | tee -a "$RAW" >&2
  if ! kill -0 "$ALIVE_PID" 2>/dev/null; then
    NOTES+=("$t died during scenario $s (see $RUN/$t)"); log "$t DIED during $s"
    return 1
  fi
  sed -n '1,5p' "$RUN/$t/wsload-$s.err" | sed "s/^/[$t $s] /" >&2
}

for t in $TARGETS; do
  log "=== $t ==="
  if ! start_target "$t"; then NOTES+=("$t failed to start"); cleanup; continue; fi
  sleep 1
  # D first, on a fresh server: idle connections, one subscription each.
  run_wsload "$t" D --clients "$CD" --subjects "$CD" --prefix bench.d --idle \
    --server-pids "$SERVER_PIDS" --hold 3 --connect-timeout 90 || { cleanup; continue; }
  sleep 2
  run_wsload "$t" A --clients "$CA" --subjects 1 --prefix bench.a --rate 0 --window 16 \
    --duration "$DUR" || { cleanup; continue; }
  sleep 1
  run_wsload "$t" B --clients "$CA" --subjects 1 --prefix bench.b --rate 200 \
    --duration "$DUR" || { cleanup; continue; }
  sleep 1
  run_wsload "$t" C --clients "$CC" --subjects "$CC" --prefix bench.c --rate 0 --window "$CC" \
    --duration "$DUR" || { cleanup; continue; }
  if [ "$t" = herald ]; then
    curl -fs "http://127.0.0.1:$HERALD_HTTP_PORT/metrics" >"$RUN/herald/metrics.txt" 2>/dev/null || true
    grep -v '"level":"info"' "$RUN/herald/herald/herald.log" | tail -20 >"$RUN/herald/herald-warnings.log" || true
  fi
  cleanup
  sleep 1
done

# ---------- report ----------
get() { # scenario mode key
  awk -v s="$1" -v m="$2" -v k="$3" '
    { lab=""; mo=""; val="";
      for (i=1;i<=NF;i++) { split($i,kv,"=");
        if (kv[1]=="label") lab=kv[2]; if (kv[1]=="mode") mo=kv[2]; if (kv[1]==k) val=kv[2] }
      if (lab==s && mo==m && val!="") v=val }
    END { print (v==""?"-":v) }' "$RAW"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||b+0==0) print "-"; else printf "%.2f", a/b }'; }
fmt() { awk -v a="$1" -v d="${2:-0}" 'BEGIN{ if (a=="-") print "-"; else printf "%.*f", d, a }'; }

{
  echo "# WebSocket fan-out benchmark — $STAMP"
  echo
  echo "Host: $(nproc) cores, $(uname -r), shared machine (absolute numbers are noise; ratios matter)."
  echo "herald $(git -C "$BENCH/.." rev-parse --short HEAD 2>/dev/null) (RelWithDebInfo -O2), $(nats-server --version 2>/dev/null),"
  echo "$(nginx -v 2>&1 | sed 's/^nginx version: //') + nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null) (worker_processes ${NCHAN_WORKERS:-1})."
  echo "Duration ${DUR}s per scenario, 200-byte JSON payloads, wsload receiver threads: $THREADS. Max rate = closed loop"
  echo "(at most 16 events (A) / $CC events (C) in flight), so latency at max rate reflects that window."
  echo
  echo "| scenario | metric | herald | nats-ws | nchan | herald/nats-ws | herald/nchan |"
  echo "|---|---|---|---|---|---|---|"
  row() { # label scenario key digits
    local h n c
    h=$(get "$2" herald "$3"); n=$(get "$2" nats-ws "$3"); c=$(get "$2" nchan "$3")
    echo "| $2 | $1 | $(fmt "$h" "$4") | $(fmt "$n" "$4") | $(fmt "$c" "$4") | $(ratio "$h" "$n") | $(ratio "$h" "$c") |"
  }
  row "delivered events/s" A deliv_rate 0
  row "p50 latency (us)" A p50_us 0
  row "p99 latency (us)" A p99_us 0
  row "server CPU %" A server_cpu_pct 0
  row "missing deliveries" A missing 0
  row "delivered events/s" B deliv_rate 0
  row "p50 latency (us)" B p50_us 0
  row "p99 latency (us)" B p99_us 0
  row "max latency (us)" B max_us 0
  row "server CPU %" B server_cpu_pct 0
  row "missing deliveries" B missing 0
  row "delivered events/s" C deliv_rate 0
  row "p50 latency (us)" C p50_us 0
  row "p99 latency (us)" C p99_us 0
  row "server CPU %" C server_cpu_pct 0
  row "missing deliveries" C missing 0
  row "connections ready" D ready 0
  row "RSS per connection (bytes)" D rss_per_conn_b 0
  echo
  echo "Goals (issue): herald ≥ nats-ws on A and C (ratio ≥ 1), ≤ 0.5× nats-ws memory per connection on D,"
  echo "p99 < 5000 us on B."
  echo
  for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "- NOTE: $n"; done
  echo
  echo "Raw results (wsload RESULT lines; dropped = herald \`dropped\` notices, missing = neither delivered nor reported dropped):"
  echo
  echo '```'
  sed 's/^RESULT //' "$RAW"
  echo '```'
} >"$OUT"
cat "$OUT"
log "written $OUT (run dir $RUN)"
