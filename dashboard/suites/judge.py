"""The verdict of a finished run, from how it ended and what it left behind.

pytest: its JUnit XML decides (exit 0 and 1 with a report; anything else, or no
report, is ERROR: a suite whose conftest raised, or that collected nothing, proves
nothing). Locust: its exit code decides (thresholds set it), with the figures from
its CSV stats, and no stats is ERROR; a locustfile names what it judged in lines
`load check failed: <name>: <detail>` / `load check skipped: <name>: <why>`, which
become the result's failures and skips (the shipped `load` suite prints them). Any
other command: its exit code. A run that was cancelled or timed out is that, whatever
it left.
"""

from __future__ import annotations

import re
from pathlib import Path

from dashboard.redact import safe_message
from dashboard.suites.catalog import SuiteSpec
from dashboard.suites.reports import parse_junit, parse_locust_stats
from dashboard.suites.results import CaseFailure, CaseSkip, Counts, SuiteKind, SuiteResult, Verdict

# pytest's exit codes (pytest.ExitCode): 0 ok, 1 tests failed, 2 interrupted,
# 3 internal error, 4 usage error (a conftest that fails to import), 5 no tests collected.
_PYTEST_REASONS = {2: "pytest was interrupted (a collection error?)", 3: "pytest internal error",
                   4: "pytest usage error (a conftest that failed to import?)", 5: "no tests were collected"}


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _pytest_verdict(code: int | None, junit: Path | None) -> tuple[Verdict, str | None, object]:
    report = parse_junit(junit) if junit else None
    if code not in (0, 1):
        reason = _PYTEST_REASONS.get(code, f"pytest ended with {_exit_text(code)}")
        return Verdict.ERROR, reason, report
    if report is None:
        return Verdict.ERROR, f"pytest left no usable JUnit report ({_exit_text(code)})", None
    bad = report.counts.failed + report.counts.errors
    if code == 1 or bad:
        return Verdict.FAILED, f"{report.counts.failed} failed, {report.counts.errors} errors", report
    if report.counts.total == 0:
        return Verdict.ERROR, "no tests ran", report
    if report.counts.passed == 0:   # a suite that skipped everything checked nothing: not a pass
        return Verdict.ERROR, f"every test was skipped ({report.counts.skipped}): nothing was checked", report
    return Verdict.PASSED, None, report


_LOCUST_CHECK = re.compile(r"load check (failed|skipped): ([^:]{1,80}): (.*)$")


def _locust_checks(tail: tuple[str, ...]) -> tuple[tuple[CaseFailure, ...], tuple[CaseSkip, ...]]:
    """The checks a locustfile said it missed or skipped (lines already redacted by the runner)."""
    failures, skips = [], []
    for line in tail:
        if match := _LOCUST_CHECK.search(line):
            outcome, name, detail = match.groups()
            if outcome == "failed":
                failures.append(CaseFailure(name.strip(), detail.strip(), 0.0))
            else:
                skips.append(CaseSkip(name.strip(), detail.strip()))
    return tuple(failures), tuple(skips)


def _locust_verdict(code: int | None, stats: Path | None,
                    missed: tuple[CaseFailure, ...] = ()) -> tuple[Verdict, str | None, object]:
    parsed = parse_locust_stats(stats) if stats else None
    if parsed is None:
        return Verdict.ERROR, f"Locust left no stats ({_exit_text(code)})", None
    if code == 0:
        return Verdict.PASSED, None, parsed
    if code == 1:
        if missed:
            return Verdict.FAILED, "missed: " + "; ".join(f"{f.name} ({f.message})" for f in missed), parsed
        return Verdict.FAILED, "Locust reported failures or a missed threshold (exit code 1)", parsed
    return Verdict.ERROR, f"Locust ended with {_exit_text(code)}", parsed


def _command_verdict(code: int | None) -> tuple[Verdict, str | None]:
    if code == 0:
        return Verdict.PASSED, None
    if code is None or code < 0:
        return Verdict.ERROR, _exit_text(code)
    return Verdict.FAILED, "the command failed"


def judge(spec: SuiteSpec, *, returncode: int | None, ending: Verdict | None, timeout_s: float,
          junit_path: Path | None, locust_stats: Path | None, started_at: float, duration_s: float,
          tail: tuple[str, ...], problem: str | None = None) -> SuiteResult:
    """The SuiteResult of a run that has ended (its group already gone)."""
    report = parsed = None
    checks: tuple[tuple[CaseFailure, ...], tuple[CaseSkip, ...]] = ((), ())
    if spec.kind is SuiteKind.PYTEST:
        verdict, reason, report = _pytest_verdict(returncode, junit_path)
    elif spec.kind is SuiteKind.LOCUST:
        checks = _locust_checks(tail)
        verdict, reason, parsed = _locust_verdict(returncode, locust_stats, checks[0])
    else:
        verdict, reason = _command_verdict(returncode)
    if ending is Verdict.TIMEOUT:
        verdict, reason = ending, f"timed out after {timeout_s:g} s"
    elif ending is Verdict.CANCELLED:
        verdict, reason = ending, "cancelled"
    if problem:
        verdict, reason = Verdict.ERROR, problem
    return SuiteResult(
        name=spec.name, kind=spec.kind, verdict=verdict, started_at=started_at,
        finished_at=started_at + duration_s, duration_s=duration_s, exit_code=returncode,
        reason=safe_message(reason, 300) if reason else None,
        counts=report.counts if report else Counts(), failures=report.failures if report else checks[0],
        skips=report.skips if report else checks[1],
        requests=parsed[0] if parsed else (), requests_total=parsed[1] if parsed else None,
        tail=tail)

