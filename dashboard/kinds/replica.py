"""Replica rows: role, lag behind the primary, WAL receiver, replay paused, probe latency.

A replica's lag is measured across nodes, as pgcenter and patronictl do: the primary's
current WAL position minus the replica's replay position. The replica's own
received-minus-replayed bytes are not its lag: a standby whose WAL receiver is cut
replays what it has and then reads 0 while the primary moves on. Only the engine holds
both nodes' readings, so `relate()` computes the figure; `derive()` keeps the node's own
figure as the fallback when no primary is reachable, and `lag_basis` says which a row shows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.hysteresis import Limit, Memory, crossed
from dashboard.kinds.base import counter_rate, non_finite, number
from dashboard.model import Alarm, Kind, Reading, State

METRIC_KEYS = ("role", "lag_bytes", "lag_seconds", "replay_paused", "latency_ms", "receiver")
# current_lsn (primaries only): the position one poll earlier dates a replica's gap (relate).
HISTORY = ("lag_bytes", "lag_seconds", "latency_ms", "current_lsn")

BASIS_PRIMARY = "primary"   # the primary's current LSN minus this node's replay LSN
BASIS_OWN = "own"           # this node's received minus replayed: no primary to compare with
PRIVILEGE = "n/a (privilege)"

# Figures a direct probe gives that only some sources have: copied when present, so rows
# from exporters carry no empty keys.
_OPTIONAL = ("current_lsn", "receive_lsn", "replay_lsn", "replay_age_s", "receiver", "receiver_since_s",
             "receiver_msg_age_s", "max_lag_bytes", "max_lag_seconds")
_FRESH = (State.OK, State.DEGRADED)


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    metrics = {
        "role": f.get("role"),
        "replay_paused": f.get("replay_paused"),
        "latency_ms": f.get("latency_ms"),
        "writable": f.get("writable"),
        "streaming_replicas": f.get("streaming_replicas"),
        "xact_per_s": counter_rate(cur, prev, dt, "xact"),
        "reads_per_s": counter_rate(cur, prev, dt, "reads"),
        "writes_per_s": counter_rate(cur, prev, dt, "writes"),
        "server_version": f.get("server_version"),
        **_own_lag(f),
    }
    metrics.update({key: f[key] for key in _OPTIONAL if key in f})
    if "receiver" not in f and isinstance(f.get("connected_to_primary"), bool):
        # The Supabase Metrics API says only whether a read replica's receiver is connected.
        metrics["receiver"] = "streaming" if f["connected_to_primary"] else "not connected"
    if f.get("system_identifier") is not None:
        metrics["_system_identifier"] = f["system_identifier"]     # one per cluster
        metrics["_node_id"] = f.get("node_id")                     # one per node, whatever the DSN
    if f.get("hidden_by_privilege"):
        metrics["hidden_by_privilege"] = tuple(f["hidden_by_privilege"])
    return metrics


def _own_lag(f) -> dict:
    """Lag as one node sees it: given by the source (an exporter preset computes its own),
    else this node's received minus replayed bytes, to be replaced by `relate()`."""
    if "replay_lsn" not in f:
        return {"lag_bytes": f.get("lag_bytes"), "lag_seconds": f.get("lag_seconds")}
    if f.get("role") != "replica":
        return {"lag_bytes": 0, "lag_seconds": 0.0}
    replay, receive = number(f.get("replay_lsn")), number(f.get("receive_lsn"))
    lag_bytes = None if replay is None else int(max(0.0, (receive if receive is not None else replay) - replay))
    return {"lag_bytes": lag_bytes, "lag_seconds": lag_seconds(lag_bytes, f.get("replay_age_s")),
            "lag_basis": BASIS_OWN}


def lag_seconds(lag_bytes: int | None, replay_age_s) -> float | None:
    """The age of the last replayed transaction, except when there is nothing left to replay:
    on an idle primary that age grows forever and is not lag."""
    if lag_bytes == 0:
        return 0.0
    age = number(replay_age_s)
    return None if age is None else max(0.0, age)


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    receiver = m.get("receiver")
    if receiver is not None and receiver != "streaming":
        return State.DEGRADED, f"WAL receiver not streaming ({receiver})"
    if m.get("replay_paused"):
        return State.DEGRADED, "replay paused"
    state, reason = crossed(limits(m, t))
    if state is State.OK and m.get("lag_basis") == BASIS_OWN:
        return State.OK, "no single primary to compare with: lag is this node's received minus replayed"
    return state, reason


