"""The test doubles every test module shares: clocks, virtual loop time, lookups.

Kept in one module so a fake is written once: a test that needs a probe that follows
a script, a clock that stands still, or "the row named X" takes it from here.
Real servers stay the rule for anything a user would run against (conftest.py);
these are for engine logic, where time itself is the input.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import looptime

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
