"""Benchmark: the cost of ONE engine poll round for 1, 10, 100 and 1000 targets.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/poll_round.py            # N = 1, 10, 100, 1000
    .venv/bin/python tests/bench/poll_round.py --quick    # stops at N = 100

Every target is simulated on loopback against real servers started here and stopped
by PID at the end: one PostgreSQL streaming replica (N replica targets all point at
it), one Redis (N cache targets), and one aiohttp service in its own process serving a
scaledash-convention /metrics exposition (N scrape sources) and edge functions under
/functions/v1/<name> (N edge targets). `mixed` splits N round-robin over the four.

For each N and kind the engine (`Engine(config).poll_round()`) is timed: `setup` is
config validation + `Engine()` (probe and client construction), `cold` is the first
round (every connection opened), then 5 warm rounds give p50 / max wall, p50 CPU
(`time.process_time()` of this process: the servers run in other processes) and CPU
per target; `snap` is the CPU of one `snapshot()` afterwards. Under each engine row,
the bare drivers doing the same I/O (the peers of DESIGN.md "Costs measured on this
kind of machine") are timed the same way, so the engine's overhead is visible.

The engine runs with interval 60 s / timeout 30 s so that no probe is cut off by its
deadline: this measures cost, not the default 800 ms deadline (rows whose round is
slower than that are flagged).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = (1, 10, 100, 1000)
QUICK_SIZES = (1, 10, 100)
KINDS = ("postgres", "redis", "scrape", "edge", "mixed")
SINGLE_KINDS = ("postgres", "redis", "scrape", "edge")
ROUNDS = 5
HTTPX_SHARED_MAX = 100      # the shared-client httpx peer is O(N^2) per round (see the note it prints)
DEFAULT_TIMEOUT_MS = 800.0   # the engine's default per-probe deadline (interval 1 s * 0.8)
PG_PASSWORD = "bench-pg-password"
REDIS_PASSWORD = "bench-redis-password"
EDGE_TOKEN = "Bearer bench-anon-key"
EDGE_FUNCTIONS = ("hello", "checkout", "resize-image")


# =========================================================================
# The service: an aiohttp app in its own process (--serve PORT)
# =========================================================================

def serve(port: int) -> None:
    """A scaledash-convention service: /metrics (prometheus_client) and edge functions."""
    import random

    from aiohttp import web
    from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, GCCollector,
                                   Histogram, PlatformCollector, ProcessCollector, generate_latest)

    reg = CollectorRegistry()
    # What a real Python service exports besides its own figures.
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    br_state = Gauge("circuit_breaker_state", "0 closed, 1 open, 2 half_open", ["breaker"], registry=reg)
    br_calls = Counter("circuit_breaker_calls", "Calls through a breaker", ["breaker", "outcome"], registry=reg)
    cache_req = Counter("cache_requests", "Cache lookups", ["cache", "layer", "result"], registry=reg)
    cache_inv = Counter("cache_invalidations", "Cache invalidations", ["cache"], registry=reg)
    b_msgs = Counter("batcher_messages", "Change events in", ["batcher"], registry=reg)
    b_frames = Counter("batcher_frames", "WebSocket frames out", ["batcher"], registry=reg)
    b_subs = Gauge("batcher_subscribers", "Connected subscribers", ["batcher"], registry=reg)
    b_flush = Histogram("batcher_flush_seconds", "Flush latency", ["batcher"], registry=reg)
    e_inv = Counter("edge_function_invocations", "Edge invocations", ["function", "status"], registry=reg)
    e_dur = Histogram("edge_function_duration_seconds", "Edge duration", ["function"], registry=reg)
    db_q = Counter("db_queries", "Queries per node", ["node", "kind"], registry=reg)
    http_req = Counter("http_requests", "Requests answered", ["status"], registry=reg)
    http_dur = Histogram("http_request_duration_seconds", "Request duration", ["cached"], registry=reg)

    # per second: breaker -> (success, failure, rejected, fallback); state
    breakers = {"payments-api": ((40, 1, 0, 0), 0), "inventory": ((120, 2, 0, 0), 0),
                "recommendations": ((5, 6, 30, 30), 1), "db-primary": ((300, 0, 0, 0), 2)}
    cache_rates = {("memory", "hit"): 850, ("memory", "miss"): 150, ("redis", "hit"): 120,
                   ("redis", "miss"): 30, ("database", "hit"): 30, ("database", "miss"): 0}
    body = {"metrics": b""}

    def tick(dt: float) -> None:
        for name, (rates, state) in breakers.items():
            br_state.labels(name).set(state)
            for outcome, rate in zip(("success", "failure", "rejected", "fallback"), rates):
                br_calls.labels(name, outcome).inc(rate * dt)
        for (layer, result), rate in cache_rates.items():
            cache_req.labels("catalog", layer, result).inc(rate * dt)
        cache_inv.labels("catalog").inc(2 * dt)
        b_msgs.labels("realtime").inc(2000 * dt)
        b_frames.labels("realtime").inc(150 * dt)
        b_subs.labels("realtime").set(40)
        for _ in range(5):
            b_flush.labels("realtime").observe(random.uniform(0.0005, 0.02))
        for i, fn in enumerate(EDGE_FUNCTIONS):
            e_inv.labels(fn, "200").inc((50 >> i) * dt)
            e_inv.labels(fn, "500").inc(0.2 * dt)
            for _ in range(3):
                e_dur.labels(fn).observe(random.uniform(0.005, 0.3))
        for node, kind, rate in (("primary", "read", 20), ("primary", "write", 15),
                                 ("replica-1", "read", 90), ("replica-2", "read", 90)):
            db_q.labels(node, kind).inc(rate * dt)
        http_req.labels("200").inc(400 * dt)
        http_req.labels("500").inc(1 * dt)
        for _ in range(4):
            http_dur.labels("true").observe(random.uniform(0.001, 0.01))
            http_dur.labels("false").observe(random.uniform(0.01, 0.08))
        body["metrics"] = generate_latest(reg)

    async def ticker(app):
        async def run():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.25)
                now = time.monotonic()
                tick(now - last)
                last = now
        task = asyncio.create_task(run())
        yield
        task.cancel()

    async def metrics(request):
        return web.Response(body=body["metrics"], headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def edge(request):
        await request.read()
        return web.json_response({"message": f"Hello from {request.match_info['name']}!"})

    tick(10.0)
    app = web.Application()
    app.cleanup_ctx.append(ticker)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/functions/v1/{name}", edge)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, backlog=4096, print=None,
                shutdown_timeout=1.0)


# =========================================================================
# Measuring
# =========================================================================

@dataclass
class Row:
    n: int
    kind: str
    label: str
    setup_ms: float | None = None
    cold: tuple[float, float] | None = None          # (wall ms, cpu ms)
    warm: list[tuple[float, float]] = field(default_factory=list)
    snap_ms: float | None = None
    fails: str = "0/0"
    engine: bool = False

    @property
    def p50_wall(self) -> float:
        return statistics.median(w for w, _ in self.warm)

    @property
    def max_wall(self) -> float:
        return max(w for w, _ in self.warm)

    @property
    def p50_cpu(self) -> float:
        return statistics.median(c for _, c in self.warm)


def _ms(value: float | None, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if value >= 100:
        return f"{value:>{width}.0f}"
    if value >= 10:
        return f"{value:>{width}.1f}"
    return f"{value:>{width}.2f}"


HEADER = (f"{'N':>5} {'kind':<8} {'measured':<40} {'setup':>7} {'cold':>8} {'cold':>8} "
          f"{'p50':>8} {'max':>8} {'p50':>8} {'cpu /':>7} {'snap':>7}  {'fail':<5}")
HEADER2 = (f"{'':>5} {'':<8} {'':<40} {'cpu':>7} {'wall':>8} {'cpu':>8} "
           f"{'wall':>8} {'wall':>8} {'cpu':>8} {'target':>7} {'cpu':>7}  {'c/w':<5}")


def format_row(r: Row) -> str:
    flag = "*" if r.warm and r.p50_wall > DEFAULT_TIMEOUT_MS else " "
    label = r.label if r.engine else f"  {r.label}"
    return (f"{r.n:>5} {r.kind:<8} {label:<40} {_ms(r.setup_ms, 7)} "
            f"{_ms(r.cold[0] if r.cold else None, 8)} {_ms(r.cold[1] if r.cold else None, 8)} "
            f"{_ms(r.p50_wall if r.warm else None, 8)}{flag}{_ms(r.max_wall if r.warm else None, 7)} "
            f"{_ms(r.p50_cpu if r.warm else None, 8)} {_ms(r.p50_cpu / r.n if r.warm else None, 7)} "
            f"{_ms(r.snap_ms, 7)}  {r.fails:<5}")


async def timed(fn: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """(wall ms, CPU ms, failures) of one awaited call."""
    wall, cpu = time.perf_counter(), time.process_time()
    failures = await fn()
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0, failures


async def measure(n: int, kind: str, label: str, *, setup: Callable[[], Awaitable[None]] | None = None,
                  cold: Callable[[], Awaitable[int]] | None, warm: Callable[[], Awaitable[int]],
                  close: Callable[[], Awaitable[None]] | None = None, rounds: int = ROUNDS,
                  warmup: bool = True) -> Row:
    row = Row(n, kind, label)
    gc.collect()
    try:
        if setup is not None:
            cpu = time.process_time()
            await setup()
            row.setup_ms = (time.process_time() - cpu) * 1000.0
        cold_fail = warm_fail = 0
        if cold is not None:
            w, c, cold_fail = await timed(cold)
            row.cold = (w, c)
        elif warmup:
            await warm()   # warm-up round, not shown
        for _ in range(rounds):
            w, c, f = await timed(warm)
            row.warm.append((w, c))
            warm_fail += f
        row.fails = f"{cold_fail}/{warm_fail}"
    finally:
        if close is not None:
            await close()
    return row


async def gather_failures(coros) -> int:
    results = await asyncio.gather(*coros, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        NOTES.append(f"peer failure: {type(failed[0]).__name__}: {str(failed[0])[:100]} (x{len(failed)})")
    return len(failed)


NOTES: list[str] = []


# =========================================================================
# The rows: engine, then its bare-driver peers
# =========================================================================

@dataclass
class Endpoints:
    pg_dsn: str
    pg_cap: int
    redis_url: str
    http: str


def config_doc(kind: str, n: int, ep: Endpoints) -> dict:
    doc: dict = {"interval": "60s", "timeout": "30s"}
    kinds = [kind] * n if kind != "mixed" else [SINGLE_KINDS[i % 4] for i in range(n)]
    for i, k in enumerate(kinds):
        name = f"{k}-{i}"
        if k == "postgres":
            doc.setdefault("replica", []).append(
                {"name": name, "dsn": ep.pg_dsn, "password": "env:BENCH_PG_PASSWORD"})
        elif k == "redis":
            doc.setdefault("cache", []).append(
                {"name": name, "url": ep.redis_url, "password": "env:BENCH_REDIS_PASSWORD"})
        elif k == "scrape":
            doc.setdefault("source", []).append(
                {"name": name, "scrape": f"{ep.http}/metrics", "preset": "scaledash"})
        else:
            doc.setdefault("edge", []).append(
                {"name": name, "url": f"{ep.http}/functions/v1/{EDGE_FUNCTIONS[i % 3]}", "method": "POST",
                 "headers": {"Authorization": "env:BENCH_EDGE_TOKEN"}})
    return doc


async def engine_row(kind: str, n: int, ep: Endpoints) -> Row:
    from dashboard.config import validate
    from dashboard.engine import Engine

    holder: dict = {}
    errors: list[str] = []

    async def setup():
        holder["engine"] = Engine(validate(config_doc(kind, n, ep)))

    async def one_round() -> int:
        engine = holder["engine"]
        await engine.poll_round()
        bad = [t for t in engine.targets if t.last_sample is None or not t.last_sample.ok]
        if bad and not errors:
            first = bad[0]
            errors.append(f"{kind} N={n}: {len(bad)} probes failed, e.g. {first.probe.target}: "
                          f"{first.last_sample.error if first.last_sample else 'no sample'}")
        return len(bad)

    async def close():
        engine = holder.get("engine")
        if engine is None:
            return
        wall = time.perf_counter()
        await engine.close()
        took = time.perf_counter() - wall
        if took > 0.5:
            NOTES.append(f"engine.close() for {kind} N={n} took {took:.1f} s (probes are closed one by one)")

    row = Row(n, kind, "engine poll_round()")
    try:
        row = await measure(n, kind, "engine poll_round()", setup=setup, cold=one_round, warm=one_round)
        gc.collect()
        cpu = time.process_time()
        holder["engine"].snapshot()
        row.snap_ms = (time.process_time() - cpu) * 1000.0
    finally:
        await close()
    row.engine = True
    if errors:
        row.fails += "!"
        NOTES.extend(errors)
    return row


async def pg_peers(n: int, ep: Endpoints) -> list[Row]:
    import asyncpg

    from dashboard.probes.postgres import NODE_STATUS_SQL

    st: dict = {}

    async def cold():
        st["pool"] = await asyncpg.create_pool(ep.pg_dsn, password=PG_PASSWORD, min_size=n, max_size=n,
                                               server_settings={"application_name": "bench-peer"})
        return await warm()

    async def warm():
        return await gather_failures(st["pool"].fetchval("SELECT 1") for _ in range(n))

    async def warm_status():
        return await gather_failures(st["pool"].fetchrow(NODE_STATUS_SQL) for _ in range(n))

    async def close():
        if "pool" in st:
            st["pool"].terminate()

    try:
        a = await measure(n, "postgres", "asyncpg pool, SELECT 1 x N", cold=cold, warm=warm)
        b = await measure(n, "postgres", "asyncpg pool, probe's SQL x N", cold=None, warm=warm_status,
                          rounds=ROUNDS if n < 1000 else 3)
        if n >= 1000:
            NOTES.append("postgres wall at N=1000 is mostly server-side: the probe's SQL reads pg_stat_replication "
                         "(pg_stat_get_activity scans every backend slot), so N connections to ONE server make a "
                         "round O(N^2) on that server (compare the two asyncpg peers); with N real servers it is not")
    finally:
        await close()
    return [a, b]


async def redis_peers(n: int, ep: Endpoints) -> list[Row]:
    import redis.asyncio as aioredis

    clients: list = []

    async def setup():
        clients.extend(aioredis.from_url(ep.redis_url, password=REDIS_PASSWORD, single_connection_client=True)
                       for _ in range(n))

    async def warm():
        return await gather_failures(c.info() for c in clients)

    async def close():
        for c in clients:
            await c.aclose()

    return [await measure(n, "redis", "redis-py INFO, 1 client/target", setup=setup, cold=warm, warm=warm,
                          close=close)]


async def http_peers(n: int, ep: Endpoints, kind: str) -> list[Row]:
    import ssl

    import aiohttp
    import certifi
    import httpx

    if kind == "scrape":
        urls, method, headers = [f"{ep.http}/metrics"] * n, "GET", {}
    else:
        urls = [f"{ep.http}/functions/v1/{EDGE_FUNCTIONS[i % 3]}" for i in range(n)]
        method, headers = "POST", {"Authorization": EDGE_TOKEN}
    rows: list[Row] = []
    st: dict = {}

    # httpx, one shared client with a connection per concurrent request
    async def hx_setup():
        st["hx"] = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n,
                                                                     max_keepalive_connections=n),
                                     trust_env=False)

    async def hx_round():
        async def one(url):
            r = await st["hx"].request(method, url, headers=headers)
            return r.content
        return await gather_failures(one(u) for u in urls)

    async def hx_close():
        await st["hx"].aclose()

    if n <= HTTPX_SHARED_MAX:
        rows.append(await measure(n, kind, "httpx, 1 shared client", setup=hx_setup, cold=hx_round,
                                  warm=hx_round, close=hx_close))
    else:
        NOTES.append(f"httpx 1-shared-client peer skipped above N={HTTPX_SHARED_MAX}: httpcore's pool scans "
                     "every connection for every queued request (_assign_requests_to_connections, "
                     "O(N^2) per round; already ~1.4 s at N=100 once keep-alive connections pile up)")

    if kind == "edge":
        # httpx laid out like the engine (one client per target), but one SSLContext for all.
        async def hxn_setup():
            ctx = ssl.create_default_context(cafile=certifi.where())
            st["hxn"] = [httpx.AsyncClient(timeout=30, verify=ctx, trust_env=False,
                                           limits=httpx.Limits(max_connections=2, max_keepalive_connections=1))
                         for _ in range(n)]

        async def hxn_round():
            async def one(client, url):
                r = await client.request(method, url, headers=headers)
                return r.content
            return await gather_failures(one(c, u) for c, u in zip(st["hxn"], urls))

        async def hxn_close():
            for c in st.get("hxn", ()):
                await c.aclose()

        rows.append(await measure(n, kind, "httpx, 1 client/target, shared SSLContext", setup=hxn_setup,
                                  cold=hxn_round, warm=hxn_round, close=hxn_close))

    async def aio_setup():
        st["aio"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n))

    async def aio_round():
        async def one(url):
            async with st["aio"].request(method, url, headers=headers) as r:
                return await r.read()
        return await gather_failures(one(u) for u in urls)

    async def aio_close():
        await st["aio"].close()

    rows.append(await measure(n, kind, "aiohttp, 1 shared session", setup=aio_setup, cold=aio_round,
                              warm=aio_round, close=aio_close))

    if kind == "scrape":
        from dashboard.presets import get as get_preset
        from dashboard.presets.exposition import parse_text

        async with httpx.AsyncClient(trust_env=False) as client:
            text = (await client.get(f"{ep.http}/metrics")).text
        preset = get_preset("scaledash")
        st["lines"] = text.count("\n")
        st["bytes"] = len(text.encode())

        async def parse_round():
            for _ in range(n):
                preset.interpret(parse_text(text), "bench")
            return 0

        rows.append(await measure(n, kind, "parse_text + interpret only (no I/O)", cold=None,
                                  warm=parse_round, rounds=ROUNDS if n < 1000 else 2, warmup=False))
        if n == 1:
            NOTES.append(f"/metrics exposition: {st['bytes']} bytes, {st['lines']} lines "
                         "(prometheus_client output incl. process/gc/platform collectors)")
    return rows


async def peer_rows(kind: str, n: int, ep: Endpoints) -> list[Row]:
    if kind == "postgres":
        return await pg_peers(n, ep)
    if kind == "redis":
        return await redis_peers(n, ep)
    if kind in ("scrape", "edge"):
        return await http_peers(n, ep, kind)
    return []


# =========================================================================
# Servers and main
# =========================================================================

def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_pg_idle(cluster, node, timeout: float = 10.0) -> None:
    """Wait until the node has no client backends left (closed connections exit asynchronously)."""
    deadline = time.monotonic() + timeout
    sql = ("select count(*) from pg_stat_activity where backend_type = 'client backend' "
           "and pid <> pg_backend_pid()")
    while time.monotonic() < deadline:
        if int(cluster.psql(node, sql).strip() or 0) == 0:
            return
        time.sleep(0.05)


def pg_cluster_class():
    from dashboard.lab.servers import PostgresCluster

    class BenchCluster(PostgresCluster):
        """The lab cluster with room for 1000 monitoring connections (the lab sets 50)."""

        max_connections = 1100

        def _primary_settings(self, datadir, port):  # the replicas copy it through pg_basebackup
            # A later line wins in postgresql.conf.
            return super()._primary_settings(datadir, port) + f"max_connections = {self.max_connections}\n"

    return BenchCluster


def start_service(base: Path):
    from dashboard.lab.servers import free_port, spawn, wait_http

    port = free_port()
    proc = spawn("bench-service", [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)], port,
                 base / "service.log", cwd=ROOT)
    wait_http(proc, f"http://127.0.0.1:{port}/metrics", ok=lambda status: status == 200)
    return proc


async def run(sizes: tuple[int, ...], kinds: tuple[str, ...], ep: Endpoints, cluster, replica) -> list[Row]:
    rows: list[Row] = []
    print(HEADER)
    print(HEADER2)
    print("-" * len(HEADER))
    for n in sizes:
        for kind in kinds:
            if kind in ("postgres", "mixed"):
                pg_share = n if kind == "postgres" else (n + 3) // 4
                if pg_share > ep.pg_cap:
                    NOTES.append(f"{kind} N={n} skipped: needs {pg_share} PostgreSQL connections, "
                                 f"the replica allows {ep.pg_cap} (see max_connections above)")
                    continue
            for row in [await engine_row(kind, n, ep)] + await peer_rows(kind, n, ep):
                rows.append(row)
                print(format_row(row), flush=True)
            if kind in ("postgres", "mixed"):
                wait_pg_idle(cluster, replica)
        print(flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="stop at N=100")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: expected a subset of {','.join(KINDS)}")
    sizes = QUICK_SIZES if args.quick else SIZES

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the finally below stops the servers
    nofile = raise_fd_limit()
    os.environ["BENCH_PG_PASSWORD"] = PG_PASSWORD
    os.environ["BENCH_REDIS_PASSWORD"] = REDIS_PASSWORD
    os.environ["BENCH_EDGE_TOKEN"] = EDGE_TOKEN

    from dashboard.lab.servers import RedisServer

    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="scaledash-bench-"))
    cluster = redis = service = None
    try:
        cluster = pg_cluster_class()(base / "pg", replicas=1, password=PG_PASSWORD)
        cluster.start()
        replica = cluster.replicas[0]
        max_conn = int(cluster.psql(replica, "show max_connections").strip())
        reserved = int(cluster.psql(replica, "show superuser_reserved_connections").strip())
        pg_cap = max_conn - reserved - 5
        redis = RedisServer(base / "redis", password=REDIS_PASSWORD).start()
        import redis as redis_sync
        maxclients = redis_sync.Redis(port=redis.port, password=REDIS_PASSWORD).config_get("maxclients")
        service = start_service(base)
        ep = Endpoints(pg_dsn=cluster.dsn(replica), pg_cap=pg_cap, redis_url=redis.url(),
                       http=f"http://127.0.0.1:{service.port}")
        print(f"scaledash poll-round benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
              f"RLIMIT_NOFILE {nofile}; servers up in {time.perf_counter() - started:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"PostgreSQL replica max_connections={max_conn} (lab default 50, raised for the bench; "
              f"cap {pg_cap} targets); Redis maxclients={maxclients.get('maxclients')}; "
              f"aiohttp service pid {service.pid}; SCRAM auth on PostgreSQL, AUTH on Redis")
        print("All figures in ms. setup = CPU of config validation + Engine() (or of the peer's client "
              "construction); cold = first round, connections opened;")
        print(f"p50/max over {ROUNDS} warm rounds; cpu = time.process_time() of this process "
              "(servers are other processes); snap = CPU of one snapshot().")
        print("Indented rows are the bare drivers doing the same I/O concurrently (peers). "
              "fail = failed probes cold/warm.\n")
        rows = asyncio.run(run(sizes, kinds, ep, cluster, replica))
        print("* p50 wall above the default 800 ms per-probe deadline: with the default config these "
              "probes would time out.")
        print("DESIGN.md reference (100 targets, wall p50 / client CPU): Redis INFO 24/25; PostgreSQL 24/14; "
              "httpx one client 223/240; aiohttp 48/25.")
        for note in dict.fromkeys(NOTES):
            print(f"note: {note}")
        print(f"total runtime {time.perf_counter() - started:.0f} s; load average at the end "
              f"{os.getloadavg()[0]:.2f} (other load on the machine inflates wall times, not CPU times)")
        return 1 if any(r.fails.endswith("!") or r.fails != "0/0" for r in rows) else 0
    finally:
        for server in (service, redis, cluster):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others
                    print(f"stopping {server}: {exc}", file=sys.stderr)
        import shutil
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
