"""Read/write routing over the configured nodes: one takes writes, the others are replicas.

Writes go to the writable node, found among every configured node and followed
across a failover (`writer.WritableNode`); "the primary" below means that node,
whichever configured name it has. The replicas are the other nodes. Reads go
round-robin to the replicas the health monitors call healthy and that have replayed
the last write to the key being read (a per-key read-your-writes fence on WAL
positions); otherwise to the primary. Replica reads run through the `database`
breaker: when they fail, or the breaker is open, the read falls back to the primary,
and only when the primary fails too (or none is known, during a failover) does the
caller get DatabaseUnavailable (a 503). The admin switch `replica_reads` (on by
default) sends every read to the primary, the read-offload target missed on purpose.

Metrics keep the configured node names as labels: after a failover the `replica-1`
series counts the writes, not a relabelled `primary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from typing import AsyncIterator

import asyncpg

from dashboard.lab.service import queries
from dashboard.lab.service.breakers import Breaker, BreakerOpen
from dashboard.lab.service.metrics import ServiceMetrics
from dashboard.lab.service.replica_health import PrimaryPosition, ReplicaMonitor
from dashboard.lab.service.settings import ServiceSettings
from dashboard.lab.service.writer import WritableNode, says_not_writable
from dashboard.redact import describe_error

log = logging.getLogger("lab.service.database")

PRIMARY = "primary"
CONNECT_TIMEOUT = 1.0
ACQUIRE_TIMEOUT = 1.0
QUERY_TIMEOUT = 2.0
# A write answers (done or 503) within this, whatever hangs: a hung primary, a commit
# waiting for a synchronous standby that is gone.
WRITE_DEADLINE = 1.8
SEED_ROWS = 1000
START_DEADLINE = 30.0
# What a failed database call raises; anything else is a bug and should surface.
# InternalClientError: asyncpg's state machine after the server vanished mid-transaction
# (the ROLLBACK of a `transaction()` block on a connection that is gone).
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
             asyncpg.InternalClientError)


class DatabaseUnavailable(Exception):
    """Neither a replica nor the primary could answer (or no writable node is known)."""


class NodePool:
    """A lazily created asyncpg pool for one node (min_size 0: a down node costs nothing idle)."""

    def __init__(self, name: str, dsn: str, password: str | None, max_size: int) -> None:
        self.name = name
        self._dsn = dsn
        self._password = password
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._creating:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn, password=self._password, min_size=0, max_size=self._max_size,
                    timeout=CONNECT_TIMEOUT, command_timeout=QUERY_TIMEOUT,
                    max_inactive_connection_lifetime=60)
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 3.0)
            except Exception:
                self._pool.terminate()


class WriteFence:
    """Per key, the primary's WAL position after its last write; bounded, oldest dropped first."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._lsn: OrderedDict[object, int] = OrderedDict()
        self._max = max_keys

    def note(self, key: object, lsn: int) -> None:
        self._lsn[key] = lsn
        self._lsn.move_to_end(key)
        while len(self._lsn) > self._max:
            self._lsn.popitem(last=False)

    def __len__(self) -> int:
        return len(self._lsn)

    def required(self, key: object) -> int:
        return self._lsn.get(key, 0)

    def forget_replayed(self, replayed_everywhere: int) -> None:
        """Drop the oldest keys every replica has replayed (the common case within a second)."""
        while self._lsn:
            lsn = next(iter(self._lsn.values()))
            if lsn > replayed_everywhere:
                break
            self._lsn.popitem(last=False)


