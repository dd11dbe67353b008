"""PostgreSQL nodes as prometheus-community/postgres_exporter exports them.

What the Debian 12 package (0.11.1) really exported against PostgreSQL 15 here:

pg_up                                      1, or 0 when it cannot connect (then almost nothing else)
pg_settings_in_hot_standby{server}         1 on a standby (PostgreSQL 14+): the only role signal
                                           0.11.1 has without custom queries
pg_stat_replication_pg_wal_lsn_diff{server,application_name,client_addr,slot_name,state}
                                           on a primary, one per standby: replay lag in bytes
pg_stat_replication_pg_current_wal_lsn_bytes, pg_stat_replication_reply_time (same labels)
pg_stat_database_xact_commit{datid,datname,server}, ..._xact_rollback   counters per database
pg_replication_lag{server}                 ONLY with the example queries.yaml (--extend.query-path):
                                           now() - pg_last_xact_replay_timestamp(), 0 on a primary;
                                           it keeps growing on an idle primary's standby
0.11.1 does NOT export pg_replication_is_replica, pg_replication_lag_seconds or any
replay-paused flag; newer exporters (replication collector) add the first two, so they
are read when present. Counters such as pg_stat_database_xact_commit carry no `_total`
on the wire (what PromQL sees), but the text parser renames them `..._total`: both
spellings are accepted.

One replica Reading per node: a direct scrape sees one server (the `server` label,
missing on pg_up); through Prometheus nodes differ by `instance`. Figures: role,
writable, lag_seconds, lag_bytes (0 on a primary; a standby's own exporter has none),
xact_total (commit + rollback over all databases), streaming_replicas and
standby_lag_bytes (the worst standby, seen from the primary).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from dashboard.model import Kind, Reading, State
from dashboard.presets.base import Figures, MetricSpec, SampleTimes, Series, group

METRICS = (
    MetricSpec("pg_up", "gauge"),
    MetricSpec("pg_replication_is_replica", "gauge"),
    MetricSpec("pg_settings_in_hot_standby", "gauge"),
    MetricSpec("pg_replication_lag_seconds", "gauge"),
    MetricSpec("pg_replication_lag", "gauge"),
    MetricSpec("pg_stat_replication_pg_wal_lsn_diff", "gauge"),
    MetricSpec("pg_stat_database_xact_commit", "counter"),
    MetricSpec("pg_stat_database_xact_rollback", "counter"),
)


@dataclass
class _Node:
    up: float | None = None
    in_recovery: list = field(default_factory=list)   # (priority, bool): newer, explicit signals first
    lag: list = field(default_factory=list)           # (priority, seconds)
    standbys: dict = field(default_factory=dict)      # standby identity -> (state, lag bytes)
    xact: Figures = field(default_factory=Figures)
    times: SampleTimes = field(default_factory=SampleTimes)


def _flag(value: float) -> bool | None:
    return None if math.isnan(value) else value != 0


def _first(pairs: list):
    return min(pairs, key=lambda p: p[0])[1] if pairs else None


def node_names(keys: Iterable[str], source_name: str) -> dict[str, str]:
    """Row names: the source's own name for a single node, `<source>/<key>` for several."""
    keys = list(keys)
    if len(keys) == 1:
        return {keys[0]: source_name}
    return {k: f"{source_name}/{k}" if k else source_name for k in keys}


def interpret(series: Iterable[Series], source_name: str) -> list[Reading]:
    series = list(series)
    keys = {s.label("instance") or s.label("server") for s in series}
    # pg_up has no `server` label in a direct scrape: with one server in sight, it is that one.
    default = next(iter(keys - {""})) if len(keys - {""}) == 1 else ""
    nodes: dict[str, _Node] = defaultdict(_Node)

    def node(s: Series) -> _Node:
        n = nodes[s.label("instance") or s.label("server") or default]
        n.times.note(s)
        return n

    def pg_up(s: Series) -> None:
        n = node(s)
        n.up = s.value if n.up is None else min(n.up, s.value)

    def recovery(priority: int):
        def handle(s: Series) -> None:
            n, flag = node(s), _flag(s.value)
            if flag is not None:
                n.in_recovery.append((priority, flag))
        return handle

    def standby(s: Series) -> None:
        ident = (s.label("application_name"), s.label("client_addr"), s.label("slot_name"))
        node(s).standbys[ident] = (s.label("state"), s.value)

    def xact(s: Series) -> None:
        node(s).xact.add_counter("xact", s)

    group(series, {
        "pg_up": pg_up,
        "pg_replication_is_replica": recovery(0),
        "pg_settings_in_hot_standby": recovery(1),
        "pg_replication_lag_seconds": lambda s: node(s).lag.append((0, s.value)),
        "pg_replication_lag": lambda s: node(s).lag.append((1, s.value)),
        "pg_stat_replication_pg_wal_lsn_diff": standby,
        "pg_stat_database_xact_commit": xact,
        "pg_stat_database_xact_commit_total": xact,
        "pg_stat_database_xact_rollback": xact,
        "pg_stat_database_xact_rollback_total": xact,
    })

    names = node_names(nodes, source_name)
    readings = []
    for key, n in nodes.items():
        figures = dict(n.xact.values)
        in_recovery = _first(n.in_recovery)
        if in_recovery is None and n.standbys:
            in_recovery = False  # only a primary has standbys streaming from it
        lag = _first(n.lag)
        if in_recovery is not None:
            figures["role"] = "replica" if in_recovery else "primary"
            figures["writable"] = not in_recovery
        if in_recovery is False:
            figures.update(lag_bytes=0, lag_seconds=0.0)
            figures["streaming_replicas"] = sum(1 for state, _ in n.standbys.values() if state == "streaming")
            lags = [v for _, v in n.standbys.values() if math.isfinite(v)]
            if lags:
                figures["standby_lag_bytes"] = max(lags)
        elif lag is not None:
            figures["lag_seconds"] = lag
        if n.up == 0:
            readings.append(Reading(Kind.REPLICA, names[key], figures, State.DOWN, "pg_up == 0 (via exporter)",
                                    **n.times.fields()))
        else:
            readings.append(Reading(Kind.REPLICA, names[key], figures, **n.times.fields()))
    return readings
