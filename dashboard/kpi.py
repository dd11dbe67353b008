"""The seven target figures the seed system promised, computed from a snapshot.

A KPI that cannot be computed from what is configured has value None and met None,
never a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import replace

from dashboard.kinds.cache import overall_hit_rate
from dashboard.model import Component, Kind, Kpi, Snapshot, State

TARGETS = {
    "primary_read_offload": ("Offload", "0.80-0.90", lambda v: v >= 0.80),
    "cache_latency_improvement": ("Speed-up", "0.50-0.90", lambda v: v >= 0.50),
    "websocket_frame_reduction": ("WS cut", ">= 0.80", lambda v: v >= 0.80),
    "error_rate": ("Errors", "< 0.01", lambda v: v < 0.01),
    "cache_hit_rate": ("Hits", "> 0.80", lambda v: v > 0.80),
    "failover_seconds": ("Failover", "< 1.0", lambda v: v < 1.0),
    "uptime": ("Uptime", ">= 0.999", lambda v: v >= 0.999),
}


def _fresh(components, kind: Kind) -> list[Component]:
    return [c for c in components if c.kind is kind and c.state not in (State.DOWN, State.ERROR, State.UNKNOWN)]


def read_offload(snap: Snapshot) -> tuple[float | None, str | None]:
    """Share of reads served by replicas, from per-node read counters of the service."""
    primaries = {c.name for c in snap.components if c.kind is Kind.REPLICA and c.metrics.get("role") == "primary"}
    replica_reads = primary_reads = 0.0
    seen = False
    for svc in snap.service:
        for node, figures in (svc.metrics.get("nodes") or {}).items():
            reads = figures.get("reads_per_s")
            if reads is None:
                continue
            seen = True
            if node in primaries or node == "primary":
                primary_reads += reads
            else:
                replica_reads += reads
    total = replica_reads + primary_reads
    if not seen or total <= 0:
        return None, "needs db_queries_total{node,kind} from a metric source"
    return replica_reads / total, f"{replica_reads:.1f} of {total:.1f} reads/s on replicas"


def latency_improvement(snap: Snapshot) -> tuple[float | None, str | None]:
    for svc in snap.service:
        cached, uncached = svc.metrics.get("cached_p50_ms"), svc.metrics.get("uncached_p50_ms")
        if cached is not None and uncached:
            return 1.0 - cached / uncached, f"p50 {cached:.1f} ms cached vs {uncached:.1f} ms uncached"
    return None, "needs http_request_duration_seconds{cached} from a metric source"


def frame_reduction(snap: Snapshot) -> tuple[float | None, str | None]:
    batchers = _fresh(snap.components, Kind.BATCHER)
    messages = sum(c.metrics.get("messages_in_per_s") or 0.0 for c in batchers)
    frames = sum(c.metrics.get("frames_out_per_s") or 0.0 for c in batchers)
    if messages <= 0:
        return None, "no batcher messages in the window" if batchers else "no batcher configured"
    return 1.0 - frames / messages, f"{frames:.1f} frames/s for {messages:.1f} messages/s"


def error_rate(snap: Snapshot) -> tuple[float | None, str | None]:
    for svc in snap.service:
        if svc.metrics.get("error_rate") is not None:
            return svc.metrics["error_rate"], f"{svc.metrics.get('requests_per_s') or 0:.1f} requests/s"
    edges = [c for c in _fresh(snap.components, Kind.EDGE) if c.metrics.get("invocations_per_s")]
    total = sum(c.metrics["invocations_per_s"] for c in edges)
    if total > 0:
        failed = sum(c.metrics["invocations_per_s"] * (c.metrics.get("error_rate") or 0.0) for c in edges)
        return failed / total, f"{total:.1f} edge invocations/s"
    return None, "needs http_requests_total or edge function metrics"


def cache_hit_rate(snap: Snapshot) -> tuple[float | None, str | None]:
    """Hits over lookups; for a multi-layer cache each request counts once."""
    caches = [c for c in _fresh(snap.components, Kind.CACHE) if c.metrics.get("hits_per_s") is not None]
    # A Redis's own counters (direct INFO, redis_exporter) count the lookups a service's
    # cache layers already count: those layers win when there are any.
    layered = [c for c in caches if c.source != "redis" and not c.metrics.get("_server_wide")] or caches
    groups: dict[str, list[Component]] = {}
    for c in layered:
        groups.setdefault(f"{c.target}/{c.name}", []).append(c)
    hits = lookups = 0.0
    for layers in groups.values():
        rate, volume = overall_hit_rate(layers)
        if rate is not None:
            hits += rate * volume
            lookups += volume
    if lookups <= 0:
        return None, "no cache lookups in the window"
    return hits / lookups, f"{lookups:.1f} lookups/s"


def compute(snap: Snapshot, probes: tuple[int, int] | None = None,
            failover_seconds: float | None = None) -> tuple[Kpi, ...]:
    """The seven KPIs of `snap`. `probes` is (answered, attempted) over the session, the
    uptime's inputs; `failover_seconds` the last failover a drill measured. Both are plain
    values, so this module never reaches back into the engine that owns them."""
    uptime: tuple[float | None, str | None] = (None, "no probes yet")
    failover: tuple[float | None, str | None] = (None, "not measured yet")
    if probes is not None and probes[1]:
        good, attempts = probes
        uptime = (good / attempts, f"{good}/{attempts} probes answered")
    if failover_seconds is not None:
        failover = (failover_seconds, "measured by the failover drill")
    values = {
        "primary_read_offload": read_offload(snap),
        "cache_latency_improvement": latency_improvement(snap),
        "websocket_frame_reduction": frame_reduction(snap),
        "error_rate": error_rate(snap),
        "cache_hit_rate": cache_hit_rate(snap),
        "failover_seconds": failover,
        "uptime": uptime,
    }
    out = []
    for name, (label, target, test) in TARGETS.items():
        value, detail = values[name]
        if value is not None and not math.isfinite(value):
            value, detail = None, "non-finite input figures"
        met = None if value is None else bool(test(value))
        out.append(Kpi(name, label, None if value is None else round(value, 4), target, met, detail))
    return tuple(out)


def with_kpis(snap: Snapshot, probes: tuple[int, int] | None = None,
              failover_seconds: float | None = None) -> Snapshot:
    return replace(snap, kpis=compute(snap, probes, failover_seconds))
