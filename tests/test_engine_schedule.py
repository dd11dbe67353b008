"""The engine's scheduling and hysteresis on scripted probes (RELIABILITY.md case 12).

Engine logic, no servers: probes follow a script, and the tests that describe seconds
of polling run on a virtual loop clock (tests/fakes.py VirtualTime), so they take
milliseconds and see exact times. The same rules on real servers are in
tests/integration/test_engine_faults.py.
"""

from __future__ import annotations

import asyncio
import errno
import statistics
import time

from conftest import CANARY
from dashboard.config import Config, validate
from dashboard.engine import BACKOFF_CAP_S, Engine
from dashboard.model import Kind, State
from fakes import Clock, ScriptedProbe, VirtualTime, assert_loops_alive, component, cpu_wait_s, run_scenario, source, texts_of

P, D = 0.5, 0.4                       # poll interval and per-probe deadline of these tests


def make_config(interval: float = P, timeout: float = D, **sections) -> Config:
    return validate({"interval": interval, "timeout": timeout, **sections})


def cache_probe(script=(), default="ok", deadline: float = D, target: str = "scripted") -> ScriptedProbe:
    """An in-memory cache probe following `script` (tests/fakes.py ScriptedProbe)."""
    return ScriptedProbe(target, "redis", kind=Kind.CACHE, script=script, default=default, deadline=deadline)


def leaky_reset() -> ConnectionResetError:
    """A failure whose text carries the canary the way driver errors carry DSNs."""
    return ConnectionResetError(errno.ECONNRESET, f"reset by peer postgresql://monitor:{CANARY}@10.0.0.9/app")


def test_hysteresis_one_failure_is_not_down_two_are_one_success_is_ok():
    probe = cache_probe(["ok", leaky_reset(), leaky_reset(), "ok"]
                          + [leaky_reset(), "ok"] * 10)
    clock = Clock()
    engine = Engine(make_config(), [probe], clock=clock)

    async def scenario():
        async def state_after_round() -> tuple[State, str | None]:
            clock.now += P
            await engine.poll_round()
            c = component(engine.snapshot(), "scripted")
            return c.state, c.reason

        assert (await state_after_round())[0] is State.OK
        state, _ = await state_after_round()
        assert state is not State.DOWN, "one failure must not make DOWN"
        assert source(engine.snapshot(), "scripted").consecutive_failures == 1
        state, reason = await state_after_round()
        assert state is State.DOWN, "two consecutive failures make DOWN"
        assert "reset by peer" in reason and CANARY not in reason
        assert (await state_after_round()) == (State.OK, None), "one success makes OK again"
        flapping = [(await state_after_round())[0] for _ in range(20)]
        assert State.DOWN not in flapping, "50 % failures never reach DOWN"
        for text in texts_of(engine.snapshot()):
            assert CANARY not in text
        await engine.close()

    run_scenario(scenario)


def test_targets_poll_on_one_shared_grid_of_ticks():
    """After a spread first round every target polls at the same ticks (one wake-up per
    tick for the whole fleet); a 5x interval polls on every fifth tick of the same grid."""
    interval = 0.2
    fast = [cache_probe(target=f"t{i}") for i in range(4)]
    slow = cache_probe(target="slow")
    slow.interval = 5 * interval
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [*fast, slow], clock=vt.clock)

    async def scenario():
        engine.start()
        await asyncio.sleep(2.05)
        await engine.close()
        epoch = engine.epoch
        # Round 1 is spread over half the interval; from round 2 on, calls sit on the grid.
        for probe in fast:
            on_grid = [(c - epoch) / interval for c in probe.calls[1:]]
            assert len(on_grid) >= 8, probe.calls
            assert all(abs(k - round(k)) < 0.1 for k in on_grid), (probe.target, on_grid)
        ticks = [{round((c - epoch) / interval) for c in p.calls[1:]} for p in fast]
        assert len(set.intersection(*ticks)) >= 8, "the targets share their ticks"
        later = [round((c - epoch) / interval, 2) for c in slow.calls[1:]]
        assert later and all(abs(k - round(k)) < 0.1 and round(k) % 5 == 0 for k in later), later

    run_scenario(scenario, vt=vt)


def test_next_tick_on_the_grid():
    engine = Engine(make_config(interval=1.0, timeout=0.8), [cache_probe(), cache_probe(target="b")])
    engine.epoch = 100.0
    t, slow = engine.targets
    slow.probe.interval = 5.0
    assert engine._next_due(t, 100.0, 100.02) == 101.0       # an on-time probe: the next tick
    assert engine._next_due(t, 100.3, 100.31) == 101.0       # first round, spread: snaps to the grid
    assert engine._next_due(t, 101.0, 102.3) == 103.0        # an overrun skips the missed tick
    assert engine._next_due(t, 101.37, 101.38) == 102.0      # a refresh now: back on the grid
    assert engine._next_due(t, 101.7, 101.71) == 103.0       # ...but never less than P/2 later
    assert engine._next_due(slow, 100.4, 100.41) == 105.0    # every fifth tick for a 5 s target


