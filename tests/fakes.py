"""The test doubles every test module shares: clocks, virtual loop time, lookups.

Kept in one module so a fake is written once: a test that needs a probe that follows
a script, a clock that stands still, or "the row named X" takes it from here.
Real servers stay the rule for anything a user would run against (conftest.py);
these are for engine logic, where time itself is the input.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import replace
from typing import Awaitable, Callable

import looptime
import pytest

from conftest import CANARY
from dashboard.engine import Engine
from dashboard.model import Component, Kind, Reading, Snapshot, SourceStatus
from dashboard.probes.base import ProbeError


class Clock:
    """A monotonic clock that moves only when a test moves it (`clock.now += 1`)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class ScriptedProbe:
    """A probe that follows a script: engine logic without I/O.

    Each call takes the next step of `script`, then `default`: "ok" returns `readings`
    (counters `*_total` grow by their value with every call, so rates are steady); an
    exception is raised; ("slow", seconds, linger) sleeps and, when cancelled, keeps
    running `linger` more seconds (a probe slow to honour cancellation);
    ("fail_after", seconds, exception) sleeps, then raises. `failure` is raised on every
    call. `calls` holds each call's loop time (virtual under VirtualTime).
    """

    def __init__(self, target: str = "scripted", source: str = "redis", readings: list[Reading] | None = None,
                 kind: Kind | None = None, failure: ProbeError | None = None, *, script=(), default="ok",
                 deadline: float = 0.8):
        self.target, self.source, self.deadline = target, source, deadline
        self.readings = readings if readings is not None else \
            [Reading(Kind.CACHE, target, {"hits_per_s": 9.0, "misses_per_s": 1.0})]
        if kind is not None:
            self.kind = kind
        self.failure = failure
        self.script = list(script)
        self.default = default
        self.calls: list[float] = []
        self.cpu_waits: list[float] = []     # cpu_wait_s() at each call
        self.running = 0
        self.max_running = 0

    async def collect(self) -> list[Reading]:
        step = self.script.pop(0) if self.script else self.default
        self.calls.append(asyncio.get_running_loop().time())
        self.cpu_waits.append(cpu_wait_s())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.failure is not None:
                raise self.failure
            await _act(step)
            n = len(self.calls)
            return [replace(r, figures={k: (v * n if k.endswith("_total") else v) for k, v in r.figures.items()})
                    for r in self.readings]
        finally:
            self.running -= 1

    async def close(self) -> None:
        pass


async def _act(step) -> None:
    """One scripted step other than "ok": raise, or sleep first (see ScriptedProbe)."""
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, tuple) and step[0] == "fail_after":
        await asyncio.sleep(step[1])
        raise step[2]
    if isinstance(step, tuple):
        _, seconds, linger = step
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            await asyncio.sleep(linger)
            raise


class VirtualTime:
    """An event loop whose clock jumps over idle waits (looptime).

    The engine's waits are all event-loop timers and its clock is injected, so with
    `clock=vt.clock` an engine scheduling test that describes 3 s of polling runs in
    milliseconds and sees exact times: no real sleeps, no allowance for a busy machine.
    """

    def __init__(self, start: float = 1000.0):
        self.loop = looptime.new_event_loop(start=start)

    def clock(self) -> float:
        return self.loop.time()

    def run(self, scenario: Callable[[], Awaitable[object]]) -> object:
        asyncio.set_event_loop(self.loop)
        try:
            return self.loop.run_until_complete(scenario())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            self.loop.close()


def component(snap: Snapshot, name: str, kind: str | None = None, detail: str | None = None) -> Component:
    """The one row named `name` (narrowed by kind and detail); a test that means one row
    fails loudly when there are none or several."""
    rows = [c for c in snap.components if c.name == name and (kind is None or c.kind.value == kind)
            and (detail is None or c.detail == detail)]
    assert len(rows) == 1, f"{len(rows)} rows named {name!r} in {[c.name for c in snap.components]}"
    return rows[0]


def source(snap: Snapshot, target: str) -> SourceStatus:
    return next(s for s in snap.sources if s.target == target)


async def poll_rounds(engine: Engine, rounds: int = 2, window: float = 0.3) -> Snapshot:
    """`rounds` poll rounds `window` seconds apart (rates need two), then the snapshot."""
    for i in range(rounds):
        if i:
            await asyncio.sleep(window)
        await engine.poll_round()
    return engine.snapshot()


def snapshot_after(engine: Engine, rounds: int = 2, window: float = 0.3) -> Snapshot:
    """poll_rounds on a fresh loop, the engine closed after."""
    async def scenario() -> Snapshot:
        try:
            return await poll_rounds(engine, rounds, window)
        finally:
            await engine.close()
    return asyncio.run(scenario())


def rows_of(snap: Snapshot, target: str) -> dict[str, Component]:
    """The rows one target reported, by name (with `/detail` where a row has one)."""
    return {c.name + (f"/{c.detail}" if c.detail else ""): c for c in snap.components if c.target == target}


def by_kind_and_name(report: dict) -> dict:
    """`check --json` components keyed by (kind, name)."""
    return {(c["kind"], c["name"]): c for c in report["components"]}


def cpu_wait_s() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def texts_of(snap: Snapshot) -> list[str]:
    out = [c.reason for c in snap.components] + [c.last_error for c in snap.components]
    out += [s.reason for s in snap.sources] + [s.warning for s in snap.sources]
    out += [e.message for e in snap.events] + list(snap.banners)
    return [t for t in out if t]


def is_asyncpg_cancel_noise(context: dict) -> bool:
    """asyncpg's TLSUpgradeProto sets an exception nobody awaits when a connect is cancelled
    at the wrong instant (MagicStack/asyncpg#1211, #1310): logged, harmless, not ours."""
    exc = context.get("exception")
    return (context.get("message") == "Future exception was never retrieved"
            and type(exc) is ConnectionError and str(exc) == "unexpected connection_lost() call")


def run_scenario(scenario, timeout: float = 90.0, vt: VirtualTime | None = None) -> None:
    """Run an async scenario on a fresh loop (`vt`'s virtual-time loop when given); fail
    on any error asyncio had to log."""
    loop_errors: list[dict] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: loop_errors.append(ctx))
        try:
            await asyncio.wait_for(scenario(), timeout)
        finally:
            gc.collect()            # an unretrieved future's exception is reported when collected
            await asyncio.sleep(0)

    if vt is None:
        asyncio.run(main())
    else:
        vt.run(main)
    noise = [c for c in loop_errors if is_asyncpg_cancel_noise(c)]
    if noise:
        print(f"\nnote: asyncio logged asyncpg's unretrieved connection_lost() future {len(noise)} time(s)")
    errors = [c for c in loop_errors if not is_asyncpg_cancel_noise(c)]
    shown = [(c.get("message"), repr(c.get("exception")).replace(CANARY, "***")) for c in errors]
    if shown:
        pytest.fail(f"asyncio logged errors (these reach stderr as tracebacks): {shown}", pytrace=False)


def assert_loops_alive(engine: Engine) -> None:
    """Every per-target polling loop is still running (none died of an exception)."""
    assert engine._tasks, "engine not started"
    for task in engine._tasks:
        assert not task.done(), f"polling loop {task.get_name()} ended: {task}"
