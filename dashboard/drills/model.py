"""The values a drill is made of: its steps, its plan, its timeline and its verdict.

A drill is data (DESIGN.md, "Safety model"; the Chaos Toolkit's shape): a steady-state
hypothesis, pre-flight checks, the method's steps, the steady state verified again,
and rollback steps. A `Drill` is what the catalog knows before a run (built-in or
`[[drill]]`); a `Plan` is the same drill resolved against the stack as it is now
(which replica is the candidate, which node is the primary), which is what the
operator confirms and the runner executes. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Verdict(str, enum.Enum):
    """How an attempt ended; the audit journal's `outcome` and the exit code follow it."""

    PASSED = "passed"
    FAILED = "failed"
    ABORTED = "aborted"
    UNKNOWN = "result-unknown"
    REFUSED = "refused"
    COULD_NOT_RUN = "could-not-run"
    DRY_RUN = "dry-run"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


# `scaledash drill run` exit codes: 0 passed, 1 failed verdict, 2 aborted or unknown,
# 3 refused or could not run (as `check`: 3 is "no answer from here").
EXIT_CODES = {
    Verdict.PASSED: 0, Verdict.DRY_RUN: 0, Verdict.FAILED: 1, Verdict.ABORTED: 2, Verdict.UNKNOWN: 2,
    Verdict.REFUSED: 3, Verdict.COULD_NOT_RUN: 3, Verdict.CANCELLED: 3,
}

ACTIONS = ("sql", "http", "signal", "shell", "wait", "observe", "promote", "canary_start", "canary_wait",
           "canary_stop")


@dataclass(frozen=True)
class Step:
    """One action. `args` are the action's own (see actions.py); `irreversible` steps are
    never undone automatically; a rollback step with `after` runs only once the method
    step of that name has started."""

    action: str
    label: str
    args: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    irreversible: bool = False
    timeout_s: float = 30.0
    after: str | None = None
    # A destructive call that timed out is re-polled with this condition until it is
    # known ("did the promotion happen?"), never sent again.
    verify: str | None = None
    # A rollback step is skipped while this condition holds (Redis already back up).
    unless: str | None = None


@dataclass(frozen=True)
class Drill:
    """A drill as the catalog lists it, before it is resolved against the live stack."""

    name: str
    use: str                       # the built-in it is made from, or "custom"
    description: str
    targets: tuple[str, ...]       # the configured targets it acts on (permission, locks)
    options: Mapping[str, Any] = field(default_factory=dict)
    disabled: str | None = None    # why it cannot run here (no permission, missing piece)
    irreversible: bool = False

    @property
    def safety(self) -> str:
        return "irreversible" if self.irreversible else "reversible"


@dataclass(frozen=True)
class Plan:
    """A drill resolved now: what the operator confirms and the runner does."""

    drill: Drill
    target: str                               # the name the operator types to confirm
    steady_state: tuple[str, ...]             # conditions on the engine's figures
    preflight: tuple[str, ...]                # more conditions, checked once before acting
    method: tuple[Step, ...]
    rollback: tuple[Step, ...] = ()
    context: Mapping[str, str] = field(default_factory=dict)   # resolved names: candidate, ...
    topology: tuple[str, ...] = ()            # one line per node as the engine sees it now
    problems: tuple[str, ...] = ()            # pre-flight findings that refuse the run
    verify: tuple[str, ...] = ()              # the steady state after the method (default: steady_state)
    # The verdict's targets: figure -> (op, limit); a figure missing or past its limit fails.
    limits: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def irreversible_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.method if s.irreversible)

    def describe(self) -> list[str]:
        """The plan in words: the dry run prints it, the confirmation modal shows it. Names
        known only at run time (the replica promoted) read as what they will be."""
        return [line.replace("{candidate}", "the new primary") for line in self._lines()]

    def _lines(self) -> list[str]:
        lines = [f"drill {self.drill.name} on {self.target} ({self.drill.safety})"]
        lines += [f"  what: {self.drill.description}"] if self.drill.description else []
        lines += [f"  topology: {t}" for t in self.topology]
        lines += [f"  steady state: {c}" for c in self.steady_state]
        lines += [f"  pre-flight: {c}" for c in self.preflight]
        for i, step in enumerate(self.method, 1):
            mark = "  IRREVERSIBLE" if step.irreversible else ""
            lines.append(f"  step {i}: {step.label}{mark}")
        lines += [f"  rollback: {s.label}" + (f" (if '{s.after}' ran)" if s.after else "") for s in self.rollback]
        lines += [f"  target: {name} {op} {limit:g}" for name, (op, limit) in self.limits.items()]
        lines += [f"  REFUSED: {p}" for p in self.problems]
        return lines


@dataclass(frozen=True)
class StepResult:
    """What one step did: ok, failed or unknown (a destructive call with no answer)."""

    status: str                   # "ok" | "failed" | "unknown" | "skipped"
    detail: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One line of a run's timeline, as the journal holds it and the screen shows it."""

    at: float                     # wall clock
    kind: str                     # phase | step | check | state | figure | note | end
    text: str
    status: str | None = None     # ok / failed / unknown / running / a state word
    data: Mapping[str, Any] = field(default_factory=dict)
