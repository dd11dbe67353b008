"""A panel of component rows of one kind (or two, for edge functions and CDN URLs).

It receives components and draws them; it never polls. Only cells whose text changed
are updated, so a quiet row costs no bytes on the terminal. When rows do not fit,
the worst states come first and a summary row says what is hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from dashboard.model import Component
from widgets.columns import COLUMNS, COMPACT, TITLES, RowContext, severity_order
from widgets.style import state_text

MORE_KEY = "__more__"


class ComponentSelected(Message):
    """The user asked for the details of a component (Enter on its row)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


def component_key(c: Component) -> str:
    return "|".join(c.key)


class ComponentPanel(Vertical):
    """Title line + table for one panel kind."""

    can_focus = False

    def __init__(self, panel: str, **kwargs) -> None:
        super().__init__(id=f"panel-{panel}", classes="panel", **kwargs)
        self.panel = panel
        self._wide: bool | None = None
        self._cells: dict[str, list[str]] = {}
        self._order: list[str] = []
        self._total = 0

    def compose(self) -> ComposeResult:
        yield Static(TITLES[self.panel], classes="panel-title")
        table = DataTable(cursor_type="row", zebra_stripes=False, show_cursor=True, cell_padding=0,
                          id=f"table-{self.panel}")
        table.can_focus = True
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    def _columns(self) -> list:
        return COLUMNS[self.panel] if self._wide else COMPACT[self.panel]

    def _set_columns(self, wide: bool) -> None:
        self._wide = wide
        table = self.table
        table.clear(columns=True)
        for column in self._columns():
            table.add_column(Text(column.header, style="bold"), width=column.width, key=column.key)
        self._cells.clear()
        self._order = []

    def show(self, components: list[Component], ctx: RowContext, wide: bool, room: int) -> None:
        """Draw `components` in at most `room` rows (a summary row takes the last one)."""
        if wide != self._wide:
            self._set_columns(wide)
        shown = components
        hidden: list[Component] = []
        if room > 0 and len(components) > room:
            ranked = sorted(components, key=severity_order)
            shown, hidden = ranked[: room - 1], ranked[room - 1:]
        rows = {component_key(c): self._row_cells(c, ctx) for c in shown}
        if hidden:
            counts = Counter(c.state for c in hidden)
            worst = max(counts, key=lambda s: s.severity)
            detail = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda i: -i[0].severity))
            rows[MORE_KEY] = ([f"+{len(hidden)} more", state_text(worst), detail]
                              + [""] * (len(self._columns()) - 3))[: len(self._columns())]
        self._apply(rows)
        title = f"{TITLES[self.panel]} ({len(components)})" if components else f"{TITLES[self.panel]} (none)"
        if title != getattr(self, "_title", None):
            self._title = title
            self.query_one(".panel-title", Static).update(Text(title))

    def _row_cells(self, c: Component, ctx: RowContext) -> list:
        columns = self._columns()
        # Names longer than their column end in an ellipsis instead of being cut silently.
        ctx = replace(ctx, name_width=max(columns[0].width - 1, 4))
        return [column.cell(c, ctx) for column in columns]

    def _apply(self, rows: dict[str, list]) -> None:
        table = self.table
        order = list(rows)
        if order != self._order:
            table.clear()
            self._cells.clear()
            for key, cells in rows.items():
                table.add_row(*[_as_text(v) for v in cells], key=key)
                self._cells[key] = [_plain(v) for v in cells]
            self._order = order
            return
        columns = self._columns()
        for key, cells in rows.items():
            previous = self._cells[key]
            for i, value in enumerate(cells):
                plain = _plain(value)
                if previous[i] != plain:
                    table.update_cell(key, columns[i].key, _as_text(value))
                    previous[i] = plain

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value and event.row_key.value != MORE_KEY:
            self.post_message(ComponentSelected(event.row_key.value))


def _as_text(value) -> Text:
    return value if isinstance(value, Text) else Text(str(value))


def _plain(value) -> str:
    if isinstance(value, Text):
        return f"{value.plain}\0{value.style}"
    return str(value)
