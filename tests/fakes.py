"""The test doubles every test module shares: clocks, virtual loop time, lookups.

Kept in one module so a fake is written once: a test that needs a probe that follows
a script, a clock that stands still, or "the row named X" takes it from here.
Real servers stay the rule for anything a user would run against (conftest.py);
these are for engine logic, where time itself is the input.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Awaitable, Callable

import looptime
import pytest

from conftest import CANARY
from dashboard.engine import Engine
from dashboard.model import Component, Snapshot, SourceStatus


class Clock:
    """A monotonic clock that moves only when a test moves it (`clock.now += 1`)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


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
    """The row named `name` (a target's own row, or a row found in a metric source)."""
    for c in snap.components:
        if (c.name == name or c.target == name) and (kind is None or c.kind.value == kind) \
                and (detail is None or c.detail == detail):
            return c
    raise LookupError(f"no component {name!r} in {[c.name for c in snap.components]}")


def source(snap: Snapshot, target: str) -> SourceStatus:
    return next(s for s in snap.sources if s.target == target)


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
