"""Thresholds do not flap: a figure on its threshold changes the row's state once.

The engine runs on an injected clock, one poll round a second, with scripted figures
(rates given directly as `*_per_s`): what is tested is the judgement over time, which
no real server makes reproducible to the percent.
"""

from __future__ import annotations

import asyncio

import pytest

from dashboard.config import ConfigError, validate
from dashboard.engine import Engine
from dashboard.hysteresis import Limit, Memory, crossed
from dashboard.model import Kind, Reading, State
from conftest import CANARY
from scripted import Clock, ScriptedProbe


def engine_with(probe: ScriptedProbe, **thresholds) -> Engine:
    doc = {"interval": "1s", "timeout": "800ms"}
    if thresholds:
        doc["thresholds"] = thresholds
    return Engine(validate(doc, "t.toml"), [probe], clock=Clock(), wall=lambda: 1_790_000_000.0)


def cache_at(hit_rate: float, volume: float = 100.0) -> list[Reading]:
    hits = volume * hit_rate
    return [Reading(Kind.CACHE, "sessions", {"hits_per_s": hits, "misses_per_s": volume - hits})]


def edge_at(error_rate: float) -> list[Reading]:
    return [Reading(Kind.EDGE, "hello", {"probe_errors": round(error_rate * 1000), "probes": 1000,
                                        "status_code": 200, "latency_ms": 3.0})]


def replica_at(lag_s: float, paused: bool = False) -> list[Reading]:
    return [Reading(Kind.REPLICA, "replica-1", {"role": "replica", "lag_bytes": 0, "lag_seconds": lag_s,
                                               "replay_paused": paused})]


def layers_at(overall: float) -> list[Reading]:
    """A two-layer cache whose overall hit rate is `overall` (100 lookups a second): the
    memory layer hits 70 and passes 30 misses on; Redis hits the rest of the target."""
    redis_hits = round(overall * 100) - 70
    return [Reading(Kind.CACHE, "items", {"layer": "memory", "hits_per_s": 70.0, "misses_per_s": 30.0},
                    detail="memory"),
            Reading(Kind.CACHE, "items", {"layer": "redis", "hits_per_s": float(redis_hits),
                                          "misses_per_s": float(30 - redis_hits)}, detail="redis")]


def play(engine: Engine, probe: ScriptedProbe, series: list[list[Reading]], row: str = "") -> list:
    """One poll round a second per step of `series`; the row (first row, or the one whose
    label is `row`) as each snapshot showed it."""
    async def run() -> list:
        shown = []
        for i, readings in enumerate(series):
            if i:
                engine.clock.now += 1.0
            probe.readings = readings
            await engine.poll_round()
            rows = engine.snapshot().components
            shown.append(next(c for c in rows if not row or f"{c.name}/{c.detail}" == row))
        return shown

    return asyncio.run(run())


def changes(shown: list) -> int:
    return sum(1 for a, b in zip(shown, shown[1:]) if a.state is not b.state)


def probe_for(kind: Kind, name: str = "t") -> ScriptedProbe:
    """A metric source's probe (no row before its first reading); `kind` names the rows."""
    return ScriptedProbe(f"{name}-{kind.value}", "scrape", [])


# ---------------------------------------------------------------- wobbling on the line

def test_hit_rate_wobbling_on_its_threshold_changes_state_once():
    probe = probe_for(Kind.CACHE)
    series = [cache_at(0.9)] * 2 + [cache_at(0.79), cache_at(0.81)] * 8
    shown = play(engine_with(probe), probe, series)
    assert [c.state for c in shown[:3]] == [State.OK, State.OK, State.DEGRADED]
    assert changes(shown) == 1
    assert shown[-1].reason == "hit rate 81% (recovering: needs >= 82% for 5s)"


def test_wobbling_hit_rate_logs_one_transition_not_one_a_second():
    probe = probe_for(Kind.CACHE)
    engine = engine_with(probe)
    play(engine, probe, [cache_at(0.9)] * 2 + [cache_at(0.79), cache_at(0.81)] * 8)
    assert [e.state for e in engine.events] == [State.DEGRADED]


def test_error_rate_wobbling_on_its_threshold_changes_state_once():
    probe = probe_for(Kind.EDGE)
    shown = play(engine_with(probe), probe, [edge_at(0.0)] + [edge_at(0.011), edge_at(0.009)] * 8)
    assert changes(shown) == 1 and shown[-1].state is State.DEGRADED
    assert "recovering" in shown[-1].reason


