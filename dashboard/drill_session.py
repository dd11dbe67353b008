"""The dashboard's side of drills: which exist, what each last gave, and the runs it follows.

A drill runs in its own process (`scaledash drill run`, in its own session), never on
the dashboard's loop: an SSH drop or a closed dashboard must not cut a drill halfway.
The dashboard starts that process, follows its journal, touches its heartbeat file
(the drill's dead-man's switch, runner.py), and signals it to abort. It outlives the
drills screen, so the app owns it; no Textual here, the screens draw what it holds.

A dashboard started while a drill runs (the one that started it lost its SSH session)
finds it with `journal.running` and follows it the same way.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dashboard.config_types import Config, DrillConfig
from dashboard.drills import audit, catalog, journal, reports
from dashboard.drills.journal import RunFiles
from dashboard.drills.model import Drill, Entry, Plan, Verdict
from dashboard.redact import describe_error, safe_message
from dashboard.suites.environment import child_environment, referenced_env_names

TIMELINE_LINES = 500       # entries kept per followed run (the journal on disk has them all)
REPORTS_READ = 200         # newest report files read for the drills' last verdicts
# Why a drill cannot start from this dashboard: said once, by every way to a start.
READ_ONLY = "read-only mode: drills never run"


class Process(Protocol):
    """What the dashboard keeps of a drill process it started: Popen's pid and poll()."""

    pid: int

    def poll(self) -> int | None: ...


Spawn = Callable[[list[str], dict[str, str], Path], Process]
Kill = Callable[[int, int], None]


