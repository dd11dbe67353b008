"""Watch one replica once a second: reachable, replaying, and lag under the threshold.

The router reads `health` (an immutable value replaced on every check) to decide
where reads may go.  Each monitor owns one dedicated connection, so a probe never
waits behind application queries in a pool, and a dead replica costs one connect
attempt per backoff step rather than a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncpg

from dashboard.lab.service import queries
from dashboard.redact import describe_error

log = logging.getLogger("lab.service.replicas")

CHECK_INTERVAL = 1.0
CONNECT_TIMEOUT = 1.0
QUERY_TIMEOUT = 0.8
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class ReplicaHealth:
    """One check's verdict. replay_lsn is what a read-your-writes fence compares against."""

    name: str
    healthy: bool
    reason: str | None = None
    lag_bytes: int | None = None
    replay_paused: bool | None = None
    replay_lsn: int | None = None
    checked_at: float = 0.0

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, "reason": self.reason, "lag_bytes": self.lag_bytes,
                "replay_paused": self.replay_paused, "age_s": round(time.monotonic() - self.checked_at, 1)
                if self.checked_at else None}


def judge(name: str, row, max_lag_bytes: int) -> ReplicaHealth:
    """Turn a REPLICA_HEALTH row into a verdict."""
    lag = None if row["lag_bytes"] is None else int(row["lag_bytes"])
    common = dict(name=name, lag_bytes=lag, replay_paused=bool(row["replay_paused"]),
                  replay_lsn=None if row["replay_lsn"] is None else int(row["replay_lsn"]),
                  checked_at=time.monotonic())
    if not row["in_recovery"]:
        # A promoted replica is on its own timeline: reading from it would show other data.
        return ReplicaHealth(healthy=False, reason="not in recovery (promoted?)", **common)
    if row["replay_paused"]:
        return ReplicaHealth(healthy=False, reason="replay paused", **common)
    if lag is not None and lag >= max_lag_bytes:
        return ReplicaHealth(healthy=False, reason=f"replay lag {lag} bytes >= {max_lag_bytes}", **common)
    return ReplicaHealth(healthy=True, **common)


class ReplicaMonitor:
    """Checks one replica every CHECK_INTERVAL seconds until `run()` is cancelled."""

    def __init__(self, name: str, dsn: str, password: str | None, max_lag_bytes: int) -> None:
        self.name = name
        self._dsn = dsn
        self._password = password
        self._max_lag = max_lag_bytes
        self._conn: asyncpg.Connection | None = None
        self.health = ReplicaHealth(name, healthy=False, reason="not checked yet")

    async def run(self) -> None:
        backoff = CHECK_INTERVAL
        while True:
            ok = await self.check()
            backoff = CHECK_INTERVAL if ok else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(CHECK_INTERVAL if ok else backoff)

    async def check(self) -> bool:
        """One check; returns False when the replica could not be queried at all."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, password=self._password, timeout=CONNECT_TIMEOUT)
            row = await self._conn.fetchrow(queries.REPLICA_HEALTH, timeout=QUERY_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            self._publish(ReplicaHealth(self.name, healthy=False, reason=f"unreachable: {describe_error(exc, 80)}",
                                        checked_at=time.monotonic()))
            return False
        self._publish(judge(self.name, row, self._max_lag))
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
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 1.0)
            except Exception:
                conn.terminate()
