"""Read what a finished suite left behind: pytest's JUnit XML, Locust's CSV stats.

Separate from the runner because these are pure functions over files, tested on files
real pytest and Locust runs wrote. Both readers are defensive: a crashed or killed run
leaves no file, an empty one or half of one, and that is an answer (None), never an
exception; the runner turns it into an ERROR with the last lines of output.
"""

from __future__ import annotations

import csv
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from dashboard.redact import safe_message, sanitize
from dashboard.suites.results import CaseFailure, CaseSkip, Counts, RequestStats

# A report larger than this is not a test report we can use (and would cost memory).
MAX_REPORT_BYTES = 32 * 1024 * 1024
MAX_FAILURES = 200            # failing (and skipped) cases kept; the counts still count them all
MESSAGE_LIMIT = 300


def shown(text: str, limit: int) -> str:
    """Suite text made safe to show: escapes stripped first, then redacted and sanitised.

    Stripping first matters: in `\x1b[31mpassword=x` the colour code glues an "m" to
    "password", and the redaction pattern, which wants a word boundary, would miss it.
    """
    return safe_message(sanitize(text, limit * 4), limit)


# pytest's JUnit writer escapes characters XML cannot hold as "#x1B"; put them back so
# that the escape sequences they belong to are stripped whole.
_XML_ESCAPED = re.compile(r"#x([0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class JunitReport:
    counts: Counts
    failures: tuple[CaseFailure, ...]
    skips: tuple[CaseSkip, ...] = ()


def _read_bounded(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError:
        return None
    return data if 0 < len(data) <= MAX_REPORT_BYTES else None


def _seconds(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def _case_name(case: ET.Element) -> str:
    classname, name = case.get("classname") or "", case.get("name") or "?"
    return safe_message(f"{classname}::{name}" if classname else name, 200)


def _message(outcome: ET.Element) -> str:
    """pytest's message attribute, else the first non-empty line of the element's text."""
    text = outcome.get("message") or ""
    if not text.strip():
        text = next((line for line in (outcome.text or "").splitlines() if line.strip()), "")
    return shown(_XML_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text.strip()), MESSAGE_LIMIT)


def parse_junit(path: Path) -> JunitReport | None:
    """Counts and failing cases from a JUnit XML file; None if it is missing or unreadable.

    Counted from the <testcase> elements, not the suite's attributes, so a file from a
    pytest that merged several suites (or from another runner) still adds up.
    """
    data = _read_bounded(path)
    if data is None:
        return None
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    passed = failed = skipped = errors = 0
    failures: list[CaseFailure] = []
    skips: list[CaseSkip] = []
    for case in root.iter("testcase"):
        outcome_errors = case.findall("error")
        outcome_failures = case.findall("failure")
        if outcome_errors or outcome_failures:
            errors += len(outcome_errors)
            failed += len(outcome_failures)
            for outcome in outcome_failures + outcome_errors:
                if len(failures) < MAX_FAILURES:
                    failures.append(CaseFailure(_case_name(case), _message(outcome), _seconds(case.get("time")),
                                                error=outcome.tag == "error"))
        elif (skip := case.find("skipped")) is not None:
            skipped += 1
            if len(skips) < MAX_FAILURES:
                skips.append(CaseSkip(_case_name(case), _message(skip)))
        else:
            passed += 1
    return JunitReport(Counts(passed, failed, skipped, errors), tuple(failures), tuple(skips))


# ------------------------------------------------------------------ Locust

def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


def _float(value: str | None) -> float | None:
    """Locust writes "N/A" for a percentile it has no sample for."""
    try:
        number = float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None
    return number if number is None or math.isfinite(number) else None


def _stats_row(row: dict) -> RequestStats:
    return RequestStats(
        method=safe_message(row.get("Type") or "", 20), name=safe_message(row.get("Name") or "?", 120),
        requests=_int(row.get("Request Count")), failures=_int(row.get("Failure Count")),
        rps=_float(row.get("Requests/s")) or 0.0, failures_per_s=_float(row.get("Failures/s")) or 0.0,
        p50_ms=_float(row.get("50%")), p95_ms=_float(row.get("95%")), p99_ms=_float(row.get("99%")))


def parse_locust_stats(path: Path) -> tuple[tuple[RequestStats, ...], RequestStats | None] | None:
    """Per-request-kind rows and the "Aggregated" row of `<prefix>_stats.csv`.

    None when the file is missing, empty or not Locust's stats (no "Request Count"
    column): Locust writes it every second while it runs and the header first, so a
    run killed before its first write leaves nothing usable.
    """
    data = _read_bounded(path)
    if data is None:
        return None
    reader = csv.DictReader(data.decode("utf-8", "replace").splitlines())
    if not reader.fieldnames or "Request Count" not in reader.fieldnames or "Name" not in reader.fieldnames:
        return None
    rows, total = [], None
    for row in reader:
        stats = _stats_row(row)
        if row.get("Name") == "Aggregated" and not row.get("Type"):
            total = stats
        else:
            rows.append(stats)
    return tuple(rows), total


# Locust's periodic console table, `current` figures: the Aggregated line ends with
# "| <req/s> <failures/s>", e.g. "  Aggregated   94   23(24.47%) |  5  1  62  4 |  35.42   8.67".
_LOCUST_AGGREGATED = re.compile(r"^\s*Aggregated\s+\d+\s+\d+\([\d.]+%\)\s*\|.*\|\s*([\d.]+)\s+([\d.]+)\s*$")


def locust_current_rps(line: str) -> float | None:
    """The current requests/s from one line of Locust's console stats, if it is that line."""
    match = _LOCUST_AGGREGATED.match(line)
    return float(match.group(1)) if match else None
