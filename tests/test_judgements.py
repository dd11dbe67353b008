"""Every judgement the dashboard makes, seen on both sides: met and missed.

A judgement that is only ever seen met cannot be told apart from one that says "met"
whatever the value. This module holds the fast tests (KPI arithmetic, kind
thresholds, engine state rules with an injected clock, edge/CDN status rules on a
real HTTP server); tests/test_lab_kpis.py sees the KPIs missed on the real lab.

Matrix, judgement -> where it is seen met -> where it is seen missed. "here" is this
module; "lab_kpis" is tests/test_lab_kpis.py; earlier files are named. Boundaries are
tested at the exact threshold, so a `>` turned into `>=` fails too.

KPIs (dashboard/kpi.py, TARGETS)
  primary_read_offload >= 0.80   met: test_check (whole stack), test_lab, here, lab_kpis
                                 missed: here (0.79), lab_kpis (replica reads off; replicas gone)
  cache_latency_improvement >= .5 met: test_lab, here, lab_kpis
                                 missed: here (0.49), lab_kpis (cache hits delayed 50 ms)
  websocket_frame_reduction >= .8 met: test_lab, here, lab_kpis
                                 missed: here (0.79), lab_kpis (batch window 0)
  error_rate < 0.01              met: test_lab, here (service and edge paths), lab_kpis (upstream
                                 failing WITH its fallback)
                                 missed: here (0.01 exactly; edge-weighted), lab_kpis (upstream
                                 failing WITHOUT its fallback)
  cache_hit_rate > 0.80          met: test_lab, here, lab_kpis
                                 missed: here (0.80 exactly), lab_kpis (cache bypassed)
  failover_seconds < 1.0         not measured (None/None): test_check, test_lab, here
                                 met: here (0.99)      missed: here (1.0)
  uptime >= 0.999                met: here (999/1000; real HTTP target answering)
                                 missed: here (998/1000; real HTTP target refusing)
  any KPI without inputs         value None, met None: here (never a made-up number)

State rules (dashboard/engine.py, _component_state / _source_state)
  UNKNOWN                        before any probe; first probe failed: here
  OK                             everywhere; here after each recovery
  DEGRADED (assess)              test_check (paused replica), test_kinds, here
  DEGRADED (forced DOWN, once)   here (edge answering an unexpected status, 1st round)
  STALE (age > 2 intervals)      met side (age = 2 intervals is OK) and missed side: here
  STALE (no longer reported)     here (row gone from its source's answer; back -> OK)
  STALE (one failure, source OK) test_engine_faults (killed replica), here
  DOWN after 2 failures          test_engine_faults (hysteresis, killed replica), here
                                 (one failure is not DOWN; source DOWN at 2, OK again after)
  ERROR                          test_metric_sources (bad Prometheus answers), here
  NO_DATA                        test_metric_sources (empty vector), here

Thresholds (dashboard/kinds/*.py, assess and relate)
  replica lag bytes > 16 MiB     met: here (exactly 16 MiB), test_check   missed: test_kinds, here
  replica lag seconds > 5 s      met: here (exactly 5 s)     missed: test_kinds, here
  replica thresholds configured  here (a 1 KiB limit judges 2 KiB lag DEGRADED)
  replay paused                  met: test_check (streaming)  missed: test_kinds, test_check, here
  breaker closed/open/half-open  closed OK: test_check, here; open: test_check, here;
                                 half-open: test_kinds, here; an unknown word: here
  cache hit rate < floor (0.80)  met: test_kinds, here (exactly 0.80)  missed: test_kinds, here
  cache min_hit_rate             lenient: test_kinds, here; stricter than the default: here
  cache quiet window             not judged: test_kinds, here
  multi-layer overall rule       both sides: test_kinds; here (at the floor; quiet is not judged)
  edge error rate > 1 %          met: test_kinds, here (exactly 1 %)  missed: test_kinds, here
  edge status != expect_status   DOWN: test_check (503), here (200 when 204 expected)
                                 OK: test_check (200), here (404 when 404 expected)
  CDN status >= 400              DOWN: here (502)       OK: here (200 with X-Cache)
  non-finite figure, every kind  missed: test_kinds (replica), test_check (batcher), here
                                 (breaker, cache, edge, batcher, cdn)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import pytest

from dashboard import kpi
from dashboard.config import Thresholds, validate
from dashboard.engine import Engine
from dashboard.kinds import batcher, breaker, cache, cdn, edge, replica
from dashboard.model import Component, Failure, Kind, Reading, Snapshot, State
from dashboard.probes.base import ProbeError
from scripted import Clock, ScriptedProbe

T = Thresholds()
MIB = 1024 * 1024


# ------------------------------------------------------------------ KPIs

def _row(kind: Kind, metrics: dict, name: str = "x", state: State = State.OK, source: str = "scrape",
         detail: str | None = None) -> Component:
    return Component(kind, name, state, None, source, "t", 0.1, metrics, detail=detail)


def _snap(components=(), service=()) -> Snapshot:
    return Snapshot(generated_at=0.0, components=tuple(components), sources=(), kpis=(), service=tuple(service))


def _kpi(snap: Snapshot, name: str, probes=None, failover=None):
    return next(k for k in kpi.compute(snap, probes, failover) if k.name == name)


def offload(replica_reads: float, primary_reads: float) -> Snapshot:
    nodes = {"primary": {"reads_per_s": primary_reads}, "replica-1": {"reads_per_s": replica_reads}}
    return _snap(service=[_row(Kind.SERVICE, {"nodes": nodes})])


def speed_up(cached_ms: float, uncached_ms: float) -> Snapshot:
    return _snap(service=[_row(Kind.SERVICE, {"cached_p50_ms": cached_ms, "uncached_p50_ms": uncached_ms})])


def frames(messages: float, frames_out: float, state: State = State.OK) -> Snapshot:
    return _snap([_row(Kind.BATCHER, {"messages_in_per_s": messages, "frames_out_per_s": frames_out},
                       state=state)])


def errors(rate: float) -> Snapshot:
    return _snap(service=[_row(Kind.SERVICE, {"error_rate": rate, "requests_per_s": 100.0})])


def hits(hits_per_s: float, misses_per_s: float) -> Snapshot:
    return _snap([_row(Kind.CACHE, {"hits_per_s": hits_per_s, "misses_per_s": misses_per_s}, source="redis")])


# (KPI, snapshot and inputs just inside the target, just outside it)
BOTH_SIDES = [
    ("primary_read_offload", (offload(80, 20),), (offload(79, 21),)),
    ("cache_latency_improvement", (speed_up(5, 10),), (speed_up(5.1, 10),)),
    ("websocket_frame_reduction", (frames(100, 20),), (frames(100, 21),)),
    ("error_rate", (errors(0.0099),), (errors(0.01),)),
    ("cache_hit_rate", (hits(81, 19),), (hits(80, 20),)),
    ("failover_seconds", (_snap(), None, 0.99), (_snap(), None, 1.0)),
    ("uptime", (_snap(), (999, 1000)), (_snap(), (998, 1000))),
]


@pytest.mark.parametrize("name, inside, outside", BOTH_SIDES, ids=[case[0] for case in BOTH_SIDES])
def test_each_kpi_is_met_inside_its_target_and_missed_just_outside(name, inside, outside):
    met, missed = _kpi(*inside[:1], name, *inside[1:]), _kpi(*outside[:1], name, *outside[1:])
    assert (met.met, missed.met) == (True, False), (met, missed)
    assert met.value is not None and missed.value is not None


def test_every_kpi_without_its_inputs_is_unknown_not_met_or_missed():
    for k in kpi.compute(_snap()):
        assert (k.value, k.met) == (None, None), k
    assert _kpi(_snap(), "failover_seconds").detail == "not measured yet"


def test_figures_of_a_down_batcher_or_cache_count_for_no_kpi():
    assert _kpi(frames(100, 90, state=State.DOWN), "websocket_frame_reduction").met is None
    down_cache = _snap([_row(Kind.CACHE, {"hits_per_s": 0.0, "misses_per_s": 50.0}, state=State.DOWN)])
    assert _kpi(down_cache, "cache_hit_rate").met is None


def test_error_rate_from_edge_functions_is_weighted_by_their_invocations():
    def edges(*functions):
        return _snap([_row(Kind.EDGE, {"invocations_per_s": calls, "error_rate": rate}, name=f"f{i}")
                      for i, (calls, rate) in enumerate(functions)])

    # 1 failed of 200 calls/s: met, although one function alone fails 2 %.
    assert _kpi(edges((150, 0.0), (50, 0.02)), "error_rate").met is True
    # 4 of 200: missed, although the busier function is clean.
    missed = _kpi(edges((150, 0.0), (50, 0.08)), "error_rate")
    assert missed.met is False and missed.value == pytest.approx(0.02)


def test_multi_layer_cache_kpi_counts_each_request_once():
    # memory 76 hits / 24 misses; redis sees those 24: 18 hits, 6 misses -> 94 of 100.
    layers = [_row(Kind.CACHE, {"hits_per_s": 76.0, "misses_per_s": 24.0}, name="items", detail="memory"),
              _row(Kind.CACHE, {"hits_per_s": 18.0, "misses_per_s": 6.0}, name="items", detail="redis")]
    assert _kpi(_snap(layers), "cache_hit_rate").value == pytest.approx(0.94)
    poor = [replace(layers[0], metrics={"hits_per_s": 60.0, "misses_per_s": 40.0}),
            replace(layers[1], metrics={"hits_per_s": 20.0, "misses_per_s": 20.0})]
    assert _kpi(_snap(poor), "cache_hit_rate").met is False          # 80 of 100 is not > 0.80


# ------------------------------------------------------------------ kind thresholds

@pytest.mark.parametrize("metrics, state", [
    ({"lag_bytes": 16 * MIB, "lag_seconds": 5.0, "replay_paused": False}, State.OK),
    ({"lag_bytes": 16 * MIB + 1, "lag_seconds": 0.0}, State.DEGRADED),
    ({"lag_bytes": 0, "lag_seconds": 5.01}, State.DEGRADED),
    ({"lag_bytes": 0, "lag_seconds": 0.0, "replay_paused": True}, State.DEGRADED),
    ({"lag_bytes": 0, "lag_seconds": math.inf}, State.DEGRADED),
], ids=["at-both-limits", "bytes-over", "seconds-over", "paused", "non-finite"])
def test_replica_thresholds_on_both_sides(metrics, state):
    assert replica.assess(metrics, T)[0] is state


def test_replica_thresholds_come_from_the_config():
    strict = Thresholds(replica_lag_bytes=1024, replica_lag_seconds=1.0)
    assert replica.assess({"lag_bytes": 2048, "lag_seconds": 0.0}, T)[0] is State.OK
    assert replica.assess({"lag_bytes": 2048, "lag_seconds": 0.0}, strict)[0] is State.DEGRADED
    assert replica.assess({"lag_bytes": 0, "lag_seconds": 2.0}, strict)[0] is State.DEGRADED


@pytest.mark.parametrize("word, state, reason", [
    ("closed", State.OK, None),
    (None, State.OK, None),
    ("open", State.DEGRADED, "breaker open"),
    ("half_open", State.DEGRADED, "breaker half-open"),
    ("unknown", State.DEGRADED, "breaker unknown"),
])
def test_breaker_states_on_both_sides(word, state, reason):
    assert breaker.assess({"state": word, "failure_rate": 0.0}, T) == (state, reason)


def test_a_closed_breaker_with_a_non_finite_figure_is_not_ok():
    assert breaker.assess({"state": "closed", "failure_rate": math.nan}, T)[0] is State.DEGRADED


def _cache(hit_rate: float, lookups: float = 100.0, **extra) -> dict:
    return {"hit_rate": hit_rate, "hits_per_s": hit_rate * lookups, "misses_per_s": (1 - hit_rate) * lookups,
            **extra}


def test_cache_floor_is_met_at_the_floor_and_missed_below_it():
    assert cache.assess(_cache(0.80), T) == (State.OK, None)
    state, reason = cache.assess(_cache(0.79), T)
    assert state is State.DEGRADED and reason == "hit rate 79% < 80%"


def test_a_cache_of_its_own_floor_is_judged_by_it_both_ways():
    assert cache.assess(_cache(0.50, min_hit_rate=0.4), T)[0] is State.OK
    assert cache.assess(_cache(0.90, min_hit_rate=0.95), T)[0] is State.DEGRADED   # stricter than 0.80
    assert cache.assess(_cache(0.0, min_hit_rate=0.0), T)[0] is State.OK


def test_a_quiet_cache_is_not_judged_but_its_non_finite_figures_are():
    assert cache.assess(_cache(0.1, lookups=0.5), T)[0] is State.OK
    assert cache.assess({"hit_rate": None, "hits_per_s": 0.0, "misses_per_s": 0.0}, T)[0] is State.OK
    assert cache.assess(_cache(0.9, evictions=math.inf), T)[0] is State.DEGRADED


def _layer(layer: str, hits_per_s: float, misses_per_s: float) -> Component:
    metrics = {"hits_per_s": hits_per_s, "misses_per_s": misses_per_s, "layer": layer,
               "hit_rate": hits_per_s / (hits_per_s + misses_per_s)}
    state, reason = cache.assess(metrics, T)
    return Component(Kind.CACHE, "items", state, reason, "scrape", "service", 0.1, metrics, detail=layer)


def test_multi_layer_overall_rule_is_met_at_the_floor_and_missed_below_it():
    # memory 70/30, redis 10/20: 80 of 100 overall, exactly the floor.
    at_floor = cache.relate([_layer("memory", 70, 30), _layer("redis", 10, 20)], T)
    assert [c.state for c in at_floor] == [State.OK, State.OK]
    below = cache.relate([_layer("memory", 70, 30), _layer("redis", 9, 21)], T)
    assert all(c.state is State.DEGRADED and "overall hit rate 79%" in c.reason for c in below)


def test_a_quiet_multi_layer_cache_is_not_judged_by_its_overall_rate():
    quiet = cache.relate([_layer("memory", 0.2, 0.5), _layer("redis", 0.0, 0.5)], T)
    assert [c.state for c in quiet] == [State.OK, State.OK]


def test_edge_error_rate_is_met_at_one_percent_and_missed_above():
    assert edge.assess({"error_rate": 0.01, "status_code": 200}, T) == (State.OK, None)
    state, reason = edge.assess({"error_rate": 0.0101, "status_code": 200}, T)
    assert state is State.DEGRADED and "error rate" in reason
    assert edge.assess({"error_rate": 0.03}, Thresholds(error_rate=0.05))[0] is State.OK


@pytest.mark.parametrize("module, good", [
    (batcher, {"messages_in_per_s": 10.0, "frames_out_per_s": 1.0, "reduction": 0.9}),
    (cdn, {"cache_status": "HIT", "hit_rate": 1.0, "latency_ms": 3.0}),
    (edge, {"status_code": 200, "error_rate": 0.0, "latency_ms": 3.0}),
], ids=["batcher", "cdn", "edge"])
def test_finite_figures_are_ok_and_a_non_finite_one_is_not(module, good):
    assert module.assess(good, T) == (State.OK, None)
    key = next(iter(good))
    assert module.assess(dict(good, **{key: -math.inf}), T)[0] is State.DEGRADED


# ------------------------------------------------------------------ engine state rules

P = 1.0


def _engine(*probes: ScriptedProbe) -> tuple[Engine, Clock]:
    clock = Clock()
    return Engine(validate({"interval": "1s", "timeout": "800ms"}), list(probes), clock=clock), clock


def _round(engine: Engine, clock: Clock, step: float = P) -> Snapshot:
    clock.now += step
    asyncio.run(engine.poll_round())
    return engine.snapshot()


def _only(snap: Snapshot) -> tuple[State, str | None]:
    (c,) = snap.components
    return c.state, c.reason


def _until_ok(engine: Engine, clock: Clock, rounds: int = 30) -> Snapshot:
    """Rounds until the row is OK again: a recovery may be held for a while (hysteresis),
    so the test waits for the state instead of counting rounds."""
    for _ in range(rounds):
        snap = _round(engine, clock)
        if _only(snap)[0] is State.OK:
            return snap
    raise AssertionError(f"not OK again within {rounds} rounds: {_only(snap)}")


def _breaker_probe(state: float = 0.0) -> ScriptedProbe:
    return ScriptedProbe("svc", "scrape", [Reading(Kind.BREAKER, "b", {"state": state})])


def test_unknown_until_a_probe_finishes_then_ok():
    probe = ScriptedProbe("db", "postgres", [Reading(Kind.REPLICA, "db", {"role": "primary", "lag_bytes": 0})],
                          Kind.REPLICA)
    engine, clock = _engine(probe)
    snap = engine.snapshot()
    assert _only(snap) == (State.UNKNOWN, "no probe finished yet")
    assert snap.sources[0].state is State.UNKNOWN
    snap = _round(engine, clock)
    assert _only(snap) == (State.OK, None) and snap.sources[0].state is State.OK


def test_a_first_probe_that_fails_leaves_the_row_unknown_with_the_reason():
    probe = ScriptedProbe("db", "postgres", [], Kind.REPLICA, failure=ProbeError(Failure.DOWN, "connection refused"))
    engine, clock = _engine(probe)
    state, reason = _only(_round(engine, clock))
    assert state is State.UNKNOWN and reason == "first probe failed: connection refused"


def test_fresh_data_is_ok_up_to_two_intervals_old_and_stale_after():
    engine, clock = _engine(_breaker_probe())
    _round(engine, clock)
    clock.now += 2 * P
    assert _only(engine.snapshot())[0] is State.OK
    clock.now += 0.01
    state, reason = _only(engine.snapshot())
    assert state is State.STALE and reason.startswith("no fresh data for 2.0")


def test_a_row_its_source_stops_reporting_is_stale_until_it_is_back():
    probe = _breaker_probe()
    engine, clock = _engine(probe)
    assert _only(_round(engine, clock))[0] is State.OK
    readings, probe.readings = probe.readings, []
    assert _only(_round(engine, clock)) == (State.STALE, "no longer reported by the source")
    probe.readings = readings
    _until_ok(engine, clock)


def test_one_failure_is_stale_two_are_down_and_one_answer_is_ok_again():
    probe = _breaker_probe()
    engine, clock = _engine(probe)
    _round(engine, clock)
    probe.failure = ProbeError(Failure.DOWN, "connection refused")
    snap = _round(engine, clock)
    assert _only(snap)[0] is State.STALE
    assert snap.sources[0].state is State.OK           # last good answer is one interval old
    snap = _round(engine, clock)
    assert _only(snap) == (State.DOWN, "connection refused") and snap.sources[0].state is State.DOWN
    probe.failure = None
    snap = _until_ok(engine, clock)
    assert _only(snap) == (State.OK, None) and snap.sources[0].state is State.OK


@pytest.mark.parametrize("failure, state", [(Failure.ERROR, State.ERROR), (Failure.NO_DATA, State.NO_DATA)])
def test_an_unusable_or_empty_answer_is_error_or_no_data_at_once_and_ok_after(failure, state):
    probe = _breaker_probe()
    engine, clock = _engine(probe)
    _round(engine, clock)
    probe.failure = ProbeError(failure, "what the source said")
    snap = _round(engine, clock)
    assert _only(snap) == (state, "what the source said") and snap.sources[0].state is state
    probe.failure = None
    assert _only(_until_ok(engine, clock)) == (State.OK, None)


def test_a_degraded_figure_is_degraded_and_ok_once_it_is_back_inside():
    probe = _breaker_probe(state=1.0)
    engine, clock = _engine(probe)
    assert _only(_round(engine, clock)) == (State.DEGRADED, "breaker open")
    probe.readings = [Reading(Kind.BREAKER, "b", {"state": 0.0})]
    assert _only(_until_ok(engine, clock)) == (State.OK, None)


# ------------------------------------------------------------------ status rules on a real HTTP server

def _http_engine(section: str, **target) -> Engine:
    return Engine(validate({"interval": "1s", "timeout": "800ms", section: [target]}))


async def _rounds(engine: Engine, count: int) -> list[tuple[State, str | None]]:
    seen = []
    for _ in range(count):
        await engine.poll_round()
        (c,) = engine.snapshot().components
        seen.append((c.state, c.reason))
    await engine.close()
    return seen


def test_edge_answering_its_expected_status_is_ok_even_when_it_is_not_200(http):
    http.set("/functions/v1/gone", "no such thing", status=404)
    engine = _http_engine("edge", name="gone", url=http.url("/functions/v1/gone"), expect_status=404)
    assert asyncio.run(_rounds(engine, 2)) == [(State.OK, None)] * 2


def test_edge_answering_another_status_than_expected_is_down_at_the_second_round(http):
    http.set("/functions/v1/hello", "hi")
    engine = _http_engine("edge", name="hello", url=http.url("/functions/v1/hello"), expect_status=204)
    (first, _), (second, reason) = asyncio.run(_rounds(engine, 2))
    assert first is State.DEGRADED                     # one failure is not DOWN yet
    assert (second, reason) == (State.DOWN, "HTTP 200 (expected 204)")


def test_cdn_answering_an_error_status_is_down_and_a_cached_answer_ok(http):
    http.set("/assets/app.js", "js", headers={"X-Cache": "HIT"})
    http.set("/assets/broken.js", "bad gateway", status=502)
    good = _http_engine("cdn", name="app", url=http.url("/assets/app.js"))
    bad = _http_engine("cdn", name="broken", url=http.url("/assets/broken.js"))
    assert asyncio.run(_rounds(good, 2))[-1] == (State.OK, None)
    assert asyncio.run(_rounds(bad, 2))[-1] == (State.DOWN, "HTTP 502")


def test_uptime_is_met_while_the_service_answers_and_missed_when_it_refuses(http):
    from dashboard.lab.servers import free_port

    http.set("/functions/v1/hello", "hi")
    answering = _http_engine("edge", name="hello", url=http.url("/functions/v1/hello"))
    refusing = _http_engine("edge", name="gone", url=f"http://127.0.0.1:{free_port()}/functions/v1/x")

    async def uptime(engine: Engine):
        for _ in range(2):
            await engine.poll_round()
        snap = engine.snapshot()
        await engine.close()
        return next(k for k in snap.kpis if k.name == "uptime")

    met, missed = asyncio.run(uptime(answering)), asyncio.run(uptime(refusing))
    assert (met.value, met.met) == (1.0, True)
    assert (missed.value, missed.met) == (0.0, False)
