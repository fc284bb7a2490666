"""Helpers for the WebSocket suites: token minting (PyJWT, an independent
JOSE implementation), a websockets-based client, NATS via nats-py, and a raw
socket client for peers that misbehave on purpose (never read, never pong)."""
import asyncio
import base64
import json
import os
import socket
import struct
import time

import jwt as pyjwt
import nats
import websockets
from websockets.asyncio.client import connect as ws_connect

from conftest import SLACK

SECRET = "integration-secret-0123456789abcdef0123"

ROLES = {
    "anonymous": {"subscribe": {"allow": ["public.>"]}},
    "user": {
        "subscribe": {"allow": ["deployments.{sub}.>", "users.{sub}.>", "public.>"],
                      "deny": ["deployments.*.internal", "deployments.*.internal.>"]},
        "publish": {"allow": ["ui.{sub}.>"]},
    },
    "viewer": {"subscribe": {"allow": ["public.>"]}},
    "operator": {"subscribe": {"allow": [">"]}, "publish": {"allow": [">"]}},
}


def config(**over):
    cfg = {"auth": {"jwt": {"keys": [{"alg": "HS256", "secret_env": "HERALD_TEST_JWT"}],
                            "leeway_s": 0}},
           "permissions": {"roles": dict(ROLES)}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


ENV = {"HERALD_TEST_JWT": SECRET}


def token(sub="u42", roles=("user",), exp_in=3600, secret=SECRET, **claims):
    body = {"exp": int(time.time()) + exp_in, **claims}
    if sub is not None:
        body["sub"] = sub
    if roles is not None:
        body["roles"] = list(roles)
    return pyjwt.encode(body, secret, algorithm="HS256")


async def connect(h, tok=None, headers=None, subprotocols=("herald.v1",), path="/v1/ws",
                  query=""):
    hdrs = dict(headers or {})
    if tok:
        hdrs["Authorization"] = f"Bearer {tok}"
    url = f"ws://127.0.0.1:{h.ws_port}{path}{query}"
    return await ws_connect(url, subprotocols=list(subprotocols) or None,
                                    additional_headers=hdrs, max_size=None,
                                    open_timeout=10 * SLACK, ping_interval=None)


async def recv(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout * SLACK))


async def call(ws, obj, timeout=5):
    """Send a request and return the reply carrying its id (events skipped)."""
    await ws.send(json.dumps(obj))
    while True:
        m = await recv(ws, timeout)
        if m.get("id") == obj.get("id") and m["type"] != "event":
            return m


async def closed_with(ws, timeout=10):
    """Wait for the close; returns (code, frames received before it)."""
    frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout * SLACK)))
    except websockets.ConnectionClosed as e:
        return (e.rcvd.code if e.rcvd else None), frames


async def nats_connect(url):
    return await nats.connect(url, allow_reconnect=False)


def run(coro):
    return asyncio.run(coro)


class RawClient:
    """A minimal WebSocket client over a plain socket: it reads only when
    told to, and never answers pings on its own."""

    def __init__(self, port, path="/v1/ws", rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10 * SLACK)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])

    def send_text(self, text, opcode=1):
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def read_frame(self):
        """Returns (opcode, payload bytes)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def read_until_close(self, limit=1_000_000):
        """Read frames until a close frame; returns (code, text frames)."""
        texts = []
        for _ in range(limit):
            op, p = self.read_frame()
            if op == 8:
                return (struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None), texts
            if op == 1:
                texts.append(json.loads(p))
        raise AssertionError("no close frame")

    def close(self):
        self.s.close()
