"""The suites screen (`t`), the load confirmation, and the app's side of running suites.

A suite runs in a Textual worker on the app's loop (the runner is asyncio), owned by
the app, not the screen: leaving the screen keeps the run and its result lands in the
session history; quitting cancels every run and waits until its process group is
gone. Results come back as past-tense messages (`SuiteLinesArrived`, coalesced, and
`SuiteFinished`), so the polling and the keys never wait on a suite.

Every way to a run goes through `SuitesAppMixin.start_suite`, which refuses a suite
that generates load in read-only mode: a key, the palette or a stale confirmation
cannot get past it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from dashboard.model import State
from dashboard.redact import describe_error, safe_message, sanitize
from dashboard.suite_session import LOG_LINES, CouldNotRun, LiveRun, SuiteSession, needs_event
from dashboard.suites.catalog import SuiteSpec, all_suites
from dashboard.suites.environment import referenced_env_names
from dashboard.suites.invocation import SuiteUnavailable
from dashboard.suites.results import SuiteResult, Verdict
from dashboard.suites.runner import SuiteRun
from widgets.footer import KeyFooter
from widgets.suites import (NEVER, NOT_RUN, RUNNING, SuiteDetail, SuiteLog, SuiteRow, SuiteTable, counts_text,
                            history_line, not_run_text, progress_text, result_text,
                            short_counts)

REFRESH_S = 0.5       # the progress line and the ages


class SuiteLinesArrived(Message):
    """A running suite printed lines (they are in the session); consecutive ones merge."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SuiteLinesArrived) and message.name == self.name


class SuiteFinished(Message):
    """A run ended with a result, or never started."""

    def __init__(self, name: str, outcome: SuiteResult | CouldNotRun) -> None:
        super().__init__()
        self.name = name
        self.outcome = outcome


def refusal(spec: SuiteSpec, readonly: bool) -> str | None:
    """Why `spec` may not run now, or None. Read-only refuses every suite, as `scaledash
    suite run --readonly` does: suites drive the stack (load, admin switches, paused
    replay), and a configured command may do anything."""
    if readonly:
        what = "generates load" if spec.generates_load else "drives the stack"
        return f"read-only mode: suite {spec.name} {what} and is not run (drop --readonly)"
    return None


def event_line(outcome: SuiteResult | CouldNotRun) -> tuple[str, State]:
    """The one event-log line of a run that is news."""
    if isinstance(outcome, CouldNotRun):
        return f"suite {outcome.name}: could not run: {outcome.reason}", State.DEGRADED
    line = f"suite {outcome.name}: {outcome.verdict.value}"
    summary = counts_text(outcome)
    if summary:
        line += f" ({summary})"
    if outcome.failures:
        line += f"; first failure {outcome.failures[0].name}"
    elif outcome.reason:
        line += f": {outcome.reason}"
    return line, State.ERROR if outcome.verdict is Verdict.FAILED else State.DEGRADED


