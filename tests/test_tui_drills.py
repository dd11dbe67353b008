"""The drills in the dashboard without a stack: the list, the confirmation, the timeline,
the abort keys, Ctrl-C, and read-only mode reaching no mutating path (RELIABILITY.md
cases 24, 29, 31 and 40). Real drills driven from the TUI against the lab are in
tests/integration/test_tui_drills_live.py.

The fleet behind the screens is the scripted one of tests/scripted.py; the config names
the same targets and allows drills on them. A drill "process" is a recorded spawn (the
argv is what matters) or a real `sleep` whose journal the test writes, so the signals
the abort keys send land on a real process.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from textual import events
from textual.app import App
from textual.widgets import Input, Static

from dashboard.app import ScaledashApp, build_app
from dashboard.config import load
from dashboard.drill_session import READ_ONLY, DrillSession
from dashboard.drills import journal
from dashboard.drills.journal import RunFiles, append_line
from dashboard.drills.model import Entry
from dashboard.drills_screen import Ask, ConfirmDrill, DrillsScreen
from scripted import scripted_engine

pytestmark = pytest.mark.anyio

HOSTILE = "[bold red]x[/]\x1b[31m\u202e"


def write_config(tmp_path: Path, dead_replica: bool = True) -> Path:
    """The scripted fleet's config; `dead_replica`: with replica-3 (DOWN in the fleet) and
    a drill on it. Without it, the failover's nodes all answer and its plan can run."""
    token = tmp_path / "admin_token"
    token.write_text("not-a-real-token")
    token.chmod(0o600)
    replicas = "".join(f'[[replica]]\nname = "{name}"\ndsn = "postgresql://monitor@127.0.0.1:1/postgres"\n'
                       for name in ("primary", "replica-1", "replica-2", "replica-3")[:None if dead_replica else 3])
    path = tmp_path / "scaledash.toml"
    path.write_text(f"""name = "drills"
[service]
url = "http://127.0.0.1:9"
admin_token = "file:{token}"
{replicas}
[[cache]]
name = "redis"
url = "redis://127.0.0.1:1/0"

[drills]
allow = ["primary", "replica-1", "replica-2", {'"replica-3", ' if dead_replica else ''}"service"]
state_dir = "{tmp_path / 'state'}"
processes = "{tmp_path / 'lab.json'}"

[[drill]]
name = "upstream-fault"
use = "upstream-fault"

[[drill]]
name = "replica-lag"
use = "replica-lag"
target = "replica-1"

[[drill]]
name = "redis-outage"
use = "redis-outage"
target = "redis"
commands = {{ restart = ["true"] }}

[[drill]]
name = "failover"
use = "failover"
commands = {{ promote = ["true"], repoint = ["true"] }}

""" + ("""
[[drill]]
name = "lag-on-dead"
use = "replica-lag"
target = "replica-3"
""" if dead_replica else ""))
    return path


class Recorder:
    """Stands in for the drill process spawn and for os.kill: records, acts on nothing
    (kill passes through to real processes when `forward`)."""

    def __init__(self, forward: bool = False) -> None:
        self.spawned: list[tuple[list[str], dict, Path]] = []
        self.signals: list[tuple[int, int]] = []
        self.processes: list[subprocess.Popen] = []
        self.forward = forward

    def spawn(self, argv, env, log):
        self.spawned.append((argv, env, log))
        process = subprocess.Popen(["sleep", "30"], start_new_session=True)
        self.processes.append(process)
        return process

    def kill(self, pid: int, number: int) -> None:
        self.signals.append((pid, number))
        if self.forward:
            os.kill(pid, number)


@pytest.fixture
def config(tmp_path):
    return load(str(write_config(tmp_path)))


@pytest.fixture
def recorder():
    rec = Recorder(forward=True)
    yield rec
    for process in rec.processes:
        process.kill()
        process.wait(5)


def make_app(config, recorder: Recorder, readonly: bool = False) -> ScaledashApp:
    app = build_app(config, readonly=readonly, engine=scripted_engine(), autostart=False)
    app.drill_session = DrillSession(config, readonly=readonly, spawn=recorder.spawn, kill=recorder.kill)
    return app


def screen_text(app: ScaledashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def state_dir(config) -> Path:
    return Path(config.drill_settings.state_dir)


def audit_records(config) -> list[dict]:
    path = state_dir(config) / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def ready(app: ScaledashApp, pilot) -> None:
    await app.engine.poll_round()
    app.refresh_view()
    await pilot.pause()


def write_report(config, run: str, drill: str, verdict: str, figures: dict, reason: str = "") -> None:
    folder = state_dir(config) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run}.json").write_text(json.dumps({
        "drill": drill, "run": run, "verdict": verdict, "reason": reason, "figures": figures,
        "ended": time.time() - 300}))


