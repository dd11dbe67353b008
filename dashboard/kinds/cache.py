"""Cache rows (a Redis, or one layer of a multi-layer cache): windowed hit rate, ops/s."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.kinds.base import counter_rate, non_finite, ratio
from dashboard.model import Reading, State

METRIC_KEYS = ("hit_rate", "hits_per_s", "misses_per_s", "ops_per_s", "evictions")


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
    }


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    hit_rate = m.get("hit_rate")
    if hit_rate is not None and hit_rate < t.cache_hit_rate:
        return State.DEGRADED, f"hit rate {hit_rate:.0%} < {t.cache_hit_rate:.0%}"
    if hit_rate is None and m.get("hits_per_s") is not None:
        return State.OK, "no lookups in the window"
    return State.OK, None


def brief(m: dict) -> str:
    return f"hit {fmt.pct(m.get('hit_rate'))} {fmt.rate(m.get('ops_per_s'))} evict {fmt.number(m.get('evictions'))}"