def test_overrunning_probe_skips_the_next_tick_instead_of_queueing():
    interval = 0.25
    # Every other call overruns: cut at D = P, it takes 0.1 s more to honour the cancel.
    probe = cache_probe([("slow", 10.0, 0.1), "ok"] * 20, deadline=interval)
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [probe], clock=vt.clock)

    async def scenario():
        engine.start()
        await asyncio.sleep(2.6)
        snap = engine.snapshot()
        assert_loops_alive(engine)
        await engine.close()
        calls, waits = probe.calls, probe.cpu_waits
        gaps = [round(b - a, 3) for a, b in zip(calls, calls[1:])]
        starved = [b - a for a, b in zip(waits, waits[1:])]
        print(f"\ncase 12 overrun: {len(calls)} calls in 2.6s at P={interval}; gaps {gaps}")
        assert probe.max_running == 1, "never two calls of one target at once"
        assert len(calls) <= 2.6 / interval * 0.75 + 1, "overruns must cost ticks, not queue them"
        after_slow, after_ok = gaps[0::2], list(zip(gaps[1::2], starved[1::2]))
        assert all(g >= 2 * interval - 0.03 for g in after_slow), after_slow       # skipped one tick
        assert all(g <= interval + 0.15 + w for g, w in after_ok), after_ok        # no needless skip
        assert component(snap, "scripted").state is not State.DOWN
        for text in texts_of(snap):
            assert CANARY not in text

    run_scenario(scenario, vt=vt)


def test_a_probe_ignoring_cancellation_is_never_run_twice_at_once():
    probe = cache_probe([("slow", 10.0, 1.0)], deadline=0.2)
    engine = Engine(make_config(interval=0.2, timeout=0.2), [probe])

    async def scenario():
        started, waited = time.monotonic(), cpu_wait_s()
        await engine.poll_round()
        first = time.monotonic() - started
        waited = cpu_wait_s() - waited
        zombie = engine.targets[0].in_flight
        assert not zombie.done()
        assert engine.targets[0].last_sample.error == "timeout"
        assert first <= 0.2 + 0.2 + 0.15 + waited, "the round ends at D plus the cancel grace"
        await engine.poll_round()
        assert len(probe.calls) == 1, "a second call must not start while the first still runs"
        assert "still running" in engine.targets[0].last_sample.error
        await asyncio.wait({zombie}, timeout=2)
        await engine.poll_round()
        assert len(probe.calls) == 2
        assert component(engine.snapshot(), "scripted").state is State.OK
        assert probe.max_running == 1
        assert not any(CANARY in text for text in texts_of(engine.snapshot()))
        await engine.close()

    run_scenario(scenario)


def test_closing_the_engine_mid_probe_leaves_no_unretrieved_error():
    probe = cache_probe([("fail_after", 0.2, leaky_reset())])

    async def scenario():
        engine = Engine(make_config(), [probe])
        engine.start()
        await asyncio.sleep(0.05)               # the first call is in flight
        await engine.close()
        await asyncio.sleep(0.3)                # ...and fails after the engine let go of it
        assert len(probe.calls) == 1
        assert not any(CANARY in text for text in texts_of(engine.snapshot()))
        del engine                              # collected in run_scenario: asyncio reports then

    run_scenario(scenario)                       # fails on "Task exception was never retrieved"


def test_backoff_grows_from_the_interval_and_is_capped_with_jitter():
    interval = 0.05
    probe = cache_probe(default=ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                          deadline=interval)
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [probe], clock=vt.clock)

    async def scenario():
        engine.start()
        shown = []
        for _ in range(26):
            await asyncio.sleep(0.1)
            shown.append(component(engine.snapshot(), "scripted").next_probe_in_s)
        assert_loops_alive(engine)
        snap = engine.snapshot()
        c = component(snap, "scripted")
        assert c.state is State.DOWN and c.reason == "connection refused"

        # The growth, measured on the real loop: gaps double from 2P after DOWN.
        calls = probe.calls
        gaps = [b - a for a, b in zip(calls, calls[1:])]
        starved = [b - a for a, b in zip(probe.cpu_waits, probe.cpu_waits[1:])]
        print(f"\ncase 12 backoff: {len(calls)} calls in 2.6s at P={interval}; "
              f"gaps {[round(g, 3) for g in gaps]}; max next_probe_in_s shown {max(shown)}")
        assert len(calls) <= 8, "no hot loop: one call per P would be 52"
        for k, gap in enumerate(gaps[1:], start=1):
            expected = interval * 2 ** k
            assert 0.8 * expected - 0.02 <= gap <= 1.2 * expected + 0.15 + starved[k], (k, gaps)
        assert max(shown) >= 0.3, "the next retry time is visible and grows"

        # The cap, with jitter, for a target that has been down for hours (thousands of failures).
        target = engine.targets[0]
        await engine.close()
        for failures in (12, 40, 5000):
            target.failures = failures
            delays = [engine._next_due(target, 0.0, 100.0) - 100.0 for _ in range(200)]
            assert all(0.8 * BACKOFF_CAP_S <= d <= 1.2 * BACKOFF_CAP_S for d in delays), (failures, max(delays))
            assert statistics.pstdev(delays) > 1.0, "jitter spreads the retries of many targets"
        for text in texts_of(snap):
            assert CANARY not in text

    run_scenario(scenario, vt=vt)


def test_uptime_counts_probes_that_ended_so_a_probe_in_flight_is_not_a_miss():
    """Counting a probe when it starts made it a miss until it answered: a window taken
    while probes were in flight read below its true share, and the next one above 1."""
    probe = ScriptedProbe("svc", source="http", script=[("slow", 0.2, 0.0)])
    engine = Engine(make_config(), [probe])

    async def scenario():
        polling = asyncio.create_task(engine.poll_round())
        await asyncio.sleep(0.05)
        in_flight = engine.uptime()
        await polling
        return in_flight, engine.uptime()

    in_flight, done = asyncio.run(scenario())
    assert in_flight == (0, 0)
    assert done == (1, 1)
