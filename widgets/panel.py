"""A panel of component rows of one kind (or two, for edge functions and CDN URLs).

It receives components and draws them; it never polls. Rows go to a RowTable, which
repaints only the lines whose text changed. When rows do not fit, the worst states
come first and a summary row says what is hidden. A row whose figures are last known
(its probe fails, or its source stopped reporting it) shows them dimmed, so a dead
node never looks live.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from dashboard.model import MAX_ROWS_PER_SOURCE, Component, State
from widgets.rows import NOT_FIGURES, PANELS, RowContext, Trend, last_known, severity_order
from widgets.names import label, shown_names
from widgets.row_table import RowTable
from widgets.style import state_text

MORE_KEY = "__more__"
# A panel wider than its columns gives its spare room to the names, up to this much: at
# 120 columns a compact panel has ~20 to spare, and "items/memory" beats "item…emory".
NAME_ROOM = 16


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

    class Resized(Message):
        """The panel's height changed: the rows it can show changed with it."""

    def __init__(self, panel: str, **kwargs) -> None:
        super().__init__(id=f"panel-{panel}", classes="panel", **kwargs)
        self.panel = panel
        self._wide: bool | None = None
        self._layout: tuple | None = None
        self._title: str | None = None
        self._trends: dict[tuple[str, int], Text] = {}
        self._table: RowTable | None = None
        self._names_key: tuple | None = None
        self._names_shown: dict = {}

    def compose(self) -> ComposeResult:
        yield Static(PANELS[self.panel].title, classes="panel-title")
        yield RowTable(id=f"table-{self.panel}")

    @property
    def table(self) -> RowTable:
        if self._table is None:        # looked up once: a query each tick costs CSS matching
            self._table = self.query_one(RowTable)
        return self._table

    def _columns(self) -> list:
        spec = PANELS[self.panel]
        return spec.wide if self._wide else spec.compact

    def show(self, components: list[Component], ctx: RowContext, wide: bool, room: int) -> None:
        """Draw `components` in at most `room` rows (a summary row takes the last one)."""
        if wide != self._wide:
            self._wide = wide
            self._trends.clear()
        columns = self._columns()
        widths = self._widths(columns, components)
        if (wide, widths) != self._layout:
            self._layout = (wide, widths)
            self.table.set_columns([c.header for c in columns], widths)
        omitted = self._omitted(ctx)
        shown = components
        hidden: list[Component] = []
        if room > 0 and len(components) + (1 if omitted else 0) > room:
            ranked = sorted(components, key=severity_order)
            shown, hidden = ranked[: room - 1], ranked[room - 1:]
        # Names longer than their column are cut in the middle, and stay distinct.
        width = max(widths[0] - 1, 4)
        state_width = next((c.width - 1 for c in columns if c.key == "state"), ctx.state_width)
        ctx = replace(ctx, name_width=width, state_width=state_width, names=self._names(shown, width, ctx))
        rows = [(component_key(c), self._row_cells(c, ctx)) for c in shown]
        if hidden or omitted:
            rows.append((MORE_KEY, self._summary(hidden, omitted)))
        self.table.set_rows(rows)
        title = PANELS[self.panel].title
        total = len(components) + omitted
        title = f"{title} ({total})" if total else f"{title} (none)"
        if title != self._title:
            self._title = title
            self.query_one(".panel-title", Static).update(Text(title))

    def _widths(self, columns: list, components: list[Component]) -> list[int]:
        """The columns' widths, the name column widened into the panel's spare room as
        far as its longest name needs (a mark and a gap included)."""
        widths = [c.width for c in columns]
        spare = self.table.content_size.width - sum(widths)
        need = max((len(label(c)) + 2 for c in components), default=0) - widths[0]
        widths[0] += max(0, min(need, spare, NAME_ROOM))
        return widths

    def _names(self, shown: list[Component], width: int, ctx: RowContext) -> dict:
        """The rows' shown names; the same rows from the same sources keep them (most ticks)."""
        key = (tuple((c.key, c.source) for c in shown), width, ctx.ascii_only)
        if key != self._names_key:
            self._names_key, self._names_shown = key, shown_names(shown, width, ctx.ascii_only)
        return self._names_shown

    def _omitted(self, ctx: RowContext) -> int:
        """Rows of this panel's kinds that sources reported beyond the engine's bound."""
        kinds = {k.value for k in PANELS[self.panel].kinds}
        return sum(n for s in ctx.sources.values() for kind, n in (getattr(s, "rows_omitted", None) or {}).items()
                   if kind in kinds)

    def _summary(self, hidden: list[Component], omitted: int = 0) -> list[Text]:
        counts = Counter(c.state for c in hidden)
        worst = max(counts, key=lambda s: s.severity, default=State.UNKNOWN)
        parts = [f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda i: -i[0].severity)]
        if omitted:     # first: a narrow column keeps only the start of the detail
            parts.insert(0, f"{omitted} untracked ({MAX_ROWS_PER_SOURCE} rows per source)")
        return [Text(f"+{len(hidden) + omitted} more"), state_text(worst), Text(", ".join(parts))]

    def _row_cells(self, c: Component, ctx: RowContext) -> list[Text]:
        columns = self._columns()
        key = component_key(c)
        dim = self.table.last_known_style if last_known(c, ctx) else None
        cells = []
        for i, column in enumerate(columns):
            if isinstance(column.cell, Trend) and not ctx.redraw_trends and (key, i) in self._trends:
                cell = self._trends[(key, i)]
            else:
                cell = _as_text(column.cell(c, ctx))
                if isinstance(column.cell, Trend):
                    self._trends[(key, i)] = cell
            if dim is not None and column.key not in NOT_FIGURES:
                cell = cell.copy()
                cell.stylize(dim)
            cells.append(cell)
        return cells

    def on_resize(self, event) -> None:
        self.post_message(self.Resized())

    def on_row_table_selected(self, event: RowTable.Selected) -> None:
        event.stop()
        if event.key != MORE_KEY:
            self.post_message(ComponentSelected(event.key))


def _as_text(value) -> Text:
    return value if isinstance(value, Text) else Text(str(value))
