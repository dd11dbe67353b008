"""What one suite run produced: a verdict, counts, failing cases, request stats, last lines.

The CLI (`suite run --json`), the TUI's suites screen and any history read the same
frozen values; the runner builds them and nothing downstream parses output again.
Every string in here has already passed the redaction chokepoint.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field


class SuiteKind(str, enum.Enum):
    PYTEST = "pytest"     # judged by its JUnit XML
    LOCUST = "locust"     # judged by its exit code, figures from its CSV stats
    COMMAND = "command"   # any other configured command: judged by its exit code

    def __str__(self) -> str:
        return self.value


class Verdict(str, enum.Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"          # the suite ran and a check failed
    ERROR = "ERROR"            # the suite could not give an answer (crash, no report, killed)
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"

    def __str__(self) -> str:
        return self.value


# `scaledash suite run` exit codes; 3 (could not run) never has a result.
EXIT_PASSED, EXIT_FAILED, EXIT_NO_ANSWER, EXIT_COULD_NOT_RUN = 0, 1, 2, 3


def exit_code(verdict: Verdict) -> int:
    """0 passed, 1 failed, 2 for a run that gave no answer (ERROR, TIMEOUT, CANCELLED)."""
    if verdict is Verdict.PASSED:
        return EXIT_PASSED
    if verdict is Verdict.FAILED:
        return EXIT_FAILED
    return EXIT_NO_ANSWER


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors


@dataclass(frozen=True)
class CaseFailure:
    """One failed or errored test case."""

    name: str              # "<classname>::<name>" as pytest's JUnit XML names it
    message: str           # the first line pytest gave (redacted, sanitised)
    duration_s: float
    error: bool = False    # True for an error (setup/teardown/collection), False for a failure


@dataclass(frozen=True)
class CaseSkip:
    """One skipped test case and why: a check the stack could not take is said, not hidden."""

    name: str
    reason: str


@dataclass(frozen=True)
class RequestStats:
    """One row of Locust's `<prefix>_stats.csv`: one request kind, or the aggregate."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class SuiteResult:
    name: str
    kind: SuiteKind
    verdict: Verdict
    started_at: float                 # wall clock, epoch seconds
    finished_at: float
    duration_s: float                 # monotonic, not finished_at - started_at
    exit_code: int | None             # the suite process's; negative: killed by that signal
    reason: str | None = None         # one line: why it is not PASSED (or a note)
    counts: Counts = Counts()
    failures: tuple[CaseFailure, ...] = ()
    skips: tuple[CaseSkip, ...] = ()
    requests: tuple[RequestStats, ...] = ()     # Locust: per request kind
    requests_total: RequestStats | None = None  # Locust: its "Aggregated" row
    tail: tuple[str, ...] = field(default=(), repr=False)   # last lines of output

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_json(self) -> dict:
        """The `suite run --json` contract (README, "Suites")."""
        return {
            "suite": self.name,
            "kind": self.kind.value,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": round(self.duration_s, 3),
            "exit_code": self.exit_code,
            "counts": {"passed": self.counts.passed, "failed": self.counts.failed,
                       "skipped": self.counts.skipped, "errors": self.counts.errors},
            "failures": [{"name": f.name, "message": f.message, "duration_s": round(f.duration_s, 3),
                          "error": f.error} for f in self.failures],
            "skips": [{"name": k.name, "reason": k.reason} for k in self.skips],
            "requests": [_stats_json(r) for r in self.requests],
            "requests_total": _stats_json(self.requests_total) if self.requests_total else None,
            "tail": list(self.tail),
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)


def _stats_json(r: RequestStats) -> dict:
    return {"method": r.method, "name": r.name, "requests": r.requests, "failures": r.failures,
            "failure_rate": _number(r.failure_rate), "rps": _number(r.rps),
            "failures_per_s": _number(r.failures_per_s),
            "p50_ms": _number(r.p50_ms), "p95_ms": _number(r.p95_ms), "p99_ms": _number(r.p99_ms)}
