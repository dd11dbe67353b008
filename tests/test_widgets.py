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


# ---------------------------------------------------------------- names and state cells

from dashboard.model import Component, Kind, State  # noqa: E402
from widgets.names import fit_middle, shown_names  # noqa: E402
from widgets.style import state_text  # noqa: E402


def component(name: str, detail: str | None = None, source: str = "scrape", target: str = "service") -> Component:
    return Component(Kind.CACHE, name, State.OK, None, source, target, 0.1, {}, detail=detail)


def test_a_long_name_is_cut_in_the_middle_and_keeps_its_tail():
    assert fit_middle("items/memory-2", 10) == "item…ory-2"
    assert fit_middle("items/memory", 12) == "items/memory"


def test_names_sharing_a_prefix_show_different_text():
    rows = [component("items", "memory"), component("items", "memory-2"), component("items", "redis")]
    shown = shown_names(rows, 10)
    assert len(set(shown.values())) == 3


def test_names_that_differ_only_in_the_middle_are_cut_where_they_differ():
    rows = [component("cache-a-xxxxxxxx"), component("cache-b-xxxxxxxx")]
    assert fit_middle(rows[0].name, 10) == fit_middle(rows[1].name, 10)       # the default cut would merge them
    shown = shown_names(rows, 10)
    assert len(set(shown.values())) == 2 and all(len(text) <= 10 for text in shown.values())


def test_one_name_from_two_scrapes_names_each_source_and_a_probed_twin_keeps_its_name():
    rows = [component("hello", target="svc-a"), component("hello", target="svc-b"),
            component("hello", source="http", target="hello")]
    shown = shown_names(rows, 30)
    assert shown[rows[2].key] == "hello"
    assert shown[rows[0].key] == "↳hello@svc-a" and shown[rows[1].key] == "↳hello@svc-b"


def test_scraped_rows_without_a_probed_twin_carry_no_mark():
    rows = [component("items", "memory"), component("redis", source="redis", target="redis")]
    assert set(shown_names(rows, 30).values()) == {"items/memory", "redis"}


def test_a_state_cell_drops_the_age_rather_than_cut_it():
    assert state_text(State.STALE, 12.4, width=9).plain == "STALE 12s"
    assert state_text(State.STALE, 150.0, width=9).plain == "STALE 2m"
    assert state_text(State.NO_DATA, 12.4, width=9).plain == "NO DATA"
    assert state_text(State.DEGRADED, 0.2, warning=True, width=9).plain == "DEGRADED!"
    assert state_text(State.OK, 0.2, width=9).plain == "OK"


def test_a_dumb_terminal_gets_an_ascii_via_mark():
    rows = [component("hello"), component("hello", source="http", target="hello")]
    assert shown_names(rows, 30, ascii_only=True)[rows[0].key] == "~hello"


@pytest.mark.parametrize("lag_bytes", [0, 1536, 9.9 * 2**20, 151 * 2**10, 1023 * 2**20, 1.5 * 2**30, 999 * 2**30])
@pytest.mark.parametrize("lag_seconds", [0.0, 9.9, 59.9, 3599.0, 86000.0])
def test_a_replica_lag_always_fits_its_column_with_its_unit(lag_bytes, lag_seconds):
    """Seen on the lab: "149 KiB 32.6s" in a 13-wide column read "149 KiB 32.6", a figure
    without its unit. The column holds the widest figure and a gap."""
    from widgets.rows import PANELS, RowContext
    from widgets.rows.replica import LAG_WIDTH, lag

    c = Component(Kind.REPLICA, "replica-1", State.DEGRADED, None, "postgres", "replica-1", 0.1,
                  {"role": "replica", "lag_bytes": lag_bytes, "lag_seconds": lag_seconds})
    text = lag(c, RowContext(read_share={}))
    assert len(text) <= LAG_WIDTH - 1 and text.endswith(("s", "m", "h")), text
    for columns in (PANELS["replica"].wide, PANELS["replica"].compact):
        assert next(col.width for col in columns if col.key == "lag") == LAG_WIDTH
