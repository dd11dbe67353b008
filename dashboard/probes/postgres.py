"""PostgreSQL nodes through asyncpg: role, WAL positions, WAL receiver, replay state, activity.

The probe reports what one node says about itself; a replica's lag behind its primary
needs both nodes and is computed by the replica kind. Figures the server hides from a
role without pg_monitor come back None, listed in `hidden_by_privilege`, with one notice
naming the grant.

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
        figures = _figures(row, latency_ms)
        # Per-node thresholds travel with the figures to the kind that judges them.
        for key in ("max_lag_bytes", "max_lag_seconds"):
            if getattr(self._config, key) is not None:
                figures[key] = getattr(self._config, key)
        return [Reading(Kind.REPLICA, self.target, figures, notice=_privilege_notice(row))]

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no network round trip: the peer may be hung


RECEIVER_DETAILS = ("receiver", "receiver_since_s", "receiver_msg_age_s")


def _figures(row: asyncpg.Record, latency_ms: float) -> dict:
    """The node's raw positions and states; its lag is the kind's to compute (across nodes)."""
    role = "replica" if row["in_recovery"] else "primary"
    figures = {
        "role": role,
        "writable": role == "primary",
        "replay_paused": bool(row["replay_paused"]),
        "latency_ms": round(latency_ms, 3),
        "current_lsn": _num(row["current_lsn"]),
        "receive_lsn": _num(row["receive_lsn"]),
        "replay_lsn": _num(row["replay_lsn"]),
        "replay_age_s": _num(row["replay_age_s"]),
        "streaming_replicas": None if row["streaming_replicas"] is None else int(row["streaming_replicas"]),
        "system_identifier": row["system_identifier"],
        "node_id": f"{row['system_identifier']}@{row['started_at']}",
        "xact_total": _num(row["xact_total"]),
        "server_version": int(row["version_num"]),
        "hidden_by_privilege": _hidden(row),
    }
    if role == "replica":
        figures.update(_receiver(row))
    return figures


def _receiver(row: asyncpg.Record) -> dict:
    """The WAL receiver: its status word ("stopped" when no receiver process runs, which
    every role can see), how long it has run and when it last heard from the primary."""
    if row["receiver_pid"] is None:
        status = "stopped"
    else:
        status = row["receiver_status"]          # None: hidden from this role
    return {"receiver": status, "receiver_since_s": _num(row["receiver_up_s"]),
            "receiver_msg_age_s": _num(row["receiver_msg_age_s"])}


def _hidden(row: asyncpg.Record) -> tuple[str, ...]:
    """The figures the server hid from a role without pg_read_all_stats. A stopped receiver
    has no row to hide: "stopped" is known to every role."""
    if row["can_read_stats"]:
        return ()
    return ("streaming_replicas",) + (RECEIVER_DETAILS if row["receiver_pid"] is not None else ())


def _privilege_notice(row: asyncpg.Record) -> str | None:
    """One text per role, whatever this round hid: the engine logs each distinct notice once."""
    if row["can_read_stats"]:
        return None
    role = row["role_name"]
    return f"role {role} lacks pg_monitor, replication figures hidden: GRANT pg_monitor TO {role}"
