#!/usr/bin/env bash
# start-nats.sh DIR — nats-server with JetStream and a plain WebSocket listener,
# loopback only. Writes DIR/nats.conf, DIR/nats.pid, DIR/nats.log; prints the PID.
# Ports: NATS_PORT (24222), NATS_WS_PORT (24280).
set -euo pipefail
dir=${1:?usage: start-nats.sh DIR}
mkdir -p "$dir/js"
port=${NATS_PORT:-24222} wsport=${NATS_WS_PORT:-24280}
cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
max_payload: 1MB
jetstream { store_dir: "$dir/js" }
websocket {
  host: 127.0.0.1
  port: $wsport
  no_tls: true
}
CONF
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
pid=$!
echo $pid >"$dir/nats.pid"
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$wsport) 2>/dev/null; then
    echo $pid; exit 0
  fi
  kill -0 $pid 2>/dev/null || { echo "nats-server died:" >&2; cat "$dir/nats.log" >&2; exit 1; }
  sleep 0.1
done
echo "nats-server did not come up" >&2; kill $pid; exit 1
