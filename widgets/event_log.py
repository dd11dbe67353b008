"""The event log: state transitions and notices, newest first, with timestamps."""

from __future__ import annotations

import time

from rich.text import Text

from dashboard.model import Event
from dashboard.redact import sanitize
from widgets.style import STATE_STYLE
from widgets.text_line import TextLine


class EventLog(TextLine):
    def show(self, events: tuple[Event, ...], room: int) -> None:
        lines = events[: max(room, 1)]
        key = tuple((e.at, e.message) for e in lines)
        if key == getattr(self, "_last", None):
            return
        self._last = key
        text = Text()
        if not lines:
            text.append("no events yet", style="dim")
        for i, event in enumerate(lines):
            if i:
                text.append("\n")
            text.append(time.strftime("%H:%M:%S ", time.localtime(event.at)), style="dim")
            style = STATE_STYLE.get(event.state, "") if event.state else ""
            text.append(sanitize(event.message, 160), style=style)
        self.set_text(text)
