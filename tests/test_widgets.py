"""The widgets repaint only the cells that changed (bytes to the terminal over SSH)."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from widgets.row_table import RowTable
from widgets.text_line import TextLine, changed_span

pytestmark = pytest.mark.anyio


def kpis(hits: str, style: str = "bold") -> Text:
    text = Text("Offload ")
    text.append("91%", style="bold")
    text.append(" ok  Hits ")
    text.append(hits, style=style)
    text.append(" ok")
    return text


def test_same_text_has_no_changed_span():
    assert changed_span(kpis("84%"), kpis("84%")) is None


def test_changed_span_covers_only_the_figure_that_moved():
    old, new = kpis("84%"), kpis("86%")
    start, end = changed_span(old, new)
    assert (start, end) == (old.plain.index("84%") + 1, old.plain.index("84%") + 2)


def test_a_style_change_alone_is_a_change():
    old, new = kpis("84%"), kpis("84%", style="bold red")
    start, end = changed_span(old, new)
    assert old.plain[start:end] == "84%"


def test_a_shorter_text_repaints_the_cells_it_leaves():
    start, end = changed_span(Text("lag 1.2 MB"), Text("lag 0 B"))
    assert (start, end) == (4, 10)


def test_wide_characters_repaint_the_whole_line():
    assert changed_span(Text("名前 12"), Text("名前 13")) == (0, 7)


class Board(App):
    def compose(self) -> ComposeResult:
        yield TextLine(kpis("84%"), id="line")
        yield RowTable(id="table")


def record_refreshes(widget, seen: list) -> None:
    original = widget.refresh

    def refresh(*regions, **kwargs):
        seen.append((regions, kwargs))
        return original(*regions, **kwargs)

    widget.refresh = refresh


async def test_text_line_refreshes_only_the_changed_cells():
    app = Board()
    async with app.run_test(size=(80, 10)) as pilot:
        line = app.query_one("#line", TextLine)
        seen: list = []
        record_refreshes(line, seen)
        line.set_text(kpis("84%"))
        assert seen == []
        line.set_text(kpis("86%"))
        at = kpis("84%").plain.index("84%") + 1
        assert seen == [((Region(at, 0, 1, 1),), {})]
        await pilot.pause()


async def test_row_table_refreshes_only_the_changed_cells_of_changed_rows():
    app = Board()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one("#table", RowTable)
        table.set_columns(["Node", "Lag"], [10, 8])
        rows = [("a", [Text("primary"), Text("-")]), ("b", [Text("replica-1"), Text("0 B")])]
        table.set_rows(rows)
        await pilot.pause()
        seen: list = []
        record_refreshes(table, seen)
        table.set_rows([rows[0], ("b", [Text("replica-1"), Text("16 kB")])])
        assert seen == [((Region(10, 2, 5, 1),), {})]     # row 2 (after the header), "0 B" -> "16 kB"
        seen.clear()
        table.set_rows([rows[1], rows[0]])                   # rows swapped: whole lines, cursor too
        assert seen == [((Region(0, 1, table.size.width, 1), Region(0, 2, table.size.width, 1)), {})]
