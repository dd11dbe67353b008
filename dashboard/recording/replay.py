"""A recording in the engine's seat: what `scaledash replay` and `scaledash attach` show.

The dashboard draws snapshots and asks its engine for little else (the interval, the
paused flag, the time for the header). `ReplayFeed` answers the same questions from a
recording, at a cursor that moves with a timeline: play and pause, a speed from 1x to
60x, steps of one frame, seeks by a span, to a time, or to the next or previous state
change. `follow=True` is `attach`: the cursor stays on the newest frame as the
recording grows, until the viewer pauses or seeks, and `follow_latest()` goes back.

Histories (the sparklines, the detail screen's charts) are not stored; they are rebuilt
from the frames up to the cursor, one point per recorded snapshot.
"""

from __future__ import annotations

import collections
import statistics
import time
from dataclasses import replace
from typing import Callable

from ..kinds import history_figures
from ..model import Snapshot
from .store import Recording

SPEEDS = (1, 2, 5, 10, 30, 60)
HISTORY_FRAMES = 120          # as many points as the engine keeps (engine.HISTORY_LEN)
_CACHE_FRAMES = 2 * HISTORY_FRAMES


class ReplayFeed:
    """The engine's surface the app uses (`snapshot`, `interval`, `paused`, `wall`, ...)
    over a recording, plus the timeline's controls."""

    def __init__(self, recording: Recording, *, follow: bool = False, start_at: float | None = None,
                 speed: int = 1, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.recording = recording
        self._wall = wall
        self.follow = follow
        self._clock = clock
        self.speed = speed if speed in SPEEDS else 1
        self.failover_seconds: float | None = None      # read by the drills screen; drills are off here
        self.epoch = 0.0
        span = recording.span()
        self._cursor = (span[1] if follow else span[0]) if span else 0.0
        if start_at is not None:
            self._cursor = start_at
        self._playing_since: float | None = None if follow else clock()
        self.interval = self._cadence()
        self._frames: collections.OrderedDict[float, Snapshot] = collections.OrderedDict()

    # ------------------------------------------------------------------ the engine's surface

    @property
    def paused(self) -> bool:
        return not self.follow and self._playing_since is None

    @paused.setter
    def paused(self, value: bool) -> None:
        if value != self.paused:
            self.toggle_play()

    def start(self) -> None:
        """Nothing polls: the recording is the source."""

    async def close(self) -> None:
        self.recording.close()

    def clock(self) -> float:
        return self._clock()

    def wall(self) -> float:
        """The recorded time at the cursor: the header shows it instead of the clock."""
        return self.cursor

    def refresh_now(self) -> None:
        """Nothing to poll."""

    def set_interval(self, interval: float) -> None:
        """The recording's cadence is what it is."""

    def note(self, target: str, message: str, state=None) -> None:
        """Nothing is added to a recording by watching it."""

    def snapshot(self) -> Snapshot:
        """The snapshot recorded at the cursor, histories rebuilt; an empty, starting one
        before the first frame."""
        at = self.cursor
        snap = self.recording.at(at)
        if snap is None:
            return Snapshot(generated_at=at, components=(), sources=(), kpis=(), starting=True)
        return self._with_history(snap)

    # ------------------------------------------------------------------ the timeline

    @property
    def cursor(self) -> float:
        span = self.recording.span()
        if span is None:
            return self._cursor
        if self.follow:
            self._cursor = span[1]
        elif self._playing_since is not None:
            now = self._clock()
            self._cursor += (now - self._playing_since) * self.speed
            self._playing_since = now
            if self._cursor >= span[1]:         # the end: stop there rather than run past it
                self._cursor, self._playing_since = span[1], None
        return self._cursor

    def span(self) -> tuple[float, float] | None:
        return self.recording.span()

    def changes(self) -> list[float]:
        return self.recording.changes()

    def toggle_play(self) -> None:
        at = self.cursor
        if self.follow:
            self.follow, self._cursor, self._playing_since = False, at, None
        elif self._playing_since is None:
            span = self.recording.span()
            if span and at >= span[1]:        # play at the end: from the start again
                self._cursor = span[0]
            self._playing_since = self._clock()
        else:
            self._playing_since = None

    def seek_to(self, at: float) -> None:
        """Jump to `at`, within the recording; playing goes on from there, following stops."""
        span = self.recording.span()
        if span is not None:
            at = min(max(at, span[0]), span[1])
        playing = self._playing_since is not None
        self.follow = False
        self._cursor = at
        self._playing_since = self._clock() if playing else None

    def seek_by(self, seconds: float) -> None:
        self.seek_to(self.cursor + seconds)

    def step(self, frames: int) -> None:
        """One recorded frame forwards (1) or back (-1), paused there."""
        at = self.cursor
        target = self.recording.neighbour(at, frames)
        self.seek_to(at if target is None else target)
        self._playing_since = None

    def next_change(self) -> bool:
        found = self.recording.next_change(self.cursor)
        if found is not None:
            self.seek_to(found)
        return found is not None

    def previous_change(self) -> bool:
        found = self.recording.previous_change(self.cursor)
        if found is not None:
            self.seek_to(found)
        return found is not None

    def faster(self) -> None:
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])

    def slower(self) -> None:
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])

    def silence(self) -> float | None:
        """Following: how long the recording has gone without a new frame, when that is
        more than three snapshot intervals (the daemon stopped, or its disk is full); a
        viewer must not show the last frame as if it were now. None otherwise."""
        span = self.recording.span()
        if not self.follow or span is None:
            return None
        quiet = self._wall() - span[1]
        return quiet if quiet > 3 * self.interval + 2.0 else None

    def follow_latest(self) -> None:
        self.follow, self._playing_since = True, None

    # ------------------------------------------------------------------ histories

    def _with_history(self, snap: Snapshot) -> Snapshot:
        """`snap` with each row's history: its figures over the frames up to it."""
        frames = self._frames_before(snap.generated_at)
        histories: dict[tuple, dict[str, list[float]]] = {}
        for frame in frames:
            for c in frame.components:
                figures = history_figures(c.kind)
                if not figures:
                    continue
                row = histories.setdefault(c.key, {})
                for figure in figures:
                    value = c.metrics.get(figure)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        row.setdefault(figure, []).append(float(value))
        return replace(snap, components=tuple(
            replace(c, history={k: tuple(v) for k, v in histories.get(c.key, {}).items()})
            for c in snap.components))

    def _frames_before(self, at: float) -> list[Snapshot]:
        """The last HISTORY_FRAMES snapshots up to `at`, decoded once each (an LRU)."""
        times = self.recording.times_up_to(at, HISTORY_FRAMES)
        if not times:
            return []
        missing = [t for t in times if t not in self._frames]
        if missing:
            for frame in self.recording.between(missing[0], times[-1]):
                self._frames[frame.generated_at] = frame
        out = []
        for t in times:
            frame = self._frames.get(t)
            if frame is not None:
                self._frames.move_to_end(t)
                out.append(frame)
        while len(self._frames) > _CACHE_FRAMES:
            self._frames.popitem(last=False)
        return out

    def _cadence(self) -> float:
        """The recording's snapshot interval: the median gap of its first frames."""
        times = self.recording.times_up_to(float("inf"), 200)
        gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
        return min(max(statistics.median(gaps), 0.1), 60.0) if gaps else 1.0
