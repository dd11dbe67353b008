"""A widget showing one piece of rich Text, repainting only the cells that changed.

Static.update() always asks for a new layout of the whole screen and repaints the whole
widget; for a line that changes every second (the KPI bar, where usually one figure of
seven moved) that was a visible share of the app's CPU and of the bytes sent to the
terminal. This widget asks for layout only when its height may change, and otherwise
refreshes just the span of each line between the first and the last changed cell.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget


def changed_span(old: Text, new: Text) -> tuple[int, int] | None:
    """The cells [start, end) where two one-line texts differ (characters or styles).

    None when they look the same; (0, widest) when the texts hold wide characters, whose
    cells do not map one to one to characters.
    """
    a, b = _cells(old), _cells(new)
    if a is None or b is None:
        return (0, max(old.cell_len, new.cell_len))
    length = max(len(a), len(b))
    blank = (" ", None)
    a += [blank] * (length - len(a))
    b += [blank] * (length - len(b))
    start = next((i for i in range(length) if a[i] != b[i]), None)
    if start is None:
        return None
    end = next(i for i in range(length, start, -1) if a[i - 1] != b[i - 1])
    return start, end


def _cells(line: Text) -> list[tuple[str, object]] | None:
    plain = line.plain
    if cell_len(plain) != len(plain):
        return None
    styles: list[object] = [line.style] * len(plain)
    for span in line.spans:
        for i in range(span.start, min(span.end, len(plain))):
            styles[i] = (styles[i], span.style)
    return list(zip(plain, styles))


def line_regions(old: list[Text], new: list[Text], y0: int = 0) -> list[Region]:
    """One region per changed line, covering only its changed cells; lines start at row y0."""
    regions = []
    for y, (a, b) in enumerate(zip(old, new)):
        if a == b:
            continue
        span = changed_span(a, b)
        if span is not None:
            start, end = span
            regions.append(Region(start, y0 + y, end - start, 1))
    return regions


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
        old, self._text = self._text, text
        old_lines, new_lines = old.split("\n"), text.split("\n")
        width = self.content_region.width
        if len(old_lines) != len(new_lines) or not width:
            self.refresh(layout=True)
            return
        if any(line.cell_len > width for line in (*old_lines, *new_lines)):
            # Wrapped lines: cells no longer map to rows; lay out only if the height changes.
            self.refresh(layout=self._height(old, width) != self._height(text, width))
            return
        regions = line_regions(old_lines, new_lines)
        if regions:
            self.refresh(*regions)

    def _height(self, text: Text, width: int) -> int:
        return len(text.wrap(self.app.console, width))