class FakeRun:
    """A drill run on disk as the runner writes it, its process a real `sleep`."""

    def __init__(self, config, drill: str = "upstream-fault", target: str = "service",
                 unattended: bool = False, state_first: bool = False) -> None:
        self.process = subprocess.Popen(["sleep", "900"], start_new_session=True)
        self.files = RunFiles(state_dir(config), journal.run_id(drill) + "x").prepare()
        self.files.heartbeat.touch()
        old = time.time() - 60
        os.utime(self.files.heartbeat, (old, old))
        if state_first:       # the runner's state watcher may write before the start record
            self.add("state", "replica primary: UNKNOWN -> DOWN (previous probe still running)", "DOWN")
        self.add("start", f"drill {drill} on {target}", "running", pid=self.process.pid,
                 start_ticks=journal.process_start_ticks(self.process.pid), drill=drill, target=target,
                 unattended=unattended, heartbeat=str(self.files.heartbeat))

    def add(self, kind: str, text: str, status: str | None = None, **data) -> None:
        append_line(self.files.journal, asdict(Entry(time.time(), kind, text, status, data)))

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(5)


@pytest.fixture
def fake_runs():
    runs: list[FakeRun] = []
    yield runs
    for run in runs:
        run.stop()


# ---------------------------------------------------------------- the list


async def test_d_lists_each_drill_ready_or_disabled_with_its_last_verdict_and_figures(config, recorder):
    write_report(config, "20260101T000000-upstream-fault-1", "upstream-fault", "passed",
                 {"open_seconds": 2.99, "close_seconds": 2.47})
    write_report(config, "20250101T000000-upstream-fault-1", "upstream-fault", "failed", {"open_seconds": 9.0})
    app = make_app(config, recorder)
    async with app.run_test(size=(180, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
        lines = screen_text(app).splitlines()
        fault = next(line for line in lines if "> upstream-fault" in line)
        assert "reversible" in fault and "service" in fault and "PASSED" in fault
        assert "open_seconds 2.99, close_seconds 2.47" in fault and "5m" in fault
        lag = next(line for line in lines if "replica-lag" in line and "replica-1" in line)
        assert "reversible" in lag and "ready" in lag and " - " in lag
        redis = next(line for line in lines if "redis-outage" in line)
        assert "disabled: not allowed on redis" in redis
        failover = next(line for line in lines if " failover " in line)
        assert "irreversible" in failover and "ready" in failover
        assert "not available" not in screen_text(app)


async def test_a_disabled_drill_cannot_start_and_one_notice_says_why(config, recorder):
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("d", "down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen), "no confirmation for a disabled drill"
        notes = [n.message for n in app._notifications]
        assert notes == ["drill redis-outage is disabled: not allowed on redis: drills act only on targets "
                         "listed in [drills] allow"]
        assert app.start_drill("redis-outage", "redis") is False
    assert recorder.spawned == [] and audit_records(config) == []


# ---------------------------------------------------------------- the confirmation


async def test_the_confirmation_shows_the_plan_with_focus_on_cancel_and_esc_only_writes_cancelled(tmp_path, recorder):
    config = load(str(write_config(tmp_path, dead_replica=False)))     # every node of the failover answers
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 50)) as pilot:
        await ready(app, pilot)
        await pilot.press("d", "down", "down", "down", "enter")     # failover: irreversible
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDrill)
        assert app.focused is not None and app.focused.id == "drill-cancel"
        text = screen_text(app)
        assert "Drill failover on primary" in text and "irreversible" in text
        assert "topology: replica-1: replica OK, lag 2048 B" in text
        assert "step 3: crash the primary primary: SIGKILL to postgres-primary" in text
        # The warnings come first on screen; the whole plan scrolls below them.
        plan = str(app.screen.query_one("#drill-plan-text", Static).render())
        assert "step 4: promote the replica that received the most WAL of replica-1, replica-2" in plan
        assert "replica-1): true  IRREVERSIBLE" in plan
        assert "step 6: repoint replica-1 at the new primary" in plan
        assert "IRREVERSIBLE, never undone automatically:" in text
        assert "  - promote the replica that received the most WAL" in text
        await pilot.press("enter")                # Enter on the focused Cancel: nothing
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
    assert recorder.spawned == []
    records = audit_records(config)
    assert [(r["record"], r.get("outcome")) for r in records] == [("intent", None), ("outcome", "cancelled")] * 2
    assert all(r["drill"] == "failover" and r["target"] == "primary" for r in records)
    assert records[1]["reason"] == "cancelled at the confirmation"


