"""The drills screen (`d`), the confirmation, the abort and quit questions, and the app's side.

A drill runs in its own process (dashboard/drill_session.py says why); the app owns the
session, so leaving the screen keeps following the run, and its timeline shows beside
the panels on the main screen, which keep updating: watching the stack during the drill
is the point. Every way to a start (Enter, the palette, a stale confirmation) goes
through `DrillsAppMixin.start_drill`, which the session refuses in read-only mode, for a
disabled drill and for one already running. The confirmation has the focus on Cancel,
and only the target's name typed in full starts anything (RELIABILITY.md case 24).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Static

from dashboard.model import State
from dashboard.redact import sanitize
from widgets.footer import KeyFooter
from widgets.drills import NEVER, RUNNING, DrillRow, DrillTable, DrillTimeline, verdict_text

if TYPE_CHECKING:
    from dashboard.drill_session import DrillSession, Follow
    from dashboard.drills.model import Drill, Plan

TICK_S = 0.3             # how often a followed journal is read
HEARTBEAT_S = 1.0        # how often the drill's heartbeat file is touched (it gives up after 6 s)
REFRESH_S = 1.0          # the drills screen's ages and states
ENDED_SHOWN_S = 60.0     # a finished run's timeline stays beside the panels this long
CONFIRM_MAX = 200        # the confirmation field: a 10 KB paste is cut, never a crash


class ConfirmDrill(ModalScreen[str | None]):
    """The plan as the stack is now; the operator types the target's name. Cancel has the
    focus; Esc, Cancel or anything but the exact name returns what was typed or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#drill-cancel"

    def __init__(self, plan: "Plan") -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="drill-confirm-box"):
            with VerticalScroll(id="drill-plan"):
                yield Static(plan_text(plan), id="drill-plan-text")
            field = Input(placeholder=f"type {sanitize(plan.target, 60)} to run it", id="drill-confirm-input",
                          max_length=CONFIRM_MAX, disabled=bool(plan.problems))
            yield field
            with Horizontal(id="drill-confirm-buttons"):
                yield Button("Cancel", id="drill-cancel", variant="primary")
                yield Button("Run", id="drill-run", variant="error", disabled=bool(plan.problems))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "drill-run":
            self.dismiss(self.query_one("#drill-confirm-input", Input).value)
        else:
            self.dismiss(None)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()          # what is typed here is the confirmation, never the row filter

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def plan_text(plan: "Plan") -> Text:
    """What cannot be undone and what stops it first (a long plan scrolls), then
    plan.describe(), then how to confirm."""
    text = Text(f"Drill {sanitize(plan.drill.name, 60)} on {sanitize(plan.target, 60)}", style="bold")
    text.append(f"  ({plan.drill.safety})", style="bold red" if plan.drill.irreversible else "green")
    steps = plan.irreversible_steps
    if steps:
        text.append("\n\nIRREVERSIBLE, never undone automatically:", style="bold red")
        for step in steps:
            text.append(f"\n  - {sanitize(step.label.replace('{candidate}', 'the new primary'), 160)}",
                        style="bold red")
    if plan.problems:
        text.append("\n\nThis drill cannot run now:", style="bold yellow")
        for problem in plan.problems:
            text.append(f"\n  - {sanitize(problem, 200)}", style="yellow")
    text.append("\n")
    for line in plan.describe()[1:]:
        style = "bold red" if "IRREVERSIBLE" in line or "REFUSED" in line else ""
        text.append("\n")
        text.append(sanitize(line, 200), style=style)
    if not plan.problems:
        text.append(f"\n\nType {sanitize(plan.target, 60)} and press Run (or Enter) to start it; "
                    "Esc or anything else cancels.", style="dim")
    return text


class Ask(ModalScreen[bool]):
    """A yes/no question whose safe answer (`no`) has the focus; Esc answers it."""

    BINDINGS = [Binding("escape", "no", "No")]
    AUTO_FOCUS = "#ask-no"

    def __init__(self, question: str, yes: str, no: str) -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box"):
            yield Static(Text(self.question), id="ask-text")
            with Horizontal(id="ask-buttons"):
                yield Button(self.no, id="ask-no", variant="primary")
                yield Button(self.yes, id="ask-yes", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "ask-yes")

    def action_no(self) -> None:
        self.dismiss(False)


