"""Poll scheduling and state: deadlines, single-flight, backoff, hysteresis, history.

The engine owns time. Probes do one round of I/O; the engine bounds each call by its
deadline, never lets two calls to one target overlap, spaces out retries to dead
targets, derives rates from counter deltas, decides each component's State, and keeps
a bounded history per figure. Consumers (the TUI, `check`, drills) read immutable
`Snapshot`s; every message they see has passed `redact.safe_message`.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from dashboard import kpi
from dashboard.config import Config, Thresholds
from dashboard.event_limit import EventLimiter
from dashboard.hysteresis import Memory
from dashboard.kinds import KINDS, banners_of, history_figures, relate_all
from dashboard.kinds.base import non_finite
from dashboard.model import (MAX_ROWS_PER_SOURCE, Component, Event, Failure, Kind, Reading, Sample, Snapshot,
                             SourceStatus, State)
from dashboard.probes.base import Probe, classify
from dashboard.redact import safe_message

BACKOFF_CAP_S = 30.0
DOWN_AFTER = 2            # consecutive failures before DOWN (hysteresis)
CANCEL_GRACE_S = 0.2      # how long a cancelled probe gets to clean up before we move on
HISTORY_LEN = 120
RATE_WINDOW_S = 5.0       # rates and windowed hit rates span up to this much history
EVENTS_LEN = 200
FUTURE_SKEW_S = 5.0       # a sample stamped further ahead of our wall clock than this is flagged
TIMING_SLOT_S = 0.010     # each round-trip-timing probe's quiet slot at the start of a tick


@dataclass
class Track:
    """What the engine remembers of one component between rounds."""

    kind: Kind
    name: str
    detail: str | None
    reading: Reading | None = None
    read_at: float | None = None
    prev_reading: Reading | None = None
    prev_at: float | None = None
    earlier: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))
    metrics: dict = field(default_factory=dict)
    state: State = State.UNKNOWN
    reason: str | None = None
    shown_state: State = State.UNKNOWN
    since: float | None = None
    down_streak: int = 0
    history: dict[str, collections.deque] = field(default_factory=dict)
    # The samples' own times, turned into offsets once, when the reading arrived:
    # how old the oldest sample was then, how far ahead of our clock the newest.
    sample_lag_s: float | None = None
    sample_lead_s: float | None = None
    warning: str | None = None       # the source's warning on the answer that fed this row
    limits: Memory = field(default_factory=Memory)    # its tripped thresholds (hysteresis.py)


@dataclass
class Target:
    """One probe and its scheduling state."""

    probe: Probe
    tracks: dict[tuple[str, str, str], Track] = field(default_factory=dict)
    last_sample: Sample | None = None
    last_ok_at: float | None = None
    failures: int = 0
    last_error: str | None = None
    next_due: float = 0.0
    in_flight: asyncio.Task | None = None
    attempts: int = 0
    successes: int = 0
    answered: int = 0      # probes the service answered (uptime): see `uptime`
    completed: int = 0     # probes that ended, answered or not (a probe in flight is neither yet)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    notices: set[str] = field(default_factory=set)     # already logged (Reading.notice)
    slot: int = 0             # its place in a tick (`Engine._phase`)
    rows_omitted: dict[str, int] = field(default_factory=dict)   # by kind, beyond MAX_ROWS_PER_SOURCE


class Engine:
    """Polls every target of a config; `snapshot()` gives the current picture."""

    def __init__(self, config: Config, probes: list[Probe] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 defer_probes: bool = False):
        """`defer_probes`: build the config's probes at the first `start()` / `poll_round()`
        instead of now. Building them imports the drivers (~150 ms for asyncpg, redis-py and
        httpx), which the TUI would otherwise pay before its first frame."""
        self.config = config
        self.interval = config.interval
        self.thresholds: Thresholds = config.thresholds
        self.clock = clock
        self.wall = wall
        self.targets: list[Target] = []
        self._probes_deferred = defer_probes and probes is None
        if not self._probes_deferred:
            self._set_probes(probes if probes is not None else self._build_probes())
        self.events: collections.deque[Event] = collections.deque(maxlen=EVENTS_LEN)
        self._event_limit = EventLimiter()     # a flapping target is summarised (event_limit.py)
        self._tasks: list[asyncio.Task] = []
        self.paused = False
        self.rounds = 0
        self.failover_seconds: float | None = None
        # Called (on the loop, synchronously) when a target's probe fails, or answers
        # after failing: a consumer that draws on a cadence can draw such a change at
        # once instead of up to a cadence later (the TUI does; see app._outcome_changed).
        self.on_outcome: Callable[[], None] | None = None
        self.epoch = clock()           # the poll grid's origin; start() resets it
        # Thresholds judged across rows (a cache's layers) remember their trips here, per row.
        self._row_limits: dict[tuple, Memory] = {}

    def _build_probes(self) -> list[Probe]:
        from dashboard.probes import build_probes

        return build_probes(self.config)

    def _set_probes(self, probes: list[Probe]) -> None:
        self.targets = [Target(p) for p in probes]
        # Probes that time a round trip each get a slot of their own; the rest share the last.
        timing = [t for t in self.targets if getattr(t.probe, "times_round_trip", False)]
        for i, t in enumerate(timing):
            t.slot = i
        for t in self.targets:
            if t not in timing:
                t.slot = len(timing)
        self._seed_tracks()

    def _ensure_probes(self) -> None:
        if self._probes_deferred:
            self._probes_deferred = False
            self._set_probes(self._build_probes())

    def _seed_tracks(self) -> None:
        """Direct targets are one known component each: show them before the first probe."""
        for t in self.targets:
            kind = getattr(t.probe, "kind", None)
            if kind is not None:
                track = Track(kind, t.probe.target, None)
                t.tracks[(kind.value, t.probe.target, "")] = track

    # ------------------------------------------------------------------ running

    async def poll_round(self) -> None:
        """Probe every target once, concurrently (what `check` does twice)."""
        self._ensure_probes()
        await asyncio.gather(*(self._poll(t) for t in self.targets))
        self.rounds += 1

    def start(self) -> None:
        """Start one polling loop per target (the TUI's mode)."""
        self._ensure_probes()
        if not self._tasks:
            # Spread the first round over a fraction of the interval: a fleet's
            # connections should not all open in the same millisecond. From the second
            # round on, every target polls on one grid of ticks (`_on_grid`).
            now, spread = self.clock(), min(self.interval, 0.5)
            self.epoch = now
            count = max(len(self.targets), 1)
            for i, t in enumerate(self.targets):
                t.next_due = now + spread * i / count
            self._tasks = [asyncio.create_task(self._loop(t), name=f"poll:{t.probe.target}")
                           for t in self.targets]

    async def _loop(self, t: Target) -> None:
        while True:
            delay = t.next_due - self.clock()
            if delay > 0:
                t.wake.clear()
                try:
                    await asyncio.wait_for(t.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            if self.paused:
                t.next_due = self._on_grid(t, self.clock())
                continue
            started = self.clock()
            try:
                await self._poll(t)
            except Exception as exc:  # a bug in one target's handling must not stop its polling
                self._apply(t, self._failed(t, started, Failure.ERROR, f"internal error: {type(exc).__name__}"))
            t.next_due = self._next_due(t, started, self.clock())

    def set_interval(self, interval: float) -> None:
        """Change the poll interval; deadlines shrink with it so that D <= P still holds."""
        self.interval = interval
        now = self.clock()
        for t in self.targets:
            t.probe.deadline = min(self.config.timeout, interval)
            t.next_due = min(t.next_due, self._on_grid(t, now))
            t.wake.set()

    def refresh_now(self) -> None:
        """Make every target due immediately (the loops pick it up on their next wake)."""
        now = self.clock()
        for t in self.targets:
            t.next_due = min(t.next_due, now)
            t.wake.set()

    def interval_of(self, t: Target) -> float:
        """A target's own interval when it has one, never faster than the global one."""
        return max(getattr(t.probe, "interval", None) or 0.0, self.interval)

    def _next_due(self, t: Target, started: float, finished: float) -> float:
        p = self.interval_of(t)
        if t.failures >= DOWN_AFTER:
            # The exponent is capped too: after ~1000 failures (hours down) 2**n overflows a float.
            backoff = min(BACKOFF_CAP_S, p * 2 ** min(t.failures - DOWN_AFTER + 1, 32))
            return finished + max(p, backoff * random.uniform(0.8, 1.2))
        # The next tick of the grid at least half an interval after this probe started;
        # an overrun skips the missed ticks instead of queueing them.
        return self._on_grid(t, max(finished, started + p / 2))

    def _on_grid(self, t: Target, after: float) -> float:
        """The first tick of `t`'s interval after `after`, on the grid every target shares.

        Targets due at the same tick (and slot: `_phase`) wake in the same event-loop
        iteration and are probed together: on the lab's 11 targets this cut the engine's
        CPU by a third (0.87 -> 0.57 CPU s/min, tests/bench/engine_cpu.py) against the same
        probes spread over the second (fewer wake-ups, warm caches).
        A target with a longer interval (5 s) polls on every fifth tick of the same grid.
        """
        p, phase = self.interval_of(t), self._phase(t)
        return self.epoch + phase + math.ceil((after - self.epoch - phase) / p - 1e-9) * p

    def _phase(self, t: Target) -> float:
        """How far into each tick `t` starts. A probe that times a round trip to a server
        (PostgreSQL, Redis: `times_round_trip`) starts in a slot of its own, before the
        rest (/metrics and Prometheus parsing, httpx), which share the last slot. All woken
        in one loop iteration, a PostgreSQL reply waited behind their callbacks: the lab's
        idle nodes showed 10-26 ms (p50) against 0.5-1.5 ms for a bare SELECT 1 from an
        idle process; 10 ms apart, 0.6-2.9 ms, mostly within 2x of the bare round trip
        on a loaded 2-core machine (tests/bench/probe_latency.py). The cost is the extra
        wake-ups: +0.1-0.3 CPU s/min on the lab (1.43-1.47 -> 1.55-1.70) on a loaded
        machine, none measurable on a quieter one; slots for the three HTTP probes too
        cost +0.3-0.45 more, so they stay with the parsers. The slots span at most a fifth of the interval."""
        slots = max(len(self.targets), 1)
        return t.slot * min(TIMING_SLOT_S, self.interval * 0.2 / slots)

    async def _poll(self, t: Target) -> None:
        started = self.clock()
        t.attempts += 1
        if t.in_flight is not None and not t.in_flight.done():
            self._apply(t, self._failed(t, started, _timeout_failure(t.probe),
                                        "previous probe still running (skipped)"))
            return
        task = asyncio.ensure_future(t.probe.collect())
        t.in_flight = task
        # close() may abandon a call mid-wait: its error must not be logged as a traceback.
        task.add_done_callback(_swallow)
        done, _ = await asyncio.wait({task}, timeout=t.probe.deadline)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            if not task.done():
                task.add_done_callback(_swallow)
            self._apply(t, self._failed(t, started, _timeout_failure(t.probe), "timeout"))
            return
        exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if exc is not None:
            failure, reason = classify(exc)
            self._apply(t, self._failed(t, started, failure, reason))
            return
        finished = self.clock()
        t.successes += 1
        warning = getattr(t.probe, "warning", None)
        self._apply(t, Sample(t.probe.target, t.probe.source, tuple(task.result()),
                              latency_ms=(finished - started) * 1000.0, started=started,
                              finished=finished, warning=safe_message(warning, 120) if warning else None))

    def _failed(self, t: Target, started: float, failure: Failure, reason: str) -> Sample:
        return Sample(t.probe.target, t.probe.source, failure=failure, error=safe_message(reason, 160),
                      started=started, finished=self.clock())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        self._tasks = []
        # All at once under one bound: one by one, N hung targets would cost N seconds.
        closing = [asyncio.ensure_future(t.probe.close()) for t in self.targets]
        if closing:
            await asyncio.wait(closing, timeout=1.0)
        for task in closing:
            if not task.done():
                task.cancel()
            task.add_done_callback(_swallow)

    # ------------------------------------------------------------------ state

    def _apply(self, t: Target, sample: Sample) -> None:
        was_ok = t.last_sample is None or t.last_sample.ok
        t.last_sample = sample
        t.completed += 1
        if self.on_outcome is not None and not (was_ok and sample.ok):
            self.on_outcome()
        if not sample.ok:
            t.failures += 1
            t.last_error = sample.error
            return
        t.failures = 0
        t.last_ok_at = sample.finished
        if not any(r.state is State.DOWN for r in sample.readings):
            t.answered += 1
        for reading in self._bounded(t, sample.readings):
            self._notice(t, reading)
            self._apply_reading(t, reading, sample.finished, sample.warning)

    def _bounded(self, t: Target, readings: tuple[Reading, ...]) -> list[Reading]:
        """The readings to track: rows already tracked first, new ones while there is room
        (made by dropping rows the source no longer reports); the rest counted per kind.
        Service-wide readings feed the KPIs and are not rows: never dropped."""
        fresh = [r for r in readings if r.ident not in t.tracks and r.kind is not Kind.SERVICE]
        room = MAX_ROWS_PER_SOURCE - sum(1 for k in t.tracks if k[0] != Kind.SERVICE.value)
        if len(fresh) > room:
            reported = {r.ident for r in readings}
            gone = [k for k in t.tracks if k not in reported and k[0] != Kind.SERVICE.value]
            for key in gone[: len(fresh) - room]:
                del t.tracks[key]
            room += min(len(gone), len(fresh) - room)
        dropped = fresh[max(room, 0):]
        t.rows_omitted = dict(collections.Counter(r.kind.value for r in dropped))
        if not dropped:
            return list(readings)
        skip = {r.ident for r in dropped}
        return [r for r in readings if r.ident not in skip]

    def note(self, target: str, message: str, state: State | None = None) -> None:
        """One line in the event log from outside the polling (a suite that failed)."""
        self.events.append(Event(self.wall(), target, safe_message(message, 200), state))

    def _notice(self, t: Target, reading: Reading) -> None:
        """A reading's notice goes to the event log once per target, not once per poll."""
        if reading.notice and reading.notice not in t.notices:
            t.notices.add(reading.notice)
            self.events.append(Event(self.wall(), t.probe.target, safe_message(reading.notice, 200)))

    def _apply_reading(self, t: Target, reading: Reading, at: float, warning: str | None = None) -> None:
        key = reading.ident
        track = t.tracks.get(key)
        if track is None:
            track = t.tracks[key] = Track(reading.kind, reading.name, reading.detail)
        self._note_sample_times(track, reading)
        track.warning = warning
        if track.reading is not None:
            track.earlier.append((track.read_at, track.reading))
        # Rates span up to RATE_WINDOW_S of readings, not just the last interval: a
        # 1 s window of a quiet cache flaps around its threshold and flickers on screen.
        while len(track.earlier) > 1 and at - track.earlier[0][0] > RATE_WINDOW_S:
            track.earlier.popleft()
        if track.earlier:
            track.prev_at, track.prev_reading = track.earlier[0]
        track.reading, track.read_at = reading, at
        dt = (at - track.prev_at) if track.prev_at is not None else None
        module = KINDS[reading.kind]
        try:
            track.metrics = module.derive(reading, track.prev_reading, dt)
        except Exception as exc:  # odd remote data must cost one row, never the engine
            track.metrics = {}
            track.state, track.reason = State.ERROR, f"unusable figures: {type(exc).__name__}"
            return
        if reading.state is State.DOWN:
            track.down_streak += 1
            if track.down_streak >= DOWN_AFTER:
                track.state, track.reason = State.DOWN, reading.reason
            else:
                track.state = State.DEGRADED
                track.reason = f"{reading.reason} (1 failure; DOWN at {DOWN_AFTER})"
        elif reading.state is not None:
            track.down_streak = 0
            track.state, track.reason = reading.state, reading.reason
        elif bad := non_finite(reading.figures) or non_finite(track.metrics):
            # One rule for every kind, on raw and derived figures alike: a -Inf counter
            # that derive() quietly drops must not leave its row OK.
            track.down_streak = 0
            track.state, track.reason = State.DEGRADED, bad
        else:
            track.down_streak = 0
            try:
                track.state, track.reason = self._judge(module, track, at)
            except Exception as exc:  # same boundary as derive()
                track.state, track.reason = State.ERROR, f"unusable figures: {type(exc).__name__}"
        if track.reason:
            track.reason = safe_message(track.reason, 160)
        for figure in history_figures(reading.kind):
            value = track.metrics.get(figure)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                track.history.setdefault(figure, collections.deque(maxlen=HISTORY_LEN)).append(float(value))

    def _note_sample_times(self, track: Track, reading: Reading) -> None:
        """The one place a sample's wall-clock time meets ours; from here on, ages are
        monotonic offsets (a wall clock jump later does not age or rejuvenate a row)."""
        wall = self.wall()
        track.sample_lag_s = wall - reading.sampled_at if reading.sampled_at is not None else None
        track.sample_lead_s = reading.sampled_at_newest - wall if reading.sampled_at_newest is not None else None

    def _data_age(self, track: Track, now: float) -> float | None:
        """Age of a row's figures: since they arrived, plus how old their samples already were."""
        if track.read_at is None:
            return None
        return (now - track.read_at) + max(0.0, track.sample_lag_s or 0.0)

    def _sample_time_state(self, t: Target, track: Track, now: float) -> tuple[State, str] | None:
        """Judgement from the samples' own times (RELIABILITY.md 23), when they have one.

        Old: older than 2 poll intervals, or than the source's own grace (a Prometheus
        source's rate_window: a gauge there is normally up to one scrape interval old)
        -> STALE. From the future: more than FUTURE_SKEW_S ahead of our clock -> DEGRADED.
        """
        if track.sample_lag_s is None:
            return None
        age = self._data_age(track, now)
        limit = max(2 * self.interval_of(t), getattr(t.probe, "sample_grace_s", 0.0))
        if age > limit:
            return State.STALE, f"sample is {age:.0f}s old (limit {limit:.0f}s)"
        lead = track.sample_lead_s
        if lead is not None and lead > FUTURE_SKEW_S:
            return State.DEGRADED, f"sample timestamp {lead:.0f}s in the future (clock skew?)"
        return None

    def _judge(self, module, track: Track, at: float) -> tuple[State, str | None]:
        """What this reading says (hard facts at once, thresholds crossed at once), held
        DEGRADED while a tripped threshold recovers: no flapping on a threshold."""
        verdict = module.assess(track.metrics, self.thresholds)
        limits = getattr(module, "limits", None)
        judged = limits(track.metrics, self.thresholds) if limits is not None else ()
        return track.limits.judge(verdict, judged, at, self.thresholds)

    def _component_state(self, t: Target, track: Track, now: float) -> tuple[State, str | None]:
        sample = t.last_sample
        if sample is not None and not sample.ok:
            if sample.failure is Failure.DOWN and t.failures >= DOWN_AFTER:
                return State.DOWN, t.last_error
            if sample.failure is Failure.ERROR:
                return State.ERROR, t.last_error
            if sample.failure is Failure.NO_DATA:
                return State.NO_DATA, t.last_error
        if track.read_at is None:
            return State.UNKNOWN, (f"first probe failed: {t.last_error}" if t.last_error else "no probe finished yet")
        if sample is not None and sample.ok and track.read_at < sample.finished:
            return State.STALE, "no longer reported by the source"
        if sample is not None and sample.failure is Failure.DOWN:
            # One failure is not DOWN yet (hysteresis), but the figures are no longer fresh.
            return State.STALE, f"last probe failed: {t.last_error} (DOWN if the next one fails)"
        age = now - track.read_at
        if age > 2 * self.interval_of(t):
            why = f"no fresh data for {age:.1f}s"
            return State.STALE, f"{why}: {t.last_error}" if t.last_error and t.failures else why
        timed = self._sample_time_state(t, track, now)
        if timed is not None and timed[0].severity >= track.state.severity:
            return timed
        return track.state, track.reason

    def _source_state(self, t: Target, now: float) -> tuple[State, str | None]:
        sample = t.last_sample
        if sample is None:
            return State.UNKNOWN, "no probe finished yet"
        if not sample.ok:
            if sample.failure is Failure.DOWN:
                if t.failures >= DOWN_AFTER:
                    return State.DOWN, t.last_error
                return (State.STALE if t.last_ok_at is None or now - t.last_ok_at > 2 * self.interval_of(t)
                        else State.OK), t.last_error
            return (State.ERROR if sample.failure is Failure.ERROR else State.NO_DATA), t.last_error
        return State.OK, None

    def snapshot(self) -> Snapshot:
        """The current picture, built fresh; safe to hand to any consumer."""
        now = self.clock()
        rows, service, sources = [], [], []
        for t in self.targets:
            for track in t.tracks.values():
                comp = self._component(t, track, now)
                if track.kind is Kind.SERVICE:
                    service.append(comp)
                else:
                    rows.append((t, track, comp))
            sources.append(self._source_status(t, now))
        judged = relate_all([comp for _, _, comp in rows], self.thresholds, self._row_memory, now)
        changes: dict[str, list[Event]] = {}
        components = [self._note_transition(t, track, _judged_history(track, comp), now, changes)
                      for (t, track, _), comp in zip(rows, judged)]
        self._log_changes(changes, components, now)
        snap = Snapshot(generated_at=self.wall(), components=tuple(components), sources=tuple(sources),
                        kpis=(), events=tuple(reversed(self.events)), service=tuple(service),
                        alarms=banners_of(components), starting=any(t.last_sample is None for t in self.targets))
        return kpi.with_kpis(snap, self.uptime(), self.failover_seconds)

    def _row_memory(self, comp: Component) -> Memory:
        return self._row_limits.setdefault(comp.key, Memory())

    def _note_transition(self, t: Target, track: Track, comp: Component, now: float,
                         changes: dict[str, list[Event]]) -> Component:
        """Note a change of the state shown (in `changes`, by target), and stamp how long
        the row has been in it."""
        if comp.state is not track.shown_state:
            # First data that is OK is not news; everything else is.
            if track.shown_state is not State.UNKNOWN or comp.state not in (State.UNKNOWN, State.OK):
                changes.setdefault(t.probe.target, []).append(Event(
                    self.wall(), t.probe.target, f"{track.kind.value} {_label(comp)}: {track.shown_state.value} -> "
                    f"{comp.state.value}" + (f" ({comp.reason})" if comp.reason else ""), comp.state))
            track.shown_state, track.since = comp.state, now
        return replace(comp, since_s=round(now - track.since, 3) if track.since is not None else None)

    def _log_changes(self, changes: dict[str, list[Event]], components: list[Component], now: float) -> None:
        """Each target's changes of this snapshot into the event log, through its rate limit."""
        rows: dict[str, list[Component]] = {}
        for comp in components:
            rows.setdefault(comp.target, []).append(comp)
        for t in self.targets:
            target = t.probe.target
            self.events.extend(self._event_limit.lines(target, changes.get(target, ()), rows.get(target, ()),
                                                       now, self.interval_of(t), self.wall()))

    def _component(self, t: Target, track: Track, now: float) -> Component:
        state, reason = self._component_state(t, track, now)
        history = {k: tuple(v) for k, v in track.history.items()}
        return Component(
            kind=track.kind, name=track.name, state=state, reason=reason, source=t.probe.source,
            target=t.probe.target, age_s=_rounded(self._data_age(track, now)),
            metrics=dict(track.metrics), detail=track.detail,
            last_error=t.last_error, next_probe_in_s=self._next_in(t, now), history=history,
            warning=track.warning,
        )

    def _source_status(self, t: Target, now: float) -> SourceStatus:
        state, reason = self._source_state(t, now)
        sample = t.last_sample
        return SourceStatus(
            target=t.probe.target, source=t.probe.source, state=state, reason=reason,
            age_s=round(now - t.last_ok_at, 3) if t.last_ok_at is not None else None,
            latency_ms=round(sample.latency_ms, 3) if sample and sample.latency_ms is not None else None,
            consecutive_failures=t.failures, next_probe_in_s=self._next_in(t, now),
            warning=sample.warning if sample else None, rows_omitted=dict(t.rows_omitted),
            insecure=getattr(t.probe, "insecure", False) is True,
        )

    def _next_in(self, t: Target, now: float) -> float | None:
        if not self._tasks:
            return None
        return round(max(0.0, t.next_due - now), 3)

    def uptime(self, sources: tuple[str, ...] = ("scrape", "prometheus", "http")) -> tuple[int, int]:
        """(probes the service answered, probes that ended) of the service-facing targets, else of all.

        Service-facing: metric sources (/metrics, Prometheus) and HTTP targets (edge
        functions, CDN URLs); with none configured, every target. A probe counts as
        answered when it returned readings and none of them says a part is down: a
        timeout, a refusal, an ERROR (bad answer, Prometheus error), NO_DATA, an edge
        function answering another status than expected, `up == 0` all count as not
        answered (README, "uptime" under "The lab").
        """
        chosen = [t for t in self.targets if t.probe.source in sources] or self.targets
        # Probes that ended: one still in flight is not yet a miss, and counting it would
        # let a window's share go past 1 when it ends in the next window.
        return sum(t.answered for t in chosen), sum(t.completed for t in chosen)


def _judged_history(track: Track, comp: Component) -> Component:
    """A cross-row judgement may correct this round's figures (a replica's lag measured
    against its primary): the newest history point follows, so a trend shows what the row shows."""
    changed = False
    for figure, points in track.history.items():
        value = comp.metrics.get(figure)
        if points and value != track.metrics.get(figure) and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            points[-1], changed = float(value), True
    return replace(comp, history={k: tuple(v) for k, v in track.history.items()}) if changed else comp


def _timeout_failure(probe: Probe) -> Failure:
    """A metric source that does not answer is an ERROR of that source, not a DOWN target."""
    return getattr(probe, "timeout_failure", Failure.DOWN)


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _label(c: Component) -> str:
    return c.name + (f"/{c.detail}" if c.detail else "")


def _swallow(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()
