"""The Textual app: the main screen, its keys, and the path from snapshots to panels.

The engine polls on the app's event loop; a timer takes a snapshot each interval and
hands it down to the widgets, which only draw. Keys are declared once in BINDINGS:
the footer, the help screen and the command palette all read them. An unexpected
error never prints a traceback with locals (a DSN with its password was seen that
way): it goes through `crash.report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from dataclasses import dataclass
from typing import Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from dashboard.config import Config
from dashboard.drills_screen import DrillsAppMixin
from dashboard.engine import Engine
from dashboard.hangup import HangUpWatch
from dashboard.model import Snapshot
from dashboard.recording import Recorder
from dashboard.redact import safe_message
from dashboard.screens import DetailScreen, HelpScreen
from dashboard.suites_screen import SuitesAppMixin
from widgets.bars import Banner, KpiBar, TopBar
from widgets.drills import DrillTimeline
from widgets.rows import PANELS, RowContext
from widgets.event_log import EventLog
from widgets.footer import KeyFooter
from widgets.panel import ComponentPanel, ComponentSelected
from widgets.row_table import RowTable
from widgets.sources import SourceList

MIN_WIDTH, MIN_HEIGHT = 60, 16
WIDE_WIDTH, THREE_COLUMNS_WIDTH = 160, 240
INTERVAL_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
VIEW_SETTLE_S = 0.15     # after a grid tick, when most probes of that tick have answered
SPARK_EVERY = 5          # ticks between sparkline redraws: a shifting trend repaints its row
SOURCE_LINES, TALL_HEIGHT = 3, 40   # lines for sources in trouble (twice that on tall terminals)
HANG_UP_SUITE_GRACE_S = 1.0         # SIGTERM -> SIGKILL for a suite's processes once the terminal is gone


@dataclass
class MainParts:
    topbar: TopBar
    banner: Banner
    kpis: KpiBar
    sources: SourceList
    panels: list[ComponentPanel]
    events: EventLog


class ScaledashApp(DrillsAppMixin, SuitesAppMixin, App):
    CSS_PATH = "app.tcss"
    TITLE = "scaledash"
    AUTO_FOCUS = "#table-replica"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("p", "pause", "Pause/resume"),
        Binding("r", "refresh", "Refresh now"),
        Binding("plus,equals_sign", "slower", "Slower", key_display="+"),
        Binding("minus", "faster", "Faster", key_display="-"),
        Binding("t", "suites", "Suites"),
        Binding("d", "drills", "Drills"),
        Binding("a", "abort_drill", "Abort drill"),
        Binding("A", "abort_drill_now", "Abort drill, no rollback", key_display="A"),
        # Ctrl-C quits as in any terminal program (Textual's default only says how to quit);
        # while a drill runs, quitting asks first.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("tab", "app.focus_next", "Next panel", show=False),
        Binding("shift+tab", "app.focus_previous", "Previous panel", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, config: Config, *, readonly: bool = False, engine: Engine | None = None,
                 autostart: bool = True, recorder: Recorder | None = None) -> None:
        super().__init__()
        self.recorder = recorder         # --record FILE: every snapshot the screen shows goes there too
        self._recorded_at = float("-inf")
        self._recording = False
        self.autostart = autostart
        self.config = config
        self.readonly = readonly
        # The app's own engine builds its probes (importing the drivers) after the first paint.
        self.engine = engine or Engine(config, defer_probes=True)
        self.snapshot: Snapshot | None = None
        self.filter_text = ""
        self.ascii_only = os.environ.get("TERM") == "dumb"
        self._timer = None
        self._ticks = 0
        self._main_parts: MainParts | None = None
        self._redraw_pending = False
        self._heap_frozen = False
        self.hang_up_watch: HangUpWatch | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        yield Banner(id="banner")
        yield KpiBar(id="kpis")
        yield SourceList(id="sources")
        with Horizontal(id="main-body"):
            with Grid(id="panels"):
                for panel in PANELS:
                    yield ComponentPanel(panel)
                with Vertical(id="panel-events", classes="panel"):
                    yield Static("Events", classes="panel-title")
                    yield EventLog(id="events")
            yield DrillTimeline(id="drill-timeline")
        yield Static("terminal too small: make it at least 60x16", id="too-small")
        yield Input(placeholder="filter rows by name, kind or state (Esc clears)", id="filter", disabled=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.engine.on_outcome = self._outcome_changed
        if self.autostart:   # tests drive the engine themselves, frame by frame
            self.call_after_refresh(self._start_polling)     # the first frame first
        self.call_after_refresh(self.start_drills)          # last failover, drills still running
        self._fit(self.size.width, self.size.height)
        loop = asyncio.get_running_loop()

        def on_hang_up() -> None:       # from the signal handler or the watch's thread
            with contextlib.suppress(RuntimeError):     # the loop closed meanwhile
                loop.call_soon_threadsafe(self._hang_up)

        self.hang_up_watch = HangUpWatch(on_hang_up)
        try:
            loop.add_signal_handler(signal.SIGHUP, self.hang_up_watch.hung_up)
        except (NotImplementedError, RuntimeError, ValueError):
            pass   # not the main thread (tests): SSH drops are then the driver's business
        if not self.is_headless:
            self.hang_up_watch.watch(sys.__stdin__.fileno() if sys.__stdin__ else 2)

    def _hang_up(self) -> None:
        """The terminal is gone: exit, with suites stopped quickly (hangup.py bounds the rest)."""
        self.hurry_suites(HANG_UP_SUITE_GRACE_S)
        self.exit()

    def _start_polling(self) -> None:
        self.engine.start()
        self._restart_timer()
        for delay in (0.15, 0.5):        # first live data long before the first full tick
            self.set_timer(delay, self.refresh_view)

    async def on_unmount(self) -> None:
        if self._heap_frozen:
            gc.unfreeze()      # tests run many apps in one process: hand their objects back
        await self.cancel_suites()
        await self.engine.close()
        if self.recorder is not None:
            self.recorder.close()

    def _restart_timer(self) -> None:
        """Repaint once per tick, just after the engine's poll grid ticks: the probes of a
        tick are in by then, so a paint shows them at once and follows them closely."""
        if self._timer is not None:
            self._timer.stop()
        period = min(self.engine.interval, 1.0)
        since = (self.engine.clock() - self.engine.epoch - VIEW_SETTLE_S) % period
        self._timer = self.set_timer(period - since, self._start_ticking)

    def _start_ticking(self) -> None:
        self._freeze_startup_heap()
        self.refresh_view()
        self._timer = self.set_interval(min(self.engine.interval, 1.0), self.refresh_view)

    def _freeze_startup_heap(self) -> None:
        """Leave what start-up built (Textual, the drivers, the first frame: ~100k objects)
        out of every later full garbage collection. Each full collection walks every tracked
        object while the loop waits; the dashboard's own garbage (strips, HTTP responses)
        sets one off every few seconds. On the lab (tests/bench/hostile_scale.py, a loaded
        2-core machine) they took 80-190 ms each, and a key that came during one waited that
        long; after the freeze 5-60 ms. The young generations are collected first, so
        little garbage is kept for good (objects freed by their count still go at once)."""
        if not self._heap_frozen:
            gc.collect(1)
            gc.freeze()
            self._heap_frozen = True

    def on_resize(self, event) -> None:
        self._fit(event.size.width, event.size.height)
        self.call_after_refresh(self.refresh_view)     # panel heights are known after layout

    def _fit(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "too-small")
        self.screen.set_class(width >= WIDE_WIDTH, "wide")
        self.screen.set_class(width >= THREE_COLUMNS_WIDTH, "three")

    # ------------------------------------------------------------------ data

    def refresh_view(self, tick: bool = True) -> None:
        """Take the engine's snapshot and hand it to every widget of the visible screen.

        `tick` False: a redraw for layout's sake, which does not move the sparklines' cadence."""
        if not self.screen_stack:       # a timer firing while the app shuts down
            return
        try:
            snap = self.snapshot = self.engine.snapshot()
        except Exception as exc:  # a snapshot bug must not end the session: keep the last one
            self.notify(f"snapshot failed: {type(exc).__name__}", severity="error", timeout=5)
            return
        if self.recorder is not None:
            self._record(snap)
        if isinstance(self.screen, DetailScreen):
            self.screen.show(snap, self.engine.interval, self.ascii_only)
            return
        if self.screen is not self._main_screen():
            return
        parts = self._parts()
        parts.topbar.show(self.config.name, snap, self.engine.interval, self.readonly, self.engine.paused,
                          self.engine.wall(), self.replay_badge())
        parts.banner.show(snap.banners)
        parts.kpis.show(snap.kpis)
        parts.sources.show(snap.sources, room=SOURCE_LINES if self.size.height < TALL_HEIGHT else 2 * SOURCE_LINES)
        if self.screen.has_class("too-small"):
            return
        self._ticks += tick
        ctx = RowContext(read_share=read_shares(snap), ascii_only=self.ascii_only, interval=self.engine.interval,
                         redraw_trends=self._ticks % SPARK_EVERY == 1,
                         sources={s.target: s for s in snap.sources})
        wide = self.size.width >= WIDE_WIDTH
        for panel in parts.panels:
            rows = [c for c in snap.components if c.kind in PANELS[panel.panel].kinds and self._matches(c)]
            # Before the first layout a panel has no height: draw every row rather than none.
            panel.show(rows, ctx, wide, room=max(1, panel.size.height - 2) if panel.size.height else 0)
        events = parts.events
        needle = self.filter_text.lower()
        shown = [e for e in snap.events if needle in e.message.lower()] if needle else snap.events
        events.show(tuple(shown), room=max(1, events.size.height))

    def replay_badge(self) -> str | None:
        """The header's badge when the screen shows a recording (dashboard.replay_app)."""
        return None

    def _record(self, snap: Snapshot) -> None:
        """Append `snap` to the recording from a worker thread, at most one a tick and one
        at a time; a failed write (a full disk) stops recording with one notice."""
        if self._recording or snap.generated_at - self._recorded_at < 0.9 * min(self.engine.interval, 1.0):
            return
        self._recorded_at, self._recording = snap.generated_at, True
        future = asyncio.get_running_loop().run_in_executor(None, self.recorder.write, snap)
        future.add_done_callback(self._recorded)

    def drill_entries_read(self, follow, entries: list) -> None:
        """--record: a followed drill's new timeline entries go into the recording too."""
        if self.recorder is None or not entries:
            return
        try:
            self.recorder.add_drill_entries(follow.files.run, follow.drill, follow.target, entries)
        except Exception as exc:  # a full disk: stop recording, say so once, keep the drill followed
            self._recorded_failed(exc)

    def _recorded_failed(self, error: BaseException) -> None:
        self.recorder.close()
        self.recorder = None
        self.notify(f"recording stopped: {safe_message(error, 200)}", severity="error", timeout=10, markup=False)

    def _recorded(self, future: asyncio.Future) -> None:
        self._recording = False
        error = None if future.cancelled() else future.exception()
        if error is not None and self.recorder is not None:
            self._recorded_failed(error)

    def _main_screen(self) -> Screen:
        return self.screen_stack[0]

    def _parts(self) -> "MainParts":
        """The main screen's widgets, looked up once (a DOM query each tick costs CSS matching)."""
        if self._main_parts is None:
            self._main_parts = MainParts(self.query_one(TopBar), self.query_one(Banner), self.query_one(KpiBar),
                                         self.query_one(SourceList), list(self.query(ComponentPanel)),
                                         self.query_one("#events", EventLog))
        return self._main_parts

    def _matches(self, component) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in text.lower() for text in
                   (component.name, component.kind.value, component.state.value, component.detail or ""))

    # ------------------------------------------------------------------ keys

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen_keys(self.screen) + self.key_table()))

    def key_table(self) -> list[tuple[str, str]]:
        out = []
        for binding in self.BINDINGS:
            key = binding.key_display or binding.key.split(",")[0]
            out.append((key, binding.description))
        return out + [("enter", "Details of the selected row")]

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.disabled = False
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.display = False
        field.disabled = True
        self.filter_text = ""
        self.query(RowTable).first().focus()
        self.refresh_view()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":       # a modal's field (a drill's confirmation) is not the filter
            return
        self.filter_text = event.value.strip()
        self.refresh_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query(RowTable).first().focus()

    def action_pause(self) -> None:
        self.engine.paused = not self.engine.paused
        self.notify("polling paused" if self.engine.paused else "polling resumed", timeout=2)
        self.refresh_view()

    def action_refresh(self) -> None:
        self.engine.paused = False
        self.engine.refresh_now()
        self.set_timer(0.3, self.refresh_view)

    def _set_interval(self, interval: float) -> None:
        self.engine.set_interval(interval)
        if self._timer is not None:
            self._restart_timer()
        self.notify(f"polling every {interval:g}s", timeout=2)
        self.refresh_view()

    def action_slower(self) -> None:
        bigger = [s for s in INTERVAL_STEPS if s > self.engine.interval]
        self._set_interval(bigger[0] if bigger else INTERVAL_STEPS[-1])

    def action_faster(self) -> None:
        smaller = [s for s in INTERVAL_STEPS if s < self.engine.interval]
        self._set_interval(smaller[-1] if smaller else INTERVAL_STEPS[0])

    def on_component_panel_resized(self, message: ComponentPanel.Resized) -> None:
        """A panel's room changed (a source line came or went, the KPIs wrapped): draw it
        again now, or it would cut its "+N more" row until the next tick. Panels resize
        together, so one redraw serves them all."""
        if not self._redraw_pending:
            self._redraw_pending = True
            self.call_later(self._redraw)

    def _redraw(self) -> None:
        self._redraw_pending = False
        self.refresh_view(tick=False)

    def _outcome_changed(self) -> None:
        """A probe failed, or answered after failing (Engine.on_outcome): draw now, not up
        to a second later on the cadence. Fault -> state on screen was the engine's time
        plus 0.3-0.6 s of waiting for the next repaint (tests/bench/detection.py). Several
        in one loop turn share one redraw."""
        if not self._redraw_pending:
            self._redraw_pending = True
            self.call_later(self._redraw)

    def on_component_selected(self, message: ComponentSelected) -> None:
        screen = DetailScreen(message.key)
        self.push_screen(screen)
        self.call_after_refresh(self.refresh_view)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.description and binding.action not in ("quit",) and not binding.action.startswith("app."):
                yield SystemCommand(binding.description, f"key: {binding.key_display or binding.key}",
                                    _runner(self, binding.action))
        yield from self.suite_commands(screen)
        yield from self.drill_commands(screen)

    # ------------------------------------------------------------------ failure

    def _handle_exception(self, error: Exception) -> None:
        """Every unhandled error: a redacted crash file and one line, never locals."""
        from dashboard import crash

        self._return_code = 3
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        path = crash.write_report(error)
        self.crash_line = (f"scaledash: unexpected error ({type(error).__name__})"
                           + (f"; details in {path}" if path else "") + ". Please report it.")
        self._close_messages_no_wait()


