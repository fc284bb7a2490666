# bench/lib.sh — what every bench script starts with (sourced, not run):
#   bench_init NAME RESULT_PREFIX TOOL...
# raises the fd limit, builds the named C tools (Makefile here), makes the
# run directory ($RUN, raw results in $RAW) and the result path ($OUT under
# bench/results/), and installs cleanup of every pid added to PIDS on exit.
# Also: log, note (collected in NOTES for the result file), cpu_ticks.
# Expects BENCH (this directory) to be set.

bench_init() {
  BENCH_NAME=$1
  local prefix=$2
  shift 2
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if [ $# -gt 0 ]; then
    make -s -C "$BENCH" "$@" >/dev/null || { echo "build of bench tools failed: $*" >&2; exit 1; }
  fi
  RUN=$(mktemp -d "/tmp/$BENCH_NAME.XXXXXX")
  STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
  mkdir -p "$BENCH/results"
  OUT="$BENCH/results/$prefix$STAMP.md"
  RAW="$RUN/results.txt"
  : >"$RAW"
  PIDS=()
  NOTES=()
  trap 'cleanup; exit 130' INT TERM
  trap cleanup EXIT
}

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
note() { NOTES+=("$*"); log "NOTE: $*"; }

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
  PIDS=()
}

cpu_ticks() { # sum utime+stime of comma-separated pids
  local t=0 p
  for p in ${1//,/ }; do
    [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat)))
  done
  echo $t
}
