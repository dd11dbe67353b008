"""Redis caches as oliver006/redis_exporter exports them (checked against 1.45.0).

Series read, none of them labelled by the exporter itself:

redis_up                          1 when the exporter reached Redis, else 0 (and little else)
redis_keyspace_hits_total         counter -> hits
redis_keyspace_misses_total       counter -> misses
redis_commands_processed_total    counter -> ops (the exporter has no instantaneous ops/s)
redis_evicted_keys_total          counter -> evictions
redis_memory_used_bytes           gauge   -> memory_bytes

One cache Reading per Redis, detail "redis" (its layer). A direct scrape sees one
Redis; through Prometheus (or the exporter's multi-target /scrape) Redises differ by
their `instance` (or `addr`) label, and each row is named `<source>/<instance>`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from dashboard.model import Kind, Reading, State
from dashboard.presets.base import Figures, MetricSpec, Series, group

METRICS = (
    MetricSpec("redis_up", "gauge"),
    MetricSpec("redis_keyspace_hits_total", "counter"),
    MetricSpec("redis_keyspace_misses_total", "counter"),
    MetricSpec("redis_commands_processed_total", "counter"),
    MetricSpec("redis_evicted_keys_total", "counter"),
    MetricSpec("redis_memory_used_bytes", "gauge"),
)

LAYER = "redis"
COUNTERS = {
    "redis_keyspace_hits_total": "hits",
    "redis_keyspace_misses_total": "misses",
    "redis_commands_processed_total": "ops",
    "redis_evicted_keys_total": "evictions",
}


def _instance(s: Series) -> str:
    return s.label("instance") or s.label("addr")


def interpret(series: Iterable[Series], source_name: str) -> list[Reading]:
    redises: dict[str, Figures] = defaultdict(Figures)
    up: dict[str, float] = {}

    def counter(figure: str):
        return lambda s: redises[_instance(s)].add_counter(figure, s)

    def redis_up(s: Series) -> None:
        key = _instance(s)
        # A Redis that is down has no other series, but is a row.
        redises.setdefault(key, Figures()).times.note(s)
        up[key] = min(up.get(key, s.value), s.value)

    group(series, {
        "redis_up": redis_up,
        "redis_memory_used_bytes": lambda s: redises[_instance(s)].set("memory_bytes", s.value, s),
        **{name: counter(figure) for name, figure in COUNTERS.items()},
    })

    readings = []
    for key, f in redises.items():
        name = source_name if len(redises) == 1 or not key else f"{source_name}/{key}"
        # A whole Redis's keyspace counters: the same lookups as a service's "redis"
        # cache layer, so the hit-rate KPI must not count them twice (kpi.cache_hit_rate).
        values = dict(f.values, layer=LAYER, _server_wide=True)
        if up.get(key) == 0:
            readings.append(Reading(Kind.CACHE, name, values, State.DOWN, "redis_up == 0 (via exporter)", LAYER,
                                    **f.times.fields()))
        else:
            readings.append(Reading(Kind.CACHE, name, values, detail=LAYER, **f.times.fields()))
    return readings
