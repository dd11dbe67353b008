"""Circuit breaker rows: state, failure rate, calls/s, rejected calls/s."""

from __future__ import annotations

import math

from dashboard import format as fmt
from dashboard.config import Thresholds
from dashboard.kinds.base import counter_rate, non_finite, number, ratio
from dashboard.model import Reading, State

METRIC_KEYS = ("state", "failure_rate", "calls_per_s", "rejected_per_s")
HISTORY = ("failure_rate", "calls_per_s", "rejected_per_s")
STATES = {0: "closed", 1: "open", 2: "half_open"}


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    f = cur.figures
    success = counter_rate(cur, prev, dt, "success")
    failure = counter_rate(cur, prev, dt, "failure")
    rejected = counter_rate(cur, prev, dt, "rejected")
    calls = None if success is None and failure is None else (success or 0.0) + (failure or 0.0)
    failure_rate = number(f.get("failure_rate"))
    if failure_rate is None:
        failure_rate = ratio(failure, calls)
    state = f.get("state")
    if isinstance(state, (int, float)) and not isinstance(state, bool):
        state = STATES.get(int(state), "unknown") if math.isfinite(state) else "unknown"
    return {
        "state": state,
        "failure_rate": failure_rate,
        "calls_per_s": calls,
        "rejected_per_s": rejected,
        "fallback_per_s": counter_rate(cur, prev, dt, "fallback"),
    }


def assess(m: dict, t: Thresholds) -> tuple[State, str | None]:
    bad = non_finite(m)
    if bad:
        return State.DEGRADED, bad
    if m.get("state") == "open":
        return State.DEGRADED, "breaker open"
    if m.get("state") == "half_open":
        return State.DEGRADED, "breaker half-open"
    if m.get("state") not in ("closed", None):
        return State.DEGRADED, f"breaker {m.get('state')}"
    return State.OK, None


def brief(m: dict) -> str:
    return (f"{fmt.word(m.get('state'))} fail {fmt.pct(m.get('failure_rate'))} "
            f"{fmt.rate(m.get('calls_per_s'))} rej {fmt.rate(m.get('rejected_per_s'))}")
