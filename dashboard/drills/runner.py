"""One drill attempt, start to verdict, in the process that runs it.

    lock the targets -> intent record -> steady state -> pre-flight -> (dry run: stop)
    -> method, step by step -> steady state again -> rollback when aborted or failed
    -> verdict against the targets -> reports -> outcome record

The runner polls the stack with its own `Engine` (the figures the screen and `check`
show) and writes every step and every state change the engine sees to the run journal
as it happens, so a dashboard can follow it and a new one re-attach. It always ends in
an `Outcome` and an audit outcome record, whatever happens: an abort, a dead watcher,
a step that raises, an unknown result.

Aborts come as signals, so a dashboard (or an operator's shell) can ask without any
channel but the PID: SIGUSR1 or SIGTERM/SIGINT abort with rollback, SIGUSR2 aborts
without rollback. SIGHUP (the terminal went away) and a heartbeat file that stops
being touched (the dashboard that started the drill went away) abort with rollback
too: the dead-man's switch, off with --unattended. A running step is never cut
halfway: waits and watches stop at once, a command or SQL call finishes first (a
promotion interrupted mid-call is worse than one finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from dashboard.config_types import Config, DrillConfig
from dashboard.drills import audit, catalog, reports
from dashboard.drills.actions import Context, resolve, run_step, wait_until
from dashboard.drills.conditions import Condition, compare
from dashboard.drills.journal import (HEARTBEAT_LOST_S, Journal, RunFiles, default_state_dir, heartbeat_age,
                                     process_start_ticks, run_id)
from dashboard.drills.lock import LockHeld, TargetLocks
from dashboard.drills.model import EXIT_CODES, Plan, Step, StepResult, Verdict
from dashboard.redact import describe_error

STEADY_WAIT_S = 10.0        # the steady state may take a few polls to show (hysteresis holds)
VERIFY_WAIT_S = 60.0        # after the method: time for the stack to settle
ABORT_VERIFY_S = 10.0       # after an abort and its rollback (RELIABILITY.md case 26)
UNKNOWN_POLL_S = 30.0       # how long an unanswered call's `verify` is re-polled
WATCH_S = 0.25              # how often the timeline looks for state changes
MAX_DRILL_INTERVAL = 0.5    # the drill's engine polls at least this often: finer timings
TIMELINE_FIGURES = ("role", "state")   # a node promoted, a breaker opening: news in the timeline


def state_dir(config: Config) -> Path:
    return Path(config.drill_settings.state_dir).expanduser() if config.drill_settings.state_dir \
        else default_state_dir()


@dataclass
class Outcome:
    verdict: Verdict
    reason: str
    drill: str
    target: str
    run: str
    figures: dict[str, Any] = field(default_factory=dict)
    journal: str | None = None
    report_md: str | None = None
    report_json: str | None = None
    plan: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def as_dict(self) -> dict:
        return {"drill": self.drill, "target": self.target, "run": self.run, "verdict": self.verdict.value,
                "reason": self.reason, "exit_code": self.exit_code, "figures": self.figures,
                "journal": self.journal, "report": self.report_md, "report_json": self.report_json}


class Abort(Exception):
    pass


class DrillRunner:
    def __init__(self, config: Config, drill: DrillConfig, *, dry_run: bool = False, confirmation: str = "--confirm",
                 heartbeat: Path | None = None, unattended: bool = False, run: str | None = None,
                 engine=None, on_entry: Callable | None = None, clock=time.monotonic, wall=time.time) -> None:
        self.config = config
        self.drill = drill
        self.dry_run = dry_run
        self.confirmation = confirmation
        self.heartbeat = heartbeat
        self.unattended = unattended
        self.run_name = run or run_id(drill.name, wall())
        self.files = RunFiles(state_dir(config), self.run_name)
        self.engine = engine
        self.clock, self.wall = clock, wall
        self.abort = asyncio.Event()
        self.rollback_wanted = True
        self.abort_reason = ""
        self.journal: Journal | None = None
        self.on_entry = on_entry
        self.step_log: list[dict] = []
        self.rollbacks: list[dict] = []
        self.figures: dict[str, Any] = {}
        self._started_irreversible = False
        self._started: set[str] = set()
        # The name the operator confirmed: a plan that resolves to another target is refused.
        self.expected_target: str | None = None
        self._uptime_from: tuple[int, int] | None = None
        self._values: dict[str, str] = {}     # the run's `{candidate}` & co., once known

    # ------------------------------------------------------------ control

    def request_abort(self, reason: str, rollback: bool = True) -> None:
        if not self.abort.is_set():
            self.abort_reason, self.rollback_wanted = reason, rollback
            self.abort.set()
            self._note("note", f"abort requested: {reason}" + ("" if rollback else " (no rollback)"), "aborting")
        elif not rollback:
            self.rollback_wanted = False

    def _install_signals(self) -> list[int]:
        loop = asyncio.get_running_loop()
        wanted = {signal.SIGUSR1: ("abort requested", True), signal.SIGUSR2: ("abort without rollback", False),
                  signal.SIGTERM: ("terminated", True), signal.SIGINT: ("interrupted", True)}
        if not self.unattended:
            wanted[signal.SIGHUP] = ("the terminal went away (dead-man's switch)", True)
        else:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        installed = []
        for number, (reason, rollback) in wanted.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(number, self.request_abort, reason, rollback)
                installed.append(number)
        return installed

    async def _watch_heartbeat(self) -> None:
        # A heartbeat file that never appears is a watcher that never beat (it died before
        # its first touch, or was given another path): the switch counts from our start.
        started = self.clock()
        while not self.abort.is_set():
            age = heartbeat_age(self.heartbeat)
            if age is None:
                age = self.clock() - started
            if age > HEARTBEAT_LOST_S:
                self.request_abort(f"the dashboard watching this drill went away (no heartbeat for {age:.0f}s)")
                return
            await asyncio.sleep(0.5)

    # ------------------------------------------------------------ timeline

    def _note(self, kind: str, text: str, status: str | None = None, **data: Any) -> None:
        if self.journal is not None:
            entry = self.journal.add(kind, text, status, **data)
            if self.on_entry:
                self.on_entry(entry)

    async def _watch_states(self) -> None:
        """Every change of a row's state, and of the figures a drill turns on (a node's
        role, a breaker's own state), with the time the engine saw it."""
        seen: dict[tuple, tuple] = {}
        while True:
            snap = self.engine.snapshot()
            if not snap.starting:
                for c in snap.components:
                    now = (c.state.value, *(c.metrics.get(k) for k in TIMELINE_FIGURES))
                    before = seen.get(c.key)
                    seen[c.key] = now
                    if before is None or before == now:
                        continue
                    name = f"{c.kind.value} {c.name}" + (f" ({c.detail})" if c.detail else "")
                    if before[0] != now[0]:
                        self._note("state", f"{name}: {before[0]} -> {now[0]}"
                                   + (f" ({c.reason})" if c.reason else ""), now[0])
                    for key, old, new in zip(TIMELINE_FIGURES, before[1:], now[1:]):
                        if old != new and new is not None:
                            self._note("state", f"{name}: {key} {old} -> {new}", now[0])
            await asyncio.sleep(WATCH_S)

    # ------------------------------------------------------------ run

    async def run(self) -> Outcome:
        self.journal = Journal(self.files, wall=self.wall)
        installed = self._install_signals()
        own_engine = self.engine is None
        if own_engine:
            from dashboard.engine import Engine

            self.engine = Engine(self.config)
            self.engine.set_interval(min(self.config.interval, MAX_DRILL_INTERVAL))
        tasks: list[asyncio.Task] = []
        attempt = None
        locks = None
        plan = None
        try:
            self.engine.start()
            if self.heartbeat is not None and not self.unattended:
                tasks.append(asyncio.create_task(self._watch_heartbeat()))
            await self._settled()
            plan = catalog.plan(self.drill, self.config, self.engine.snapshot())
            self._start_record(plan)
            # After the start record, so a journal always opens with it; the changes seen
            # while the engine settled are its first answers, not news.
            tasks.append(asyncio.create_task(self._watch_states()))
            attempt = audit.Attempt(self.files.state_dir, drill=self.drill.name, target=plan.target,
                                    mode="dry-run" if self.dry_run else "run",
                                    steps=[s.label for s in plan.method], confirmation=self.confirmation,
                                    run=self.run_name, wall=self.wall).intent()
            locks = TargetLocks(self.files.state_dir, plan.drill.targets or (plan.target,), self.drill.name,
                                self.run_name)
            outcome = await self._attempt(plan, locks)
        except audit.AuditError as exc:
            outcome = self._outcome(Verdict.COULD_NOT_RUN, str(exc), plan)
        except Exception as exc:  # noqa: BLE001 - the run must end in an outcome and a record
            outcome = self._outcome(Verdict.UNKNOWN, f"internal error: {type(exc).__name__}: {describe_error(exc)}",
                                    plan)
        finally:
            if locks is not None:
                locks.release()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if own_engine and self.engine is not None:
                await self.engine.close()
            loop = asyncio.get_running_loop()
            for number in installed:
                loop.remove_signal_handler(number)
        self._finish(outcome, plan, attempt)
        return outcome

    async def _settled(self) -> None:
        """Until every target has answered once, then one interval more (rates need two polls).

        Answered, not merely probed: a first probe that timed out on a loaded machine left a
        node UNKNOWN, and the plan was resolved without it (a failover that would not
        repoint it). Only the engine's own loops probe: a `poll_round()` beside them found
        their probes in flight and recorded each target as failed ("previous probe still
        running"), which showed the lab's nodes DOWN at the start of a drill."""
        end = self.clock() + STEADY_WAIT_S
        while self.clock() < end:
            snap = self.engine.snapshot()
            if not snap.starting and all(s.age_s is not None for s in snap.sources):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(self.engine.interval * 1.5)

    def _start_record(self, plan: Plan) -> None:
        self._note("start", f"drill {self.drill.name} on {plan.target}" + (" (dry run)" if self.dry_run else ""),
                   "running", pid=os.getpid(), start_ticks=process_start_ticks(os.getpid()), drill=self.drill.name,
                   target=plan.target, safety=plan.drill.safety, dry_run=self.dry_run, unattended=self.unattended,
                   plan=plan.describe(), steps=[s.label for s in plan.method],
                   irreversible=[s.label for s in plan.irreversible_steps], heartbeat=str(self.heartbeat or ""))

    async def _attempt(self, plan: Plan, locks: TargetLocks) -> Outcome:
        try:
            locks.acquire()
        except LockHeld as exc:
            return self._outcome(Verdict.REFUSED, f"another drill is active: {exc}", plan)
        if self.expected_target is not None and self.expected_target != plan.target:
            return self._outcome(Verdict.REFUSED, f"confirmed for {self.expected_target}, but the drill's target "
                                 f"is {plan.target} now", plan)
        self._note("phase", "steady state", "running")
        unmet = await self._hold(plan.steady_state + plan.preflight, STEADY_WAIT_S)
        problems = list(plan.problems) + [f"not met: {u}" for u in unmet]
        if problems:
            for p in problems:
                self._note("check", p, "failed")
            return self._outcome(Verdict.REFUSED, "pre-flight: " + "; ".join(problems), plan)
        for text in plan.steady_state + plan.preflight:
            self._note("check", text, "ok")
        if self.dry_run:
            for line in plan.describe():
                self._note("note", f"would: {line.strip()}")
            return self._outcome(Verdict.DRY_RUN, "dry run: every check passed, nothing acted", plan)
        if self.abort.is_set():
            return self._outcome(Verdict.ABORTED, self.abort_reason, plan)
        self._note("phase", "method", "running")
        self._uptime_from = self.engine.uptime()
        ctx = Context(self.config, self.engine.snapshot, self.abort, self.run_name, clock=self.clock,
                      values=self._values)
        verdict, reason = await self._method(plan, ctx)
        if ctx.canary is not None:       # an abort or a failure left the canary running
            await run_step(Step("canary_stop", "stop the canary writes"), ctx)
        if verdict is Verdict.UNKNOWN:
            return self._outcome(verdict, reason, plan)
        if verdict is not None:
            await self._rollback(plan, ctx)
            wait = ABORT_VERIFY_S if verdict is Verdict.ABORTED else VERIFY_WAIT_S
            unmet = await self._verify(plan, wait)
            if unmet:
                reason += f"; steady state not back: {'; '.join(unmet)}"
            return self._outcome(verdict, reason, plan)
        unmet = await self._verify(plan, VERIFY_WAIT_S)
        if unmet:
            return self._outcome(Verdict.FAILED, f"steady state not back: {'; '.join(unmet)}", plan)
        missed = self._missed(plan)
        if missed:
            return self._outcome(Verdict.FAILED, "missed: " + "; ".join(missed), plan)
        return self._outcome(Verdict.PASSED, "every step done, steady state back, targets met", plan)

    async def _method(self, plan: Plan, ctx: Context) -> tuple[Verdict | None, str]:
        for i, step in enumerate(plan.method, 1):
            if self.abort.is_set():
                return Verdict.ABORTED, self.abort_reason
            result = await self._do(step, ctx, f"step {i}")
            if result.status == "unknown":
                return Verdict.UNKNOWN, f"step {i} ({step.label}): {result.detail}"
            if result.status == "failed":
                if self.abort.is_set():
                    return Verdict.ABORTED, self.abort_reason
                return Verdict.FAILED, f"step {i} ({step.label}) failed: {result.detail}"
        return None, ""

    async def _do(self, step: Step, ctx: Context, where: str) -> StepResult:
        step = replace(step, label=resolve(step.label, ctx.values), args=resolve(dict(step.args), ctx.values),
                       verify=resolve(step.verify, ctx.values))
        skip = step.args.get("skip_node")
        if skip is not None and skip == ctx.values.get("candidate"):
            self._note("step", f"{where}: {step.label}: not needed ({skip} is the one promoted)", "skipped")
            return StepResult("skipped", f"{skip} is the one promoted")
        if step.irreversible:
            self._started_irreversible = True
        if step.name:
            self._started.add(step.name)
        started, at = self.clock(), self.wall()
        self._note("step", f"{where}: {step.label}", "running", irreversible=step.irreversible)
        result = await asyncio.shield(asyncio.ensure_future(run_step(step, ctx)))
        if result.status == "unknown" and step.verify:
            result = await self._settle_unknown(step, ctx, result)
        took = self.clock() - started
        self.figures.update({k: v for k, v in result.figures.items()})
        record = {"step": where, "label": step.label, "status": result.status, "detail": result.detail,
                  "started": at, "seconds": round(took, 3), "irreversible": step.irreversible}
        (self.rollbacks if where == "rollback" else self.step_log).append(record)
        self._note("step", f"{where}: {step.label}: {result.status} ({took:.2f}s)"
                   + (f": {result.detail}" if result.detail else ""), result.status, seconds=round(took, 3))
        return result

    async def _settle_unknown(self, step: Step, ctx: Context, result: StepResult) -> StepResult:
        """No answer: find out from the stack whether it happened; never send it again."""
        self._note("note", f"RESULT UNKNOWN: {step.label}: {result.detail}; re-polling '{step.verify}'", "unknown")
        met, seen = await wait_until(Condition.parse(step.verify), ctx, UNKNOWN_POLL_S)
        if met:
            return StepResult("ok", f"{result.detail}; it happened: {step.verify} ({seen})")
        return StepResult("unknown", f"{result.detail}; still unknown after {UNKNOWN_POLL_S:g}s ({seen})")

    async def _rollback(self, plan: Plan, ctx: Context) -> None:
        if not self.rollback_wanted:
            self._note("phase", "rollback skipped: aborted without rollback", "skipped")
            return
        if self._started_irreversible:
            self._note("phase", "no automatic rollback: an irreversible step has run "
                       f"({', '.join(s.label for s in plan.irreversible_steps)})", "skipped")
            return
        self._note("phase", "rollback", "running")
        ctx.abort = asyncio.Event()          # the rollback's own waits must not see the abort
        for step in plan.rollback:
            if step.after and step.after not in self._started:
                continue
            if step.unless and Condition.parse(step.unless).judge(self.engine.snapshot())[0]:
                self._note("step", f"rollback: {step.label}: not needed ({step.unless})", "skipped")
                continue
            await self._do(step, ctx, "rollback")

    async def _hold(self, conditions: tuple[str, ...], wait_s: float) -> list[str]:
        """The conditions not met within wait_s (each polled on the engine's snapshots)."""
        end = self.clock() + wait_s
        parsed = [Condition.parse(c) for c in conditions]
        while True:
            judged = [(c, *c.judge(self.engine.snapshot())) for c in parsed]
            unmet = [f"{c.text} (seen {seen})" for c, met, seen in judged if not met]
            if not unmet or self.clock() >= end:
                return unmet
            await asyncio.sleep(0.2)

    async def _verify(self, plan: Plan, wait_s: float) -> list[str]:
        self._note("phase", "steady state again", "running")
        # Stopped before anything irreversible: the rollback should have brought back the
        # state it started from. Otherwise the stack is a new one: the plan's `verify`.
        wanted = plan.verify if self._started_irreversible and plan.verify else plan.steady_state
        conditions = tuple(resolve(c, self._values) for c in wanted)
        unmet = await self._hold(conditions, wait_s)
        for text in conditions:
            self._note("check", text, "failed" if any(u.startswith(text) for u in unmet) else "ok")
        return unmet

    def _missed(self, plan: Plan) -> list[str]:
        missed = []
        for name, (op, limit) in plan.limits.items():
            value = self.figures.get(name)
            if value is None:
                missed.append(f"{name} not measured")
            elif not compare(value, op, float(limit)):
                missed.append(f"{name} {value:g} (target {op} {limit:g})")
        return missed

    # ------------------------------------------------------------ end

    def _outcome(self, verdict: Verdict, reason: str, plan: Plan | None) -> Outcome:
        if self.engine is not None and self._uptime_from is not None:
            # Uptime over the drill's window: from the method's start to now.
            answered, attempts = (now - then for now, then in zip(self.engine.uptime(), self._uptime_from))
            if attempts:
                self.figures["uptime"] = round(answered / attempts, 5)
        return Outcome(verdict, reason, self.drill.name, plan.target if plan else (self.drill.target or "?"),
                       self.run_name, figures=dict(self.figures), plan=plan.describe() if plan else [])

    def _finish(self, outcome: Outcome, plan: Plan | None, attempt) -> None:
        outcome.journal = str(self.files.journal)
        if self.journal is not None:
            paths = reports.write(self.files, outcome, plan, self.step_log, self.rollbacks,
                                  self.journal.entries, self.wall(), self.config.path)
            outcome.report_md, outcome.report_json = (str(p) for p in paths)
        timings = {s["label"]: s["seconds"] for s in self.step_log}
        if attempt is not None:
            attempt.outcome(outcome.verdict.value, outcome.reason, timings=timings, figures=outcome.figures)
        self._note("end", f"{outcome.verdict.value}: {outcome.reason}", outcome.verdict.value,
                   **outcome.as_dict())
