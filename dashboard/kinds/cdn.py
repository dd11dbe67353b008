"""CDN rows: cache status from response headers, hit rate over recent probes, latency."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.kinds.base import assess_finite, ratio
from dashboard.model import Reading

METRIC_KEYS = ("cache_status", "hit_rate", "latency_ms")
HISTORY = ("latency_ms",)


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    return {
        "cache_status": f.get("cache_status"),
        "hit_rate": ratio(f.get("probe_hits"), f.get("probes_with_status")),
        "latency_ms": f.get("latency_ms"),
        "status_code": f.get("status_code"),
        "age_header_s": f.get("age_header_s"),
    }


assess = assess_finite


def brief(m: dict) -> str:
    return f"{fmt.word(m.get('cache_status'))} hits {fmt.pct(m.get('hit_rate'))} {fmt.ms(m.get('latency_ms'))}"
