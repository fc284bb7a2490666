#!/usr/bin/env bash
# ws-threads.sh — herald ws.threads benchmark: herald with ws.threads=1, herald
# with ws.threads=2 and nats-server's WebSocket listener, in one run, scenario A
# (1,000 clients on one subject, closed loop, window 16) and scenario C at 2,000
# and 4,000 clients (own subject each, closed loop, window = clients). Loopback
# only, every step bounded by timeouts. Prints a table and writes
# bench/results/ws-threads-<UTC stamp>.md (see bench/README.md).
#
# Environment: DURATION (10 s per scenario), CLIENTS_A (1000), CLIENTS_C
# ("2000 4000"), TARGETS ("herald-t1 herald-t2 nats-ws"; herald-tN = herald with
# ws.threads=N), WSLOAD_THREADS (wsload receiver threads, 1), HERALD_BIN (skip
# the build; use this binary). Ports: NATS_PORT (24422), NATS_WS_PORT (24480),
# HERALD_WS_PORT (24481), HERALD_HTTP_PORT (24482) — apart from ws-fanout.sh
# (242xx/240xx) and replay.sh (243xx/241xx).
set -uo pipefail
cd "$(dirname "$0")"
BENCH=$(pwd)
DUR=${DURATION:-10}
CA=${CLIENTS_A:-1000}
CCS=${CLIENTS_C:-"2000 4000"}
TARGETS=${TARGETS:-"herald-t1 herald-t2 nats-ws"}
WT=${WSLOAD_THREADS:-1}
export NATS_PORT=${NATS_PORT:-24422} NATS_WS_PORT=${NATS_WS_PORT:-24480}
export HERALD_WS_PORT=${HERALD_WS_PORT:-24481} HERALD_HTTP_PORT=${HERALD_HTTP_PORT:-24482}
CMD="$(printf '%q ' "$0" "$@")"
ENVS=""
for v in DURATION CLIENTS_A CLIENTS_C TARGETS WSLOAD_THREADS HERALD_BIN; do
  [ -n "${!v:-}" ] && ENVS+="$v=$(printf '%q' "${!v}") "
done
CMD="$ENVS${CMD% }"

# File descriptors: the largest C run needs > clients fds on each side.
CMAX=$CA
for c in $CCS; do [ "$c" -gt "$CMAX" ] && CMAX=$c; done
. "$BENCH/lib.sh"
bench_init ws-threads ws-threads- wsload
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CMAX + 200)) ]; then
  echo "ulimit -n is $(ulimit -n) (< $CMAX + 200): cannot run $CMAX clients" >&2
  exit 1
fi

HZ=$(getconf CLK_TCK)

task_ticks() { # pid -> "tid ticks" per thread
  local f
  for f in /proc/$1/task/*/stat; do
    [ -r "$f" ] && awk '{ sub(/^.*\) /, ""); print FILENAME, $12+$13 }' "$f" 2>/dev/null
  done | sed 's|^/proc/[0-9]*/task/\([0-9]*\)/stat|\1|'
}

host_ticks() { # "busy total" jiffies of the whole host (/proc/stat)
  awk '/^cpu /{ t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t; exit }' /proc/stat
}

start_target() { # target -> SERVER_PIDS (CPU measured), NATS_PID, WS_PORT, PUB_PORT, MODE
  local t=$1 d="$RUN/$1" np hp
  mkdir -p "$d"
  np=$(timeout 30 ./start-nats.sh "$d/nats") || return 1; PIDS+=("$np")
  NATS_PID=$np; PUB_PORT=$NATS_PORT
  case $t in
    herald-t*)
      hp=$(HERALD_WS_THREADS=${t#herald-t} timeout 300 ./start-herald.sh "$d/herald") || return 1
      PIDS+=("$hp")
      SERVER_PIDS=$hp; WS_PORT=$HERALD_WS_PORT; MODE=herald ;;
    nats-ws)
      SERVER_PIDS=$np; WS_PORT=$NATS_WS_PORT; MODE=nats-ws ;;
    *) return 1 ;;
  esac
}

