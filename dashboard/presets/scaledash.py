"""The scaledash metric convention (DESIGN.md): what the lab's service exports.

circuit_breaker_state{breaker}              0 closed, 1 open, 2 half_open
circuit_breaker_calls_total{breaker,outcome} success|failure|rejected|fallback
cache_requests_total{cache,layer,result}    hit|miss
cache_invalidations_total{cache}
batcher_messages_total{batcher}, batcher_frames_total{batcher}
batcher_flush_seconds (histogram), batcher_subscribers{batcher}
edge_function_invocations_total{function,status}, edge_function_duration_seconds (histogram)
db_queries_total{node,kind}                 read|write, per database node
http_requests_total{status}                 every request the service answered
http_request_duration_seconds{cached}       "true" when served from a cache layer
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from dashboard.model import Kind, Reading
from dashboard.presets.base import Figures, MetricSpec, Series, group

METRICS = (
    MetricSpec("circuit_breaker_state", "gauge"),
    MetricSpec("circuit_breaker_calls_total", "counter"),
    MetricSpec("cache_requests_total", "counter"),
    MetricSpec("cache_invalidations_total", "counter"),
    MetricSpec("batcher_messages_total", "counter"),
    MetricSpec("batcher_frames_total", "counter"),
    MetricSpec("batcher_flush_seconds", "histogram"),
    MetricSpec("batcher_subscribers", "gauge"),
    MetricSpec("edge_function_invocations_total", "counter"),
    MetricSpec("edge_function_duration_seconds", "histogram"),
    MetricSpec("db_queries_total", "counter"),
    MetricSpec("http_requests_total", "counter"),
    MetricSpec("http_request_duration_seconds", "histogram"),
)

OUTCOMES = {"success": "success", "failure": "failure", "rejected": "rejected", "fallback": "fallback"}


def interpret(series: Iterable[Series], source_name: str) -> list[Reading]:
    breakers: dict[str, Figures] = defaultdict(Figures)
    caches: dict[tuple[str, str], Figures] = defaultdict(Figures)
    invalidations: dict[str, Figures] = defaultdict(Figures)
    batchers: dict[str, Figures] = defaultdict(Figures)
    edges: dict[str, Figures] = defaultdict(Figures)
    service = Figures()

    def breaker_state(s: Series) -> None:
        breakers[s.label("breaker", "default")].set("state", s.value, s)

    def breaker_calls(s: Series) -> None:
        outcome = OUTCOMES.get(s.label("outcome"))
        if outcome:
            breakers[s.label("breaker", "default")].add_counter(outcome, s)

    def cache_requests(s: Series) -> None:
        result = {"hit": "hits", "miss": "misses"}.get(s.label("result"))
        if result:
            figures = caches[(s.label("cache", "default"), s.label("layer"))]
            figures.add_counter(result, s)

    def batcher_figure(figure: str):
        def handle(s: Series) -> None:
            batchers[s.label("batcher", "default")].add_counter(figure, s)
        return handle

    def edge_invocations(s: Series) -> None:
        figures = edges[s.label("function", "default")]
        figures.add_counter("invocations", s)
        if s.label("status").startswith("5") or s.label("status") in ("error", "failure"):
            figures.add_counter("errors", s)
        else:
            figures.add_counter("errors", Series(s.name, s.labels, 0.0, s.rate))

    def db_queries(s: Series) -> None:
        kind = s.label("kind")
        if kind in ("read", "write"):
            service.add_counter(f"{kind}s@{s.label('node', 'unknown')}", s)

    def http_requests(s: Series) -> None:
        service.add_counter("requests", s)
        failed = s.label("status").startswith("5")
        service.add_counter("failed_requests", Series(s.name, s.labels, s.value if failed else 0.0, s.rate))

    group(series, {
        "circuit_breaker_state": breaker_state,
        "circuit_breaker_calls_total": breaker_calls,
        "cache_requests_total": cache_requests,
        "cache_invalidations_total": lambda s: invalidations[s.label("cache", "default")].add_counter(
            "invalidations", s),
        "batcher_messages_total": batcher_figure("messages"),
        "batcher_frames_total": batcher_figure("frames"),
        "batcher_flush_seconds_bucket": lambda s: batchers[s.label("batcher", "default")].add_bucket(
            "flush_buckets", s),
        "batcher_subscribers": lambda s: batchers[s.label("batcher", "default")].set("subscribers", s.value,
                                                                                      s),
        "edge_function_invocations_total": edge_invocations,
        "edge_function_duration_seconds_bucket": lambda s: edges[s.label("function", "default")].add_bucket(
            "duration_buckets", s),
        "db_queries_total": db_queries,
        "http_requests_total": http_requests,
        "http_request_duration_seconds_bucket": lambda s: service.add_bucket(
            "cached_buckets" if s.label("cached") == "true" else "uncached_buckets", s),
    })

    readings = [Reading(Kind.BREAKER, name, f.values, **f.times.fields()) for name, f in breakers.items()]
    for (name, layer), f in caches.items():
        extra = invalidations.get(name, Figures())
        values = dict(f.values, layer=layer or None, **extra.values)
        readings.append(Reading(Kind.CACHE, name, values, detail=layer or None, **f.times.merge(extra.times).fields()))
    readings += [Reading(Kind.BATCHER, name, f.values, **f.times.fields()) for name, f in batchers.items()]
    readings += [Reading(Kind.EDGE, name, f.values, **f.times.fields()) for name, f in edges.items()]
    if service.values:
        readings.append(Reading(Kind.SERVICE, source_name, service.values, **service.times.fields()))
    return readings