def _runner(app: App, action: str):
    async def run() -> None:
        await app.run_action(action)
    return run


def read_shares(snap: Snapshot) -> dict[str, float]:
    """Each node's share of all reads, from the service's per-node read rates."""
    reads: dict[str, float] = {}
    for svc in snap.service:
        for node, figures in (svc.metrics.get("nodes") or {}).items():
            if figures.get("reads_per_s") is not None:
                reads[node] = reads.get(node, 0.0) + figures["reads_per_s"]
    total = sum(reads.values())
    return {node: value / total for node, value in reads.items()} if total > 0 else {}


def build_app(config: Config, *, readonly: bool = False, engine: Engine | None = None,
              autostart: bool = True, recorder: Recorder | None = None) -> ScaledashApp:
    """The one app factory: the CLI, the tests and the screenshot script all use it."""
    return ScaledashApp(config, readonly=readonly, engine=engine, autostart=autostart, recorder=recorder)


def run_app(config: Config, readonly: bool = False, recorder: Recorder | None = None) -> int:
    app = build_app(config, readonly=readonly, recorder=recorder)
    try:
        app.run()
    finally:
        if app.hang_up_watch is not None:
            app.hang_up_watch.stop()
    line = getattr(app, "crash_line", None)
    if line:
        print(line, file=sys.stderr)
    return app.return_code or 0


__all__ = ["ScaledashApp", "build_app", "run_app"]