class ConfirmLoad(ModalScreen[bool]):
    """Ask before a suite that generates load; Cancel has the focus, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#confirm-cancel"

    def __init__(self, spec: SuiteSpec, target: str) -> None:
        super().__init__()
        self.spec = spec
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            text = Text(f"Suite {sanitize(self.spec.name, 60)} generates load", style="bold")
            text.append(f"\non {sanitize(self.target, 120)}")
            if self.spec.users:
                text.append(f"\n{self.spec.users} users for {self.spec.run_time_s or 0:.0f} s")
            text.append("\n\nRun it?")
            yield Static(text, id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Run", id="confirm-run", variant="warning")
                yield Button("Cancel", id="confirm-cancel", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-run")

    def action_cancel(self) -> None:
        self.dismiss(False)


class SuitesScreen(Screen):
    """Every suite with its last result; Enter runs the selected one, live."""

    AUTO_FOCUS = None
    BINDINGS = [
        Binding("up,k", "move(-1)", "Previous suite", show=False),
        Binding("down,j", "move(1)", "Next suite", show=False),
        Binding("enter", "run", "Run suite"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("h", "history", "History"),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cursor = 0
        self.show_history = False

    def compose(self) -> ComposeResult:
        yield Static("Suites", id="suites-title")
        yield SuiteTable(id="suites-table")
        yield SuiteDetail(id="suites-detail")
        log = SuiteLog(LOG_LINES, id="suites-log")
        log.can_focus = False      # the screen has the keys: arrows move the selection
        yield log
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_view()
        self.set_interval(REFRESH_S, self.refresh_view)

    @property
    def session(self) -> SuiteSession:
        return self.app.suite_session

    def selected(self) -> SuiteSpec | None:
        specs = self.session.specs
        return specs[min(self.cursor, len(specs) - 1)] if specs else None

    def refresh_view(self) -> None:
        session = self.session
        now = session.wall()
        rows = tuple(self._row(spec, now) for spec in session.specs)
        self.query_one(SuiteTable).show(rows, self.cursor)
        spec = self.selected()
        detail, log = self.query_one(SuiteDetail), self.query_one(SuiteLog)
        if spec is None:
            detail.show_text(Text("no suites", style="dim"))
            return
        live = session.live.get(spec.name)
        last = session.last(spec.name)
        if live is not None:
            detail.show_text(progress_text(spec.name, live.run.progress.text(), live.count))
            log.show(live, tuple(live.lines), live.count)
            return
        detail.show_text(self._history(spec) if self.show_history else self._last(spec, last))
        tail = last.tail if isinstance(last, SuiteResult) else ()
        log.show(last, tail, len(tail))

    def lines_arrived(self, name: str) -> None:
        """New lines of a running suite: only its output moves (the rest follows the timer)."""
        spec = self.selected()
        live = self.session.live.get(name)
        if spec is not None and spec.name == name and live is not None:
            self.query_one(SuiteLog).show(live, tuple(live.lines), live.count)

    def _row(self, spec: SuiteSpec, now: float) -> SuiteRow:
        live = self.session.live.get(spec.name)
        last = self.session.last(spec.name)
        runs = len(self.session.results(spec.name))
        base = dict(name=spec.name, kind=spec.kind.value, source=spec.source,
                    generates_load=spec.generates_load, runs=runs)
        if live is not None:
            return SuiteRow(word=RUNNING, summary=live.run.progress.text(), **base)
        if isinstance(last, CouldNotRun):
            return SuiteRow(word=NOT_RUN, summary=last.reason, age_s=max(0.0, now - last.at), **base)
        if isinstance(last, SuiteResult):
            return SuiteRow(word=last.verdict.value, summary=short_counts(last), duration_s=last.duration_s,
                            age_s=max(0.0, now - last.finished_at), **base)
        return SuiteRow(word=NEVER, summary="", **base)

    @staticmethod
    def _last(spec: SuiteSpec, last: SuiteResult | CouldNotRun | None) -> Text:
        if isinstance(last, SuiteResult):
            return result_text(last)
        if isinstance(last, CouldNotRun):
            return not_run_text(last.name, last.reason, last.at)
        text = Text(sanitize(spec.name, 60), style="bold")
        text.append(f"  {sanitize(spec.description, 160)}")
        text.append("\nnot run in this session: Enter runs it", style="dim")
        return text

    def _history(self, spec: SuiteSpec) -> Text:
        outcomes = self.session.results(spec.name)
        text = Text(f"History of {sanitize(spec.name, 60)} in this session (newest first, h closes)",
                    style="bold")
        if not outcomes:
            text.append("\nno runs yet", style="dim")
        for outcome in outcomes:
            text.append("\n")
            text.append_text(history_line(outcome) if isinstance(outcome, SuiteResult)
                             else not_run_text(outcome.name, outcome.reason, outcome.at))
        return text

    def action_move(self, step: int) -> None:
        count = len(self.session.specs)
        if count:
            self.cursor = max(0, min(count - 1, self.cursor + step))
            self.show_history = False
            self.refresh_view()

    def action_run(self) -> None:
        spec = self.selected()
        if spec is not None:
            self.app.request_suite_run(spec.name)

    def action_cancel_run(self) -> None:
        spec = self.selected()
        live = self.session.live.get(spec.name) if spec else None
        if live is None:
            self.notify("this suite is not running", timeout=2)
            return
        live.run.cancel()
        self.notify(f"cancelling suite {sanitize(spec.name, 60)}: stopping its processes", timeout=3,
                    markup=False)

    def action_history(self) -> None:
        self.show_history = not self.show_history
        self.refresh_view()


class SuitesAppMixin:
    """The app's side: the session, the worker, the refusals, the event-log line."""

    _suite_session: SuiteSession | None = None

    @property
    def suite_session(self) -> SuiteSession:
        # Read on first use: listing the suites parses files, the first frame should not wait.
        if self._suite_session is None:
            self._suite_session = SuiteSession(all_suites(self.config), wall=self.engine.wall)
        return self._suite_session

    @suite_session.setter
    def suite_session(self, session: SuiteSession) -> None:
        self._suite_session = session

    def action_suites(self) -> None:
        if not isinstance(self.screen, SuitesScreen):
            self.push_screen(SuitesScreen())

    def request_suite_run(self, name: str) -> None:
        """Enter on a suite: refuse, ask first (load), or start."""
        spec = self.suite_session.spec(name)
        if spec is None or self._refused(spec) or self._already_running(name):
            return
        if spec.generates_load:
            target = self.config.service.url if getattr(self.config, "service", None) else "the configured stack"
            self.push_screen(ConfirmLoad(spec, target), lambda run: self.start_suite(name) if run else None)
        else:
            self.start_suite(name)

    def start_suite(self, name: str) -> bool:
        """The one way to a run. False when refused or already running."""
        spec = self.suite_session.spec(name)
        if spec is None or self._refused(spec) or self._already_running(name):
            return False
        path = self.config.path if self.config.path and os.path.isfile(self.config.path) else None

        def on_line(line: str) -> None:
            live.add(line)
            self.post_message(SuiteLinesArrived(name))

        run = SuiteRun(spec, config_path=path, env_names=referenced_env_names(self.config), on_line=on_line)
        live = self.suite_session.begin(run)
        self._suite_worker(name, run, live)
        self._redraw_suites()
        return True

    def _refused(self, spec: SuiteSpec) -> bool:
        reason = refusal(spec, self.readonly)
        if reason:
            self.notify(sanitize(reason, 200), severity="warning", timeout=4, markup=False)
        return reason is not None

    def _already_running(self, name: str) -> bool:
        if name in self.suite_session.live:
            self.notify(f"suite {sanitize(name, 60)} is already running", timeout=2, markup=False)
            return True
        return False

    @work(exclusive=False, exit_on_error=False, group="suites")
    async def _suite_worker(self, name: str, run: SuiteRun, live: LiveRun) -> None:
        try:
            await run.start()
        except SuiteUnavailable as exc:
            self.post_message(SuiteFinished(name, CouldNotRun(name, safe_message(str(exc), 300),
                                                              self.suite_session.wall())))
            return
        except Exception as exc:  # noqa: BLE001 - a run that cannot start is a line, not a crash
            self.post_message(SuiteFinished(name, CouldNotRun(name, describe_error(exc),
                                                              self.suite_session.wall())))
            return
        finally:
            live.start_settled.set()
        self.post_message(SuiteFinished(name, await run.wait()))

    def on_suite_lines_arrived(self, message: SuiteLinesArrived) -> None:
        if isinstance(self.screen, SuitesScreen):
            self.screen.lines_arrived(message.name)

    def on_suite_finished(self, message: SuiteFinished) -> None:
        outcome = message.outcome
        self.suite_session.record(message.name, outcome)
        word = NOT_RUN if isinstance(outcome, CouldNotRun) else outcome.verdict.value
        if needs_event(outcome):
            line, state = event_line(outcome)
            self.engine.note("suites", line, state)
        self.notify(f"suite {sanitize(message.name, 60)}: {word}", timeout=4, markup=False,
                    severity="information" if word in (Verdict.PASSED.value, Verdict.CANCELLED.value) else "error")
        self._redraw_suites()

    def screen_keys(self, screen: Screen) -> list[tuple[str, str]]:
        """The suites screen's own keys, for the help screen opened over it."""
        if not isinstance(screen, SuitesScreen):
            return []
        return [(binding.key.split(",")[0], binding.description) for binding in screen.BINDINGS if binding.show]

    def suite_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The suites screen's keys in the palette: the same actions, the same refusals."""
        if not isinstance(screen, SuitesScreen):
            return
        for binding in screen.BINDINGS:
            if binding.show and not binding.action.startswith("app."):
                yield SystemCommand(binding.description, f"key: {binding.key}", partial(screen.run_action,
                                                                                          binding.action))

    def _redraw_suites(self) -> None:
        if isinstance(self.screen, SuitesScreen):
            self.screen.refresh_view()

    async def cancel_suites(self) -> None:
        """Quitting: no suite process may outlive the app."""
        if self._suite_session is not None:
            await self._suite_session.cancel_all()

    def hurry_suites(self, grace_s: float) -> None:
        """The terminal is gone and the app has seconds to end: running suites are stopped
        with at most `grace_s` from SIGTERM to SIGKILL (before quitting cancels them)."""
        if self._suite_session is not None:
            self._suite_session.hurry(grace_s)
