"""Edge function rows: status, latency, error rate over the window, invocations/s.

Two sources feed this kind: a direct HTTP probe (one request per round; error rate
over the recent probes) and a metric source (`edge_function_invocations_total`).
"""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.hysteresis import Limit, crossed
from dashboard.kinds.base import counter_rate, histogram_delta, histogram_quantile, non_finite, ratio
from dashboard.model import Reading, State

METRIC_KEYS = ("status_code", "latency_ms", "error_rate")
HISTORY = ("latency_ms", "error_rate")


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    if "probe_errors" in f:      # direct probe: the window is the probe's own recent history
        error_rate = ratio(f["probe_errors"], f.get("probes"))
        invocations = None
        latency = f.get("latency_ms")
    else:
        invocations = counter_rate(cur, prev, dt, "invocations")
        errors = counter_rate(cur, prev, dt, "errors")
        error_rate = ratio(errors, invocations)
        p50 = histogram_quantile(0.5, histogram_delta(f, prev.figures if prev else None, "duration_buckets"))
        latency = p50 * 1000.0 if p50 is not None else None
    return {
        "status_code": f.get("status_code"),
        "latency_ms": latency,
        "error_rate": error_rate,
        "invocations_per_s": invocations,
        "expect_status": f.get("expect_status"),
    }


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    return crossed(limits(m, t))


def limits(m: dict, t: Thresholds) -> tuple[Limit, ...]:
    error_rate = m.get("error_rate")
    return () if error_rate is None else (Limit.ceiling("error rate", error_rate, t.error_rate, fmt.pct),)


def brief(m: dict) -> str:
    return f"HTTP {fmt.number(m.get('status_code'))} {fmt.ms(m.get('latency_ms'))} err {fmt.pct(m.get('error_rate'))}"
