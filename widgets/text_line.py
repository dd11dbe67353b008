"""A widget showing one piece of rich Text, repainted without a layout pass.

Static.update() always asks for a new layout of the whole screen; for a line that
changes every second (the KPI bar) that was a visible share of the app's CPU. This
widget asks for layout only when its height may change (line count, or a first draw).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    def __init__(self, text: Text | str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = text if isinstance(text, Text) else Text(text)

    def render(self) -> Text:
        return self._text

    def set_text(self, text: Text) -> None:
        """Show `text`; nothing happens when it is what is already shown."""
        if text == self._text:
            return
        layout = text.plain.count("\n") != self._text.plain.count("\n") or len(text) > len(self._text) + 20
        self._text = text
        self.refresh(layout=layout)
