"""The replay timeline: where the cursor is in a recording, and where states changed.

    ▶ 10x  10:30:00 ━━━━━━━━│━━━━━●━━━━━│━━━━━━━━ 11:00:00  2 changes  space play  ←/→ step  [/] ±1m  n/N change  g go to

Drawn from plain values (the span, the cursor, the change times), so it knows nothing
of recordings; `|` or `!` mark state changes, `●` the cursor. Under TERM=dumb the line
is plain ASCII.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from widgets.text_line import TextLine

HINTS = "space play/pause  ←/→ step  [/] ±1m  n/N change  g go to  +/- speed"


@dataclass(frozen=True)
class TimelineView:
    start: float
    end: float
    cursor: float
    changes: tuple[float, ...]
    speed: int
    playing: bool
    following: bool = False


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


def render(view: TimelineView | None, width: int, ascii_only: bool = False) -> Text:
    if view is None:
        return Text(" the recording is empty: nothing to replay yet", style="dim")
    # "||", not U+23F8: that glyph is missing from many terminal fonts.
    mode = "LIVE" if view.following else (f"{'>' if ascii_only else '▶'} {view.speed}x" if view.playing
                                         else f"|| {view.speed}x")
    head = Text(f" {mode:<7} {_clock(view.start)} ", style="bold")
    tail = Text(f" {_clock(view.end)}  {len(view.changes)} change{'s' if len(view.changes) != 1 else ''}  ")
    hints = Text(HINTS if not ascii_only else HINTS.replace("←/→", "left/right"), style="dim")
    room = width - head.cell_len - tail.cell_len - (hints.cell_len if width >= 140 else 0)
    bar = _bar(view, max(10, room), ascii_only)
    line = head + bar + tail
    if width >= 140:
        line += hints
    return line


def _bar(view: TimelineView, cells: int, ascii_only: bool) -> Text:
    span = max(view.end - view.start, 1e-9)

    def cell(at: float) -> int:
        return min(cells - 1, max(0, int((at - view.start) / span * (cells - 1) + 0.5)))

    chars = ["-" if ascii_only else "━"] * cells
    styles = ["dim"] * cells
    for at in view.changes:
        chars[cell(at)], styles[cell(at)] = ("|" if ascii_only else "│"), "bold yellow"
    here = cell(view.cursor)
    chars[here], styles[here] = ("O" if ascii_only else "●"), "bold magenta"
    text = Text()
    for char, style in zip(chars, styles):
        text.append(char, style=style)
    return text


class Timeline(TextLine):
    """One line at the bottom of a replay."""

    def show(self, view: TimelineView | None, ascii_only: bool = False) -> None:
        self.set_text(render(view, max(20, self.size.width or 120), ascii_only))
