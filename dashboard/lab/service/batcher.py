"""The real-time batcher: PostgreSQL NOTIFY events -> one WebSocket frame per window.

A dedicated connection to the primary LISTENs on `items_changes` (NOTIFY is not
replicated, so it must be the node that takes the writes: after a failover the
connection follows the writable node).  Events that arrive within `batch_window_ms`
of the first one are sent to every subscriber of /realtime as ONE text frame holding
a JSON list.

Counting, chosen so that `1 - batcher_frames_total / batcher_messages_total` is the
WebSocket overhead reduction the dashboard shows:
- batcher_messages_total: events taken into a flush that had subscribers. Without
  batching each would have cost one frame per subscriber (messages x subscribers).
- batcher_frames_total: one per flush. It was sent to every subscriber, so the
  frames actually sent are frames x subscribers.
The subscriber count cancels out, so the ratio is exact while the subscriber set
is steady (and close when it changes). Events flushed while nobody subscribes are
dropped uncounted: they would have cost no frame either way.

A window of 0 ms turns batching off: every event goes out as a frame of its own,
what a fan-out without batching sends (the admin switch `batch_window_ms` sets it at
run time, so the frame-reduction target can be seen missed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

import asyncpg
from aiohttp import WSCloseCode, WSMsgType, web

from dashboard.lab.service import queries
from dashboard.lab.service.metrics import ServiceMetrics
from dashboard.redact import describe_error

log = logging.getLogger("lab.service.batcher")

MAX_PENDING = 10_000
MAX_SUBSCRIBERS = 100
SEND_TIMEOUT = 1.0
CONNECT_TIMEOUT = 2.0
KEEPALIVE_SECONDS = 5.0
MAX_BACKOFF = 5.0
# While no writable node is known (a failover), look again this often: no backoff, the
# gap is short and every event until the LISTEN is back is lost.
NO_WRITER_RETRY = 0.1


class RealtimeBatcher:
    def __init__(self, dsn: Callable[[], str | None], password: str | None, metrics: ServiceMetrics,
                 window_ms: int, name: str = "realtime") -> None:
        self.name = name
        self._dsn = dsn             # the writable node's DSN now, None while none is known
        self._password = password
        self._metrics = metrics
        self._window = window_ms / 1000
        self._pending: deque[str] = deque(maxlen=MAX_PENDING)
        self._dropped = 0
        self._wake = asyncio.Event()
        self._window_open = False
        self.subscribers: set[web.WebSocketResponse] = set()
        self.listening = False
        for metric in (metrics.batcher_messages, metrics.batcher_frames, metrics.batcher_flush):
            metric.labels(name)
        metrics.batcher_subscribers.labels(name).set(0)

    # -- events in ---------------------------------------------------------------

    def _on_notify(self, _conn, _pid, _channel, payload: str) -> None:
        if len(self._pending) == MAX_PENDING:
            self._dropped += 1
        self._pending.append(payload)
        if not self._window_open:
            self._window_open = True
            asyncio.get_running_loop().call_later(self._window, self._wake.set)

    async def listen(self) -> None:
        """Keep a LISTEN connection to the writable node; reconnect with backoff when it drops,
        and move when the writable node changes."""
        backoff = 0.5
        while True:
            dsn = self._dsn()
            if dsn is None:
                await asyncio.sleep(NO_WRITER_RETRY)
                continue
            conn = None
            try:
                conn = await asyncpg.connect(dsn, password=self._password, timeout=CONNECT_TIMEOUT)
                await conn.add_listener(queries.NOTIFY_CHANNEL, self._on_notify)
                self.listening, backoff = True, 0.5
                log.info("listening on %s", queries.NOTIFY_CHANNEL)
                await self._keep_alive(conn, dsn)
                continue        # the writable node moved: follow it at once
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listen connection lost (%s); events until reconnect are lost; retry in %.1fs",
                            describe_error(exc, 100), backoff)
            finally:
                self.listening = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _keep_alive(self, conn: asyncpg.Connection, dsn: str) -> None:
        """Return when the writable node is no longer the one `conn` is on; raise when it drops."""
        waited = 0.0
        while not conn.is_closed() and self._dsn() == dsn:
            await asyncio.sleep(NO_WRITER_RETRY)
            waited += NO_WRITER_RETRY
            if waited >= KEEPALIVE_SECONDS:
                waited = 0.0
                # A primary that vanished without a FIN is only noticed by talking to it.
                await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT)
        if conn.is_closed():
            raise ConnectionResetError("LISTEN connection closed")

    # -- frames out ----------------------------------------------------------------

    async def flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Events arriving while this flush sends open the next window.
            self._window_open = False
            batch = list(self._pending)
            self._pending.clear()
            if self._dropped:
                log.warning("batcher %s dropped %d events (queue full)", self.name, self._dropped)
                self._dropped = 0
            await self.flush(batch)

    def set_window(self, window_ms: int) -> None:
        """The batching window from the next event on; 0 = no batching."""
        self._window = window_ms / 1000

    async def flush(self, batch: list[str]) -> None:
        subscribers = list(self.subscribers)
        if not batch or not subscribers:
            return
        frames = [batch] if self._window else [[event] for event in batch]
        for events in frames:
            await self._send_frame(subscribers, events)

    async def _send_frame(self, subscribers: list[web.WebSocketResponse], events: list[str]) -> None:
        frame = "[" + ",".join(events) + "]"
        started = time.perf_counter()
        await asyncio.gather(*(self._send(ws, frame) for ws in subscribers))
        self._metrics.batcher_flush.labels(self.name).observe(time.perf_counter() - started)
        self._metrics.batcher_messages.labels(self.name).inc(len(events))
        self._metrics.batcher_frames.labels(self.name).inc()

    async def _send(self, ws: web.WebSocketResponse, frame: str) -> None:
        try:
            await asyncio.wait_for(ws.send_str(frame), SEND_TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError, RuntimeError):
            # A subscriber that cannot keep up is dropped rather than buffered without bound.
            self._remove(ws)
            try:
                await asyncio.wait_for(ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow"),
                                       SEND_TIMEOUT)
            except (ConnectionError, asyncio.TimeoutError, RuntimeError):
                pass

    # -- subscribers -----------------------------------------------------------------

    def _remove(self, ws: web.WebSocketResponse) -> None:
        self.subscribers.discard(ws)
        self._metrics.batcher_subscribers.labels(self.name).set(len(self.subscribers))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return web.json_response({"error": "too many subscribers"}, status=503)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        self.subscribers.add(ws)
        self._metrics.batcher_subscribers.labels(self.name).set(len(self.subscribers))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._remove(ws)
        return ws

    async def close_subscribers(self) -> None:
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down")
                               for ws in list(self.subscribers)), return_exceptions=True)

    def state(self) -> dict:
        return {"listening": self.listening, "subscribers": len(self.subscribers),
                "pending": len(self._pending), "window_ms": round(self._window * 1000)}
