"""The drills' widgets: the drill list, and the live timeline beside the panels.

They draw what the screens hand them and hold no state of the runs. Every string from
a drill (names, reasons, journal entries, figures) is drawn as plain Text through
`sanitize`, never as markup: a journal line like "[red]x" stays literal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from dashboard import format as fmt
from dashboard.drills.model import Entry, Verdict
from dashboard.redact import sanitize
from widgets.text_line import TextLine

VERDICT_STYLE = {Verdict.PASSED.value: "green", Verdict.FAILED.value: "bold red",
                 Verdict.ABORTED.value: "bold yellow", Verdict.UNKNOWN.value: "bold magenta",
                 Verdict.REFUSED.value: "yellow", Verdict.COULD_NOT_RUN.value: "yellow",
                 Verdict.DRY_RUN.value: "dim", Verdict.CANCELLED.value: "dim"}
STATUS_STYLE = {"ok": "green", "failed": "bold red", "unknown": "bold magenta", "running": "cyan",
                "skipped": "dim", "aborting": "bold yellow"}
RUNNING, NEVER = "RUNNING", "-"


@dataclass(frozen=True)
class DrillRow:
    """One line of the drill list, as the screen sees it now."""

    name: str
    use: str
    safety: str                    # reversible | irreversible
    targets: str
    ready: str                     # "ready", "disabled: <reason>" or RUNNING
    verdict: str = NEVER           # the last run's verdict, or "-"
    figures: str = ""
    age_s: float | None = None     # since the last run ended


def verdict_text(word: str) -> Text:
    return Text(word.upper() if word not in (NEVER, RUNNING) else word,
                style=VERDICT_STYLE.get(word, "bold cyan" if word == RUNNING else "dim"))


class DrillTable(TextLine):
    """The drills, one per line, the selected one marked; the screen has the keys."""

    def show(self, rows: tuple[DrillRow, ...], cursor: int) -> None:
        width = max([len(r.name) for r in rows] + [5])
        text = Text(f"  {'drill':<{width}}  {'use':<14} {'safety':<12} {'on':<24} {'last':<14} {'age':>5}  "
                    f"state / figures", style="bold")
        if not rows:
            text.append("\n  no drills configured: see README, \"Drills\" ([[drill]] and [drills] allow)",
                        style="dim")
        for i, row in enumerate(rows):
            text.append("\n")
            text.append_text(self._line(row, width, selected=i == cursor))
        self.set_text(text)

    @staticmethod
    def _line(row: DrillRow, width: int, selected: bool) -> Text:
        line = Text("> " if selected else "  ", style="bold" if selected else "")
        line.append(f"{sanitize(row.name, 60):<{width}}", style="reverse" if selected else "bold")
        line.append(f"  {sanitize(row.use, 14):<14} ")
        line.append(f"{row.safety:<12} ", style="bold red" if row.safety == "irreversible" else "")
        line.append(f"{sanitize(row.targets, 24):<24} ")
        word = verdict_text(RUNNING if row.ready == RUNNING else row.verdict)
        line.append_text(word)
        line.append(" " * max(1, 15 - word.cell_len))
        line.append(f"{fmt.seconds(row.age_s) if row.age_s is not None else '-':>5}  ")
        if row.ready.startswith("disabled"):
            line.append(sanitize(row.ready, 160), style="yellow")
        elif row.figures:
            line.append(sanitize(row.figures, 160))
        elif row.ready != RUNNING:
            line.append(row.ready, style="dim")
        return line


def entry_text(entry: Entry) -> Text:
    """One journal entry: time, kind, text, status; the text literal, one line."""
    line = Text(time.strftime("%H:%M:%S", time.localtime(entry.at)), style="dim")
    line.append(f" {entry.kind:<5} ", style="bold" if entry.kind in ("phase", "end") else "dim")
    style = STATUS_STYLE.get(entry.status or "", "")
    if entry.kind == "end":
        style = VERDICT_STYLE.get(entry.status or "", "bold")
    line.append(sanitize(entry.text, 300), style=style if entry.kind in ("end", "phase") else "")
    if entry.status and entry.kind in ("step", "check"):
        line.append(f" [{sanitize(entry.status, 20)}]", style=style)
    return line


class DrillTimeline(TextLine):
    """A run's timeline, newest at the bottom; the head names the drill and its keys."""

    def show(self, head: Text, entries: tuple[Entry, ...], room: int) -> None:
        key = (head.plain, len(entries), entries[-1] if entries else None, room)
        if key == getattr(self, "_last", None):
            return
        self._last = key
        text = head.copy()
        shown = entries[-max(1, room - head.plain.count("\n") - 1):] if room > 0 else entries
        if not entries:
            text.append("\nwaiting for the drill's first entry", style="dim")
        for entry in shown:
            text.append("\n")
            text.append_text(entry_text(entry))
        self.set_text(text)
