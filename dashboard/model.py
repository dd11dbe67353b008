"""Immutable values that cross the boundaries: probe -> engine -> snapshot -> consumers.

Probes return a `Sample`; the engine turns samples into `Component`s and folds them
into a `Snapshot`. Nothing here does I/O or knows about Textual.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class State(str, enum.Enum):
    """The one state of a component row (DESIGN.md, "States")."""

    UNKNOWN = "UNKNOWN"
    OK = "OK"
    NO_DATA = "NO_DATA"
    DEGRADED = "DEGRADED"
    STALE = "STALE"
    ERROR = "ERROR"
    DOWN = "DOWN"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def __str__(self) -> str:
        return self.value


_SEVERITY = {
    State.OK: 0,
    State.UNKNOWN: 1,
    State.NO_DATA: 1,
    State.DEGRADED: 2,
    State.STALE: 3,
    State.ERROR: 4,
    State.DOWN: 5,
}


def worst(states: list[State] | tuple[State, ...]) -> State:
    """The most severe state of `states` (OK when there are none)."""
    return max(states, key=lambda s: s.severity, default=State.OK)


class Kind(str, enum.Enum):
    """Component kinds; `check --json` prints their values."""

    REPLICA = "replica"
    BREAKER = "breaker"
    CACHE = "cache"
    BATCHER = "batcher"
    EDGE = "edge"
    CDN = "cdn"
    SERVICE = "service"    # service-wide figures (reads per node, request errors): KPIs only

    def __str__(self) -> str:
        return self.value


class Failure(str, enum.Enum):
    """Why a probe failed: the target itself, or what its source answered."""

    # The target did not answer: refused, timed out, or a connection that broke before
    # it ever answered on it (a connect or handshake cut short).
    DOWN = "down"
    # It answered with something unusable, including an answer broken off mid-way: a
    # reset or a close on a connection it had already answered on (RELIABILITY case 10;
    # probes.base.broken_mid_response).
    ERROR = "error"
    NO_DATA = "no_data"    # the query worked and returned nothing


@dataclass(frozen=True)
class Reading:
    """One component as one probe saw it: raw figures, counters still cumulative.

    `figures` holds gauges under their contract names (`lag_bytes`, `state`...) and
    counters as `<name>_total`; a source that already reports a rate may give
    `<name>_per_s` instead. `state` lets a source force a state it knows for certain
    (e.g. DOWN "via prometheus" when `up == 0`).

    `sampled_at` / `sampled_at_newest`: wall-clock epoch seconds of the oldest and the
    newest sample feeding the row, when the source stamps its samples (Prometheus
    answers, /metrics lines with a timestamp); None when it does not. They are the one
    wall-clock value crossing into the engine, which turns them into a monotonic age
    once, when the reading arrives.
    """

    kind: Kind
    name: str
    figures: Mapping[str, Any]
    state: State | None = None
    reason: str | None = None
    detail: str | None = None          # tells apart rows of one name, e.g. a cache's layer
    sampled_at: float | None = None
    sampled_at_newest: float | None = None
    # Something the operator should do once, not see every poll (e.g. a missing grant):
    # the engine logs each distinct notice of a target once.
    notice: str | None = None

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.kind.value, self.name, self.detail or "")


@dataclass(frozen=True)
class Sample:
    """What one probe call returned. A failed sample has `failure` and `error` set."""

    target: str
    source: str
    readings: tuple[Reading, ...] = ()
    failure: Failure | None = None
    error: str | None = None
    warning: str | None = None
    latency_ms: float | None = None
    started: float = 0.0      # monotonic
    finished: float = 0.0     # monotonic

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class Component:
    """One row: a component's derived figures, state, reason, source and data age."""

    kind: Kind
    name: str
    state: State
    reason: str | None
    source: str
    target: str
    age_s: float | None
    metrics: Mapping[str, Any]
    detail: str | None = None
    since_s: float | None = None        # time in the current state
    last_error: str | None = None
    next_probe_in_s: float | None = None
    history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    warning: str | None = None          # the source answered with a warning for the data of this row

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.target, self.kind.value, self.name, self.detail or "")


# Rows the engine tracks per target. A source may answer with thousands of components
# (a label with a request id in it): each is a Track with histories and a Component in
# every snapshot, which made 100k series cost the TUI seconds per frame and `check
# --json` 100k entries. The rest are counted per kind (SourceStatus.rows_omitted).
MAX_ROWS_PER_SOURCE = 200


@dataclass(frozen=True)
class SourceStatus:
    """The health of one probe target (a DSN, a Redis, a /metrics URL, a Prometheus)."""

    target: str
    source: str
    state: State
    reason: str | None
    age_s: float | None
    latency_ms: float | None
    consecutive_failures: int
    next_probe_in_s: float | None
    warning: str | None = None
    # Rows of each kind (Kind values) the source reported beyond the engine's bound per
    # source (MAX_ROWS_PER_SOURCE): counted, not tracked; shown as "+N more".
    rows_omitted: Mapping[str, int] = field(default_factory=dict)
    # The config turned certificate checks off for this target (`insecure = true`): a
    # badge wherever the target is shown, for as long as it is configured so (case 36).
    insecure: bool = False


@dataclass(frozen=True)
class Kpi:
    """A target figure: measured value vs target; `value` and `met` are None when unknown."""

    name: str
    label: str
    value: float | None
    target: str
    met: bool | None
    detail: str | None = None


@dataclass(frozen=True)
class Alarm:
    """A fleet-wide alarm shown as a banner, and the state it stands for: two writable
    primaries (split-brain) are DOWN, whatever each node's own row says."""

    text: str
    state: State = State.DEGRADED


@dataclass(frozen=True)
class Snapshot:
    """Everything the consumers see at one instant. Never mutated after it is built."""

    generated_at: float                  # wall clock (epoch seconds), for display only
    components: tuple[Component, ...]
    sources: tuple[SourceStatus, ...]
    kpis: tuple[Kpi, ...]
    events: tuple["Event", ...] = ()
    service: tuple[Component, ...] = ()   # Kind.SERVICE rows: feed the KPIs, not shown as rows
    alarms: tuple[Alarm, ...] = ()        # fleet-wide alarms, e.g. two writable primaries
    # True until every target has finished its first probe (answered or failed): a
    # consumer says "starting" rather than judging a fleet half of which is unasked yet.
    starting: bool = False

    @property
    def banners(self) -> tuple[str, ...]:
        return tuple(a.text for a in self.alarms)

    @property
    def overall(self) -> State:
        states = [c.state for c in self.components] + [s.state for s in self.sources]
        return worst(states + [a.state for a in self.alarms])


@dataclass(frozen=True)
class Event:
    """A state transition or notice, for the event log."""

    at: float            # wall clock
    target: str
    message: str
    state: State | None = None
