#!/usr/bin/env bash
# Benchmark: verified GitHub-signed webhooks/s and p99 through herald (core
# and JetStream delivery) against Nchan's publish rate, in one run.
#   bench/webhooks.sh [seconds]   (default 10 per target)
# Needs: nats-server, nginx + libnginx-mod-nchan, wrk, cmake/ninja (apt).
# Starts everything on loopback, writes its configs to a temp directory,
# and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
CONNS=64
THREADS=4
TMP=$(mktemp -d /tmp/herald-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

for t in nats-server nginx wrk cmake; do
  command -v $t >/dev/null || { echo "missing $t (apt-get install nats-server nginx libnginx-mod-nchan wrk cmake ninja-build)" >&2; exit 1; }
done
NCHAN_SO=/usr/lib/nginx/modules/ngx_nchan_module.so
[ -f $NCHAN_SO ] || { echo "missing $NCHAN_SO (apt-get install libnginx-mod-nchan)" >&2; exit 1; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

echo "== build (release)" >&2
cmake -S "$ROOT" -B "$ROOT/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build-release" >/dev/null

NATS_PORT=$(free_port); HTTP_PORT=$(free_port); WS_PORT=$(free_port); NCHAN_PORT=$(free_port)

echo "== nats-server (JetStream, file storage)" >&2
nats-server -js -sd "$TMP/js" -a 127.0.0.1 -p "$NATS_PORT" >"$TMP/nats.log" 2>&1 &
PIDS+=($!)
wait_port "$NATS_PORT"
# Create the stream with a raw JetStream API request (no client needed).
python3 - "$NATS_PORT" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
f.readline()  # INFO
cfg = json.dumps({"name": "BENCH", "subjects": ["bench.js.>"], "storage": "file",
                  "max_bytes": 4 << 30, "duplicate_window": 120_000_000_000}).encode()
s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.bench 1\r\n'
          b"PUB $JS.API.STREAM.CREATE.BENCH _INBOX.bench %d\r\n%s\r\nPING\r\n" % (len(cfg), cfg))
while True:
    line = f.readline()
    if line.startswith(b"MSG"):
        reply = f.read(int(line.split()[-1]) + 2)
        assert b'"error"' not in reply, reply
        break
    if line.startswith(b"-ERR"):
        sys.exit(line.decode())
PY

echo "== herald" >&2
SECRET=bench-secret-0123456789
cat >"$TMP/herald.json" <<JSON
{"http": {"listen": "127.0.0.1:$HTTP_PORT"}, "ws": {"listen": "127.0.0.1:$WS_PORT"},
 "log": {"level": "warn"},
 "webhooks": {
   "core": {"verify": {"scheme": "github", "secret_env": "BENCH_SECRET"},
            "subject": "bench.core.{header:X-GitHub-Event}", "delivery": "core"},
   "js":   {"verify": {"scheme": "github", "secret_env": "BENCH_SECRET"},
            "subject": "bench.js.{header:X-GitHub-Event}", "delivery": "jetstream"}}}
JSON
BENCH_SECRET=$SECRET NATS_ADDR=nats://127.0.0.1:$NATS_PORT \
  "$ROOT/build-release/herald" --config "$TMP/herald.json" 2>"$TMP/herald.log" &
PIDS+=($!)
wait_port "$HTTP_PORT"
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.1; done

echo "== nginx + nchan" >&2
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<NGINX
load_module $NCHAN_SO;
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Nchan keeps published messages in shared memory until they expire; at
  # tens of thousands of publishes/s the 128 MB default runs out (507).
  nchan_shared_memory_size 1024m;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$NCHAN_PORT;
    location = /pub {
      allow 127.0.0.1; deny all;
      nchan_publisher;
      nchan_channel_id bench;
      nchan_message_buffer_length 16;
      nchan_message_timeout 5s;
    }
  }
}
NGINX
nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" &
PIDS+=($!)
wait_port "$NCHAN_PORT"

# A 1 KiB JSON body and its GitHub signature, computed once.
BODY=$(python3 -c 'import json;b=json.dumps({"action":"opened","pad":""});pad=1024-len(b);print(json.dumps({"action":"opened","pad":"x"*pad}),end="")')
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $2}')
cat >"$TMP/webhook.lua" <<LUA
-- Fixed body and precomputed signature; a unique X-GitHub-Delivery per
-- request so JetStream stores every event (no deduplication).
local body = [==[$BODY]==]
-- tid is a global set per thread by setup() (a local here would shadow it).
local n = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function request()
  n = n + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = "bench-" .. tid .. "-" .. n .. "-" .. os.time(),
    ["X-Hub-Signature-256"] = "sha256=$SIG",
  }, body)
end
LUA
cat >"$TMP/nchan.lua" <<LUA
local body = [==[$BODY]==]
function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA

# Sanity: each target accepts one request.
curl -fs -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$HTTP_PORT/v1/webhooks/core" \
  -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
  -H "X-Hub-Signature-256: sha256=$SIG" --data "$BODY" | grep -q 202
curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/v1/webhooks/js" \
  -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
  -H "X-Hub-Signature-256: sha256=$SIG" --data "$BODY"
curl -fs -o /dev/null "http://127.0.0.1:$NCHAN_PORT/pub" --data "$BODY"

run() { # name url script
  echo "== wrk $1 ($DUR s, $CONNS connections)" >&2
  wrk -t$THREADS -c$CONNS -d${DUR}s --latency -s "$3" "$2" >"$TMP/$1.out" 2>&1 || true
  local rps p99 bad
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/$1.out")
  p99=$(awk '$1=="99%" {print $2}' "$TMP/$1.out")
  bad=$(awk '/Non-2xx/ {print $NF}' "$TMP/$1.out"); bad=${bad:-0}
  printf '%s %s %s %s\n' "$1" "${rps:-0}" "${p99:-?}" "$bad" >>"$TMP/results"
}
: >"$TMP/results"
run herald-core "http://127.0.0.1:$HTTP_PORT/v1/webhooks/core" "$TMP/webhook.lua"
run herald-jetstream "http://127.0.0.1:$HTTP_PORT/v1/webhooks/js" "$TMP/webhook.lua"
run nchan-publish "http://127.0.0.1:$NCHAN_PORT/pub" "$TMP/nchan.lua"

METRICS=$(curl -fs "http://127.0.0.1:$HTTP_PORT/metrics")
STORED=$(awk '/^herald_webhooks_total\{source="js",outcome="accepted"\}/ {print $2}' <<<"$METRICS")
DUPS=$(awk '/^herald_webhooks_total\{source="js",outcome="duplicate"\}/ {print $2}' <<<"$METRICS")
echo
printf '%-18s %12s %10s %10s %12s\n' target "req/s" p99 non-2xx "vs nchan"
NCHAN_RPS=$(awk '$1=="nchan-publish" {print $2}' "$TMP/results")
while read -r name rps p99 bad; do
  ratio=$(python3 -c "print(f'{float($rps)/float($NCHAN_RPS):.2f}x' if float($NCHAN_RPS) else '-')")
  printf '%-18s %12s %10s %10s %12s\n' "$name" "$rps" "$p99" "$bad" "$ratio"
done <"$TMP/results"
echo "(herald jetstream: ${STORED:-?} stored, ${DUPS:-?} acknowledged as duplicates)"
echo "(1 KiB JSON bodies, $CONNS connections, $THREADS wrk threads, ${DUR}s per target, $(nproc) CPUs)"
