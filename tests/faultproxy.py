"""A TCP fault proxy for the network fault matrix (RELIABILITY.md cases 7-12).

In the spirit of Toxiproxy, but in-process and with no daemon to install: a listener on
a free loopback port forwards to a real upstream (PostgreSQL, Redis, Prometheus, an
HTTP server), and toxics added or removed at run time break the traffic the way a
network does. It runs its own event loop in its own thread, because the engine under
test runs its own loop and a fault must not wait for the code it is hurting.

Toxics act on every open connection from the next chunk of data on, so a fault can
land on a pooled connection mid-stream, as it would in production. Each toxic has a
`toxicity`, the probability that it acts on a given chunk: rolled per chunk rather
than per connection (Toxiproxy's choice), because the probes keep their connection
across polls and a per-connection roll would never flap a healthy pooled connection.

    with FaultProxy(upstream_port) as proxy:
        proxy.add(Latency(ms=1000))          # -> a name, for proxy.remove(name)
        proxy.add(Down())                    # closes the listener: connection refused

`stop()` closes the listener and every connection and joins the thread: a test that
ends leaves no socket and no thread behind.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Awaitable, Callable

CHUNK = 64 * 1024
UPSTREAM, DOWNSTREAM = "upstream", "downstream"    # client -> server, server -> client
Write = Callable[[bytes], Awaitable[None]]


class _Reset(Exception):
    """Raised inside a pipe: end the connection with an RST (SO_LINGER 0)."""


class _Close(Exception):
    """Raised inside a pipe: end the connection with an orderly close (FIN)."""


@dataclass
class Toxic:
    """One fault. `stream` says which direction it acts on; `toxicity` how often (per chunk)."""

    stream: str = DOWNSTREAM
    toxicity: float = 1.0

    async def pipe(self, data: bytes, seen: int, write: Write) -> None:
        """Pass `data` on through `write`, or not. `seen`: bytes this toxic has already
        passed on this connection (for the byte-counting toxics)."""
        await write(data)


@dataclass
class Latency(Toxic):
    """Delay each chunk by `ms` +/- `jitter` milliseconds."""

    ms: float = 1000.0
    jitter: float = 0.0

    async def pipe(self, data, seen, write):
        await asyncio.sleep(max(0.0, self.ms + random.uniform(-self.jitter, self.jitter)) / 1000.0)
        await write(data)


@dataclass
class Blackhole(Toxic):
    """Accept and read, never answer, never close: the client has to give up by itself.
    Acts on both directions (a dead route drops everything)."""

    stream: str = "both"

    async def pipe(self, data, seen, write):
        return None


@dataclass
class Reset(Toxic):
    """Pass `after_bytes` bytes on, then reset the connection (RST, not FIN)."""

    after_bytes: int = 0

    async def pipe(self, data, seen, write):
        room = max(0, self.after_bytes - seen)
        if len(data) > room or room == 0:
            if room:
                await write(data[:room])
            raise _Reset()
        await write(data)


@dataclass
class Slicer(Toxic):
    """Cut each chunk into `size`-byte segments, `delay_ms` apart."""

    size: int = 1
    delay_ms: float = 10.0

    async def pipe(self, data, seen, write):
        for start in range(0, len(data), max(1, self.size)):
            if start:
                await asyncio.sleep(self.delay_ms / 1000.0)
            await write(data[start:start + self.size])


@dataclass
class LimitData(Toxic):
    """Pass `limit` bytes on, then close the connection in good order (a truncated body)."""

    limit: int = 0

    async def pipe(self, data, seen, write):
        room = max(0, self.limit - seen)
        if room:
            await write(data[:room])
        if len(data) >= room:
            raise _Close()


@dataclass
class Bandwidth(Toxic):
    """At most `kb_per_s` kilobytes per second, in tenth-of-a-second slices."""

    kb_per_s: float = 1.0

    async def pipe(self, data, seen, write):
        rate = max(1.0, self.kb_per_s * 1024.0)
        step = max(1, int(rate / 10))
        for start in range(0, len(data), step):
            piece = data[start:start + step]
            await write(piece)
            await asyncio.sleep(len(piece) / rate)


@dataclass
class Down(Toxic):
    """The upstream is gone: the listener closes (connection refused) and every open
    connection is cut. Removing it listens again on the same port. Acts at once, whole:
    its toxicity is not used."""

    stream: str = "both"


@dataclass(eq=False)
class _Connection:
    """One client connection and its upstream; `seen` counts bytes per toxic name."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    closed: bool = False

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if reset and sock is not None:
                # SO_LINGER 0: close() sends RST and drops unsent data, as a reset peer does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if reset:
                writer.transport.abort()
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    """listen (127.0.0.1, free port) -> upstream, with toxics; see the module docstring."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", seed: int | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self.peak_connections = 0       # most client connections open at once (reset_peak())
        self._rng = random.Random(seed)
        self._toxics: dict[str, Toxic] = {}
        self._names = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop, join the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def add(self, toxic: Toxic, name: str | None = None) -> str:
        """Start a toxic on every connection, open and future; returns its name."""
        name = name or f"{type(toxic).__name__.lower()}-{next(self._names)}"
        self._call(self._add(name, toxic))
        return name

    def remove(self, name: str) -> None:
        self._call(self._remove(name))

    def clear(self) -> None:
        for name in list(self._toxics):
            self.remove(name)

    def open_connections(self) -> int:
        """Client connections the proxy holds open now."""
        return self._call(self._count())

    def reset_peak(self) -> None:
        self.peak_connections = 0

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, coro, timeout: float = 5.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ------------------------------------------------------------------ on the proxy's loop

    async def _count(self) -> int:
        return sum(1 for c in self._connections if not c.closed)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port or 0,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _add(self, name: str, toxic: Toxic) -> None:
        self._toxics[name] = toxic
        if isinstance(toxic, Down):
            await self._unlisten()
            self._close_all()

    async def _remove(self, name: str) -> None:
        toxic = self._toxics.pop(name, None)
        if isinstance(toxic, Down) and not any(isinstance(t, Down) for t in self._toxics.values()):
            await self._listen()

    async def _shutdown(self) -> None:
        await self._unlisten()
        self._close_all()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        # A transport closes its socket one loop iteration after close(): let that happen
        # before the loop stops, or the socket outlives the proxy.
        for _ in range(3):
            await asyncio.sleep(0)

    def _close_all(self, reset: bool = False) -> None:
        for conn in list(self._connections):
            conn.close(reset)
        self._connections.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        conn = _Connection(writer)
        self._connections.add(conn)
        self.peak_connections = max(self.peak_connections, sum(1 for c in self._connections if not c.closed))
        conn.tasks.append(asyncio.current_task())
        try:
            if self._blackholed():
                await self._drain_forever(reader)
                return
            up_reader, conn.upstream = await asyncio.open_connection(*self.upstream)
            pumps = [asyncio.ensure_future(self._pump(conn, reader, conn.upstream, UPSTREAM)),
                     asyncio.ensure_future(self._pump(conn, up_reader, writer, DOWNSTREAM))]
            conn.tasks.extend(pumps)
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            conn.close()
            self._connections.discard(conn)

    def _blackholed(self) -> bool:
        return any(isinstance(t, Blackhole) for t in self._toxics.values())

    async def _drain_forever(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(CHUNK):
            pass

    async def _pump(self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        """Copy one direction chunk by chunk through the toxics active at that chunk."""
        try:
            while data := await reader.read(CHUNK):
                await self._through(conn, direction, data, writer)
        except _Reset:
            conn.close(reset=True)
        except (_Close, OSError):
            conn.close()

    async def _through(self, conn: _Connection, direction: str, data: bytes, writer: asyncio.StreamWriter) -> None:
        toxics = [(n, t) for n, t in self._toxics.items()
                  if t.stream in (direction, "both") and not isinstance(t, Down)]

        async def deliver(chunk: bytes) -> None:
            writer.write(chunk)
            await writer.drain()

        stage: Write = deliver
        for name, toxic in reversed(toxics):
            stage = self._stage(conn, name, toxic, stage)
        await stage(data)

    def _stage(self, conn: _Connection, name: str, toxic: Toxic, write: Write) -> Write:
        async def counted(chunk: bytes) -> None:
            conn.seen[name] = conn.seen.get(name, 0) + len(chunk)
            await write(chunk)

        async def stage(chunk: bytes) -> None:
            if self._rng.random() >= toxic.toxicity:
                await write(chunk)
                return
            await toxic.pipe(chunk, conn.seen.get(name, 0), counted)
        return stage
