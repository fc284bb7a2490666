#!/usr/bin/env bash
# start-nchan.sh DIR — Debian nginx + libnginx-mod-nchan on 127.0.0.1:NCHAN_PORT
# (24090): websocket subscribers at /sub/<channel>, HTTP publisher at
# /pub/<channel>. Config, pid, logs and temp files in DIR; prints the PIDs
# (master,worker...) comma-separated. NCHAN_WORKERS (1) worker processes.
set -euo pipefail
dir=${1:?usage: start-nchan.sh DIR}
mkdir -p "$dir/tmp"
if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
  else sudo apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null; fi
fi
port=${NCHAN_PORT:-24090}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n); [ "$nofile" = unlimited ] && nofile=65536
cat >"$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
daemon off;
master_process on;
user root;
worker_processes ${NCHAN_WORKERS:-1};
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((nofile - 100)); use epoll; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 100000000;
  nchan_max_reserved_memory 256M;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location ~ ^/sub/(\w+)$ {
      nchan_subscriber websocket;
      nchan_channel_id \$1;
    }
    location ~ ^/pub/(\w+)$ {
      nchan_publisher;
      nchan_channel_id \$1;
      nchan_message_buffer_length 16;
      nchan_message_timeout 30s;
    }
  }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 &
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && [ -s "$dir/nginx.pid" ]; then
    master=$(cat "$dir/nginx.pid")
    workers=$(pgrep -P "$master" | paste -sd, -)
    echo "$master${workers:+,$workers}"; exit 0
  fi
  sleep 0.1
done
echo "nginx did not come up" >&2; cat "$dir/nginx.out" "$dir/error.log" >&2 2>/dev/null; exit 1
