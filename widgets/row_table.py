"""A table that repaints only the cells whose text changed.

Textual's DataTable refreshes the whole widget when one cell changes, so every tick
re-sent every row of every panel to the terminal. This widget draws lines itself
(Textual's line API) and refreshes, on each line that differs from what is on screen,
only the span from its first to its last changed cell: on a quiet stack a tick costs a
few bytes, which matters on slow SSH links.
It has a cursor (up/down, Enter) and no scrolling: panels summarise what does not fit.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from widgets.text_line import line_regions


class RowTable(Widget, can_focus=True):
    """Header + rows of fixed-width cells; `set_rows` repaints only what changed."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("enter", "select", "Details", show=False),
    ]
    COMPONENT_CLASSES = {"rowtable--header", "rowtable--cursor", "rowtable--last-known"}

    class Selected(Message):
        """Enter on a row: `key` names it."""

        def __init__(self, table: "RowTable", key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._widths: list[int] = []
        self._header: list[Text] = []
        self._keys: list[str] = []
        self._lines: list[Text] = []
        self.cursor = 0

    # ------------------------------------------------------------------ data

    def set_columns(self, headers: list[str], widths: list[int]) -> None:
        self._widths = widths
        self._header = [Text(h) for h in headers]
        self._keys, self._lines = [], []
        self.refresh()

    def set_rows(self, rows: list[tuple[str, list[Text]]]) -> None:
        """Show `rows` (key, cells); lines whose text and style are unchanged are not redrawn."""
        keys = [key for key, _ in rows]
        lines = [self._join(cells) for _, cells in rows]
        if len(lines) != len(self._lines):
            self._keys, self._lines = keys, lines
            self.cursor = min(self.cursor, max(len(lines) - 1, 0))
            self.refresh()
            return
        width = self.size.width
        moved = {y for y, (a, b) in enumerate(zip(self._keys, keys)) if a != b}
        # A row that moved repaints whole (the cursor highlight may move with it); a row that
        # stayed repaints from its first to its last changed cell.
        regions = [Region(0, y + 1, width, 1) for y in sorted(moved)]
        regions += [r for r in line_regions(self._lines, lines, y0=1) if r.y - 1 not in moved]
        if regions:
            self.refresh(*regions)
        self._keys, self._lines = keys, lines

    def _join(self, cells: list[Text]) -> Text:
        line = Text(no_wrap=True, overflow="crop")
        last = len(self._widths) - 1
        for i, (cell, width) in enumerate(zip(cells, self._widths)):
            line.append_text(_fit(cell, width, gap=i < last))
        return line

    @property
    def last_known_style(self) -> Style:
        """How figures that are no longer live look (app.tcss: dimmed)."""
        return self.get_component_rich_style("rowtable--last-known", partial=True)

    @property
    def row_count(self) -> int:
        return len(self._lines)

    @property
    def selected_key(self) -> str | None:
        return self._keys[self.cursor] if self._keys else None

    # ------------------------------------------------------------------ drawing

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines) + 1

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            style = self.get_component_rich_style("rowtable--header")
            return self._strip(self._join(self._header), width, style)
        index = y - 1
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        style = self.rich_style
        if index == self.cursor and self.has_focus:
            style = style + self.get_component_rich_style("rowtable--cursor")
        return self._strip(self._lines[index], width, style)

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = list(text.render(self.app.console))
        return Strip(Segment.apply_style(segments, style)).adjust_cell_length(width, style)

    # ------------------------------------------------------------------ keys

    def action_cursor(self, step: int) -> None:
        if not self._lines:
            return
        before = self.cursor
        self.cursor = max(0, min(len(self._lines) - 1, self.cursor + step))
        if before != self.cursor:
            width = self.size.width
            self.refresh(Region(0, before + 1, width, 1), Region(0, self.cursor + 1, width, 1))

    def action_select(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


def _fit(cell: Text, width: int, gap: bool = True) -> Text:
    """The cell cut to leave one space before the next column (none after the last one),
    padded to `width`."""
    piece = cell.copy()
    piece.truncate(max(width - 1, 1) if gap else width, overflow="crop")
    piece.pad_right(width - piece.cell_len)
    return piece
