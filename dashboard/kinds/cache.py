"""Cache rows (a Redis, or one layer of a multi-layer cache): windowed hit rate, ops/s."""

from __future__ import annotations

from typing import Callable

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.hysteresis import Limit, Memory, crossed
from dashboard.kinds.base import counter_rate, non_finite, ratio
from dashboard.model import Reading, State

METRIC_KEYS = ("hit_rate", "hits_per_s", "misses_per_s", "ops_per_s", "evictions")
HISTORY = ("hit_rate", "ops_per_s")


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    hits = counter_rate(cur, prev, dt, "hits")
    misses = counter_rate(cur, prev, dt, "misses")
    lookups = None if hits is None or misses is None else hits + misses
    ops = counter_rate(cur, prev, dt, "ops")
    return {
        "layer": f.get("layer"),
        "hit_rate": ratio(hits, lookups),
        "hits_per_s": hits,
        "misses_per_s": misses,
        "ops_per_s": ops if ops is not None else lookups,
        "evictions": f.get("evictions_total"),
        "evictions_per_s": counter_rate(cur, prev, dt, "evictions"),
        "invalidations_per_s": counter_rate(cur, prev, dt, "invalidations"),
        "memory_bytes": f.get("memory_bytes"),
        "min_hit_rate": f.get("min_hit_rate"),
        "_server_wide": f.get("_server_wide"),
    }


MIN_LOOKUPS_PER_S = 1.0     # below this a window's hit rate is noise, not a signal


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    hit_rate = m.get("hit_rate")
    lookups = (m.get("hits_per_s") or 0.0) + (m.get("misses_per_s") or 0.0)
    if hit_rate is None and m.get("hits_per_s") is not None:
        return State.OK, "no lookups in the window"
    if hit_rate is not None and lookups < MIN_LOOKUPS_PER_S:
        return State.OK, "too few lookups to judge the hit rate"
    return crossed(limits(m, t))


def limits(m: dict, t: Thresholds) -> tuple[Limit, ...]:
    """The hit rate against its floor, when the window had enough lookups to judge it."""
    hit_rate = m.get("hit_rate")
    lookups = (m.get("hits_per_s") or 0.0) + (m.get("misses_per_s") or 0.0)
    if hit_rate is None or lookups < MIN_LOOKUPS_PER_S:
        return ()
    floor = m["min_hit_rate"] if m.get("min_hit_rate") is not None else t.cache_hit_rate
    return (Limit.floor("hit rate", hit_rate, floor, fmt.pct),)


def overall_hit_rate(layers: list) -> tuple[float | None, float]:
    """Hits over lookups across the layers of one cache, each request counted once:
    a miss in one layer is a lookup in the next, so only the deepest layer's misses
    are final. Returns (hit rate, lookups per second)."""
    def lookups(c) -> float:
        return (c.metrics.get("hits_per_s") or 0.0) + (c.metrics.get("misses_per_s") or 0.0)

    hits = sum(c.metrics.get("hits_per_s") or 0.0 for c in layers)
    deepest = min(layers, key=lookups)
    total = hits + (deepest.metrics.get("misses_per_s") or 0.0)
    return (hits / total if total > 0 else None), total


def relate(components: list, t: Thresholds, memory: Callable[[object], Memory] | None = None,
           now: float = 0.0) -> list:
    """Judge a multi-layer cache by its overall hit rate, not layer by layer: a deeper
    layer only sees the misses above it, so its own hit rate says little. `memory(row)`
    gives the row's threshold memory (the engine keeps one per row, so the overall hit
    rate has the same band and hold as every threshold); without it, each call judges
    alone."""
    from dataclasses import replace

    groups: dict[tuple[str, str], list] = {}
    for c in components:
        if c.kind.value == "cache" and c.detail:
            groups.setdefault((c.target, c.name), []).append(c)
    judged = {}
    for layers in groups.values():
        if len(layers) < 2 or any(c.state not in (State.OK, State.DEGRADED) for c in layers):
            continue
        overall, volume = overall_hit_rate(layers)
        for c in layers:
            metrics = dict(c.metrics, overall_hit_rate=overall)
            judged_limits = ()
            if overall is not None and volume >= MIN_LOOKUPS_PER_S:
                judged_limits = (Limit.floor("overall hit rate", overall, t.cache_hit_rate, fmt.pct),)
            state, reason = crossed(judged_limits)
            if memory is not None:
                state, reason = memory(c).judge((state, reason), judged_limits, now, t)
            judged[id(c)] = replace(c, metrics=metrics, state=state, reason=reason)
    return [judged.get(id(c), c) for c in components]


def brief(m: dict) -> str:
    return f"hit {fmt.pct(m.get('hit_rate'))} {fmt.rate(m.get('ops_per_s'))} evict {fmt.number(m.get('evictions'))}"
