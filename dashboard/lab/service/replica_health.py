"""Watch one replica once a second: reachable, streaming, replaying, and lag under the threshold.

The router reads `health` (an immutable value replaced on every check) to decide
where reads may go.  Each monitor owns one dedicated connection, so a probe never
waits behind application queries in a pool, and a dead replica costs one connect
attempt per backoff step rather than a hot loop.

Lag is the rule the dashboard uses: the primary's current WAL position minus the
replica's replay position, read in that order so that the difference never overstates
it. A replica whose WAL receiver is not running gets no reads at once: it replays what
it has and then looks caught up by its own figures while the primary moves on. Only
when the primary cannot be read does the replica's own received-minus-replayed stand in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

import asyncpg

from dashboard.lab.service import queries
from dashboard.lab.service.writer import WritableNode, says_not_writable
from dashboard.redact import describe_error

log = logging.getLogger("lab.service.replicas")

CHECK_INTERVAL = 1.0
CONNECT_TIMEOUT = 1.0
QUERY_TIMEOUT = 0.8
MAX_BACKOFF = 5.0
TAKES_WRITES = "takes the writes"


@dataclass(frozen=True)
class ReplicaHealth:
    """One check's verdict. replay_lsn is what a read-your-writes fence compares against."""

    name: str
    healthy: bool
    reason: str | None = None
    lag_bytes: int | None = None
    replay_paused: bool | None = None
    replay_lsn: int | None = None
    receiver: str | None = None        # WAL receiver status; None when this role may not see it
    checked_at: float = 0.0

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, "reason": self.reason, "lag_bytes": self.lag_bytes,
                "replay_paused": self.replay_paused, "receiver": self.receiver,
                "age_s": round(time.monotonic() - self.checked_at, 1) if self.checked_at else None}


def judge(name: str, row, max_lag_bytes: int, primary_lsn: int | None = None) -> ReplicaHealth:
    """Turn a REPLICA_HEALTH row, and the primary's position read just before, into a verdict."""
    replay_lsn = None if row["replay_lsn"] is None else int(row["replay_lsn"])
    lag = _lag(row, replay_lsn, primary_lsn)
    common = dict(name=name, lag_bytes=lag, replay_paused=bool(row["replay_paused"]), replay_lsn=replay_lsn,
                  receiver=_receiver(row), checked_at=time.monotonic())
    if not row["in_recovery"]:
        # A promoted replica is on its own timeline: reading from it would show other data.
        return ReplicaHealth(healthy=False, reason="not in recovery (promoted?)", **common)
    if common["receiver"] not in ("streaming", None):
        return ReplicaHealth(healthy=False, reason=f"WAL receiver not streaming ({common['receiver']})", **common)
    if row["replay_paused"]:
        return ReplicaHealth(healthy=False, reason="replay paused", **common)
    if lag is not None and lag >= max_lag_bytes:
        behind = "behind the primary" if primary_lsn is not None else "received, not replayed (primary unread)"
        return ReplicaHealth(healthy=False, reason=f"replay lag {lag} bytes {behind} >= {max_lag_bytes}", **common)
    return ReplicaHealth(healthy=True, **common)


def _lag(row, replay_lsn: int | None, primary_lsn: int | None) -> int | None:
    if primary_lsn is not None and replay_lsn is not None:
        return max(0, primary_lsn - replay_lsn)
    return None if row["lag_bytes"] is None else int(row["lag_bytes"])


def _receiver(row) -> str | None:
    """"stopped" when no WAL receiver runs; its status when this role may see it, else None."""
    return "stopped" if row["receiver_pid"] is None else row["receiver_status"]


