"""Every Prometheus metric the service exports, on its own registry.

The names and labels are the scaledash metric convention (DESIGN.md) that
`dashboard/presets/scaledash.py` reads; keeping them in one module makes that
contract visible in one place.  An own CollectorRegistry (not the global one) keeps
two services in one test process apart and leaves out the process/GC collectors
nobody asked for.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Fine at the low end: a memory hit answers in well under a millisecond.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
                   0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
FLUSH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

BREAKER_STATES = {"closed": 0, "open": 1, "half_open": 2}


class ServiceMetrics:
    """The service's metric objects; one instance per running service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("http_requests", "Requests answered, by route and status",
                                     ["route", "status"], registry=r)
        self.http_duration = Histogram("http_request_duration_seconds",
                                       "Server-side duration of item reads; cached=true when a cache layer answered",
                                       ["route", "cached"], buckets=LATENCY_BUCKETS, registry=r)
        self.db_queries = Counter("db_queries", "Queries run, by database node and kind (read|write)",
                                  ["node", "kind"], registry=r)
        self.breaker_state = Gauge("circuit_breaker_state", "0 closed, 1 open, 2 half_open",
                                   ["breaker"], registry=r)
        self.breaker_calls = Counter("circuit_breaker_calls", "Calls through a breaker, by outcome "
                                     "(success|failure|rejected|fallback)", ["breaker", "outcome"], registry=r)
        self.cache_requests = Counter("cache_requests", "Cache lookups by layer and result (hit|miss)",
                                      ["cache", "layer", "result"], registry=r)
        self.cache_invalidations = Counter("cache_invalidations", "Keys invalidated in every layer by a write",
                                           ["cache"], registry=r)
        self.batcher_messages = Counter("batcher_messages", "Change events taken into a fan-out batch",
                                        ["batcher"], registry=r)
        self.batcher_frames = Counter("batcher_frames", "Batched frames fanned out (one per flush, "
                                      "sent to every subscriber)", ["batcher"], registry=r)
        self.batcher_flush = Histogram("batcher_flush_seconds", "Time to send one batched frame to every "
                                       "subscriber", ["batcher"], buckets=FLUSH_BUCKETS, registry=r)
        self.batcher_subscribers = Gauge("batcher_subscribers", "Connected WebSocket subscribers",
                                         ["batcher"], registry=r)
        self.edge_invocations = Counter("edge_function_invocations", "Edge function calls by status",
                                        ["function", "status"], registry=r)
        self.edge_duration = Histogram("edge_function_duration_seconds", "Edge function duration, "
                                       "injected latency included", ["function"], buckets=LATENCY_BUCKETS,
                                       registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