# run_wsload target label args... — server CPU is measured over the publishing
# window only: from wsload's "ready" line (+0.5 s, its settle pause) to its exit
# (end of the drain), so connection set-up and teardown do not dilute it.
run_wsload() {
  local t=$1 s=$2; shift 2
  local err="$RUN/$t/wsload-$s.err" out="$RUN/$t/wsload-$s.out" wp c0 c1 n0 n1 w0 w1 line
  : >"$err"
  timeout $((DUR + 200)) ./wsload --mode "$MODE" --port "$WS_PORT" --pub-port "$PUB_PORT" \
    --threads "$WT" --label "$s" --timeout $((DUR + 190)) --connect-timeout 120 "$@" >"$out" 2>"$err" &
  wp=$!
  local deadline=$((SECONDS + 150))
  while ! grep -q ' ready in ' "$err" 2>/dev/null; do
    kill -0 "$wp" 2>/dev/null || break
    [ $SECONDS -ge $deadline ] && break
    sleep 0.05
  done
  sleep 0.5
  local cl h0 h1 l0 l1 lw1
  cl=$(pgrep -P "$wp" -x wsload | head -1)
  c0=$(cpu_ticks "$SERVER_PIDS"); n0=$(cpu_ticks "$NATS_PID"); w0=$(date +%s.%N)
  l0=$(cpu_ticks "$cl"); h0=$(host_ticks)
  [ "$MODE" = herald ] && task_ticks "$SERVER_PIDS" >"$RUN/$t/tasks-$s.0"
  # wsload's own CPU: sampled just before it exits (last drain check, <= 5 ms)
  while kill -0 "$wp" 2>/dev/null && ! grep -q '^RESULT' "$out" 2>/dev/null; do
    l1=$(cpu_ticks "$cl"); lw1=$(date +%s.%N); sleep 0.1
  done
  wait "$wp"
  c1=$(cpu_ticks "$SERVER_PIDS"); n1=$(cpu_ticks "$NATS_PID"); w1=$(date +%s.%N)
  h1=$(host_ticks)
  local cpu ncpu thr=""
  cpu=$(awk -v a="$c0" -v b="$c1" -v x="$w0" -v y="$w1" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/(y-x)*100}')
  ncpu=$(awk -v a="$n0" -v b="$n1" -v x="$w0" -v y="$w1" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/(y-x)*100}')
  if [ "$MODE" = herald ]; then
    # CPU % of each herald thread over the window, busiest first (threads < 1 % left out)
    task_ticks "$SERVER_PIDS" >"$RUN/$t/tasks-$s.1"
    thr=$(awk -v x="$w0" -v y="$w1" -v hz="$HZ" 'NR==FNR{a[$1]=$2; next}
            { d=($2-a[$1])/hz/(y-x)*100; if (d>=1) printf "%.0f\n", d }' \
            "$RUN/$t/tasks-$s.0" "$RUN/$t/tasks-$s.1" | sort -rn | paste -sd/ -)
    thr=" herald_threads_cpu_pct=${thr:-0}"
  fi
  line=$(grep '^RESULT' "$out" | tail -1)
  [ -z "$line" ] && line="RESULT label=$s mode=$MODE status=no-result"
  local per ccpu hcpu
  ccpu=$(awk -v a="$l0" -v b="${l1:-$l0}" -v x="$w0" -v y="${lw1:-$w1}" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/(y-x)*100}')
  hcpu=$(awk -v a="${h0% *}" -v b="${h1% *}" -v ta="${h0#* }" -v tb="${h1#* }" -v n="$(nproc)" \
         'BEGIN{ if (tb>ta) printf "%.0f", (b-a)/(tb-ta)*100*n; else print "-" }')
  per=$(awk -v l="$line" -v c="$cpu" 'BEGIN{ n=split(l,f," "); r="";
          for(i=1;i<=n;i++){ split(f[i],kv,"="); if(kv[1]=="deliv_rate") r=kv[2] }
          if (r=="" || c+0==0) print "-"; else printf "%.0f", r/(c/100) }')
  echo "$line target=$t server_cpu_pct=$cpu deliv_per_cpu_s=$per nats_cpu_pct=$ncpu wsload_cpu_pct=$ccpu host_busy_pct=$hcpu$thr" | tee -a "$RAW" >&2
  sed -n '1,5p' "$err" | sed "s/^/[$t $s] /" >&2
  if ! kill -0 "${SERVER_PIDS%%,*}" 2>/dev/null; then
    NOTES+=("$t died during scenario $s (see $RUN/$t)"); log "$t DIED during $s"
    return 1
  fi
}

for t in $TARGETS; do
  log "=== $t ==="
  if ! start_target "$t"; then NOTES+=("$t failed to start"); cleanup; continue; fi
  sleep 1
  run_wsload "$t" A --clients "$CA" --subjects 1 --prefix bench.ta --rate 0 --window 16 \
    --duration "$DUR" || { cleanup; continue; }
  for c in $CCS; do
    sleep 1
    run_wsload "$t" "C$c" --clients "$c" --subjects "$c" --prefix "bench.tc$c" --rate 0 --window "$c" \
      --duration "$DUR" || break
  done
  if [ "$MODE" = herald ]; then
    curl -fs --max-time 5 "http://127.0.0.1:$HERALD_HTTP_PORT/metrics" >"$RUN/$t/metrics.txt" 2>/dev/null || true
    grep -v '"level":"info"' "$RUN/$t/herald/herald.log" >"$RUN/$t/herald-warnings.log" 2>/dev/null || true
    nw=$(wc -l <"$RUN/$t/herald-warnings.log" 2>/dev/null || echo 0)
    [ "${nw:-0}" -gt 0 ] && NOTES+=("$t: $nw non-info lines in herald's log, first: $(head -c 300 "$RUN/$t/herald-warnings.log" | head -1)")
  fi
  cleanup
  sleep 1
done

# ---------- report ----------
get() { # label target key
  awk -v s="$1" -v m="$2" -v k="$3" '
    { lab=""; tg=""; val="";
      for (i=1;i<=NF;i++) { split($i,kv,"=");
        if (kv[1]=="label") lab=kv[2]; if (kv[1]=="target") tg=kv[2]; if (kv[1]==k) val=kv[2] }
      if (lab==s && tg==m && val!="") v=val }
    END { print (v==""?"-":v) }' "$RAW"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||b+0==0) print "-"; else printf "%.2f", a/b }'; }
fmt() { awk -v a="$1" -v d="${2:-0}" 'BEGIN{ if (a=="-" || a !~ /^[0-9.eE+-]+$/) print a; else printf "%.*f", d, a }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-") print "n/a"; else print (a+0>=b+0 ? "met" : "NOT met") }'; }

{
  echo "# herald ws.threads benchmark — $STAMP"
  echo
  echo "Host: $(nproc) cores, $(uname -r), shared machine (absolute numbers are noise; ratios matter)."
  echo "herald $(git -C "$BENCH/.." rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH/.." diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty') (RelWithDebInfo -O2), $(nats-server --version 2>/dev/null)."
  echo "Targets: herald-t1 = herald with \`ws.threads: 1\`, herald-t2 = \`ws.threads: 2\`, nats-ws = nats-server's"
  echo "WebSocket listener; each started fresh. Publisher: NATS TCP PUB to nats-server for all three."
  echo "Duration ${DUR}s per scenario, 200-byte JSON payloads, wsload receiver threads: $WT, closed loop"
  echo "(A: at most 16 events in flight; C: window = clients). Server CPU % = the server process"
  echo "(herald, or nats-server for nats-ws) over the publishing window (connect/teardown excluded);"
  echo "deliveries per CPU-second = delivered/s ÷ (CPU % / 100). For herald targets the upstream"
  echo "nats-server's CPU % is listed separately."
  echo
  echo "Command: \`$CMD\`"
  echo
  echo "| scenario | metric | herald-t1 | herald-t2 | nats-ws | t1/nats-ws | t2/nats-ws | t2/t1 |"
  echo "|---|---|---|---|---|---|---|---|"
  row() { # label scenario key digits [noratio]
    local a b n
    a=$(get "$2" herald-t1 "$3"); b=$(get "$2" herald-t2 "$3"); n=$(get "$2" nats-ws "$3")
    if [ -n "${5:-}" ]; then
      echo "| $2 | $1 | $(fmt "$a" "$4") | $(fmt "$b" "$4") | $(fmt "$n" "$4") | | | |"
    else
      echo "| $2 | $1 | $(fmt "$a" "$4") | $(fmt "$b" "$4") | $(fmt "$n" "$4") | $(ratio "$a" "$n") | $(ratio "$b" "$n") | $(ratio "$b" "$a") |"
    fi
  }
  row "delivered events/s" A deliv_rate 0
  row "p50 latency (us)" A p50_us 0
  row "p99 latency (us)" A p99_us 0
  row "server CPU %" A server_cpu_pct 0
  row "deliveries per CPU-second" A deliv_per_cpu_s 0
  row "missing / dropped" A missing 0 x
  row "herald threads CPU %" A herald_threads_cpu_pct 0 x
  row "upstream nats-server CPU %" A nats_cpu_pct 0 x
  row "wsload CPU %" A wsload_cpu_pct 0 x
  row "host busy % (of $(( $(nproc) * 100 )))" A host_busy_pct 0 x
  for c in $CCS; do
    row "delivered events/s" "C$c" deliv_rate 0
    row "p99 latency (us)" "C$c" p99_us 0
    row "server CPU %" "C$c" server_cpu_pct 0
    row "deliveries per CPU-second" "C$c" deliv_per_cpu_s 0
    row "missing deliveries" "C$c" missing 0 x
    row "herald threads CPU %" "C$c" herald_threads_cpu_pct 0 x
    row "upstream nats-server CPU %" "C$c" nats_cpu_pct 0 x
    row "wsload CPU %" "C$c" wsload_cpu_pct 0 x
    row "host busy % (of $(( $(nproc) * 100 )))" "C$c" host_busy_pct 0 x
  done
  echo
  echo "Goals (issue):"
  a1=$(get A herald-t1 deliv_rate); a2=$(get A herald-t2 deliv_rate); an=$(get A nats-ws deliv_rate)
  echo "- A does not regress from threads=1 to threads=2: t2/t1 = $(ratio "$a2" "$a1") ($(ge "$(ratio "$a2" "$a1")" 0.95) at ≥ 0.95)."
  echo "- A ≥ 2× nats-ws: t1/nats-ws = $(ratio "$a1" "$an") ($(ge "$(ratio "$a1" "$an")" 2)), t2/nats-ws = $(ratio "$a2" "$an") ($(ge "$(ratio "$a2" "$an")" 2))."
  for c in $CCS; do
    c1=$(get "C$c" herald-t1 deliv_rate); c2=$(get "C$c" herald-t2 deliv_rate); cn=$(get "C$c" nats-ws deliv_rate)
    e1=$(get "C$c" herald-t1 deliv_per_cpu_s); e2=$(get "C$c" herald-t2 deliv_per_cpu_s)
    echo "- C$c rises with threads=2: t2/t1 = $(ratio "$c2" "$c1") ($(ge "$(ratio "$c2" "$c1")" 1.05) at ≥ 1.05);" \
         "ideally ≥ 1.5× nats-ws: t2/nats-ws = $(ratio "$c2" "$cn") ($(ge "$(ratio "$c2" "$cn")" 1.5))."
    echo "- C$c herald CPU %: t1 $(get "C$c" herald-t1 server_cpu_pct), t2 $(get "C$c" herald-t2 server_cpu_pct)" \
         "(> 100 % clearly: $(ge "$(get "C$c" herald-t2 server_cpu_pct)" 120) at ≥ 120 %);" \
         "deliveries per CPU-second t2/t1 = $(ratio "$e2" "$e1") (unchanged: $(ge "$(ratio "$e2" "$e1")" 0.9) at ≥ 0.9)."
  done
  echo
  for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "- NOTE: $n"; done
  echo
  echo "Raw results (wsload RESULT lines + server CPU; missing = neither delivered nor reported dropped):"
  echo
  echo '```'
  sed 's/^RESULT //' "$RAW"
  echo '```'
} >"$OUT"
cat "$OUT"
log "written $OUT (run dir $RUN)"