class PrimaryPosition:
    """The writable node's current WAL position on a dedicated connection, shared by the monitors.

    It follows the writable node (`WritableNode`): after a failover the lag basis is the
    new primary. A read that fails in a way that says the node stopped taking writes
    tells the search, so a dead primary is noticed within a check even without writes.
    Two monitors checking in the same instant share one read (`MAX_AGE`): a position a
    little older than the replica's only understates the lag, never overstates it.
    """

    MAX_AGE = 0.2

    def __init__(self, writer: WritableNode, password: str | None) -> None:
        self._writer = writer
        self._password = password
        self._conn: asyncpg.Connection | None = None
        self._conn_node: str | None = None
        self._lock = asyncio.Lock()
        self._lsn: int | None = None
        self._read_at = 0.0

    async def lsn(self) -> int | None:
        """The position, or None when no writable node can be read (callers fall back)."""
        async with self._lock:
            if time.monotonic() - self._read_at > self.MAX_AGE:
                self._lsn, self._read_at = await self._read(), time.monotonic()
            return self._lsn

    async def _read(self) -> int | None:
        node = self._writer.name
        if node != self._conn_node:
            await self.close()
        if node is None:
            return None
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._writer.dsn(node), password=self._password,
                                                   timeout=CONNECT_TIMEOUT)
                self._conn_node = node
            return int(await self._conn.fetchval(queries.PRIMARY_WAL_LSN, timeout=QUERY_TIMEOUT))
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.debug("primary position unread: %s", describe_error(exc, 80))
            if says_not_writable(exc):
                self._writer.lost(node, describe_error(exc, 80))
            await self.close()
            return None

    async def close(self) -> None:
        conn, self._conn, self._conn_node = self._conn, None, None
        await _close_quietly(conn)


class ReplicaMonitor:
    """Checks one node every CHECK_INTERVAL seconds until `run()` is cancelled.

    Every configured node has a monitor, since any may be a replica after a failover;
    while `is_writer()` says the node takes writes, it is not checked (it is no replica).
    """

    def __init__(self, name: str, dsn: str, password: str | None, max_lag_bytes: int,
                 primary: PrimaryPosition | None = None, is_writer: Callable[[], bool] = lambda: False) -> None:
        self.name = name
        self._is_writer = is_writer
        self._dsn = dsn
        self._password = password
        self._max_lag = max_lag_bytes
        self._primary = primary
        self._conn: asyncpg.Connection | None = None
        self.health = ReplicaHealth(name, healthy=False, reason="not checked yet")

    async def run(self) -> None:
        backoff = CHECK_INTERVAL
        while True:
            if self._is_writer():
                await self.close()
                if self.health.reason != TAKES_WRITES:
                    log.info("node %s takes the writes: not checked as a replica", self.name)
                self.health = ReplicaHealth(self.name, healthy=False, reason=TAKES_WRITES, checked_at=time.monotonic())
                await asyncio.sleep(CHECK_INTERVAL)
                continue
            ok = await self.check()
            backoff = CHECK_INTERVAL if ok else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(CHECK_INTERVAL if ok else backoff)

    async def check(self) -> bool:
        """One check; returns False when the replica could not be queried at all."""
        primary_lsn = await self._primary.lsn() if self._primary is not None else None
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, password=self._password, timeout=CONNECT_TIMEOUT)
            row = await self._conn.fetchrow(queries.REPLICA_HEALTH, timeout=QUERY_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            self._publish(ReplicaHealth(self.name, healthy=False, reason=f"unreachable: {describe_error(exc, 80)}",
                                        checked_at=time.monotonic()))
            return False
        self._publish(judge(self.name, row, self._max_lag, primary_lsn))
        return True

    def _publish(self, health: ReplicaHealth) -> None:
        before = self.health
        self.health = health
        # Transitions only: a lag figure changes every second and would flood the log.
        if before.checked_at == 0.0 or before.healthy != health.healthy:
            if health.healthy:
                log.info("replica %s healthy (lag %s bytes)", self.name, health.lag_bytes)
            else:
                log.warning("replica %s unhealthy: %s", self.name, health.reason)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        await _close_quietly(conn)


async def _close_quietly(conn: asyncpg.Connection | None) -> None:
    """Close politely for a second, else drop the socket: the peer may be hung."""
    if conn is not None:
        try:
            await asyncio.wait_for(conn.close(), 1.0)
        except Exception:
            conn.terminate()
