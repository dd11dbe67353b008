"""How each kind turns raw readings into contract figures and a state."""

from __future__ import annotations

import math

import pytest

from dashboard.config import Thresholds
from dashboard.kinds import batcher, breaker, cache, edge, replica
from dashboard.kinds.base import histogram_quantile
from dashboard.model import Component, Kind, Reading, State

T = Thresholds()


def _rates(module, before: dict, after: dict, dt: float = 1.0, kind=Kind.CACHE) -> dict:
    return module.derive(Reading(kind, "x", after), Reading(kind, "x", before), dt)


def test_cache_hit_rate_is_over_the_window_not_the_lifetime():
    m = _rates(cache, {"hits_total": 0, "misses_total": 10_000}, {"hits_total": 90, "misses_total": 10_010})
    assert m["hit_rate"] == pytest.approx(0.9)
    assert cache.assess(m, T) == (State.OK, None)


def test_a_counter_reset_gives_no_rate_rather_than_a_negative_one():
    m = _rates(cache, {"hits_total": 500, "misses_total": 50}, {"hits_total": 3, "misses_total": 1})
    assert m["hits_per_s"] is None and m["hit_rate"] is None


def test_a_cache_below_its_floor_is_degraded_unless_the_window_is_too_quiet():
    busy = _rates(cache, {"hits_total": 0, "misses_total": 0}, {"hits_total": 50, "misses_total": 50})
    assert cache.assess(busy, T)[0] is State.DEGRADED
    quiet = _rates(cache, {"hits_total": 0, "misses_total": 0}, {"hits_total": 0.2, "misses_total": 0.3})
    assert cache.assess(quiet, T) == (State.OK, "too few lookups to judge the hit rate")
    lenient = dict(busy, min_hit_rate=0.4)
    assert cache.assess(lenient, T)[0] is State.OK


def _layer(layer: str, hits: float, misses: float) -> Component:
    metrics = {"hits_per_s": hits, "misses_per_s": misses, "hit_rate": hits / (hits + misses), "layer": layer}
    state, reason = cache.assess(metrics, T)
    return Component(Kind.CACHE, "items", state, reason, "scrape", "service", 0.1, metrics, detail=layer)


def test_a_multi_layer_cache_is_judged_by_its_overall_hit_rate():
    memory, redis = _layer("memory", 76, 24), _layer("redis", 18, 6)
    assert memory.state is State.DEGRADED and redis.state is State.DEGRADED   # layer by layer
    judged = cache.relate([memory, redis], T)
    assert [c.state for c in judged] == [State.OK, State.OK]
    assert judged[0].metrics["overall_hit_rate"] == pytest.approx(94 / 100)
    poor = cache.relate([_layer("memory", 50, 50), _layer("redis", 10, 40)], T)
    assert all(c.state is State.DEGRADED and "overall hit rate 60%" in c.reason for c in poor)


def test_breaker_state_words_and_fractions():
    m = _rates(breaker, {"success_total": 0, "failure_total": 0, "rejected_total": 0},
               {"success_total": 30, "failure_total": 10, "rejected_total": 5, "state": 2.0}, kind=Kind.BREAKER)
    assert m["state"] == "half_open" and m["failure_rate"] == pytest.approx(0.25)
    assert m["calls_per_s"] == 40 and m["rejected_per_s"] == 5
    assert breaker.assess(m, T) == (State.DEGRADED, "breaker half-open")
    assert breaker.derive(Reading(Kind.BREAKER, "x", {"state": math.inf}), None, None)["state"] == "unknown"


def test_batcher_reduction_batch_size_and_flush_p95():
    m = _rates(batcher, {"messages_total": 0, "frames_total": 0, "flush_buckets": ((0.01, 0), (math.inf, 0))},
               {"messages_total": 200, "frames_total": 20, "flush_buckets": ((0.01, 19), (math.inf, 20))},
               kind=Kind.BATCHER)
    assert m["reduction"] == pytest.approx(0.9) and m["avg_batch_size"] == pytest.approx(10)
    assert m["flush_p95_ms"] == pytest.approx(10.0)


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.5, []) is None


def test_replica_thresholds_and_non_finite_values():
    assert replica.assess({"lag_bytes": 17 * 2**20, "lag_seconds": 0.1}, T)[0] is State.DEGRADED
    assert replica.assess({"lag_bytes": 0, "lag_seconds": 6.0}, T)[0] is State.DEGRADED
    assert replica.assess({"lag_bytes": 0, "lag_seconds": 0.0, "replay_paused": True}, T) == (
        State.DEGRADED, "replay paused")
    state, reason = replica.assess({"lag_bytes": 0, "lag_seconds": math.nan}, T)
    assert state is State.DEGRADED and "NaN" in reason


def test_edge_error_rate_from_direct_probes_and_from_metrics():
    direct = edge.derive(Reading(Kind.EDGE, "e", {"status_code": 200, "probes": 50, "probe_errors": 1}), None, None)
    assert direct["error_rate"] == pytest.approx(0.02) and edge.assess(direct, T)[0] is State.DEGRADED
    metered = _rates(edge, {"invocations_total": 0, "errors_total": 0},
                     {"invocations_total": 1000, "errors_total": 5}, kind=Kind.EDGE)
    assert metered["error_rate"] == pytest.approx(0.005) and edge.assess(metered, T)[0] is State.OK


def test_engine_rates_span_a_few_seconds_of_readings_not_one_interval():
    import asyncio

    from dashboard.config import validate
    from dashboard.engine import Engine
    from scripted import Clock, ScriptedProbe

    series = iter([(0, 0), (10, 0), (20, 0), (30, 0), (40, 10)])

    class Counting(ScriptedProbe):
        async def collect(self):
            hits, misses = next(series)
            return [Reading(Kind.CACHE, "c", {"hits_total": hits, "misses_total": misses})]

    clock = Clock()
    engine = Engine(validate({"interval": "1s"}), [Counting("c", "redis", [], Kind.CACHE)], clock=clock)

    async def rounds():
        for _ in range(5):
            await engine.poll_round()
            clock.now += 1.0

    asyncio.run(rounds())
    cache = engine.snapshot().components[0]
    assert cache.metrics["hit_rate"] == pytest.approx(0.8)       # 40 of 50 over 4 s, not 10 of 20 over 1 s
    assert cache.metrics["hits_per_s"] == pytest.approx(10.0)


def test_a_target_with_its_own_interval_polls_less_often_and_goes_stale_later():
    import asyncio

    from dashboard.config import validate
    from dashboard.engine import Engine
    from fakes import VirtualTime
    from scripted import ScriptedProbe

    fast = ScriptedProbe("fast", "http", [Reading(Kind.CDN, "fast", {"latency_ms": 1.0})], Kind.CDN)
    slow = ScriptedProbe("slow", "http", [Reading(Kind.CDN, "slow", {"latency_ms": 1.0})], Kind.CDN)
    slow.interval = 0.5
    vt = VirtualTime()
    engine = Engine(validate({"interval": "0.1s", "timeout": "0.08s"}), [fast, slow], clock=vt.clock)

    async def run():
        engine.start()
        await asyncio.sleep(1.05)
        snap = engine.snapshot()
        await engine.close()
        return snap

    snap = vt.run(run)
    assert len(fast.calls) >= 3 * len(slow.calls) and 2 <= len(slow.calls) <= 4
    assert all(c.state is State.OK for c in snap.components)     # 0.3 s old is fresh for a 0.5 s target