async def test_a_wrong_name_or_a_10kb_paste_starts_nothing(config, recorder):
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 50)) as pilot:
        await ready(app, pilot)
        await pilot.press("d", "enter")
        await pilot.pause()
        field = app.screen.query_one("#drill-confirm-input", Input)
        field.focus()
        await pilot.press(*"servic", "enter")          # one letter short
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
        await pilot.press("enter")
        await pilot.pause()
        field = app.screen.query_one("#drill-confirm-input", Input)
        field.focus()
        field.post_message(events.Paste("service" * 1500))
        await pilot.pause()
        assert len(field.value) <= 200        # refused whole, or cut: never 10 KB in the field
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
    assert recorder.spawned == []
    outcomes = [r for r in audit_records(config) if r["record"] == "outcome"]
    assert [r["reason"] for r in outcomes] == ["the name typed did not match the target",
                                               "cancelled at the confirmation"]      # the paste was refused


async def test_a_plan_with_problems_shows_them_and_cannot_be_confirmed(config, recorder):
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 50)) as pilot:
        await ready(app, pilot)
        await pilot.press("d", *["down"] * 4, "enter")        # replica-lag on the dead replica-3
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDrill)
        text = screen_text(app)
        assert "This drill cannot run now:" in text and "replica-3 is not a replica answering now" in text
        assert app.screen.query_one("#drill-run").disabled and app.screen.query_one("#drill-confirm-input").disabled
        await pilot.press("escape")
        await pilot.pause()
    assert recorder.spawned == []
    assert [r.get("outcome") for r in audit_records(config)] == [None, "cancelled"]


async def test_the_right_name_starts_the_drills_own_process_with_its_heartbeat(config, recorder, monkeypatch):
    monkeypatch.setenv("SCALEDASH_SECRET_ELSEWHERE", "do-not-pass")
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("d", "enter")
        await pilot.pause()
        app.screen.query_one("#drill-confirm-input", Input).focus()
        await pilot.press(*"service", "enter")
        await pilot.pause()
        assert len(recorder.spawned) == 1
        argv, env, log = recorder.spawned[0]
        run = argv[argv.index("--run-id") + 1]
        files = RunFiles(state_dir(config), run)
        assert argv == [sys.executable, "-m", "dashboard.cli", "drill", "run", "upstream-fault",
                        "--config", config.path, "--confirm", "service", "--json",
                        "--heartbeat", str(files.heartbeat), "--run-id", run]
        assert run.endswith("-upstream-fault-" + str(os.getpid()))
        assert log == files.log
        assert env["SCALEDASH_CONFIG"] == config.path and "SCALEDASH_SECRET_ELSEWHERE" not in env
        assert journal.heartbeat_age(files.heartbeat) < 2
        assert app.filter_text == "", "the confirmation typed is not the panels' row filter"
        assert app.start_drill("upstream-fault", "service") is False      # one run of a drill at a time
        await pilot.pause()
        assert any("already running" in n.message for n in app._notifications)
    assert not [r for r in audit_records(config) if r.get("outcome") == "cancelled"]


# ---------------------------------------------------------------- following a run


async def test_a_running_drill_is_followed_beside_the_panels_and_its_end_sets_the_failover_kpi(config, recorder,
                                                                                              fake_runs):
    run = FakeRun(config, drill="failover", target="primary")
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        assert app.screen.has_class("drilling")
        text = screen_text(app)
        assert "Drill failover on primary  RUNNING" in text and "Replicas" in text      # beside the panels
        assert journal.heartbeat_age(run.files.heartbeat) < 2, "a re-attached run is heartbeaten"
        run.add("step", f"step 1: write canary rows {HOSTILE}", "running")
        run.add("state", "replica primary: OK -> DOWN", "DOWN")
        await pilot.pause(0.5)
        text = screen_text(app)
        assert "step 1: write canary rows [bold red]x[/]" in text, text
        assert "\x1b" not in text and "\u202e" not in text
        assert "replica primary: OK -> DOWN" in text
        run.add("end", "passed: every step done", "passed", verdict="passed",
                figures={"failover_seconds": 0.42, "lost_writes": 0})
        await pilot.pause(0.5)
        assert app.engine.failover_seconds == 0.42
        text = screen_text(app)
        assert "PASSED" in text and "failover_seconds 0.42, lost_writes 0" in text
        assert any("drill failover on primary: passed (failover_seconds 0.42" in n.message
                   for n in app._notifications)
        assert any("drill failover on primary: passed" in e.message for e in app.engine.snapshot().events)


