"""Resilience4j circuit breakers, as exported through Micrometer's Prometheus registry.

Series read (tags as resilience4j-micrometer's TaggedCircuitBreakerMetrics sets them):

resilience4j_circuitbreaker_state{name,state}            1 on the current state, 0 on the others;
    states closed, open, half_open, forced_open, disabled, metrics_only
resilience4j_circuitbreaker_failure_rate{name}            PERCENT; -1 until enough calls were seen
resilience4j_circuitbreaker_slow_call_rate{name}          PERCENT; -1 likewise
resilience4j_circuitbreaker_calls_seconds_count{name,kind}  Micrometer timer; kind successful|failed|ignored
resilience4j_circuitbreaker_not_permitted_calls_total{name,kind="not_permitted"}
resilience4j_circuitbreaker_calls_total{name,kind}        resilience4j-prometheus' own collector (no
    Micrometer); kind successful|failed|ignored|not_permitted

One breaker Reading per `name` label. Several app instances behind one Prometheus
export the same name: counters are summed, the state and rates shown are the worst.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from dashboard.model import Kind, Reading
from dashboard.presets.base import Figures, MetricSpec, SampleTimes, Series, group

METRICS = (
    MetricSpec("resilience4j_circuitbreaker_state", "gauge"),
    MetricSpec("resilience4j_circuitbreaker_failure_rate", "gauge"),
    MetricSpec("resilience4j_circuitbreaker_slow_call_rate", "gauge"),
    MetricSpec("resilience4j_circuitbreaker_calls_seconds_count", "counter"),
    MetricSpec("resilience4j_circuitbreaker_not_permitted_calls_total", "counter"),
    MetricSpec("resilience4j_circuitbreaker_calls_total", "counter"),
)

# Resilience4j state -> the breaker figure. forced_open rejects every call like open;
# disabled and metrics_only let every call through, so they keep their own name.
STATE_WORDS = {
    "closed": "closed",
    "open": "open",
    "half_open": "half_open",
    "forced_open": "open",
    "disabled": "disabled",
    "metrics_only": "metrics_only",
}
# When instances disagree, show the one that matters most to an operator.
_STATE_RANK = {"open": 0, "half_open": 1, "disabled": 2, "metrics_only": 3, "closed": 4}

KINDS = {"successful": "success", "failed": "failure", "not_permitted": "rejected"}


@dataclass
class _Breaker:
    states: set = field(default_factory=set)
    failure_rates: list = field(default_factory=list)
    slow_rates: list = field(default_factory=list)
    timer: Figures = field(default_factory=Figures)          # calls_seconds_count
    collector: Figures = field(default_factory=Figures)      # calls_total
    not_permitted: Figures = field(default_factory=Figures)  # not_permitted_calls_total
    times: SampleTimes = field(default_factory=SampleTimes)


def fraction(percent: float) -> float | None:
    """Resilience4j's percent as a 0..1 fraction; its -1 ("not enough calls") is None.

    NaN and the infinities are passed on, for the engine to flag as non-finite (-Inf
    is not "not enough calls").
    """
    if not math.isfinite(percent):
        return percent
    if percent < 0:
        return None
    return percent / 100.0


def _worst_rate(values: list[float]) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    nan = [v for v in known if math.isnan(v)]
    return nan[0] if nan else max(known)


def interpret(series: Iterable[Series], source_name: str) -> list[Reading]:
    breakers: dict[str, _Breaker] = defaultdict(_Breaker)

    def named(handler):
        def handle(s: Series) -> None:
            name = s.label("name")
            if name:  # a series without the breaker's name cannot be placed
                breakers[name].times.note(s)
                handler(breakers[name], s)
        return handle

    def state(b: _Breaker, s: Series) -> None:
        word = STATE_WORDS.get(s.label("state"))
        if word and s.value == 1:
            b.states.add(word)

    def calls(target: str):
        def handle(b: _Breaker, s: Series) -> None:
            figure = KINDS.get(s.label("kind"))
            if figure:  # "ignored" calls count neither as success nor as failure
                getattr(b, target).add_counter(figure, s)
        return handle

    group(series, {
        "resilience4j_circuitbreaker_state": named(state),
        "resilience4j_circuitbreaker_failure_rate": named(lambda b, s: b.failure_rates.append(fraction(s.value))),
        "resilience4j_circuitbreaker_slow_call_rate": named(lambda b, s: b.slow_rates.append(fraction(s.value))),
        "resilience4j_circuitbreaker_calls_seconds_count": named(calls("timer")),
        "resilience4j_circuitbreaker_calls_total": named(calls("collector")),
        "resilience4j_circuitbreaker_not_permitted_calls_total": named(
            lambda b, s: b.not_permitted.add_counter("rejected", s)),
    })

    readings = []
    for name, b in breakers.items():
        # The Micrometer timer and resilience4j's own collector count the same calls:
        # take one source per breaker, never the sum of both.
        values = dict(b.timer.values or b.collector.values)
        if b.not_permitted.values:  # the dedicated counter wins over calls_total{kind="not_permitted"}
            values = {k: v for k, v in values.items() if not k.startswith("rejected_")}
            values.update(b.not_permitted.values)
        if b.states:
            values["state"] = min(b.states, key=lambda w: _STATE_RANK.get(w, 0))
        if b.failure_rates:
            values["failure_rate"] = _worst_rate(b.failure_rates)
        if b.slow_rates:
            values["slow_call_rate"] = _worst_rate(b.slow_rates)
        readings.append(Reading(Kind.BREAKER, name, values, **b.times.fields()))
    return readings
