"""The suites of one dashboard session: which exist, which run, what each run gave.

It outlives the suites screen (leaving the screen must not lose a running suite or
its result), so the app owns it and the screen only reads it. No Textual here: the
screen draws what this holds, the app's worker feeds it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dashboard.suites.catalog import SuiteSpec
from dashboard.suites.results import SuiteResult, Verdict
from dashboard.suites.runner import SuiteRun

LOG_LINES = 1000          # live lines kept per running suite (the runner keeps its own tail)
HISTORY_PER_SUITE = 20    # results kept per suite in one session
START_WAIT_S = 10.0       # quitting: how long a suite still starting may take to have a group


@dataclass
class LiveRun:
    """A suite that is running: its runner and the lines it printed so far (bounded)."""

    run: SuiteRun
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_LINES))
    count: int = 0        # lines seen in all, so a reader knows how many it missed
    # Set once start() has returned or failed: before that there is no group to wait for.
    start_settled: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.count += 1


@dataclass(frozen=True)
class CouldNotRun:
    """A run that never started (missing tool or command): said, not lost."""

    name: str
    reason: str
    at: float


class SuiteSession:
    def __init__(self, specs: tuple[SuiteSpec, ...], wall: Callable[[], float] = time.time) -> None:
        self.specs = specs
        self.wall = wall
        self.live: dict[str, LiveRun] = {}
        self.history: dict[str, collections.deque[SuiteResult | CouldNotRun]] = {}

    def spec(self, name: str) -> SuiteSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def begin(self, run: SuiteRun) -> LiveRun:
        live = self.live[run.spec.name] = LiveRun(run)
        return live

    def record(self, name: str, outcome: SuiteResult | CouldNotRun) -> None:
        """A run ended (or never started): it leaves `live` and joins the history."""
        self.live.pop(name, None)
        self.history.setdefault(name, collections.deque(maxlen=HISTORY_PER_SUITE)).append(outcome)

    def results(self, name: str) -> tuple[SuiteResult | CouldNotRun, ...]:
        """Newest first."""
        return tuple(reversed(self.history.get(name, ())))

    def last(self, name: str) -> SuiteResult | CouldNotRun | None:
        found = self.history.get(name)
        return found[-1] if found else None

    def hurry(self, grace_s: float) -> None:
        """The app must end within seconds (its terminal is gone): every running suite gets
        at most `grace_s` from SIGTERM to SIGKILL when it is stopped."""
        for live in self.live.values():
            live.run.grace_s = min(live.run.grace_s, grace_s)

    async def cancel_all(self) -> None:
        """Cancel every running suite and wait until no process of theirs is left."""
        lives = list(self.live.values())
        for live in lives:
            live.run.cancel()
        for live in lives:
            with contextlib.suppress(asyncio.TimeoutError):   # a start that hangs has no group yet
                await asyncio.wait_for(live.start_settled.wait(), START_WAIT_S)
            if live.run.result is None and live.run.pgid is not None:
                await live.run.wait()


def needs_event(outcome: SuiteResult | CouldNotRun) -> bool:
    """A failed, errored or timed-out run (or one that could not start) is news; a pass or
    the user's own cancel is not."""
    return isinstance(outcome, CouldNotRun) or outcome.verdict in (Verdict.FAILED, Verdict.ERROR,
                                                                   Verdict.TIMEOUT)
