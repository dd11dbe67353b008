"""Exposition bodies for the test HTTP server, with counters that advance with time.

A real service's counters grow between two scrapes; these do too (at fixed rates from
the moment the route is installed), so `check` sees real rates over its window.
"""

from __future__ import annotations

import time


def scaledash_metrics(started: float | None = None):
    """A handler serving the scaledash convention: breakers, a 2-layer cache, a batcher."""
    t0 = started or time.monotonic()

    def handler(request: dict):
        t = time.monotonic() - t0 + 10.0
        body = f"""# HELP circuit_breaker_state 0 closed, 1 open, 2 half_open
# TYPE circuit_breaker_state gauge
circuit_breaker_state{{breaker="upstream"}} 1
circuit_breaker_state{{breaker="db"}} 0
# TYPE circuit_breaker_calls_total counter
circuit_breaker_calls_total{{breaker="upstream",outcome="success"}} {30 * t}
circuit_breaker_calls_total{{breaker="upstream",outcome="failure"}} {10 * t}
circuit_breaker_calls_total{{breaker="upstream",outcome="rejected"}} {5 * t}
circuit_breaker_calls_total{{breaker="db",outcome="success"}} {100 * t}
circuit_breaker_calls_total{{breaker="db",outcome="failure"}} 0
# TYPE cache_requests_total counter
cache_requests_total{{cache="catalog",layer="memory",result="hit"}} {80 * t}
cache_requests_total{{cache="catalog",layer="memory",result="miss"}} {20 * t}
cache_requests_total{{cache="catalog",layer="redis",result="hit"}} {15 * t}
cache_requests_total{{cache="catalog",layer="redis",result="miss"}} {5 * t}
# TYPE batcher_messages_total counter
batcher_messages_total{{batcher="realtime"}} {200 * t}
# TYPE batcher_frames_total counter
batcher_frames_total{{batcher="realtime"}} {20 * t}
# TYPE batcher_subscribers gauge
batcher_subscribers{{batcher="realtime"}} 12
# TYPE batcher_flush_seconds histogram
batcher_flush_seconds_bucket{{batcher="realtime",le="0.005"}} {10 * t}
batcher_flush_seconds_bucket{{batcher="realtime",le="0.01"}} {18 * t}
batcher_flush_seconds_bucket{{batcher="realtime",le="0.05"}} {20 * t}
batcher_flush_seconds_bucket{{batcher="realtime",le="+Inf"}} {20 * t}
batcher_flush_seconds_count{{batcher="realtime"}} {20 * t}
batcher_flush_seconds_sum{{batcher="realtime"}} {0.1 * t}
# TYPE db_queries_total counter
db_queries_total{{node="primary",kind="read"}} {10 * t}
db_queries_total{{node="primary",kind="write"}} {5 * t}
db_queries_total{{node="replica-1",kind="read"}} {45 * t}
db_queries_total{{node="replica-2",kind="read"}} {45 * t}
"""
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, body.encode()

    return handler


def resilience4j_metrics(started: float | None = None):
    """Resilience4j's Micrometer names: one open breaker at 25 % failures, one closed."""
    t0 = started or time.monotonic()

    def handler(request: dict):
        t = time.monotonic() - t0 + 10.0
        body = f"""# HELP resilience4j_circuitbreaker_state The states of the circuit breaker
# TYPE resilience4j_circuitbreaker_state gauge
resilience4j_circuitbreaker_state{{name="payments",state="closed",}} 0.0
resilience4j_circuitbreaker_state{{name="payments",state="open",}} 1.0
resilience4j_circuitbreaker_state{{name="payments",state="half_open",}} 0.0
resilience4j_circuitbreaker_state{{name="inventory",state="closed",}} 1.0
resilience4j_circuitbreaker_state{{name="inventory",state="open",}} 0.0
resilience4j_circuitbreaker_state{{name="inventory",state="half_open",}} 0.0
# HELP resilience4j_circuitbreaker_failure_rate The failure rate of the circuit breaker
# TYPE resilience4j_circuitbreaker_failure_rate gauge
resilience4j_circuitbreaker_failure_rate{{name="payments",}} 25.0
resilience4j_circuitbreaker_failure_rate{{name="inventory",}} -1.0
# HELP resilience4j_circuitbreaker_calls_seconds Total number of calls
# TYPE resilience4j_circuitbreaker_calls_seconds summary
resilience4j_circuitbreaker_calls_seconds_count{{kind="successful",name="payments",}} {30 * t}
resilience4j_circuitbreaker_calls_seconds_sum{{kind="successful",name="payments",}} {0.3 * t}
resilience4j_circuitbreaker_calls_seconds_count{{kind="failed",name="payments",}} {10 * t}
resilience4j_circuitbreaker_calls_seconds_sum{{kind="failed",name="payments",}} {0.1 * t}
resilience4j_circuitbreaker_calls_seconds_count{{kind="successful",name="inventory",}} {5 * t}
resilience4j_circuitbreaker_calls_seconds_sum{{kind="successful",name="inventory",}} {0.05 * t}
# HELP resilience4j_circuitbreaker_not_permitted_calls_total Total number of not permitted calls
# TYPE resilience4j_circuitbreaker_not_permitted_calls_total counter
resilience4j_circuitbreaker_not_permitted_calls_total{{kind="not_permitted",name="payments",}} {7 * t}
"""
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, body.encode()

    return handler


HOSTILE = "[/bold]\x1b[31mred\x1b]52;c;ZXZpbA==\x07\u202eevil\x00" + "x" * 10_000


def hostile_metrics(request: dict):
    """A breaker whose name is markup, ANSI, an OSC 52 clipboard write, bidi and 10k chars."""
    label = HOSTILE.replace("\\", "\\\\").replace('"', '\\"')
    body = f"""# TYPE circuit_breaker_state gauge
circuit_breaker_state{{breaker="{label}"}} 0
circuit_breaker_state{{breaker="neg"}} 0
# TYPE batcher_subscribers gauge
batcher_subscribers{{batcher="nan-batcher"}} NaN
# TYPE batcher_messages_total counter
batcher_messages_total{{batcher="nan-batcher"}} +Inf
# TYPE circuit_breaker_calls_total counter
circuit_breaker_calls_total{{breaker="neg",outcome="success"}} -Inf
"""
    return 200, {"Content-Type": "text/plain"}, body.encode()
