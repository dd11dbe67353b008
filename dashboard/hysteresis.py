"""Thresholds that do not flap: one band and one hold time for every threshold of every kind.

A figure that sits on its threshold (a hit rate at 79-81 % against 80 %) would turn its
row DEGRADED and OK again every second if each reading were judged alone. An on-call
engineer expects the row to go DEGRADED on the first crossing, to stay DEGRADED while
the figure wobbles, and to be told why it still is. So a kind states each figure it
judges as a `Limit`, and one `Memory` per row remembers which limits have tripped:

- crossing a limit is DEGRADED at once (as are a kind's hard facts: replay paused,
  breaker open, non-finite figures, which never go through here);
- a tripped limit clears only once its figure is back past the threshold by the band
  (`recovery_band`, a fraction of the room between the threshold and the figure's best
  value: 80 % hit rate, band 0.1 -> 82 %; 5 s lag -> 4.5 s) and has stayed there for the
  hold time (`recovery_hold`); until then the row stays DEGRADED with a reason such as
  "hit rate 81% (recovering: needs >= 82% for 5s)".

Kinds call `crossed()` in `assess()` (a memoryless verdict, what one reading says) and
the engine calls `Memory.judge()` with that verdict and the same limits, per reading
for a row's own figures and per snapshot for judgements across rows (`relate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from dashboard.config_types import Thresholds
from dashboard.model import State


@dataclass(frozen=True)
class Limit:
    """One figure judged against one threshold. `best` is the figure's best value (0 for a
    lag or an error rate, 1 for a hit rate): the side of the threshold it lies on is OK."""

    figure: str                 # as the reason names it: "hit rate", "lag", "error rate"
    value: float
    threshold: float
    best: float
    high_is_bad: bool
    show: Callable[[float], str] = field(default=lambda v: f"{v:g}", compare=False)
    key: str = ""               # what the row's memory knows it by, when `figure` is ambiguous

    @classmethod
    def ceiling(cls, figure: str, value: float, threshold: float, show: Callable[[float], str],
                best: float = 0.0, key: str = "") -> "Limit":
        """Bad above `threshold` (a lag, an error rate)."""
        return cls(figure, value, threshold, min(best, threshold), True, show, key)

    @classmethod
    def floor(cls, figure: str, value: float, threshold: float, show: Callable[[float], str],
              best: float = 1.0, key: str = "") -> "Limit":
        """Bad below `threshold` (a hit rate)."""
        return cls(figure, value, threshold, max(best, threshold), False, show, key)

    def is_crossed(self) -> bool:
        """Past the threshold (NaN is never past it: non-finite figures are a hard fact)."""
        return self.value > self.threshold if self.high_is_bad else self.value < self.threshold

    def clear_at(self, band: float) -> float:
        """The value the figure must reach again before the limit can clear."""
        return self.threshold + (self.best - self.threshold) * band

    def is_clear(self, band: float) -> bool:
        back = self.clear_at(band)
        return self.value <= back if self.high_is_bad else self.value >= back

    def reason(self) -> str:
        op = ">" if self.high_is_bad else "<"
        return f"{self.figure} {self.show(self.value)} {op} {self.show(self.threshold)}"

    def recovering(self, band: float, hold_s: float, held_s: float | None) -> str:
        op = "<=" if self.high_is_bad else ">="
        back = f"{op} {self.show(self.clear_at(band))}"
        if held_s is None:
            wait = f"needs {back}" + (f" for {_secs(hold_s)}" if hold_s > 0 else "")
        else:
            wait = f"{back} for {_secs(held_s)} of {_secs(hold_s)}"
        return f"{self.figure} {self.show(self.value)} (recovering: {wait})"


def crossed(limits: Iterable[Limit]) -> tuple[State, str | None]:
    """The memoryless verdict on a row's limits: DEGRADED with the first crossed one."""
    for limit in limits:
        if limit.is_crossed():
            return State.DEGRADED, limit.reason()
    return State.OK, None


@dataclass
class _Tripped:
    clear_since: float | None = None     # when the figure got back past the band, if it has


class Memory:
    """Which limits of one row have tripped and not yet cleared, and since when each has
    been back inside. Keyed by the limit's figure name, so a row can judge several."""

    def __init__(self) -> None:
        self._tripped: dict[str, _Tripped] = {}

    def judge(self, verdict: tuple[State, str | None], limits: Iterable[Limit], now: float,
              thresholds: Thresholds) -> tuple[State, str | None]:
        """`verdict` is what this reading alone says (hard facts first, then `crossed`);
        anything but OK stands as is. An OK verdict stays DEGRADED while a tripped
        limit recovers (its band and hold time from `thresholds`)."""
        band, hold_s = thresholds.recovery_band, thresholds.recovery_hold_s
        still: str | None = None
        for limit in limits:
            note = self._update(limit, now, band, hold_s)
            still = still or note
        if verdict[0] is State.OK and still is not None:
            return State.DEGRADED, still
        return verdict

    def _update(self, limit: Limit, now: float, band: float, hold_s: float) -> str | None:
        """Record this reading of `limit`; the recovering reason while it stays tripped."""
        key = limit.key or limit.figure
        tripped = self._tripped.get(key)
        if limit.is_crossed():
            self._tripped[key] = _Tripped()
            return None
        if tripped is None:
            return None
        if not limit.is_clear(band):
            tripped.clear_since = None
            return limit.recovering(band, hold_s, None)
        if tripped.clear_since is None:
            tripped.clear_since = now
        held = now - tripped.clear_since
        if held >= hold_s:
            del self._tripped[key]
            return None
        return limit.recovering(band, hold_s, held)


def _secs(value: float) -> str:
    return f"{value:.0f}s" if value >= 1 or value == 0 else f"{value:.1f}s"

