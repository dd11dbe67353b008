"""The suites screen's widgets: the suite list, the live output, a run's result.

They draw what the screen hands them and hold no state of the runs. Every string
from a suite (names, lines, failure messages, request names) is drawn as plain Text
through `sanitize`, never as markup: a test name like "[red]x" stays literal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import RichLog

from dashboard import format as fmt
from dashboard.redact import sanitize
from dashboard.suites.results import RequestStats, SuiteKind, SuiteResult, Verdict
from widgets.text_line import TextLine

VERDICT_STYLE = {Verdict.PASSED: "green", Verdict.FAILED: "bold red", Verdict.ERROR: "bold yellow",
                 Verdict.TIMEOUT: "bold yellow", Verdict.CANCELLED: "dim"}
RUNNING, NEVER, NOT_RUN = "RUNNING", "-", "NOT RUN"
WORD_STYLE = {RUNNING: "bold cyan", NOT_RUN: "bold yellow", NEVER: "dim"}
FAILURES_SHOWN = 20


@dataclass(frozen=True)
class SuiteRow:
    """One line of the suite list, as the screen sees it now."""

    name: str
    kind: str
    source: str
    generates_load: bool
    word: str                      # a verdict, RUNNING, NOT RUN, or "-" (never run)
    summary: str = ""              # counts, or the progress of a running suite
    duration_s: float | None = None
    age_s: float | None = None     # since the last result, in this session
    runs: int = 0                  # results in the session history


def word_text(word: str) -> Text:
    try:
        style = VERDICT_STYLE[Verdict(word)]
    except ValueError:
        style = WORD_STYLE.get(word, "")
    return Text(word, style=style)


class SuiteTable(TextLine):
    """The suites, one per line, the selected one marked; no focus, the screen has the keys."""

    def show(self, rows: tuple[SuiteRow, ...], cursor: int) -> None:
        width = max([len(r.name) for r in rows] + [5])
        text = Text()
        head = f"  {'suite':<{width}}  {'kind':<7} {'source':<10} {'load':<4} {'last':<9} {'took':>7} {'age':>6}  result"
        text.append(head, style="bold")
        if not rows:
            text.append("\n  no suites: none shipped, none configured", style="dim")
        for i, row in enumerate(rows):
            text.append("\n")
            text.append_text(self._line(row, width, selected=i == cursor))
        self.set_text(text)

    @staticmethod
    def _line(row: SuiteRow, width: int, selected: bool) -> Text:
        line = Text("> " if selected else "  ", style="bold" if selected else "")
        line.append(f"{sanitize(row.name, 60):<{width}}", style="reverse" if selected else "bold")
        line.append(f"  {row.kind:<7} {row.source:<10} ")
        line.append(f"{'yes' if row.generates_load else '':<4} ", style="yellow")
        line.append_text(word_text(row.word))
        line.append(" " * max(1, 10 - len(row.word)))
        took = fmt.seconds(row.duration_s) if row.duration_s is not None else "-"
        age = fmt.seconds(row.age_s) if row.age_s is not None else "-"
        line.append(f"{took:>6} {age:>6}  ")
        line.append(sanitize(row.summary, 80))
        if row.runs > 1:
            line.append(f"  ({row.runs} runs)", style="dim")
        return line


class SuiteLog(RichLog):
    """The live output of one suite: the newest lines, bounded, plain text only."""

    def __init__(self, max_lines: int, **kwargs) -> None:
        super().__init__(max_lines=max_lines, wrap=False, markup=False, highlight=False, **kwargs)
        self._source: object = None
        self._written = 0

    def show(self, source: object, lines: tuple[str, ...], count: int) -> None:
        """Draw the lines of `source` (a run); `count` is how many it printed in all, so
        only the new ones are written when the source is the one already shown."""
        if source is not self._source or count < self._written:
            self.clear()
            self._source, self._written = source, 0
        new = min(count - self._written, len(lines))
        for line in lines[len(lines) - new:] if new > 0 else ():
            self.write(Text(sanitize(line, 500)))
        self._written = count


def counts_text(result: SuiteResult) -> str:
    c = result.counts
    if result.kind is SuiteKind.LOCUST and result.requests_total:
        t = result.requests_total
        return f"{t.requests} requests, {t.failure_rate:.1%} failed, {t.rps:.1f} req/s"
    if result.kind is SuiteKind.PYTEST:
        return f"{c.passed} passed, {c.failed} failed, {c.skipped} skipped, {c.errors} errors"
    return f"exit code {result.exit_code}" if result.exit_code is not None else ""


def short_counts(result: SuiteResult) -> str:
    """Counts for a list row: the categories that are not zero (passed always)."""
    c = result.counts
    if result.kind is not SuiteKind.PYTEST:
        return counts_text(result)
    parts = [f"{c.passed} passed"] + [f"{n} {word}" for n, word in ((c.failed, "failed"), (c.skipped, "skipped"),
                                                                  (c.errors, "errors")) if n]
    return ", ".join(parts)


def result_text(result: SuiteResult) -> Text:
    """The parsed result: verdict word, counts, failing tests with messages, request stats."""
    text = Text()
    text.append_text(word_text(result.verdict.value))
    text.append(f"  {sanitize(result.name, 60)} in {result.duration_s:.1f} s, "
                f"{time.strftime('%H:%M:%S', time.localtime(result.finished_at))}")
    if result.reason:
        text.append(f": {sanitize(result.reason, 200)}")
    summary = counts_text(result)
    if summary:
        text.append(f"\n  {summary}")
    for failure in result.failures[:FAILURES_SHOWN]:
        text.append("\n  ")
        text.append("ERROR " if failure.error else "FAILED ", style="bold red")
        text.append(sanitize(failure.name, 160), style="bold")
        text.append(f": {sanitize(failure.message, 200)}")
    if len(result.failures) > FAILURES_SHOWN:
        text.append(f"\n  and {len(result.failures) - FAILURES_SHOWN} more failures", style="dim")
    for skip in result.skips[:5]:
        text.append(f"\n  SKIPPED {sanitize(skip.name, 120)}: {sanitize(skip.reason, 160)}", style="dim")
    for stats in result.requests + ((result.requests_total,) if result.requests_total else ()):
        text.append(f"\n  {_stats_line(stats)}")
    return text


def _stats_line(s: RequestStats) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:g} ms"
    return (f"{sanitize(s.method or 'all', 8):<6} {sanitize(s.name, 60)}: {s.requests} requests, "
            f"{s.failures} failures ({s.failure_rate:.1%}), {s.rps:.1f} req/s, p50 {ms(s.p50_ms)}, "
            f"p95 {ms(s.p95_ms)}, p99 {ms(s.p99_ms)}")


class SuiteDetail(TextLine):
    """The selected suite's state: its progress while it runs, else its last result, or
    its history (newest first) when asked."""

    def show_text(self, text: Text) -> None:
        self.set_text(text)


def progress_text(name: str, progress_line: str, lines_seen: int) -> Text:
    text = Text()
    text.append_text(word_text(RUNNING))
    text.append(f"  {sanitize(name, 60)}: {sanitize(progress_line, 80)}")
    text.append(f"  ({lines_seen} lines)  c cancels", style="dim")
    return text


def not_run_text(name: str, reason: str, at: float) -> Text:
    text = word_text(NOT_RUN)
    text.append(f"  {sanitize(name, 60)} at {time.strftime('%H:%M:%S', time.localtime(at))}: "
                f"{sanitize(reason, 300)}")
    return text


def history_line(result: SuiteResult) -> Text:
    line = Text(time.strftime("%H:%M:%S ", time.localtime(result.finished_at)), style="dim")
    line.append_text(word_text(result.verdict.value))
    line.append(f" {result.duration_s:.1f} s  {sanitize(counts_text(result), 120)}")
    if result.failures:
        line.append(f"  first failure: {sanitize(result.failures[0].name, 120)}")
    return line
