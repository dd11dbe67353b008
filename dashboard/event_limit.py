"""The event log's rate limit per target: a flapping target is summarised, never hidden.

Every change of the state a row shows is an event-log line; a target failing half its
probes changes state every poll or two, on every row it has (a /metrics source with 6
rows logged 46 lines in 10 s), and buries every other target's news under its own
(RELIABILITY.md case 12). What an on-call engineer wants from the log instead:

- A target's changes are logged as they happen while they are few: its first change, a
  DOWN, a recovery. A change is everything one target's rows did in one snapshot (6
  rows going DOWN together are one change, logged whole).
- Past `BUDGET` changes within `WINDOW_POLLS` of its poll intervals, the next change is
  one line instead, "<target> flapping: 5 changes in 4s, ..., now 6 OK", and from then
  on at most one line per window ("still flapping: N state changes suppressed ...").
- Once it has been quiet for `SETTLE_POLLS` intervals, one line with its final state
  ("<target> settled: OK after 38 suppressed state changes"), and its budget is whole again.
- Counted per target: a flapping target never delays another's lines.

The rows themselves always show the current state; only the log is limited. Windows
are counted in the target's own poll intervals, so a 10 s target flaps by the same
rule as a 1 s one.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Sequence

from dashboard.model import Component, Event, State, worst

BUDGET = 4             # changes logged in full per window: an outage and its recovery take 3
WINDOW_POLLS = 20      # the window, in poll intervals of the target (Nagios looks at its last 21 checks)
SETTLE_POLLS = 5       # quiet this long (in intervals) and a flapping target has settled


@dataclass
class _TargetLog:
    changes: collections.deque = field(default_factory=collections.deque)   # times of logged changes
    flapping_since: float | None = None
    summarised_at: float = 0.0       # the last flapping / still-flapping line
    last_change_at: float = 0.0
    suppressed: int = 0              # row changes not logged since the last summary line
    suppressed_total: int = 0        # ... since it started flapping


class EventLimiter:
    """Decides, per target and snapshot, which lines reach the event log."""

    def __init__(self) -> None:
        self._targets: dict[str, _TargetLog] = {}

    def lines(self, target: str, changes: Sequence[Event], rows: Sequence[Component], now: float,
              interval: float, wall: float) -> list[Event]:
        """The lines to log for `target` now. `changes`: its rows' state changes seen in this
        snapshot (often none); `rows`: its rows as shown now; `now` monotonic, `wall` the
        wall clock for a summary line; `interval`: the target's poll interval."""
        log = self._targets.get(target)
        if not changes:
            if log is not None and log.flapping_since is not None and now - log.last_change_at >= \
                    SETTLE_POLLS * interval:
                del self._targets[target]
                return [Event(wall, target, f"{target} settled: {_states(rows)} after {log.suppressed_total} "
                                            "suppressed state changes", worst([r.state for r in rows]))]
            return []
        log = self._targets.setdefault(target, _TargetLog())
        log.last_change_at = now
        window = WINDOW_POLLS * interval
        if log.flapping_since is None:
            while log.changes and now - log.changes[0] > window:
                log.changes.popleft()
            if len(log.changes) < BUDGET:
                log.changes.append(now)
                return list(changes)
            log.flapping_since = log.summarised_at = now
            log.suppressed = log.suppressed_total = len(changes)
            span = now - log.changes[0]
            return [Event(wall, target, f"{target} flapping: {len(log.changes) + 1} changes in {span:.0f}s; its "
                                        f"state changes are summarised until it settles (now {_states(rows)})",
                          worst([r.state for r in rows]))]
        log.suppressed += len(changes)
        log.suppressed_total += len(changes)
        if now - log.summarised_at < window:
            return []
        line = Event(wall, target, f"{target} still flapping: {log.suppressed} state changes suppressed in the "
                                   f"last {now - log.summarised_at:.0f}s (now {_states(rows)})",
                     worst([r.state for r in rows]))
        log.summarised_at, log.suppressed = now, 0
        return [line]


def _states(rows: Sequence[Component]) -> str:
    """The rows' states in a few words: "DOWN", "OK (6 rows)", "2 DOWN, 4 OK"."""
    counts = collections.Counter(r.state for r in rows)
    if len(counts) == 1:
        state, n = next(iter(counts.items()))
        return state.value + (f" ({n} rows)" if n > 1 else "")
    ordered = sorted(counts.items(), key=lambda item: -item[0].severity)
    return ", ".join(f"{n} {state.value}" for state, n in ordered) or State.UNKNOWN.value
