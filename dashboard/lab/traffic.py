"""The lab's traffic generator: `python -m dashboard.lab.traffic SETTINGS.json`.

Keeps the sample service busy with a realistic mix at a modest, steady rate (a
2-core machine also runs PostgreSQL, Redis and the dashboard): mostly item reads
with Zipf-skewed keys over the 1000 seeded items -- hot keys are what make a cache
worth having -- plus some single-item writes, quote calls, edge function calls, and
`subscribers` WebSocket clients on /realtime.  Arrivals are open-loop (Poisson at
`rate`/s) with a cap on requests in flight, so a slow service sheds generated load
instead of queueing it.

A price feed ticks every `feed_interval_s` and sets `feed_size` prices in one
request (one transaction) over a catalogue of 10000 ids, most of which nobody is
reading.  It is the change stream a real-time fan-out exists for: without it the
only changes would be ~2 single writes a second, each alone in its batch window,
and batching would have nothing to batch.

It measures what only a client can: response times of item reads as the caller
sees them, split by the service's X-Cache header, exported on
127.0.0.1:`metrics_port`/metrics as http_request_duration_seconds{route="items",
cached="true"|"false"} -- what the "response time improvement with cache" KPI reads.
Settings: {"service_url", "metrics_port", "rate" (40), "subscribers" (3),
"write_share" (0.05), "feed_size" (20), "feed_interval_s" (1.0)}.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dashboard.lab.service.logs import run_process

ITEM_COUNT = 1000
CATALOGUE = 10_000
ZIPF_EXPONENT = 1.1
QUOTE_SHARE = 0.04
EDGE_SHARE = 0.04
MAX_IN_FLIGHT = 64
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=1.0)
MAX_BACKOFF = 5.0
# 0.5 ms to 1 s, fine where cached and uncached reads differ.
BUCKETS = (0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003, 0.004, 0.005,
           0.006, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class TrafficSettings:
    service_url: str
    metrics_port: int
    rate: float = 40.0
    subscribers: int = 3
    write_share: float = 0.05
    feed_size: int = 20
    feed_interval_s: float = 1.0

    @classmethod
    def load(cls, path: str) -> "TrafficSettings":
        data = json.loads(Path(path).read_text())
        settings = cls(service_url=str(data["service_url"]).rstrip("/"), metrics_port=int(data["metrics_port"]),
                       rate=float(data.get("rate", 40.0)), subscribers=int(data.get("subscribers", 3)),
                       write_share=float(data.get("write_share", 0.05)),
                       feed_size=int(data.get("feed_size", 20)),
                       feed_interval_s=float(data.get("feed_interval_s", 1.0)))
        if not 0 < settings.rate <= 1000 or not 0 <= settings.subscribers <= 50 \
                or not 0 <= settings.write_share <= 0.5 or not 0 <= settings.feed_size <= 100 \
                or not 0.1 <= settings.feed_interval_s <= 60:
            raise ValueError("rate must be in (0, 1000], subscribers in 0..50, write_share in 0..0.5, "
                             "feed_size in 0..100, feed_interval_s in 0.1..60")
        return settings


class TrafficMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.item_reads = Histogram("http_request_duration_seconds", "Client-side item read time by X-Cache",
                                    ["route", "cached"], buckets=BUCKETS, registry=r)
        self.requests = Counter("traffic_requests", "Generated requests by kind and outcome (ok|error|skipped)",
                                ["kind", "outcome"], registry=r)
        self.ws_frames = Counter("traffic_ws_frames", "WebSocket frames received on /realtime", registry=r)
        self.ws_events = Counter("traffic_ws_events", "Change events received inside those frames", registry=r)


WARM_KEYS = 200


class ZipfKeys:
    """Item ids 1..n drawn with P(k) proportional to 1/k^s: a few keys take most reads."""

    def __init__(self, n: int = ITEM_COUNT, s: float = ZIPF_EXPONENT) -> None:
        self._cumulative = list(itertools.accumulate(1 / k ** s for k in range(1, n + 1)))
        # Hot keys are scattered over the id space rather than all being 1, 2, 3.
        self._ids = random.Random(7).sample(range(1, n + 1), n)

    def hottest(self, count: int) -> list[int]:
        return self._ids[:count]

    def draw(self) -> int:
        x = random.random() * self._cumulative[-1]
        return self._ids[min(bisect.bisect_left(self._cumulative, x), len(self._ids) - 1)]


class Traffic:
    def __init__(self, settings: TrafficSettings, metrics: TrafficMetrics, log) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.keys = ZipfKeys()
        self.in_flight = 0
        self.stopping = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None

    def pick(self) -> tuple[str, Callable[[], Awaitable[bool]]]:
        x = random.random()
        s = self.settings
        if x < s.write_share:
            return "write", self.write
        if x < s.write_share + QUOTE_SHARE:
            return "quote", self.quote
        if x < s.write_share + QUOTE_SHARE + EDGE_SHARE:
            return "edge", self.edge
        return "read", self.read

    async def read(self) -> bool:
        started = time.perf_counter()
        async with self.session.get(f"{self.settings.service_url}/items/{self.keys.draw()}") as resp:
            await resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                return resp.status < 500
            cached = "false" if resp.headers.get("X-Cache", "MISS") == "MISS" else "true"
            self.metrics.item_reads.labels("items", cached).observe(elapsed)
            return True

    async def write(self) -> bool:
        item_id = random.randint(1, ITEM_COUNT)
        body = {"price": round(random.uniform(1, 100), 2)}
        async with self.session.put(f"{self.settings.service_url}/items/{item_id}", json=body) as resp:
            await resp.read()
            return resp.status < 500

    async def quote(self) -> bool:
        async with self.session.get(f"{self.settings.service_url}/quote") as resp:
            await resp.read()
            return resp.status < 500

    async def edge(self) -> bool:
        url = f"{self.settings.service_url}/functions/v1/"
        if random.random() < 0.75:
            request = self.session.post(url + "hello", json={"name": "lab"})
        else:
            request = self.session.get(url + "resize", params={"width": "48", "height": "48"})
        async with request as resp:
            await resp.read()
            return resp.status < 500

    async def feed_tick(self) -> bool:
        ids = random.sample(range(1, CATALOGUE + 1), self.settings.feed_size)
        prices = {str(i): round(random.uniform(1, 100), 2) for i in ids}
        async with self.session.post(f"{self.settings.service_url}/items/prices", json={"prices": prices}) as resp:
            await resp.read()
            return resp.status < 500

    async def feed(self) -> None:
        """The price feed: one bulk update every feed_interval_s, skipped when the last is still running."""
        running: asyncio.Task | None = None
        while self.settings.feed_size:
            try:
                await asyncio.wait_for(self.stopping.wait(), self.settings.feed_interval_s)
                return
            except asyncio.TimeoutError:
                pass
            if running is not None and not running.done():
                self.metrics.requests.labels("feed", "skipped").inc()
                continue
            running = asyncio.create_task(self._one("feed", self.feed_tick))

    async def _one(self, kind: str, call: Callable[[], Awaitable[bool]]) -> None:
        self.in_flight += 1
        try:
            ok = await call()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        finally:
            self.in_flight -= 1
        self.metrics.requests.labels(kind, "ok" if ok else "error").inc()

    async def warm(self, count: int = WARM_KEYS) -> None:
        """Read the hottest keys once before the steady mix, as a deploy warms its cache:
        the lab should show a steady-state hit rate within seconds, not minutes."""
        gate = asyncio.Semaphore(8)

        async def one(item: int) -> None:
            async with gate:
                try:
                    async with self.session.get(f"{self.settings.service_url}/items/{item}") as resp:
                        await resp.read()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass

        await asyncio.gather(*(one(item) for item in self.keys.hottest(count)))

    async def generate(self) -> None:
        """Poisson arrivals at `rate`/s until stopped; never more than MAX_IN_FLIGHT at once."""
        tasks: set[asyncio.Task] = set()
        next_at = time.monotonic()
        while not self.stopping.is_set():
            next_at += random.expovariate(self.settings.rate)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # fell far behind (suspended?): do not burst to catch up
            kind, call = self.pick()
            if self.in_flight >= MAX_IN_FLIGHT:
                self.metrics.requests.labels(kind, "skipped").inc()
                continue
            task = asyncio.create_task(self._one(kind, call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def subscribe(self, number: int) -> None:
        """One /realtime client: count frames and events; reconnect with backoff."""
        backoff = 0.5
        url = f"{self.settings.service_url}/realtime"
        while not self.stopping.is_set():
            try:
                async with self.session.ws_connect(url, heartbeat=20.0, timeout=aiohttp.ClientWSTimeout(
                        ws_close=2.0)) as ws:
                    backoff = 0.5
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self.metrics.ws_frames.inc()
                            self.metrics.ws_events.inc(len(json.loads(msg.data)))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self.log.info("subscriber %d: %s; reconnecting in %.1fs", number, type(exc).__name__, backoff)
            if not self.stopping.is_set():
                try:
                    await asyncio.wait_for(self.stopping.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF)


async def serve_metrics(metrics: TrafficMetrics, port: int) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handler, allow_head=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run(settings: TrafficSettings, log) -> None:
    metrics = TrafficMetrics()
    traffic = Traffic(settings, metrics, log)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, traffic.stopping.set)
    runner = await serve_metrics(metrics, settings.metrics_port)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT + settings.subscribers)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        traffic.session = session
        background = [asyncio.create_task(traffic.subscribe(n)) for n in range(settings.subscribers)]
        background.append(asyncio.create_task(traffic.feed()))
        log.info("sending %.0f requests/s to %s with %d subscribers and a %d-price feed every %.1fs; "
                 "metrics on 127.0.0.1:%d", settings.rate, settings.service_url, settings.subscribers,
                 settings.feed_size, settings.feed_interval_s, settings.metrics_port)
        await traffic.warm()
        await traffic.generate()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    await runner.cleanup()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    prometheus_client.disable_created_metrics()
    return run_process("traffic", argv, TrafficSettings.load, run, run_errors=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