async def test_a_run_whose_journal_opens_with_a_state_change_is_still_reattached(config, recorder, fake_runs):
    run = FakeRun(config, state_first=True)
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        assert [f.drill for f in app.drill_session.live()] == ["upstream-fault"]
        assert "Drill upstream-fault on service  RUNNING" in screen_text(app)


async def test_a_drill_process_that_dies_without_a_verdict_is_said(config, recorder, fake_runs):
    run = FakeRun(config)
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        run.stop()
        await pilot.pause(0.6)
        assert any("ended without a verdict" in n.message for n in app._notifications)
        assert "ended without a verdict" in screen_text(app)


async def test_start_up_shows_the_last_measured_failover_from_the_reports(config, recorder):
    write_report(config, "20260101T000000-failover-1", "failover", "passed", {"failover_seconds": 0.37})
    write_report(config, "20260102T000000-upstream-fault-1", "upstream-fault", "passed", {"open_seconds": 3})
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        assert app.engine.failover_seconds == 0.37
        assert "Failover 0.4s ok" in screen_text(app)


# ---------------------------------------------------------------- aborting


async def test_a_aborts_with_rollback_sigusr1(config, recorder, fake_runs):
    run = FakeRun(config)
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        await pilot.press("a")
        await pilot.pause()
        assert run.process.wait(5) == -signal.SIGUSR1
    assert recorder.signals == [(run.process.pid, signal.SIGUSR1)]


async def test_shift_a_asks_then_aborts_without_rollback_sigusr2(config, recorder, fake_runs):
    run = FakeRun(config)
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, Ask) and app.focused.id == "ask-no"
        assert "WITHOUT rollback" in str(app.screen.query_one("#ask-text", Static).render())
        await pilot.press("enter")                 # the focused answer keeps it running
        await pilot.pause(0.3)
        assert run.process.poll() is None and recorder.signals == []
        await pilot.press("A")
        await pilot.pause()
        await pilot.press("tab", "enter")
        await pilot.pause()
        assert run.process.wait(5) == -signal.SIGUSR2
    assert recorder.signals == [(run.process.pid, signal.SIGUSR2)]


async def test_abort_keys_do_nothing_when_no_drill_runs(config, recorder):
    app = make_app(config, recorder)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.press("a", "A")
        await pilot.pause()
        assert not isinstance(app.screen, Ask)
    assert recorder.signals == []


# ---------------------------------------------------------------- quitting


async def test_ctrl_c_quits_at_once_when_no_drill_runs(config, recorder):
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.return_code == 0, "Ctrl-C quits, as in any terminal program"


async def test_ctrl_c_asks_while_a_drill_runs_and_says_it_keeps_running_and_rolls_back(config, recorder,
                                                                                        fake_runs):
    run = FakeRun(config)
    fake_runs.append(run)
    app = make_app(config, recorder)
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert isinstance(app.screen, Ask) and app.focused.id == "ask-no"
        text = str(app.screen.query_one("#ask-text", Static).render())
        assert "keeps running in its own process" in text and "rolls back" in text and "--unattended" in text
        await pilot.press("ctrl+c", "escape")       # a second Ctrl-C does not answer for the operator
        await pilot.pause()
        assert not isinstance(app.screen, Ask) and app.return_code is None
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, Ask)            # q asks the same question
        await pilot.press("tab", "enter")
        await pilot.pause()
        assert app.return_code == 0
    assert run.process.poll() is None, "quitting the dashboard never stops the drill's own process"
    assert recorder.signals == []


# ---------------------------------------------------------------- read-only mode (case 29)


def _first_key(binding) -> str:
    return binding.key.split(",")[0]


