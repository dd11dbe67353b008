"""What every row renderer shares: columns, the row context, the common cells, a panel.

A column is (key, header, width, cell function). Cells are rich Text built from
sanitised strings, never markup: remote names such as "[/bold]" show literally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import Component, Kind, SourceStatus, State
from dashboard.redact import sanitize
from widgets.names import label
from widgets.sparkline import spark
from widgets.style import state_text

Cell = Callable[[Component, "RowContext"], Text | str]


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    width: int
    cell: Cell


@dataclass(frozen=True)
class RowContext:
    """Fleet-wide facts a row needs (share of reads), and the terminal's abilities."""

    read_share: dict[str, float]
    ascii_only: bool = False
    interval: float = 1.0
    name_width: int = 28
    redraw_trends: bool = True     # sparklines move only on some ticks (see SPARK_EVERY)
    sources: Mapping[str, SourceStatus] = field(default_factory=dict)   # by target
    names: Mapping[tuple, str] = field(default_factory=dict)   # shown names by key, distinct per panel
    state_width: int = 9            # room for the state word, its warning mark and the data's age


def name(c: Component, ctx: RowContext) -> str:
    shown = ctx.names.get(c.key)
    return shown if shown is not None else sanitize(label(c), ctx.name_width)


def state(c: Component, ctx: RowContext) -> Text:
    return state_text(c.state, c.age_s, ctx.interval, warning=bool(c.warning), width=ctx.state_width)


def last_known(c: Component, ctx: RowContext) -> bool:
    return figures_last_known(c, ctx.sources.get(c.target))


def figures_last_known(c: Component, source: SourceStatus | None) -> bool:
    """Whether the row's figures are from an earlier probe than the last one.

    A DOWN that a source reported in a fresh answer (pg_up == 0, an edge function's
    HTTP 503) is live; a row whose own probe fails, or that its source stopped
    reporting, shows what was last known.
    """
    if c.state is State.OK or c.age_s is None or not c.metrics:
        return False
    if c.state is State.STALE:
        return True
    return source is not None and source.consecutive_failures > 0


SOURCES = {"postgres": "pg", "redis": "rds", "scrape": "scr", "prometheus": "prom", "http": "http"}


def source(c: Component, ctx: RowContext) -> str:
    return SOURCES.get(c.source, c.source)


def m(key: str, formatter: Callable) -> Cell:
    return lambda c, ctx: formatter(c.metrics.get(key))


def history(key: str, width: int, lo: float | None = None, hi: float | None = None) -> Cell:
    return Trend(lambda c, ctx: spark(c.history.get(key, ()), width, lo, hi, ctx.ascii_only))


class Trend:
    """A sparkline cell. A sparkline shifts every tick, which would repaint its whole
    row every second; panels redraw trends only every few ticks (RowContext)."""

    def __init__(self, draw: Callable[[Component, "RowContext"], str]):
        self.draw = draw

    def __call__(self, c: Component, ctx: "RowContext") -> str:
        return self.draw(c, ctx)


def in_state(c: Component, ctx: RowContext) -> str:
    return fmt.seconds(c.since_s)


@dataclass(frozen=True)
class Panel:
    """One panel of the main screen: the kinds it shows, its columns wide (a terminal of
    160 columns or more: two panels of ~79 side by side) and compact (80 columns: two
    panels of 39; every row still shows its state word and its source)."""

    key: str
    title: str
    kinds: tuple[Kind, ...]
    wide: list[Column]
    compact: list[Column]


def severity_order(c: Component) -> tuple:
    return (-c.state.severity, c.name)


# Columns that are not figures: they stay as they are on a row whose figures are last known.
NOT_FIGURES = frozenset({"name", "state", "src"})
