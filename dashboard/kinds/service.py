"""Service-wide figures that feed the KPIs: reads/writes per database node, request
errors, cached vs uncached response times. Not shown as rows of their own."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.kinds.base import counter_rate, histogram_delta, histogram_quantile, ratio
from dashboard.model import Reading, State

METRIC_KEYS = ("reads_per_s", "writes_per_s", "error_rate")
HISTORY = ("error_rate",)


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    per_node: dict[str, dict[str, float | None]] = {}
    for key in f:
        base = key.removesuffix("_total").removesuffix("_per_s")
        if "@" in base:
            kind, node = base.split("@", 1)
            per_node.setdefault(node, {})[f"{kind}_per_s"] = counter_rate(cur, prev, dt, base)
    requests = counter_rate(cur, prev, dt, "requests")
    failed = counter_rate(cur, prev, dt, "failed_requests")
    prev_f = prev.figures if prev else None
    cached = histogram_quantile(0.5, histogram_delta(f, prev_f, "cached_buckets"))
    uncached = histogram_quantile(0.5, histogram_delta(f, prev_f, "uncached_buckets"))
    reads = [v.get("reads_per_s") for v in per_node.values() if v.get("reads_per_s") is not None]
    writes = [v.get("writes_per_s") for v in per_node.values() if v.get("writes_per_s") is not None]
    return {
        "nodes": per_node,
        "reads_per_s": sum(reads) if reads else None,
        "writes_per_s": sum(writes) if writes else None,
        "requests_per_s": requests,
        "error_rate": ratio(failed, requests),
        "cached_p50_ms": cached * 1000 if cached is not None else None,
        "uncached_p50_ms": uncached * 1000 if uncached is not None else None,
    }


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    return State.OK, None


def brief(m: dict) -> str:
    return f"reads {fmt.rate(m.get('reads_per_s'))} err {fmt.pct(m.get('error_rate'))}"
