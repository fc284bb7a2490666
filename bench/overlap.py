#!/usr/bin/env python3
"""overlap.py — one measurement for overlap.sh (issue 17, defect 2): herald's
CPU seconds (utime+stime from /proc/PID/stat) and peak RSS (VmHWM) while
EVENTS events are published to one subject that

  - an ordinary client (one subscription, reads everything) receives, and
  - an attacker (anonymous, SUBS overlapping patterns that all match that
    subject, a 4 KiB receive buffer, never reads) receives SUBS times each.

Stdlib only (raw sockets for the WebSocket and NATS protocols). Prints one
line of key=value pairs. Usage:
  overlap.py PID WS_PORT HTTP_PORT NATS_PORT EVENTS SUBS   (SUBS=0: no attacker)
"""
import base64
import itertools
import json
import os
import socket
import struct
import sys
import time
import urllib.request

SUBJECT_TOKENS = ["a", "b", "c", "d", "e", "f", "g"]
SUBJECT = "bench." + ".".join(SUBJECT_TOKENS)


def patterns(n):
    """n distinct patterns, each matching SUBJECT: every position a literal
    or `*`, optionally cut short by `>`."""
    out = []
    k = len(SUBJECT_TOKENS)
    for cut in range(k, 0, -1):  # cut == k: no `>`
        for stars in itertools.product([False, True], repeat=cut):
            toks = ["*" if s else t for s, t in zip(stars, SUBJECT_TOKENS)]
            if cut < k:
                toks.append(">")
            p = "bench." + ".".join(toks)
            if p != SUBJECT:
                out.append(p)
            if len(out) == n:
                return out
    raise SystemExit(f"cannot make {n} patterns")


class Ws:
    def __init__(self, port, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(30)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        self.buf = self.buf.split(b"\r\n\r\n", 1)[1]

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def frame(self):
        self._need(2)
        n, off = self.buf[1] & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        p = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return json.loads(p)

    def subscribe(self, pats):
        for i, p in enumerate(pats):
            self.send({"type": "subscribe", "id": str(i), "subject": p})
        oks = 0
        while oks < len(pats):
            m = self.frame()
            if m.get("type") == "error":
                raise SystemExit(f"subscribe refused: {m}")
            oks += m.get("type") == "ok"


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def metric(http_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def main():
    pid, ws_port, http_port, nats_port, events, subs = map(int, sys.argv[1:7])
    reader = Ws(ws_port)
    reader.frame()  # ready
    reader.subscribe([SUBJECT])
    attacker = None
    if subs:
        attacker = Ws(ws_port, rcvbuf=4096)
        attacker.frame()
        attacker.subscribe(patterns(subs))
    time.sleep(0.5)
    nats = socket.create_connection(("127.0.0.1", nats_port))
    nats.recv(4096)  # INFO
    nats.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    cpu0 = cpu_s(pid)
    t0 = time.monotonic()
    batch = []
    for i in range(events):
        body = json.dumps({"n": i, "pad": "x" * 100}).encode()
        batch.append(b"PUB %s %d\r\n%s\r\n" % (SUBJECT.encode(), len(body), body))
    nats.sendall(b"".join(batch) + b"PING\r\n")
    got = 0
    while got < events:
        m = reader.frame()
        if m.get("type") == "event":
            got += 1
        elif m.get("type") == "dropped":
            got += m["count"]
    # herald has passed every copy on once its delivered + dropped counters settle
    last, still = None, 0
    while still < 3:
        cur = (metric(http_port, "herald_events_delivered_total"),
               metric(http_port, "herald_events_dropped_total"))
        still = still + 1 if cur == last else 0
        last = cur
        time.sleep(0.2)
    cpu = cpu_s(pid) - cpu0
    wall = time.monotonic() - t0
    print(f"events={events} subs={subs} reader_got={got} herald_cpu_s={cpu:.2f} "
          f"wall_s={wall:.2f} peak_rss_kib={hwm_kib(pid)} "
          f"delivered={int(last[0])} dropped={int(last[1])} "
          f"encoded={int(metric(http_port, 'herald_frames_encoded_total'))}")
    nats.close()
    reader.s.close()
    if attacker:
        attacker.s.close()


if __name__ == "__main__":
    main()
