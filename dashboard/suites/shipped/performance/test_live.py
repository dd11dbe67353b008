"""The live figures: what the stack shows as it runs, with no switch touched.

Runs against any stack with a service, admin endpoint or not: the share of a burst
of uncached reads the primary took, the p50 read time of a short cached workload,
and the service's own cumulative batching, breaker and error figures from /metrics.
Without the admin switches these are the only figures, and the output says so; they
have no "off" side to compare with, so they are printed, not judged (the cache hit
rate, which needs no baseline, is judged in test_cache).
"""

from __future__ import annotations

from dashboard.suites.shipped.scaling.moves import node_reads

from .workload import BREAKER_OFF, TimingClient, catalogue_reads, expect, missing_ids, p50_ms, pct

READS = 50
SWITCHES = ("replica_reads", "cache_bypass", "batch_window_ms")


def _a_b_status(stack) -> str:
    admin, reason = stack.find_admin()
    if admin is None:
        return f"A/B pairs not measured: {reason}"
    switches = admin.state().get("switches") or {}
    missing = [name for name in SWITCHES if name not in switches]
    if not set(BREAKER_OFF) & set(switches):
        missing.append(" or ".join(BREAKER_OFF))
    if missing:
        return f"A/B pairs not measured for switches the service lacks: {', '.join(missing)}"
    return "A/B pairs measured by the other tests"


def _primary_share(stack, figures) -> None:
    if not stack.metrics().has("db_queries_total"):
        figures.report("live: the service exports no db_queries_total{node,kind}: no per-node read figures")
        return
    before = node_reads(stack)
    for item_id in missing_ids(READS):
        expect(stack.service.get(f"/items/{item_id}"), 404)
    reads = {name: value - before.get(name, 0.0) for name, value in node_reads(stack).items()}
    primary = next((n.name for n in stack.nodes if not n.is_replica), "primary")
    if primary not in reads:
        figures.report(f"live: the service's db_queries_total has no node {primary!r} (it has {sorted(reads)}): "
                       "the primary's share of reads is unknown")
        return
    share = reads.get(primary, 0.0) / max(sum(reads.values()), 1.0)
    figures.report(f"live: the primary ({primary}) took {pct(share)} of {READS} uncached reads "
                   f"(per node: {', '.join(f'{n} {v:g}' for n, v in sorted(reads.items()))})",
                   live_primary_read_share=share)


def _cached_p50(stack, figures) -> None:
    client = TimingClient(stack)
    try:
        seconds = [client.get(f"/items/{item_id}").seconds for item_id in catalogue_reads(10, 5)]
    finally:
        client.close()
    figures.report(f"live: p50 read time {p50_ms(seconds):.2f} ms over {len(seconds)} reads of 10 items",
                   live_p50_read_ms=p50_ms(seconds))


def _service_counters(stack, figures) -> None:
    metrics = stack.metrics()
    messages, frames = metrics.value("batcher_messages_total"), metrics.value("batcher_frames_total")
    if messages:
        figures.report(f"live: batching since the service started: {frames:g} frames for {messages:g} changes "
                       f"(down {pct(1 - frames / messages)})", live_frame_reduction=1 - frames / messages)
    requests = [(ls.get("code") or ls.get("status") or "", v) for n, ls, v in metrics.samples
                if n == "http_requests_total"]
    total = sum(v for _, v in requests)
    if total:
        errors = sum(v for code, v in requests if code.startswith("5"))
        figures.report(f"live: error rate since the service started {pct(errors / total)} of {total:g} requests",
                       live_error_rate=errors / total)
    states = {ls.get("breaker"): v for n, ls, v in metrics.samples if n == "circuit_breaker_state"}
    if states:
        figures.report("live: breakers " + ", ".join(f"{name} {('closed', 'open', 'half-open')[int(v)]}"
                                                     for name, v in sorted(states.items()) if 0 <= v <= 2))


def test_live_figures_are_measured_whatever_the_stack_allows(stack, figures):
    figures.report(f"live: {_a_b_status(stack)}")
    _primary_share(stack, figures)
    _cached_p50(stack, figures)
    _service_counters(stack, figures)
