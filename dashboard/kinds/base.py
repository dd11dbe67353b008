"""Arithmetic every kind shares: counter rates, ratios, histogram quantiles, finiteness.

A kind turns a probe's raw `Reading` (counters still cumulative) into the figures of
the `check --json` contract, using the previous reading of the same component.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from dashboard.format import format_float
from dashboard.model import Reading, State


def number(value: Any) -> float | None:
    """A float from a figure, None when absent or not a number (NaN and Inf kept)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def is_finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def counter_rate(cur: Reading, prev: Reading | None, dt: float | None, name: str) -> float | None:
    """Per-second rate of `<name>_total` between two readings, or `<name>_per_s` if given.

    A counter that went backwards was reset (process restart): no rate for that window
    rather than a negative or huge one.
    """
    direct = number(cur.figures.get(f"{name}_per_s"))
    if direct is not None:
        return direct
    if prev is None or not dt or dt <= 0:
        return None
    now, before = number(cur.figures.get(f"{name}_total")), number(prev.figures.get(f"{name}_total"))
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)):
        return None
    delta = now - before
    if delta < 0:
        return None
    return delta / dt


def ratio(part: float | None, whole: float | None) -> float | None:
    """part / whole clamped to 0..1; None when unknown, or when either is non-finite
    (clamping NaN gives 1.0: a made-up 100 % error rate)."""
    if part is None or whole is None or not (is_finite(part) and is_finite(whole)) or whole <= 0:
        return None
    return max(0.0, min(1.0, part / whole))


def histogram_delta(cur: Mapping[str, Any], prev: Mapping[str, Any] | None, key: str) -> list[tuple[float, float]]:
    """Bucket counts gained over the window: [(le, count)], cumulative, sorted by le.

    A figure given as `<key>_rate` (Prometheus already applied rate()) is used as is.
    """
    rated = cur.get(f"{key}_rate")
    if rated:
        return sorted((float(le), float(v)) for le, v in rated)
    now = dict(cur.get(key) or ())
    if prev is None:
        return []
    before = dict(prev.get(key) or ())
    out = []
    for le, count in now.items():
        delta = count - before.get(le, 0.0)
        if delta < 0:
            return []
        out.append((float(le), delta))
    return sorted(out)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus-style quantile from cumulative buckets (linear within a bucket)."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def non_finite(metrics: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first figure that is NaN or infinite, as "non-finite value name=value", else None.

    Walks what a Reading or derived figures hold: plain numbers, per-node maps, and
    histogram buckets [(le, count)], whose counts are checked (le=+Inf is the last bucket).
    """
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"non-finite value {name}={format_float(value)}"
        if isinstance(value, Mapping):
            bad = non_finite(value, f"{name}.")
            if bad:
                return bad
        elif isinstance(value, (tuple, list)):
            for item in value:
                if isinstance(item, tuple) and len(item) == 2 and not is_finite(item[1]):
                    return f"non-finite value {name}[le={format_float(item[0])}]={format_float(item[1])}"
    return None


def assess_finite(m: Mapping[str, Any], t: object) -> tuple[State, str | None]:
    """For kinds without thresholds of their own: only a non-finite figure is DEGRADED."""
    bad = non_finite(m)
    return (State.DEGRADED, bad) if bad else (State.OK, None)