class Database:
    """Routes item queries and owns the pools, the writable-node search and the replica monitors."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics, breaker: Breaker) -> None:
        nodes = {PRIMARY: settings.primary_dsn, **dict(sorted(settings.replicas.items()))}
        self.pools = {name: NodePool(name, dsn, settings.pg_password, max_size=6) for name, dsn in nodes.items()}
        self.writer = WritableNode(nodes, settings.pg_password)
        self.primary_position = PrimaryPosition(self.writer, settings.pg_password)
        self.monitors = {name: ReplicaMonitor(name, dsn, settings.pg_password, settings.max_replica_lag_bytes,
                                              self.primary_position, is_writer=self._is_writer(name))
                         for name, dsn in nodes.items()}
        self.fence = WriteFence()
        # A replica is only eligible once it has replayed the schema this service set up.
        self._schema_lsn = 0
        self._metrics = metrics
        self._breaker = breaker
        self._turn = itertools.count()
        self.replica_reads = True
        self._tasks: list[asyncio.Task] = []
        for name in nodes:
            for kind in ("read", "write"):
                metrics.db_queries.labels(name, kind)

    def _is_writer(self, name: str):
        return lambda: self.writer.name == name

    @property
    def replicas(self) -> list[str]:
        """Every configured node but the writable one (all of them while none is known)."""
        return [name for name in self.pools if name != self.writer.name]

    def writer_dsn(self) -> str | None:
        """The writable node's DSN (the batcher LISTENs there), None while none is known."""
        name = self.writer.name
        return None if name is None else self.writer.dsn(name)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self.writer.run(), name="writable-node")]
        await self._ensure_schema()
        self._tasks += [asyncio.create_task(m.run(), name=f"monitor-{m.name}") for m in self.monitors.values()]

    async def _ensure_schema(self) -> None:
        """Create tables, seed and trigger on the writable node; wait (with backoff) for one
        that is still starting."""
        deadline = time.monotonic() + START_DEADLINE
        delay = 0.2
        while True:
            name = await self.writer.wait_found(min(delay, max(deadline - time.monotonic(), 0)))
            try:
                if name is None:
                    raise DatabaseUnavailable("no configured node takes writes")
                await self._create_schema(self.pools[name])
                return
            except (*DB_ERRORS, DatabaseUnavailable) as exc:
                if name is not None and says_not_writable(exc):
                    self.writer.lost(name, describe_error(exc, 120))
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(f"primary not ready: {describe_error(exc, 120)}") from None
                log.warning("primary not ready (%s); retrying in %.1fs", describe_error(exc, 120), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _create_schema(self, pool: NodePool) -> None:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(queries.SCHEMA_LOCK)
            await conn.execute(queries.CREATE_ITEMS)
            if await conn.fetchval(queries.COUNT_ITEMS) == 0:
                await conn.execute(queries.SEED_ITEMS, SEED_ROWS)
                log.info("seeded %d items", SEED_ROWS)
            await conn.execute(queries.CREATE_NOTIFY_FUNCTION)
            await conn.execute(queries.CREATE_NOTIFY_TRIGGER)
            await conn.execute(queries.CREATE_CANARY)
        async with pool.connection() as conn:
            self._schema_lsn = int(await conn.fetchval(queries.CURRENT_WAL_LSN))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(m.close() for m in self.monitors.values()), self.primary_position.close(),
                             *(p.close() for p in self.pools.values()))

    # -- routing ---------------------------------------------------------------

    def _replayed(self, minimum_lsn: int) -> list[str]:
        return [name for name in self.replicas
                if (m := self.monitors[name]).health.healthy
                and (m.health.replay_lsn or 0) >= max(minimum_lsn, self._schema_lsn)]

    def healthy_replicas(self) -> list[str]:
        """Replicas that pass their health check and have the service's schema."""
        return self._replayed(0)

    def read_candidates(self, key: object) -> list[str]:
        """Healthy replicas that have replayed the last write to `key`, in round-robin order."""
        if not self.replica_reads:
            return []
        names = self._replayed(self.fence.required(key))
        if not names:
            return []
        start = next(self._turn) % len(names)
        return names[start:] + names[:start]

    async def read_row(self, key: object, sql: str, *args) -> tuple[asyncpg.Record | None, str]:
        """One row for `key`, and the node that answered. Raises DatabaseUnavailable."""
        candidates = self.read_candidates(key)
        if candidates:
            node = self.pools[candidates[0]]
            try:
                return await self._breaker.call(lambda: self._fetch(node, "read", sql, args)), node.name
            except BreakerOpen:
                pass
            except DB_ERRORS as exc:
                log.debug("read on %s failed: %s", node.name, describe_error(exc))
            self._breaker.fallback()
        name = self._writable()
        try:
            return await self._fetch(self.pools[name], "read", sql, args), name
        except DB_ERRORS as exc:
            if says_not_writable(exc):
                self.writer.lost(name, describe_error(exc, 120))
            raise DatabaseUnavailable(f"{name}: {describe_error(exc, 120)}") from None

    def _writable(self) -> str:
        name = self.writer.name
        if name is None:
            raise DatabaseUnavailable(f"no writable node known yet among {', '.join(self.pools)} (looking)")
        return name

    async def write_row(self, key: object, sql: str, *args) -> asyncpg.Record | None:
        """Run a one-row write on the primary; fence `key` until replicas have replayed it."""
        return (await self._write([key], "fetchrow", sql, args))[0]

    async def write_rows(self, keys: list, sql: str, *args) -> list[asyncpg.Record]:
        """Run a many-row write (one statement, one transaction) and fence every key."""
        return (await self._write(keys, "fetch", sql, args))[0]

    async def _write(self, keys: list, method: str, sql: str, args: tuple, sync: bool = False,
                     with_node: bool = False):
        """Run one write on the writable node within WRITE_DEADLINE; (result, node name).

        `sync` makes the commit wait until a standby has written it (see write_canary);
        `with_node` passes the node's configured name as the last argument."""
        name = self._writable()
        args = (*args, name) if with_node else args
        try:
            result, lsn = await asyncio.wait_for(self._run_write(self.pools[name], method, sql, args, sync),
                                                 WRITE_DEADLINE)
        except DB_ERRORS as exc:
            if says_not_writable(exc):
                self.writer.lost(name, describe_error(exc, 120))
            raise DatabaseUnavailable(f"{name}: {describe_error(exc, 120)}") from None
        self._metrics.db_queries.labels(name, "write").inc()
        for key in keys:
            self.fence.note(key, lsn)
        self._forget_replayed()
        return result, name

    @staticmethod
    async def _run_write(pool: NodePool, method: str, sql: str, args: tuple, sync: bool):
        async with pool.connection() as conn:
            if sync:
                async with conn.transaction():
                    await conn.execute(queries.SYNC_COMMIT_REMOTE_WRITE)
                    result = await getattr(conn, method)(sql, *args)
            else:
                result = await getattr(conn, method)(sql, *args, timeout=QUERY_TIMEOUT)
            # After the commit (autocommit), so a replica at this position has the commit record.
            return result, int(await conn.fetchval(queries.CURRENT_WAL_LSN, timeout=QUERY_TIMEOUT))

    async def write_canary(self, run: str, seq: int) -> str:
        """Insert one canary row and return the node that committed it.

        The commit waits until a standby has written the WAL (remote_write), so a row
        acknowledged here survives a crash of this node and a promotion of the most
        caught-up standby: the acknowledgement means "on two nodes", which is what a
        drill counting lost writes needs. Ordinary writes keep synchronous_commit off."""
        return (await self._write([], "execute", queries.INSERT_CANARY, (run, seq), sync=True, with_node=True))[1]

    async def canary_seqs(self, run: str, limit: int) -> tuple[str, list[int]]:
        """The seqs of `run` on the writable node (at most `limit`), and that node's name."""
        name = self._writable()
        try:
            async with self.pools[name].connection() as conn:
                rows = await conn.fetch(queries.SELECT_CANARY, run, limit, timeout=QUERY_TIMEOUT)
        except DB_ERRORS as exc:
            if says_not_writable(exc):
                self.writer.lost(name, describe_error(exc, 120))
            raise DatabaseUnavailable(f"{name}: {describe_error(exc, 120)}") from None
        return name, [row["seq"] for row in rows]

    def _forget_replayed(self) -> None:
        lsns = [self.monitors[name].health.replay_lsn or 0 for name in self.replicas]
        if lsns:
            self.fence.forget_replayed(min(lsns))

    async def _fetch(self, node: NodePool, kind: str, sql: str, args: tuple) -> asyncpg.Record | None:
        async with node.connection() as conn:
            row = await conn.fetchrow(sql, *args, timeout=QUERY_TIMEOUT)
        self._metrics.db_queries.labels(node.name, kind).inc()
        return row

    def routing_table(self) -> dict:
        writer = self.writer.name
        return {
            "writes": writer,
            "reads": (self.healthy_replicas() if self.replica_reads else []) or ([writer] if writer else []),
            "replicas": {name: self.monitors[name].health.as_dict() for name in self.replicas},
            "fenced_keys": len(self.fence),
        }