def limits(m: dict, t: Thresholds) -> tuple[Limit, ...]:
    """Lag in bytes and in seconds, each against its threshold (hysteresis.py): the
    replica's own `max_lag_*` when its config sets them, else the global thresholds."""
    max_bytes = m["max_lag_bytes"] if m.get("max_lag_bytes") is not None else t.replica_lag_bytes
    max_seconds = m["max_lag_seconds"] if m.get("max_lag_seconds") is not None else t.replica_lag_seconds
    lag_bytes, lag_secs = number(m.get("lag_bytes")), number(m.get("lag_seconds"))
    out = []
    if lag_bytes is not None:
        out.append(Limit.ceiling("lag", lag_bytes, max_bytes, fmt.size, key="lag_bytes"))
    if lag_secs is not None:
        out.append(Limit.ceiling("lag", lag_secs, max_seconds, fmt.seconds, key="lag_seconds"))
    return tuple(out)


def relate(components: list, t: Thresholds, memory: Callable[[object], Memory] | None = None,
           now: float = 0.0) -> list:
    """Each replica's lag against its primary's current position, judged again (with the
    row's threshold memory when the engine gives one: the same band and hold as every
    threshold)."""
    primaries = [c for c in components if _direct(c) and c.state in _FRESH and c.metrics.get("writable")
                 and c.metrics.get("current_lsn") is not None]
    return [_against_primary(c, primaries, t, memory, now) if _judgeable_replica(c) else c for c in components]


def _direct(c) -> bool:
    """Rows of direct probes name distinct nodes; an exporter's row describes one of them."""
    return c.kind is Kind.REPLICA and c.source == "postgres"


def _seconds_behind(lag_bytes: int, m: dict, primary_before: float | None) -> float | None:
    """The idle-primary rule, across nodes: no lag in seconds while the replica holds all the
    primary had written by its previous reading. Two nodes are probed a few milliseconds
    apart: after a long idle spell, a first write landing between the two reads would
    otherwise show the age of the last replayed transaction (minutes) as lag."""
    if primary_before is not None and m["replay_lsn"] >= primary_before:
        return 0.0
    return lag_seconds(lag_bytes, m.get("replay_age_s"))


def _nodes(components: list) -> set:
    """Distinct nodes: two targets may reach one node (a pooler and a direct DSN)."""
    return {c.metrics.get("_node_id") or id(c) for c in components}


def _judgeable_replica(c) -> bool:
    return (_direct(c) and c.state in _FRESH and c.metrics.get("role") == "replica"
            and c.metrics.get("replay_lsn") is not None)


def _against_primary(c, primaries: list, t: Thresholds, memory, now: float):
    cluster = c.metrics.get("_system_identifier")
    mine = [p for p in primaries if cluster is None or p.metrics.get("_system_identifier") in (None, cluster)]
    if len(_nodes(mine)) != 1:
        return c        # none reachable, or two (split-brain): the node's own figure stays, and says so
    primary = mine[0]
    lag_bytes = int(max(0.0, primary.metrics["current_lsn"] - c.metrics["replay_lsn"]))
    positions = primary.history.get("current_lsn", ())
    metrics = dict(c.metrics, lag_bytes=lag_bytes, lag_basis=BASIS_PRIMARY, lag_primary=primary.name,
                   lag_seconds=_seconds_behind(lag_bytes, c.metrics, positions[-2] if len(positions) > 1 else None))
    state, reason = assess(metrics, t)
    if memory is not None:
        state, reason = memory(c).judge((state, reason), limits(metrics, t), now, t)
    return replace(c, metrics=metrics, state=state, reason=reason)


def hidden(m: dict, figure: str) -> bool:
    """True when the server hid `figure` from the monitoring role (no pg_monitor)."""
    return figure in (m.get("hidden_by_privilege") or ())


def brief(m: dict) -> str:
    text = f"{fmt.word(m.get('role'))} lag {fmt.size(m.get('lag_bytes'))}/{fmt.seconds(m.get('lag_seconds'))}"
    if m.get("replay_paused"):
        text += " PAUSED"
    if m.get("role") == "replica" and ("receiver" in m or hidden(m, "receiver")):
        text += f" recv {PRIVILEGE if hidden(m, 'receiver') else fmt.word(m.get('receiver'))}"
    if m.get("role") == "primary" and hidden(m, "streaming_replicas"):
        text += f" streaming {PRIVILEGE}"
    return f"{text} probe {fmt.ms(m.get('latency_ms'))}"


def banners(components: list) -> tuple[Alarm, ...]:
    """Two writable nodes of one cluster (same system identifier): split-brain, a fleet-wide
    alarm that is DOWN whatever each node's row says. A node that is not answering is not
    counted; two separate clusters each with its own primary are not a split-brain, nor
    one primary reached by two targets."""
    clusters: dict[object, list] = {}
    for c in components:
        if _direct(c) and c.metrics.get("writable") and c.state not in (State.DOWN, State.STALE, State.ERROR):
            clusters.setdefault(c.metrics.get("_system_identifier"), []).append(c)
    return tuple(Alarm(f"{len(_nodes(rows))} primaries - possible split-brain: {', '.join(c.name for c in rows)}",
                       State.DOWN) for rows in clusters.values() if len(_nodes(rows)) > 1)
