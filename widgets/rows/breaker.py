"""Circuit breaker rows: circuit state, failure rate, calls, rejected calls, time in state."""

from __future__ import annotations

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import Component, Kind
from dashboard.redact import sanitize
from widgets.rows.base import Column, Panel, RowContext, in_state, m, name, source, state


def breaker_state(c: Component, ctx: RowContext) -> Text:
    word = c.metrics.get("state")
    shown = {"half_open": "half-open"}.get(word, word) if isinstance(word, str) else "-"
    style = {"closed": "green", "open": "bold red", "half_open": "yellow"}.get(word, "")
    return Text(sanitize(shown, 10), style=style)


PANEL = Panel("breaker", "Breakers", (Kind.BREAKER,), wide=[
    Column("name", "Breaker", 11, name), Column("state", "State", 10, state),
    Column("bstate", "Circuit", 10, breaker_state), Column("fail", "Fail", 7, m("failure_rate", fmt.pct)),
    Column("calls", "Calls", 8, m("calls_per_s", fmt.rate)), Column("rej", "Rejected", 9, m("rejected_per_s", fmt.rate)),
    Column("since", "For", 7, in_state), Column("src", "Src", 5, source),
], compact=[
    Column("name", "Breaker", 9, name), Column("state", "State", 10, state),
    Column("bstate", "Circuit", 10, breaker_state), Column("fail", "Fail", 6, m("failure_rate", fmt.pct)),
    Column("src", "Src", 4, source),
])
