"""Edge function and CDN rows, one panel: HTTP or cache status, latency and its trend, errors."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.model import Component, Kind
from widgets.rows.base import Column, Panel, RowContext, history, m, name, source, state


def edge_status(c: Component, ctx: RowContext) -> str:
    if c.kind is Kind.CDN:
        return fmt.word(c.metrics.get("cache_status"))
    return fmt.number(c.metrics.get("status_code"))


def edge_kind(c: Component, ctx: RowContext) -> str:
    return c.kind.value


PANEL = Panel("edge", "Edge & CDN", (Kind.EDGE, Kind.CDN), wide=[
    Column("name", "Endpoint", 11, name), Column("state", "State", 10, state), Column("kind", "Kind", 5, edge_kind),
    Column("status", "HTTP", 5, edge_status), Column("latency", "Time", 8, m("latency_ms", fmt.ms)),
    Column("spark", "Latency", 13, history("latency_ms", 12, lo=0)), Column("err", "Err", 7, m("error_rate", fmt.pct)),
    Column("src", "Src", 5, source),
], compact=[
    Column("name", "Name", 8, name), Column("state", "State", 10, state),
    Column("status", "HTTP", 5, edge_status), Column("latency", "Time", 7, m("latency_ms", fmt.ms)),
    Column("err", "Err", 5, m("error_rate", fmt.pct)), Column("src", "Src", 4, source),
])
