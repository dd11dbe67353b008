"""The seam between metric sources and components.

A metric source (a direct /metrics scrape or a Prometheus server) produces flat
`Series`; a preset reads series and returns `Reading`s. Both paths share the presets:
a scrape gives cumulative counters (the engine turns them into rates between two
rounds); Prometheus gives `rate(...)` results, marked `rate=True`, which the kinds
use as they are.

A series may carry its sample's own time (wall clock): presets pass the oldest and the
newest time of the series feeding a row on to its `Reading`, so that a sample from
long ago, or from a clock ahead of ours, is never shown as fresh (RELIABILITY.md 23).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol

from dashboard.model import Reading


@dataclass(frozen=True)
class Series:
    """One sample: metric name, labels, value; `rate` when Prometheus applied rate().

    `timestamp`: when the sample was taken, wall-clock epoch seconds, if the source says.
    """

    name: str
    labels: Mapping[str, str]
    value: float
    rate: bool = False
    timestamp: float | None = None

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)


@dataclass(frozen=True)
class MetricSpec:
    """A metric a preset reads; Prometheus sources query exactly these."""

    name: str
    type: str  # "counter" | "gauge" | "histogram"


class Preset(Protocol):
    """What every preset module provides.

    METRICS: the metrics it reads (for PromQL: counters are queried as rate(), gauges
    as is, histograms as rate() of their `_bucket` series).
    interpret(series, source_name): the readings found; never raises on odd input
    (wrong label sets, NaN): such series are skipped or passed on as NaN for the
    kind to flag.
    """

    METRICS: tuple[MetricSpec, ...]

    def interpret(self, series: Iterable[Series], source_name: str) -> list[Reading]: ...


@dataclass
class SampleTimes:
    """The oldest and newest sample time seen among the series of one row."""

    oldest: float | None = None
    newest: float | None = None

    def note(self, s: Series) -> None:
        self.add(s.timestamp)

    def add(self, t: float | None) -> None:
        if t is None or not math.isfinite(t):
            return
        self.oldest = t if self.oldest is None else min(self.oldest, t)
        self.newest = t if self.newest is None else max(self.newest, t)

    def merge(self, other: "SampleTimes") -> "SampleTimes":
        out = SampleTimes(self.oldest, self.newest)
        out.add(other.oldest)
        out.add(other.newest)
        return out

    def fields(self) -> dict:
        """Keyword arguments for `Reading`."""
        return {"sampled_at": self.oldest, "sampled_at_newest": self.newest}


@dataclass
class Figures:
    """Accumulates one component's figures from many series, and their sample times."""

    values: dict = field(default_factory=dict)
    times: SampleTimes = field(default_factory=SampleTimes)

    def add_counter(self, figure: str, s: Series) -> None:
        """Sum a counter into `<figure>_total`, or `<figure>_per_s` for a rated series."""
        key = f"{figure}_per_s" if s.rate else f"{figure}_total"
        self.values[key] = self.values.get(key, 0.0) + s.value
        self.times.note(s)

    def set(self, figure: str, value: object, s: Series | None = None) -> None:
        """Set a figure; `s`, the series it came from, when it has one (for its time)."""
        self.values[figure] = value
        if s is not None:
            self.times.note(s)

    def add_bucket(self, figure: str, s: Series) -> None:
        """Collect histogram buckets (cumulative counts per `le`) under `figure`."""
        try:
            le = float(s.labels.get("le", "nan"))
        except ValueError:
            return
        if math.isnan(le):
            return
        key = f"{figure}_rate" if s.rate else figure
        self.times.note(s)
        buckets = dict(self.values.get(key, ()))
        buckets[le] = buckets.get(le, 0.0) + s.value
        self.values[key] = tuple(sorted(buckets.items()))


def too_many_series(count: int, cap: int, at_least: bool = False) -> str:
    """The one wording of a source over its `max_series` (a scrape and Prometheus alike);
    `at_least` when reading stopped once past the cap, before the whole body was in."""
    return f"too many series: {'at least ' if at_least else ''}{count} > {cap}"


def group(series: Iterable[Series], handlers: Mapping[str, Callable[[Series], None]]) -> None:
    """Feed each series to the handler registered for its name."""
    for s in series:
        handler = handlers.get(s.name)
        if handler is not None:
            handler(s)