def spawn_process(argv: list[str], env: dict[str, str], log: Path) -> Process:
    """The drill's own process, in its own session, its output in a 0600 log.

    Not asyncio's subprocess: its transport kills a child still running when the loop
    closes, which would SIGKILL the drill (no rollback) whenever the dashboard quits."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LastRun:
    """A finished run as its JSON report tells it."""

    run: str
    verdict: str
    reason: str
    figures: dict[str, Any]
    ended: float
    report: str


@dataclass
class Follow:
    """One run the dashboard follows: its journal read so far, its process, its end."""

    files: RunFiles
    drill: str
    process: Process | None = None          # set when this dashboard started it
    offset: int = 0
    entries: collections.deque[Entry] = field(default_factory=lambda: collections.deque(maxlen=TIMELINE_LINES))
    start: Entry | None = None
    end: Entry | None = None
    gone: str | None = None                 # the process ended without an `end` entry
    abort_pending: int | None = None        # a signal asked for before the start entry came

    @property
    def pid(self) -> int | None:
        pid = self.start.data.get("pid") if self.start else None
        return pid if isinstance(pid, int) and pid > 0 else None

    @property
    def target(self) -> str:
        return str(self.start.data.get("target", "?")) if self.start else "?"

    @property
    def live(self) -> bool:
        return self.end is None and self.gone is None

    @property
    def heartbeat(self) -> Path | None:
        """The file the drill watches; none for a drill started without one (a shell's)."""
        if self.process is not None:
            return self.files.heartbeat
        named = self.start.data.get("heartbeat") if self.start else None
        return Path(named) if isinstance(named, str) and named else None

    @property
    def unattended(self) -> bool:
        return bool(self.start and self.start.data.get("unattended"))

    def read(self) -> list[Entry]:
        """The entries written since the last read."""
        new, self.offset = journal.read_entries(self.files.journal, self.offset)
        for entry in new:
            if entry.kind == "start" and self.start is None:
                self.start = entry
            elif entry.kind == "end":
                self.end = entry
            self.entries.append(entry)
        return new

    def process_gone(self) -> bool:
        """The drill's process has exited (reaped when it is ours)."""
        if self.process is not None:
            return self.process.poll() is not None
        pid = self.pid
        return pid is not None and not journal.pid_alive(pid, self.start.data.get("start_ticks"))


@dataclass(frozen=True)
class Started:
    """A drill this dashboard started, or why it did not."""

    follow: Follow | None
    refused: str | None = None


class DrillSession:
    def __init__(self, config: Config, *, readonly: bool = False, spawn: Spawn = spawn_process,
                 kill: Kill = os.kill, wall: Callable[[], float] | None = None) -> None:
        from dashboard.drills.runner import state_dir

        self.config = config
        self.readonly = readonly
        self.state_dir = state_dir(config)
        self.spawn = spawn
        self.kill = kill
        self.wall = wall or time.time
        self.follows: dict[str, Follow] = {}
        self._drills: tuple[Drill, ...] | None = None
        self._last: dict[str, LastRun] | None = None

    # ------------------------------------------------------------ what exists

    @property
    def drills(self) -> tuple[Drill, ...]:
        if self._drills is None:
            self._drills = catalog.listed(self.config)
        return self._drills

    def last(self, name: str) -> LastRun | None:
        if self._last is None:
            self._last = last_runs(self.state_dir)
        return self._last.get(name)

    def forget_reports(self) -> None:
        """A run ended: read the reports again when next asked."""
        self._last = None

    def last_failover(self) -> float | None:
        found = reports.last_figure(self.state_dir, "failover_seconds")
        return found[0] if found else None

    def running(self, name: str) -> Follow | None:
        return next((f for f in self.follows.values() if f.drill == name and f.live), None)

    def live(self) -> list[Follow]:
        return [f for f in self.follows.values() if f.live]

    def refusal(self, drill: Drill) -> str | None:
        """Why `drill` cannot start from here now, or None."""
        if self.readonly:
            return READ_ONLY
        if drill.disabled:
            return f"drill {drill.name} is disabled: {drill.disabled}"
        if self.running(drill.name):
            return f"drill {drill.name} is already running"
        if not self.config.path or not os.path.isfile(self.config.path):
            return "the drill's process reads the config from its file, and this dashboard has none"
        return None

    def plan(self, name: str, snap) -> Plan:
        return catalog.plan(self._config_of(name), self.config, snap)

    def _config_of(self, name: str) -> DrillConfig:
        return catalog.find(self.config, name)

    # ------------------------------------------------------------ starting

    def cancelled(self, plan: Plan, reason: str) -> None:
        """The confirmation ended without a run: the audit journal says so. Read-only mode
        writes nothing: no attempt can be made from it."""
        if self.readonly:
            return
        try:
            audit.record_cancelled(self.state_dir, plan.drill.name, plan.target,
                                   [s.label for s in plan.method], reason)
        except (audit.AuditError, OSError):
            pass      # nothing ran; the notice already said it was cancelled

    def argv(self, name: str, target: str, files: RunFiles) -> list[str]:
        return [sys.executable, "-m", "dashboard.cli", "drill", "run", name,
                "--config", os.path.abspath(self.config.path), "--confirm", target, "--json",
                "--heartbeat", str(files.heartbeat), "--run-id", files.run]

    def environment(self) -> dict[str, str]:
        # Where the drill keeps its records must be where this dashboard looks for them.
        extra = {k: os.environ[k] for k in ("XDG_STATE_HOME",) if k in os.environ}
        return child_environment(os.path.abspath(self.config.path), referenced_env_names(self.config), extra)

    def start(self, name: str, target: str) -> Started:
        """The one way to a run: refused in read-only mode, for a disabled or running drill."""
        drill = next((d for d in self.drills if d.name == name), None)
        if drill is None:
            return Started(None, f"no drill named {safe_message(name, 60)}")
        reason = self.refusal(drill)
        if reason:
            return Started(None, reason)
        files = RunFiles(self.state_dir, journal.run_id(name, self.wall())).prepare()
        journal.touch(files.heartbeat)          # fresh before the drill first looks at it
        try:
            process = self.spawn(self.argv(name, target, files), self.environment(), files.log)
        except OSError as exc:
            reason = f"could not start the drill's process: {describe_error(exc)}"
            self._could_not_run(name, target, reason, files.run)
            return Started(None, reason)
        follow = self.follows[files.run] = Follow(files, name, process)
        return Started(follow)

    def _could_not_run(self, name: str, target: str, reason: str, run: str) -> None:
        try:
            attempt = audit.Attempt(self.state_dir, drill=name, target=target, mode="run", steps=[],
                                    confirmation="typed", run=run).intent()
            attempt.outcome(Verdict.COULD_NOT_RUN.value, reason)
        except (audit.AuditError, OSError):
            pass

    # ------------------------------------------------------------ following

    def attach_running(self) -> list[Follow]:
        """Drills still running from an earlier dashboard (or a shell): follow them too."""
        found = []
        for info in journal.running(self.state_dir):
            if info.files.run not in self.follows:
                follow = self.follows[info.files.run] = Follow(info.files, str(info.start.data.get("drill", "?")))
                follow.read()           # the start entry names its heartbeat before the first beat
                found.append(follow)
        return found

    def poll(self) -> list[tuple[Follow, list[Entry]]]:
        """New entries of every live run; a run whose process left no `end` is marked gone."""
        out = []
        for follow in self.live():
            new = follow.read()
            if follow.abort_pending is not None and follow.pid is not None:
                self._signal(follow, follow.abort_pending)
            if follow.live and follow.process_gone():
                new += follow.read()          # its last lines may have come after the first read
                if follow.live:
                    follow.gone = "the drill's process ended without a verdict"
            if new or not follow.live:
                out.append((follow, new))
        return out

    def heartbeat(self) -> None:
        """Touch the heartbeat of every live run this dashboard watches. Read-only mode
        watches without keeping anything going."""
        if self.readonly:
            return
        for follow in self.live():
            if follow.heartbeat is not None:
                journal.touch(follow.heartbeat)

    # ------------------------------------------------------------ aborting

    def abort(self, follow: Follow, rollback: bool = True) -> str:
        """SIGUSR1 aborts with rollback, SIGUSR2 without; before the drill's start entry its
        handlers may not be installed yet, so the signal waits for it."""
        number = signal.SIGUSR1 if rollback else signal.SIGUSR2
        if follow.pid is None:
            follow.abort_pending = number
            return "the drill is starting: it aborts as soon as it has started"
        return self._signal(follow, number)

    def _signal(self, follow: Follow, number: int) -> str:
        follow.abort_pending = None
        try:
            self.kill(follow.pid, number)
        except ProcessLookupError:
            return "the drill's process has already ended"
        except OSError as exc:
            return f"could not signal the drill's process: {describe_error(exc)}"
        how = "with rollback" if number == signal.SIGUSR1 else "WITHOUT rollback"
        return f"abort {how} sent to drill {follow.drill} (pid {follow.pid})"


def last_runs(state_dir: Path) -> dict[str, LastRun]:
    """The newest report of each drill (reports are named by their UTC start time)."""
    try:
        paths = sorted((state_dir / "reports").glob("*.json"), key=lambda p: p.name, reverse=True)[:REPORTS_READ]
    except OSError:
        return {}
    found: dict[str, LastRun] = {}
    for path in paths:
        run = _report(path)
        if run is not None and run[0] not in found:
            found[run[0]] = run[1]
    return found


def _report(path: Path) -> tuple[str, LastRun] | None:
    try:
        data = json.loads(path.read_text()[:2_000_000])
        figures = data.get("figures") if isinstance(data.get("figures"), dict) else {}
        return str(data["drill"]), LastRun(str(data.get("run", path.stem)), str(data["verdict"]),
                                           str(data.get("reason", "")), figures, float(data.get("ended") or 0.0),
                                           str(path.with_suffix(".md")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def figures_text(figures: dict[str, Any], limit: int = 6) -> str:
    """`open_seconds 2.99, fault_error_rate 0, ...`: the figures a drill measured."""
    parts = []
    for key, value in list(figures.items())[:limit]:
        if isinstance(value, bool) or value is None:
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}")
    return safe_message(", ".join(parts), 300)


def end_line(follow: Follow) -> str:
    """The verdict of a finished run in one line (the notice and the event log)."""
    if follow.end is None:
        return f"drill {follow.drill}: {follow.gone or 'running'}"
    data = follow.end.data
    verdict = str(data.get("verdict") or follow.end.status or "?")
    figures = data.get("figures") if isinstance(data.get("figures"), dict) else {}
    shown = figures_text(figures)
    return safe_message(f"drill {follow.drill} on {follow.target}: {verdict}" + (f" ({shown})" if shown else ""), 300)