class DrillsScreen(Screen):
    """Every configured drill: use, targets, safety, ready or why not, the last verdict."""

    AUTO_FOCUS = None
    BINDINGS = [
        Binding("up,k", "move(-1)", "Previous drill", show=False),
        Binding("down,j", "move(1)", "Next drill", show=False),
        Binding("enter", "start", "Start drill"),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cursor = 0

    def compose(self) -> ComposeResult:
        yield Static("Drills", id="drills-title")
        yield DrillTable(id="drills-table")
        yield Static(id="drills-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_view()
        self.set_interval(REFRESH_S, self.refresh_view)

    @property
    def session(self) -> "DrillSession":
        return self.app.drill_session

    def selected(self) -> "Drill | None":
        drills = self.session.drills
        return drills[min(self.cursor, len(drills) - 1)] if drills else None

    def refresh_view(self) -> None:
        rows = tuple(self._row(d) for d in self.session.drills)
        self.query_one(DrillTable).show(rows, self.cursor)
        self.query_one("#drills-detail", Static).update(self._detail(self.selected()))

    def _row(self, drill: "Drill") -> DrillRow:
        from dashboard.drill_session import figures_text

        last = self.session.last(drill.name)
        ready = RUNNING if self.session.running(drill.name) else (
            f"disabled: {drill.disabled}" if drill.disabled else "ready")
        return DrillRow(drill.name, drill.use, drill.safety, ",".join(drill.targets) or "?", ready,
                        verdict=last.verdict if last else NEVER, figures=figures_text(last.figures) if last else "",
                        age_s=max(0.0, self.session.wall() - last.ended) if last else None)

    def _detail(self, drill: "Drill | None") -> Text:
        text = Text()
        if self.session.readonly:
            text.append("read-only mode: drills never run from this dashboard\n", style="yellow")
        if drill is None:
            text.append("no drills configured", style="dim")
            return text
        text.append(sanitize(drill.name, 60), style="bold")
        text.append(f"  {sanitize(drill.description, 300)}")
        if drill.disabled:
            text.append(f"\ndisabled: {sanitize(drill.disabled, 300)}", style="yellow")
        elif not self.session.readonly:
            text.append("\nEnter shows the plan for the stack as it is now; nothing runs before you confirm",
                        style="dim")
        last = self.session.last(drill.name)
        if last is not None:
            text.append("\nlast run: ")
            text.append(last.verdict.upper(), style="bold")
            text.append(f": {sanitize(last.reason, 300)}\nreport: {sanitize(last.report, 200)}")
        return text

    def action_move(self, step: int) -> None:
        count = len(self.session.drills)
        if count:
            self.cursor = max(0, min(count - 1, self.cursor + step))
            self.refresh_view()

    def action_start(self) -> None:
        drill = self.selected()
        if drill is not None:
            self.app.request_drill(drill.name)


class DrillsAppMixin:
    """The app's side: the session, following runs, the keys on the main screen."""

    _drill_session: "DrillSession | None" = None
    _drill_timers: tuple = ()
    _shown_run: str | None = None

    @property
    def drill_session(self) -> "DrillSession":
        # Made on first use (it imports the drill engine): the first frame should not wait.
        if self._drill_session is None:
            from dashboard.drill_session import DrillSession

            self._drill_session = DrillSession(self.config, readonly=self.readonly)
        return self._drill_session

    @drill_session.setter
    def drill_session(self, session: "DrillSession") -> None:
        self._drill_session = session

    # ------------------------------------------------------------ start-up

    def start_drills(self) -> None:
        """After the first frame: the last measured failover, and drills still running."""
        session = self.drill_session
        if self.engine.failover_seconds is None:
            self.engine.failover_seconds = session.last_failover()
        for follow in session.attach_running():
            self.drill_entries_read(follow, list(follow.entries))
            self.notify(f"following drill {sanitize(follow.drill, 60)}, still running from an earlier session",
                        timeout=5, markup=False)
        self._follow()

    # ------------------------------------------------------------ starting

    def action_drills(self) -> None:
        if not isinstance(self.screen, DrillsScreen):
            self.push_screen(DrillsScreen())

    def request_drill(self, name: str) -> None:
        """Enter on a drill: refuse with one notice, or show the plan to confirm."""
        session = self.drill_session
        drill = next((d for d in session.drills if d.name == name), None)
        reason = session.refusal(drill) if drill else f"no drill named {name}"
        if reason:
            self.notify(sanitize(reason, 300), severity="warning", timeout=4, markup=False)
            return
        plan = session.plan(name, self.snapshot or self.engine.snapshot())
        self.push_screen(ConfirmDrill(plan), partial(self._confirmed, plan))

    def _confirmed(self, plan: "Plan", typed: str | None) -> None:
        typed = (typed or "").strip()
        if typed and typed == plan.target and not plan.problems:
            self.start_drill(plan.drill.name, plan.target)
            return
        reason = ("the plan could not run: " + "; ".join(plan.problems) if plan.problems else
                  "the name typed did not match the target" if typed else "cancelled at the confirmation")
        self.drill_session.cancelled(plan, reason)
        self.notify(f"drill {sanitize(plan.drill.name, 60)}: cancelled, nothing acted", timeout=3, markup=False)

    def start_drill(self, name: str, target: str) -> bool:
        """The one way to a run; False when refused."""
        started = self.drill_session.start(name, target)
        if started.follow is None:
            self.notify(sanitize(started.refused or "refused", 300), severity="warning", timeout=5, markup=False)
            return False
        self._shown_run = started.follow.files.run
        self.notify(f"drill {sanitize(name, 60)} started on {sanitize(target, 60)}: a aborts with rollback",
                    timeout=4, markup=False)
        self._follow()
        return True

    # ------------------------------------------------------------ following

    def _follow(self) -> None:
        """Read journals and touch heartbeats while a run is live; stop when none is."""
        session = self.drill_session
        if session.live() and not self._drill_timers:
            session.heartbeat()
            self._drill_timers = (self.set_interval(TICK_S, self.drill_tick),
                                  self.set_interval(HEARTBEAT_S, session.heartbeat))
        self.refresh_bindings()
        self.drill_tick()

    def drill_tick(self) -> None:
        session = self.drill_session
        for follow, new in session.poll():
            self.drill_entries_read(follow, new)
            if not follow.live:
                self._ended(follow)
        shown = session.follows.get(self._shown_run) if self._shown_run else None
        live = session.live()
        if live and (shown is None or not shown.live):
            self._shown_run = live[-1].files.run      # a finished run gives way to a live one
        if not live and self._drill_timers:
            for timer in self._drill_timers:
                timer.stop()
            self._drill_timers = ()
            self.refresh_bindings()
        self.show_timeline()

    def drill_entries_read(self, follow: "Follow", entries: list) -> None:
        """New timeline entries of a followed run (the app records them with --record)."""

    def _ended(self, follow: "Follow") -> None:
        from dashboard.drill_session import end_line

        line = end_line(follow)
        verdict = str(follow.end.data.get("verdict")) if follow.end else "result-unknown"
        figures = follow.end.data.get("figures") if follow.end else None
        if isinstance(figures, dict) and isinstance(figures.get("failover_seconds"), (int, float)):
            self.engine.failover_seconds = float(figures["failover_seconds"])
        self.drill_session.forget_reports()
        passed = verdict in ("passed", "dry-run")
        self.engine.note("drills", line, State.OK if passed else State.DEGRADED)
        self.notify(line, severity="information" if passed else "warning", timeout=8, markup=False)
        if isinstance(self.screen, DrillsScreen):
            self.screen.refresh_view()

    def shown_follow(self) -> "Follow | None":
        session = self.drill_session
        follow = session.follows.get(self._shown_run) if self._shown_run else None
        if follow is None:
            return None
        if not follow.live and follow.entries and session.wall() - follow.entries[-1].at > ENDED_SHOWN_S:
            return None
        return follow

    def show_timeline(self) -> None:
        """The shown run's timeline beside the panels (main screen only)."""
        if not self.screen_stack:
            return
        main = self.screen_stack[0]
        follow = self.shown_follow() if self._drill_session is not None else None
        main.set_class(follow is not None, "drilling")
        if follow is None:
            return
        found = main.query("#drill-timeline").results(DrillTimeline)
        timeline = next(found, None)
        if timeline is None:          # the app is shutting down: its widgets are going
            return
        timeline.show(timeline_head(follow), tuple(follow.entries), timeline.size.height)

    # ------------------------------------------------------------ aborting and quitting

    def _live_follow(self) -> "Follow | None":
        if self._drill_session is None:
            return None
        follow = self.shown_follow()
        if follow is not None and follow.live:
            return follow
        live = self._drill_session.live()
        return live[-1] if live else None

    def action_abort_drill(self) -> None:
        follow = self._abortable()
        if follow is not None:
            self.notify(sanitize(self.drill_session.abort(follow, rollback=True), 200), timeout=4, markup=False)

    def action_abort_drill_now(self) -> None:
        follow = self._abortable()
        if follow is None:
            return
        question = (f"Abort drill {sanitize(follow.drill, 60)} on {sanitize(follow.target, 60)} WITHOUT "
                    "rollback?\n\n"
                    "What it changed stays changed until you undo it by hand. "
                    "(a aborts with rollback instead.)")

        def answered(yes: bool | None) -> None:
            live = self._live_follow()
            if yes and live is follow:
                self.notify(sanitize(self.drill_session.abort(follow, rollback=False), 200), timeout=5,
                            severity="warning", markup=False)
        self.push_screen(Ask(question, "Abort, no rollback", "Keep running"), answered)

    def _abortable(self) -> "Follow | None":
        follow = self._live_follow()
        if follow is None:
            self.notify("no drill is running", timeout=2)
            return None
        if self.readonly:
            pid = follow.pid or "?"
            self.notify(f"read-only mode: this dashboard never signals a drill (kill -USR1 {pid} aborts it "
                        "with rollback)", severity="warning", timeout=5, markup=False)
            return None
        return follow

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("abort_drill", "abort_drill_now"):
            return self._live_follow() is not None
        return super().check_action(action, parameters)

    async def action_quit(self) -> None:
        """Quit at once, unless a drill runs: then ask first (Ctrl-C, q, Ctrl-Q)."""
        follow = self._live_follow()
        if follow is None:
            self.exit()
            return
        if isinstance(self.screen, Ask):
            return
        self.push_screen(Ask(quit_question(follow, self.readonly), "Quit", "Stay"),
                         lambda yes: self.exit() if yes else None)

    # ------------------------------------------------------------ help and palette

    def screen_keys(self, screen: Screen) -> list[tuple[str, str]]:
        if isinstance(screen, DrillsScreen):
            return [(b.key.split(",")[0], b.description) for b in screen.BINDINGS if b.show]
        return super().screen_keys(screen)

    def drill_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The drills screen's keys in the palette: the same actions, the same refusals."""
        if not isinstance(screen, DrillsScreen):
            return
        for binding in screen.BINDINGS:
            if binding.show and not binding.action.startswith("app."):
                yield SystemCommand(binding.description, f"key: {binding.key}",
                                    partial(screen.run_action, binding.action))


def timeline_head(follow: "Follow") -> Text:
    head = Text(f"Drill {sanitize(follow.drill, 40)} on {sanitize(follow.target, 40)}", style="bold")
    if follow.live:
        head.append("  RUNNING", style="bold cyan")
        head.append(f"\npid {follow.pid or '?'}  a: abort (rollback)  A: abort, no rollback", style="dim")
    elif follow.end is not None:
        from dashboard.drill_session import figures_text

        verdict = str(follow.end.data.get("verdict") or follow.end.status or "?")
        head.append("  ")
        head.append_text(verdict_text(verdict))
        figures = follow.end.data.get("figures")
        head.append("\n" + (figures_text(figures) if isinstance(figures, dict) and figures else "no figures"))
    else:
        head.append(f"\n{sanitize(follow.gone or '', 80)}", style="bold yellow")
        head.append(f"\nsee {sanitize(str(follow.files.log), 200)}", style="dim")
    return head


def quit_question(follow: "Follow", readonly: bool) -> str:
    what = (f"Drill {sanitize(follow.drill, 60)} on {sanitize(follow.target, 60)} is running "
            f"(pid {follow.pid or '?'}). It keeps running in its own process whether you quit or not.")
    if readonly or follow.heartbeat is None:
        after = "This dashboard only watches it: quitting does not change it."
    elif follow.unattended:
        after = "It was started --unattended: it carries on to its end without this dashboard."
    else:
        after = ("Quitting stops this dashboard's heartbeat: within 6 s the drill aborts and rolls back "
                 "(unless it was started --unattended).")
    return f"{what}\n\n{after}\n\nQuit the dashboard?"
