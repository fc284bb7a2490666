"""A synchronous wrapper around nats-py for the tests: an independent NATS
client (its own event loop thread) that subscribes, inspects headers and
exact payload bytes, and manages JetStream streams."""
import asyncio
import queue
import threading

import nats
from nats.js.errors import NotFoundError


class NatsClient:
    def __init__(self, url):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = self.run(nats.connect(url, max_reconnect_attempts=0,
                                        allow_reconnect=False))
        self.js = self.nc.jetstream()
        self.closed = False

    def run(self, coro, timeout=15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def subscribe(self, subject):
        """Returns a queue.Queue receiving every message on subject."""
        q = queue.Queue()

        async def cb(msg):
            q.put(msg)

        async def sub():
            await self.nc.subscribe(subject, cb=cb)
            await self.nc.flush()
        self.run(sub())
        return q

    def add_stream(self, name, subjects, **kw):
        return self.run(self.js.add_stream(name=name, subjects=subjects, **kw))

    def stream_messages(self, name):
        """Every message stored in the stream, in sequence order."""
        async def collect():
            info = await self.js.stream_info(name)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    out.append(await self.js.get_msg(name, seq))
                except NotFoundError:
                    pass
            return out
        return self.run(collect(), timeout=60)

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.run(self.nc.close(), timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
