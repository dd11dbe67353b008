"""The dashboard over a recording: `scaledash replay FILE` and `scaledash attach FILE`.

The same app, panels and detail screen as a live dashboard, with a `ReplayFeed` in the
engine's seat, so what a replay shows is drawn by the very code that drew it live.
Differences: a timeline at the bottom (play/pause, step, seek by a minute, to a time,
to the next or previous state change, 1x-60x), the recorded time in the header
instead of the clock, and every key that would act on a target (suites, drills,
aborts, refresh) off: a recording is evidence, not a console.
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Static

from dashboard import format as fmt
from dashboard.app import ScaledashApp
from dashboard.config import Config
from dashboard.recording.moments import parse_moment
from dashboard.recording.replay import ReplayFeed
from dashboard.redact import safe_message, sanitize
from widgets.drills import DrillTimeline, verdict_text
from widgets.timeline import Timeline, TimelineView

# Actions that reach a target (or start a process that does): off in a replay.
ACTING = frozenset({"suites", "drills", "abort_drill", "abort_drill_now", "refresh"})


class GoTo(ModalScreen[str | None]):
    """One field: the time to go to, in any form `--at` reads."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#goto-time"

    def compose(self) -> ComposeResult:
        with Vertical(id="goto"):
            yield Static("Go to: 10:42:05, 2026-12-02T10:42:05Z, start+5m, end-30s (UTC)")
            yield Input(placeholder="time", id="goto-time", max_length=64)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplayApp(ScaledashApp):
    BINDINGS = [
        Binding("space,p", "play", "Play/pause", key_display="space"),
        # The timeline's line lists these; the footer keeps room for the rest.
        Binding("left", "step(-1)", "Step back", key_display="←", priority=True, show=False),
        Binding("right", "step(1)", "Step", key_display="→", priority=True, show=False),
        Binding("left_square_bracket", "seek(-60)", "-1 min", key_display="[", show=False),
        Binding("right_square_bracket", "seek(60)", "+1 min", key_display="]", show=False),
        Binding("n", "change(1)", "Next change"),
        Binding("N", "change(-1)", "Previous change", key_display="N"),
        Binding("g", "go_to", "Go to time"),
        Binding("plus,equals_sign", "speed(1)", "Faster", key_display="+"),
        Binding("minus", "speed(-1)", "Slower", key_display="-"),
        Binding("f,end", "follow", "Follow live", show=False),
    ]

    def __init__(self, config: Config, feed: ReplayFeed) -> None:
        super().__init__(config, readonly=True, engine=feed)
        self.feed = feed

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield Timeline(id="timeline")
            yield widget

    def start_drills(self) -> None:
        """A recording runs no drills and follows none."""

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ACTING:
            return False
        return super().check_action(action, parameters)

    def replay_badge(self) -> str:
        if self.feed.follow:
            quiet = self.feed.silence()
            return "ATTACHED" if quiet is None else f"ATTACHED: NO NEW FRAME FOR {fmt.seconds(quiet)} (daemon stopped?)"
        return f"REPLAY {self.feed.speed}x" + ("" if self.feed.paused else " >")

    def refresh_view(self, tick: bool = True) -> None:
        super().refresh_view(tick)
        if not self.screen_stack:       # a timer firing while the app shuts down
            return
        if self.screen is self._main_screen() and self.is_mounted:
            span = self.feed.span()
            view = None if span is None else TimelineView(
                span[0], span[1], self.feed.cursor, tuple(self.feed.changes()), self.feed.speed,
                playing=not self.feed.paused, following=self.feed.follow)
            self.query_one(Timeline).show(view, self.ascii_only)
            self.show_timeline()

    def show_timeline(self) -> None:
        """The drill recorded at the cursor, beside the panels, as it was shown live."""
        if not self.screen_stack:
            return
        main = self.screen_stack[0]
        drill = self.feed.recording.drill_at(self.feed.cursor)
        main.set_class(drill is not None, "drilling")
        timeline = next(main.query("#drill-timeline").results(DrillTimeline), None)
        if drill is None or timeline is None:
            return
        head = Text(f"Drill {sanitize(drill.drill, 40)} on {sanitize(drill.target, 40)}", style="bold")
        end = next((e for e in drill.entries if e.kind == "end"), None)
        if end is None:
            head.append("  RUNNING (recorded)", style="bold cyan")
        else:
            head.append("  ")
            head.append_text(verdict_text(str(end.data.get("verdict") or end.status or "?")))
        timeline.show(head, drill.entries, timeline.size.height)

    # ------------------------------------------------------------------ the timeline's keys

    def _moved(self, note: str | None = None) -> None:
        if note:
            self.notify(note, timeout=2, markup=False)
        self.refresh_view(tick=False)

    def action_play(self) -> None:
        self.feed.toggle_play()
        self._moved()

    def action_pause(self) -> None:
        self.action_play()

    def action_step(self, frames: int) -> None:
        self.feed.step(frames)
        self._moved()

    def action_seek(self, seconds: float) -> None:
        self.feed.seek_by(seconds)
        self._moved()

    def action_change(self, direction: int) -> None:
        found = self.feed.next_change() if direction > 0 else self.feed.previous_change()
        self._moved(None if found else f"no state change {'after' if direction > 0 else 'before'} this moment")

    def action_speed(self, direction: int) -> None:
        self.feed.faster() if direction > 0 else self.feed.slower()
        self._moved(f"replay at {self.feed.speed}x")

    def action_follow(self) -> None:
        self.feed.follow_latest()
        self._moved("following the recording as it grows")

    def action_go_to(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                self.feed.seek_to(parse_moment(text, self.feed.recording))
            except ValueError as exc:
                self.notify(safe_message(exc, 200), severity="warning", timeout=6, markup=False)
                return
            self._moved()

        self.push_screen(GoTo(), chosen)

    # ------------------------------------------------------------------ help and palette

    def key_table(self) -> list[tuple[str, str]]:
        own = [(b.key_display or b.key.split(",")[0], b.description) for b in self.BINDINGS]
        inherited = [(b.key_display or b.key.split(",")[0], b.description) for b in ScaledashApp.BINDINGS
                     if b.action not in ACTING and b.action not in ("pause", "slower", "faster")]
        return own + inherited + [("enter", "Details of the selected row (history up to the cursor)")]

    def suite_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        return ()

    def drill_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        return ()


def run_replay(path: str, *, follow: bool, at: str | None = None, speed: int = 1) -> int:
    import sys

    from dashboard.config_schema import validate
    from dashboard.recording import Recording

    recording = Recording(path)
    start = parse_moment(at, recording) if at else None
    feed = ReplayFeed(recording, follow=follow, start_at=start, speed=speed)
    name = recording.meta.get("name") or "recording"
    app = ReplayApp(validate({"name": name}), feed)
    app.run()
    line = getattr(app, "crash_line", None)
    if line:
        print(line, file=sys.stderr)
    return app.return_code or 0