def test_overall_hit_rate_of_cache_layers_wobbling_changes_state_once():
    probe = probe_for(Kind.CACHE, "service")
    series = [layers_at(0.9)] * 2 + [layers_at(0.79), layers_at(0.81)] * 8
    for row in ("items/memory", "items/redis"):
        shown = play(engine_with(probe), probe, series, row)
        assert [c.state for c in shown[:3]] == [State.OK, State.OK, State.DEGRADED]
        assert changes(shown) == 1
        assert shown[-1].reason == "overall hit rate 81% (recovering: needs >= 82% for 5s)"


# ---------------------------------------------------------------- recovering

def test_hit_rate_that_clearly_recovers_is_ok_again_after_the_hold_time():
    probe = probe_for(Kind.CACHE)
    shown = play(engine_with(probe), probe, [cache_at(0.5)] + [cache_at(0.95)] * 7)
    states = [c.state for c in shown]
    # Back past 82 % at t=1; held 0..4 s at t=1..5; cleared when 5 s have passed (t=6).
    assert states == [State.DEGRADED] * 6 + [State.OK] * 2
    assert shown[3].reason == "hit rate 95% (recovering: >= 82% for 2s of 5s)"
    assert shown[-1].reason is None


def test_overall_hit_rate_of_cache_layers_that_recovers_is_ok_again():
    probe = probe_for(Kind.CACHE, "service")
    shown = play(engine_with(probe), probe, [layers_at(0.6)] + [layers_at(0.95)] * 7, "items/redis")
    assert [c.state for c in shown] == [State.DEGRADED] * 6 + [State.OK] * 2


def test_a_new_crossing_while_recovering_restarts_the_hold():
    probe = probe_for(Kind.CACHE)
    series = [cache_at(0.5)] + [cache_at(0.95)] * 3 + [cache_at(0.5)] + [cache_at(0.95)] * 4
    shown = play(engine_with(probe), probe, series)
    assert all(c.state is State.DEGRADED for c in shown)
    assert shown[4].reason == "hit rate 50% < 80%"


def test_replica_lag_recovers_only_past_the_band():
    probe = probe_for(Kind.REPLICA, "replica-1")
    # 5 s threshold, band 0.1: 4.8 s is inside the threshold but not back past 4.5 s.
    shown = play(engine_with(probe), probe, [replica_at(6.0)] + [replica_at(4.8)] * 8)
    assert all(c.state is State.DEGRADED for c in shown)
    assert shown[-1].reason == "lag 4.8s (recovering: needs <= 4.5s for 5s)"
    shown = play(engine_with(probe), probe, [replica_at(6.0)] + [replica_at(1.0)] * 7)
    assert shown[-1].state is State.OK


# ---------------------------------------------------------------- entering stays immediate

def test_clearly_bad_figure_degrades_at_once():
    probe = probe_for(Kind.CACHE)
    shown = play(engine_with(probe), probe, [cache_at(0.95), cache_at(0.40)])
    assert [c.state for c in shown] == [State.OK, State.DEGRADED]
    assert shown[1].reason == "hit rate 40% < 80%"


def test_hard_fact_is_degraded_at_once_and_shown_over_a_recovering_figure():
    probe = probe_for(Kind.REPLICA, "replica-1")
    shown = play(engine_with(probe), probe,
                 [replica_at(0.0), replica_at(6.0), replica_at(1.0, paused=True), replica_at(1.0)])
    assert [c.state for c in shown] == [State.OK] + [State.DEGRADED] * 3
    assert shown[2].reason == "replay paused"
    # Replay resumed; the lag has been back for 1 s of the 5 s hold: not OK yet.
    assert shown[3].reason == "lag 1.0s (recovering: <= 4.5s for 1s of 5s)"


def test_hard_fact_clears_without_a_hold():
    probe = probe_for(Kind.REPLICA, "replica-1")
    shown = play(engine_with(probe), probe, [replica_at(0.0, paused=True), replica_at(0.0)])
    assert [c.state for c in shown] == [State.DEGRADED, State.OK]


# ---------------------------------------------------------------- the [thresholds] keys act

def test_recovery_band_and_hold_of_zero_judge_each_reading_alone():
    probe = probe_for(Kind.CACHE)
    series = [cache_at(0.79), cache_at(0.81)] * 3
    shown = play(engine_with(probe, recovery_band=0, recovery_hold="0s"), probe, series)
    assert changes(shown) == 5


