"""The Supabase Metrics API (https://<ref>.supabase.co/customer/v1/privileged/metrics).

Prometheus text, basic auth `service_role` + a secret key, ~200 series: node_exporter
(`node_*`, service_type="db"), pgbouncer, PostgREST, GoTrue and a postgres_exporter
0.15 with Supabase's own queries (service_type="postgresql", server="localhost:5432").
Every series carries supabase_project_ref and, in current captures, supabase_identifier
(the project ref on the primary; a read replica is scraped at its own endpoint and
labelled with its own identifier).

Series read:
pg_up                                                     0 -> the database row is DOWN
pg_status_in_recovery                                     role (1 = read replica)
physical_replication_lag_physical_replication_lag_seconds lag_seconds (0 on the primary)
physical_replication_lag_physical_replica_lag_seconds     the same, under the name the
                                                          Supabase docs give
physical_replication_lag_is_wal_replay_paused             replay_paused
physical_replication_lag_is_connected_to_primary          connected_to_primary (replicas)
pg_stat_database_xact_commit_total, ..._xact_rollback_total   xact_total (one series per
                                                          server, already summed over databases)

Where the names come from: Supabase docs "Metrics API" and "Read Replicas" (the
replica lag metric), the exposition captured in DataDog/integrations-core
supabase/tests/fixtures/privileged_metrics.txt and its metrics.py, and
supabase/supabase-grafana (metrics.md, dashboard.json; labels incl. supabase_identifier).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

from dashboard.model import Kind, Reading, State
from dashboard.presets.base import Figures, MetricSpec, Series, group

METRICS = (
    MetricSpec("pg_up", "gauge"),
    MetricSpec("pg_status_in_recovery", "gauge"),
    MetricSpec("physical_replication_lag_physical_replication_lag_seconds", "gauge"),
    MetricSpec("physical_replication_lag_physical_replica_lag_seconds", "gauge"),
    MetricSpec("physical_replication_lag_is_wal_replay_paused", "gauge"),
    MetricSpec("physical_replication_lag_is_connected_to_primary", "gauge"),
    MetricSpec("pg_stat_database_xact_commit_total", "counter"),
    MetricSpec("pg_stat_database_xact_rollback_total", "counter"),
)

LAG_SERIES = (
    "physical_replication_lag_physical_replication_lag_seconds",
    "physical_replication_lag_physical_replica_lag_seconds",
)


def _database(s: Series) -> str:
    return s.label("supabase_identifier") or s.label("supabase_project_ref")


def _flag(value: float) -> bool | None:
    return None if math.isnan(value) else value != 0


def interpret(series: Iterable[Series], source_name: str) -> list[Reading]:
    series = list(series)
    refs = {s.label("supabase_project_ref") for s in series} - {""}
    project = next(iter(refs)) if len(refs) == 1 else ""
    keys = {_database(s) for s in series} - {""}
    default = next(iter(keys)) if len(keys) == 1 else ""
    figures: dict[str, Figures] = defaultdict(Figures)
    up: dict[str, float] = {}

    def db(s: Series) -> Figures:
        f = figures[_database(s) or default]
        f.times.note(s)
        return f

    def pg_up(s: Series) -> None:
        key = _database(s) or default
        figures.setdefault(key, Figures()).times.note(s)
        up[key] = min(up.get(key, s.value), s.value)

    def flag(figure: str):
        def handle(s: Series) -> None:
            db(s).set(figure, _flag(s.value))
        return handle

    def xact(s: Series) -> None:
        db(s).add_counter("xact", s)

    group(series, {
        "pg_up": pg_up,
        "pg_status_in_recovery": flag("in_recovery"),
        **{name: (lambda s: db(s).set("lag_seconds", s.value)) for name in LAG_SERIES},
        "physical_replication_lag_is_wal_replay_paused": flag("replay_paused"),
        "physical_replication_lag_is_connected_to_primary": flag("connected_to_primary"),
        "pg_stat_database_xact_commit_total": xact,
        "pg_stat_database_xact_rollback_total": xact,
        # The rated series of a Prometheus source, and older unsuffixed spellings.
        "pg_stat_database_xact_commit": xact,
        "pg_stat_database_xact_rollback": xact,
    })

    replicas = {}
    for key, f in figures.items():
        in_recovery = f.values.pop("in_recovery", None)
        if in_recovery is None and key and project:
            in_recovery = key != project  # a read replica is labelled with its own identifier
        replicas[key] = bool(in_recovery)
    primaries = sum(1 for replica in replicas.values() if not replica)

    readings = []
    for key, f in figures.items():
        values = dict(f.values)
        replica = replicas[key]
        values["role"] = "replica" if replica else "primary"
        values["writable"] = not replica
        if not replica:
            values.pop("connected_to_primary", None)  # 0 on a primary: it is no one's standby
            values.setdefault("lag_bytes", 0)
        # The project's database keeps the source's name; read replicas get a suffix.
        alone = len(figures) == 1 or (not replica and primaries == 1)
        name = source_name if alone or not key else f"{source_name}/{key}"
        if up.get(key) == 0:
            readings.append(Reading(Kind.REPLICA, name, values, State.DOWN, "pg_up == 0 (via Supabase Metrics API)",
                                    **f.times.fields()))
        else:
            readings.append(Reading(Kind.REPLICA, name, values, **f.times.fields()))
    return readings
