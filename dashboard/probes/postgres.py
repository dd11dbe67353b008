"""PostgreSQL nodes through asyncpg: role, replication position, replay state, activity.

One connection per node, kept across rounds and dropped on any failure or
cancellation (a cancelled query leaves the protocol mid-stream). `command_timeout`
backs up the engine's deadline on the server side.
"""

from __future__ import annotations

import time
from decimal import Decimal
from importlib import resources

import asyncpg

from dashboard.config import ReplicaTarget
from dashboard.model import Failure, Kind, Reading
from dashboard.probes.base import ProbeError

NODE_STATUS_SQL = resources.files("dashboard").joinpath("sql/node_status.sql").read_text()


def _num(value: object) -> float | int | None:
    """asyncpg gives pg_wal_lsn_diff() as Decimal: make it JSON-friendly."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value  # type: ignore[return-value]


class PostgresProbe:
    source = "postgres"
    kind = Kind.REPLICA
    times_round_trip = True       # the engine gives it a quiet slot of its tick

    def __init__(self, target: ReplicaTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        self._config = target
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            password = self._config.password.reveal() if self._config.password else None
            try:
                self._conn = await asyncpg.connect(
                    self._config.dsn, password=password, timeout=self.deadline,
                    command_timeout=self.deadline,
                    server_settings={"application_name": "scaledash"},
                )
            except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
                raise ProbeError(Failure.ERROR, f"authentication failed: {exc}") from None
            except asyncpg.CannotConnectNowError as exc:
                raise ProbeError(Failure.DOWN, f"cannot connect now: {exc}") from None
        return self._conn

    async def collect(self) -> list[Reading]:
        try:
            conn = await self._connection()
            # The node's latency is one bare round trip (simple protocol, nothing to
            # decode), timed first in the probe's own slot of the tick (engine `_phase`).
            # Timing the status query among every other probe showed 12-16 ms on idle
            # lab nodes that answer a bare SELECT 1 in 0.5-1.2 ms; and even alone that
            # query takes ~1.7x a SELECT 1 (its catalog reads are our cost, not the
            # node's latency). tests/bench/probe_latency.py shows both.
            started = time.perf_counter()
            await conn.execute("SELECT 1")
            latency_ms = (time.perf_counter() - started) * 1000.0
            row = await conn.fetchrow(NODE_STATUS_SQL)
        except BaseException:
            await self.close()
            raise
        return [Reading(Kind.REPLICA, self.target, self._figures(row, latency_ms))]

    @staticmethod
    def _figures(row: asyncpg.Record, latency_ms: float) -> dict:
        in_recovery = bool(row["in_recovery"])
        receive, replay = _num(row["receive_lsn"]), _num(row["replay_lsn"])
        lag_bytes = None
        if in_recovery and replay is not None:
            lag_bytes = max(0, int((receive if receive is not None else replay) - replay))
        replay_age = _num(row["replay_age_s"])
        lag_seconds: float | None = 0.0 if not in_recovery else None
        if in_recovery:
            # An idle primary makes now() - last replay grow forever: that is not lag
            # when everything received has been replayed.
            lag_seconds = 0.0 if lag_bytes == 0 else (float(replay_age) if replay_age is not None else None)
        return {
            "role": "replica" if in_recovery else "primary",
            "writable": not in_recovery,
            "lag_bytes": lag_bytes if in_recovery else 0,
            "lag_seconds": lag_seconds,
            "replay_paused": bool(row["replay_paused"]),
            "latency_ms": round(latency_ms, 3),
            "current_lsn": _num(row["current_lsn"]),
            "replay_lsn": replay,
            "replay_age_s": replay_age,
            "streaming_replicas": int(row["streaming_replicas"] or 0),
            "xact_total": _num(row["xact_total"]),
            "server_version": int(row["version_num"]),
        }

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no network round trip: the peer may be hung
