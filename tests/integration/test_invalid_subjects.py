"""Contract §3: a NATS message whose subject is not a valid subject (NATS
accepts any non-whitespace bytes, invalid UTF-8 included) is never
delivered, counted in herald_events_invalid_total, and the sessions are
unaffected — also through a subscription the deny list cannot touch (the
perms_deliver_all fast path)."""
import socket

from conftest import wait_for
from wsclient import ENV, call, config, connect, recv, run


def raw_publish(url, subjects):
    host, port = url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), 5) as s:
        s.recv(4096)  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        for subj in subjects:
            s.sendall(b"PUB " + subj + b" 3\r\n\"x\"\r\n")
        s.sendall(b"PING\r\n")
        buf = b""
        while b"PONG" not in buf:
            buf += s.recv(4096)


def test_invalid_subjects_are_never_delivered(make_herald, nats):
    h = make_herald(config(), env=ENV, nats_url=nats.url)

    async def go():
        async with await connect(h) as ws:  # anonymous: public.>
            await recv(ws)
            assert (await call(ws, {"type": "subscribe", "id": "1",
                                    "subject": "public.>"}))["type"] == "ok"
            raw_publish(nats.url, [b"public.\xff\xfe", b"public.\xc0\xaf", b"public.a\x7fb",
                                   b"public.ok"])
            m = await recv(ws)
            assert m["subject"] == "public.ok"  # the only valid one, and the session lives
            assert (await call(ws, {"type": "ping", "id": "p"}))["type"] == "pong"
    run(go())
    wait_for(lambda: "herald_events_invalid_total 3" in h.get("/metrics").body.decode(),
             what="invalid events counted")
