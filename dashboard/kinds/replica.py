"""Replica rows: role, lag in bytes and seconds, replay paused, probe latency."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.hysteresis import Limit, crossed
from dashboard.kinds.base import counter_rate, non_finite, number
from dashboard.model import Kind, Reading, State

METRIC_KEYS = ("role", "lag_bytes", "lag_seconds", "replay_paused", "latency_ms")
HISTORY = ("lag_bytes", "lag_seconds", "latency_ms")


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    return {
        "role": f.get("role"),
        "lag_bytes": f.get("lag_bytes"),
        "lag_seconds": f.get("lag_seconds"),
        "replay_paused": f.get("replay_paused"),
        "latency_ms": f.get("latency_ms"),
        "writable": f.get("writable"),
        "streaming_replicas": f.get("streaming_replicas"),
        "xact_per_s": counter_rate(cur, prev, dt, "xact"),
        "reads_per_s": counter_rate(cur, prev, dt, "reads"),
        "writes_per_s": counter_rate(cur, prev, dt, "writes"),
        "server_version": f.get("server_version"),
    }


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    if m.get("replay_paused"):
        return State.DEGRADED, "replay paused"
    return crossed(limits(m, t))


def limits(m: dict, t: Thresholds) -> tuple[Limit, ...]:
    """Lag in bytes and in seconds, each against its threshold (hysteresis.py)."""
    lag_bytes, lag_seconds = number(m.get("lag_bytes")), number(m.get("lag_seconds"))
    out = []
    if lag_bytes is not None:
        out.append(Limit.ceiling("lag", lag_bytes, t.replica_lag_bytes, fmt.size, key="lag_bytes"))
    if lag_seconds is not None:
        out.append(Limit.ceiling("lag", lag_seconds, t.replica_lag_seconds, fmt.seconds, key="lag_seconds"))
    return tuple(out)


def brief(m: dict) -> str:
    text = f"{fmt.word(m.get('role'))} lag {fmt.size(m.get('lag_bytes'))}/{fmt.seconds(m.get('lag_seconds'))}"
    if m.get("replay_paused"):
        text += " PAUSED"
    return f"{text} probe {fmt.ms(m.get('latency_ms'))}"


def banners(components: list) -> tuple[str, ...]:
    """Two writable nodes: a fleet-wide alarm. Only direct probes name distinct nodes; an
    exporter's row describes one of them, and a node that is not answering is not counted."""
    writable = [c.name for c in components if c.kind is Kind.REPLICA and c.source == "postgres"
                and c.metrics.get("writable") and c.state not in (State.DOWN, State.STALE, State.ERROR)]
    if len(writable) > 1:
        return (f"{len(writable)} primaries - possible split-brain: {', '.join(writable)}",)
    return ()