def test_recovery_band_sets_how_far_back_the_figure_must_come():
    probe = probe_for(Kind.CACHE)
    series = [cache_at(0.5)] + [cache_at(0.88)] * 8
    assert play(engine_with(probe), probe, series)[-1].state is State.OK        # default: 82 %
    strict = play(engine_with(probe, recovery_band=0.5), probe, series)[-1]      # 90 %
    assert strict.state is State.DEGRADED
    assert strict.reason == "hit rate 88% (recovering: needs >= 90% for 5s)"


def test_recovery_hold_sets_how_long_the_figure_must_stay_back():
    probe = probe_for(Kind.CACHE)
    series = [cache_at(0.5)] + [cache_at(0.95)] * 3
    assert play(engine_with(probe), probe, series)[-1].state is State.DEGRADED   # default 5 s
    assert play(engine_with(probe, recovery_hold="2s"), probe, series)[-1].state is State.OK


def test_thresholds_recovery_keys_are_validated():
    config = validate({"thresholds": {"recovery_band": 0.25, "recovery_hold": "1500ms"}})
    assert (config.thresholds.recovery_band, config.thresholds.recovery_hold_s) == (0.25, 1.5)
    assert validate({"thresholds": {"recovery_hold": 0}}).thresholds.recovery_hold_s == 0.0
    with pytest.raises(ConfigError) as bad:
        validate({"thresholds": {"recovery_band": 1.5, "recovery_hold": "2h"}})
    assert any(p.startswith("thresholds.recovery_band:") for p in bad.value.problems)
    assert any(p.startswith("thresholds.recovery_hold:") for p in bad.value.problems)
    with pytest.raises(ConfigError):
        validate({"thresholds": {"recovery_hold": "soon"}})


# ---------------------------------------------------------------- the mechanism alone

def test_limit_band_is_a_fraction_of_the_room_to_the_best_value():
    assert Limit.floor("hit rate", 0.81, 0.80, str).clear_at(0.1) == pytest.approx(0.82)
    assert Limit.ceiling("lag", 4.8, 5.0, str).clear_at(0.1) == pytest.approx(4.5)
    assert Limit.ceiling("error rate", 0.0, 0.0, str).is_crossed() is False
    assert Limit.ceiling("error rate", 0.001, 0.0, str).is_crossed() is True
    assert Limit.floor("hit rate", float("nan"), 0.8, str).is_crossed() is False


def test_memory_keeps_a_non_ok_verdict_as_is():
    memory, limit = Memory(), Limit.floor("hit rate", 0.5, 0.8, str)
    t = validate({}).thresholds
    assert memory.judge(crossed([limit]), [limit], 0.0, t) == (State.DEGRADED, "hit rate 0.5 < 0.8")
    assert memory.judge((State.DEGRADED, "breaker open"), [], 1.0, t) == (State.DEGRADED, "breaker open")


# ---------------------------------------------------------------- a real Redis

def test_real_redis_hit_rate_back_on_its_threshold_stays_degraded_until_clearly_recovered(redis_server):
    """Real INFO counters, the engine's 5 s window, an injected clock: 100 lookups a
    round; one round of 95 misses drags the window to 68 %, and for three rounds after it
    the window reads 81 % (judged alone: OK). The row stays DEGRADED until the window is
    clearly back (100 % from t=8) and has stayed so for the 5 s hold."""
    import redis

    client = redis.Redis.from_url(redis_server.url(), password=CANARY)
    client.set("hysteresis:hot", "1")
    engine = Engine(validate({"interval": "1s", "timeout": "800ms", "cache": [
        {"name": "sessions", "url": redis_server.url(), "password": "env:SCALEDASH_TEST_REDIS_PASSWORD"}]}),
        clock=Clock(), wall=lambda: 1_790_000_000.0)

    def lookups(hits: int, misses: int) -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(hits):
            pipe.get("hysteresis:hot")
        for i in range(misses):
            pipe.get(f"hysteresis:cold:{i}")
        pipe.execute()

    async def run() -> dict[int, tuple[State, str | None]]:
        seen = {}
        for t in range(14):
            if t:
                engine.clock.now += 1.0
                lookups(*((5, 95) if t == 3 else (100, 0)))
            await engine.poll_round()
            row = next(c for c in engine.snapshot().components if c.name == "sessions")
            seen[t] = (row.state, row.reason)
        await engine.close()
        return seen

    try:
        seen = asyncio.run(run())
    finally:
        client.close()
    assert seen[2][0] is State.OK and seen[3] == (State.DEGRADED, "hit rate 68% < 80%")
    assert seen[5] == (State.DEGRADED, "hit rate 81% (recovering: needs >= 82% for 5s)")
    assert all(seen[t][0] is State.DEGRADED for t in range(3, 13)), seen
    assert seen[13] == (State.OK, None)
