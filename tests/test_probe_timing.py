"""Probes that time a round trip get a quiet slot of the tick; the parsers go after them.

The latency figures themselves are shown by tests/bench/probe_latency.py (no timed
assertions here): this pins the schedule that makes them the target's.
"""

from __future__ import annotations

from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.model import Kind
from scripted import Clock, ScriptedProbe


class Timing(ScriptedProbe):
    times_round_trip = True


def engine_of(*probes: ScriptedProbe, interval: str = "1s") -> Engine:
    return Engine(validate({"interval": interval, "timeout": "100ms"}, "t.toml"), list(probes), clock=Clock())


def starts(engine: Engine) -> dict[str, float]:
    """Where each target's next tick starts, relative to the grid's tick."""
    tick = engine.interval
    return {t.probe.target: round(engine._on_grid(t, engine.epoch + tick / 2) - engine.epoch - tick, 6)
            for t in engine.targets}


def test_round_trip_probes_start_one_by_one_before_the_parsing_probes():
    engine = engine_of(ScriptedProbe("service", "scrape", []), ScriptedProbe("prom", "prometheus", []),
                       Timing("primary", "postgres", [], Kind.REPLICA), Timing("replica-1", "postgres", [], Kind.REPLICA),
                       Timing("redis", "redis", [], Kind.CACHE))
    at = starts(engine)
    timed = [at["primary"], at["replica-1"], at["redis"]]
    assert len(set(timed)) == 3, "each timed round trip has a slot of its own"
    assert at["service"] == at["prom"] > max(timed), "the parsers share the last slot"
    assert min(timed) == 0.0


def test_timing_slots_stay_within_a_fifth_of_a_short_interval():
    probes = [Timing(f"r{i}", "postgres", [], Kind.REPLICA) for i in range(40)]
    engine = engine_of(*probes, ScriptedProbe("service", "scrape", []), interval="200ms")
    at = starts(engine)
    assert 0.0 == min(at.values()) and max(at.values()) <= 0.2 * 0.2 + 1e-9
    assert len(set(at.values())) == 41


def test_a_target_without_round_trip_timing_keeps_the_shared_grid():
    engine = engine_of(ScriptedProbe("a", "scrape", []), ScriptedProbe("b", "scrape", []))
    assert set(starts(engine).values()) == {0.0}