@pytest.mark.timeout(400)
async def test_read_only_mode_reaches_no_mutating_path_by_any_binding_or_palette_command(config, recorder,
                                                                                         fake_runs, monkeypatch):
    """Every binding of every screen and every palette command, fired in read-only mode
    while a drill (started elsewhere) runs: no spawn, no signal, no suite start, no audit
    record, no heartbeat."""
    from dashboard.screens import DetailScreen, HelpScreen
    from dashboard.suites.catalog import SuiteSpec
    from dashboard.suites.results import SuiteKind
    from dashboard.suites.runner import SuiteRun
    from dashboard.suites_screen import ConfirmLoad, SuitesScreen
    from dashboard.suite_session import SuiteSession

    suite_starts = []

    async def no_start(self) -> None:
        suite_starts.append(self.spec.name)
    monkeypatch.setattr(SuiteRun, "start", no_start)
    run = FakeRun(config)
    fake_runs.append(run)
    beat = run.files.heartbeat.stat().st_mtime
    app = make_app(config, recorder, readonly=True)
    spec = SuiteSpec("load", SuiteKind.LOCUST, "shipped", "load", generates_load=True, users=2, run_time_s=3)
    app.suite_session = SuiteSession((spec,))
    fired: list[str] = []
    notes: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kw: (notes.append(str(message)), notify(message, **kw))[1]
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        assert app.drill_session.live(), "the drill started elsewhere is followed"
        plan = app.drill_session.plan("upstream-fault", app.engine.snapshot())
        screens = {
            "main": None,
            "drills": DrillsScreen,
            "suites": SuitesScreen,
            "detail": lambda: DetailScreen("replica|primary"),
            "help": lambda: HelpScreen(app.key_table()),
            "confirm-drill": lambda: ConfirmDrill(plan),
            "confirm-load": lambda: ConfirmLoad(spec, "the stack"),
            "ask": lambda: Ask("?", "Yes", "No"),
        }

        opened: list = [None]

        async def reset() -> None:
            while len(app.screen_stack) > 1:
                app.pop_screen()
            await pilot.pause()

        async def open_screen(factory) -> None:
            """The screen `factory` makes, on top of the main one: reused while a key left it so."""
            want = app.screen_stack[0] if factory is None else opened[0]
            if app.screen is want and len(app.screen_stack) == (1 if factory is None else 2):
                return
            await reset()
            if factory is screens["confirm-drill"]:      # a confirmation left open, answered
                app.push_screen(factory(), lambda typed: app._confirmed(plan, typed))
            elif factory is not None:
                app.push_screen(factory())
            await pilot.pause()
            opened[0] = app.screen

        def type_target() -> None:
            field = app.screen.query_one("#drill-confirm-input", Input)
            field.disabled = False
            field.value = plan.target          # the right name typed, on a stale confirmation

        main_titles: set[str] = set()
        for name, factory in screens.items():
            opened[0] = None
            await open_screen(factory)
            bindings = {b.key: b for b in (*app.screen.BINDINGS, *app.BINDINGS, *App.BINDINGS)}
            bindings.update({key: active.binding for key, active in app.screen.active_bindings.items()})
            for binding in bindings.values():
                if binding.action in ("quit", "app.quit", "command_palette", "app.command_palette"):
                    continue                 # quitting is fired below; the palette's commands too
                await open_screen(factory)
                if name == "confirm-drill":
                    type_target()
                await pilot.press(_first_key(binding))     # waits until the app has handled it
                fired.append(f"{name}:{binding.key}")
            if name == "confirm-drill":
                await open_screen(factory)
                type_target()
                await pilot.click("#drill-run")
                await pilot.pause()
                fired.append("confirm-drill:run-button")
            await open_screen(factory)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            if name == "main":
                main_titles = set(titles)
            for title in titles:
                if title in ("Screenshot", "Theme") or (name != "main" and title in main_titles):
                    continue                 # a file in the cwd, a colour picker; the app's own: once
                await open_screen(factory)   # each command on the screen that offered it
                command = next(c for c in app.get_system_commands(app.screen) if c.title == title)
                result = command.callback()
                if inspect.isawaitable(result):
                    await result
                await pilot.pause()
                fired.append(f"{name}:palette:{title}")
            await reset()
            await pilot.press("ctrl+c")
            await pilot.pause()
            assert isinstance(app.screen, Ask), "quitting while a drill runs asks, also in read-only mode"
            await pilot.press("escape")
            await pilot.pause()
        # The drill keys and the start refuse by name, whatever called them.
        assert app.start_drill("upstream-fault", "service") is False
        assert app.start_suite("load") is False
    assert READ_ONLY in notes and any("read-only mode: suite load generates load" in n for n in notes)
    assert any(n.startswith("read-only mode: this dashboard never signals a drill") for n in notes)
    assert {"drills:enter", "main:d", "main:a", "main:A", "confirm-drill:run-button", "suites:enter",
            "confirm-load:escape", "drills:palette:Start drill", "main:palette:Abort drill"} <= set(fired)
    assert recorder.spawned == [] and recorder.signals == [] and suite_starts == []
    assert audit_records(config) == []
    assert run.process.poll() is None
    assert run.files.heartbeat.stat().st_mtime == beat, "read-only mode keeps nothing going"
