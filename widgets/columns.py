"""One row renderer per component kind: its columns and how a Component fills them.

A column is (key, header, width, cell function). Cells are rich Text built
from sanitised strings, never markup: remote names such as "[/bold]" show literally.
Adding a kind means one list here and one line in COLUMNS.
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


def lag(c: Component, ctx: RowContext) -> str:
    if c.metrics.get("role") == "primary":
        return "-"
    if c.metrics.get("lag_bytes") is None and c.metrics.get("lag_seconds") is None:
        return "-"
    return f"{fmt.size(c.metrics.get('lag_bytes'))} {fmt.seconds(c.metrics.get('lag_seconds'))}"


def lag_or_role(c: Component, ctx: RowContext) -> str:
    return "primary" if c.metrics.get("role") == "primary" else lag(c, ctx)


def role(c: Component, ctx: RowContext) -> str:
    return {"primary": "prim", "replica": "repl"}.get(c.metrics.get("role"), "-")


def paused(c: Component, ctx: RowContext) -> Text:
    """Whether WAL flows into the replica: replay paused, or its WAL receiver not streaming
    (the lag column alone would not say why it grows); "n/a" when the server hid the
    receiver from the monitoring role (no pg_monitor)."""
    value = c.metrics.get("replay_paused")
    if value:
        return Text("PAUSED", style="bold yellow")
    receiver = c.metrics.get("receiver")
    if c.metrics.get("role") == "replica" and "receiver" in (c.metrics.get("hidden_by_privilege") or ()):
        return Text("n/a", style="dim")
    if c.metrics.get("role") == "replica" and isinstance(receiver, str) and receiver != "streaming":
        return Text(sanitize(receiver, 7), style="bold yellow")
    return Text("no" if value is False else "-")


def read_share(c: Component, ctx: RowContext) -> str:
    return fmt.pct(ctx.read_share.get(c.name))


def breaker_state(c: Component, ctx: RowContext) -> Text:
    word = c.metrics.get("state")
    shown = {"half_open": "half-open"}.get(word, word) if isinstance(word, str) else "-"
    style = {"closed": "green", "open": "bold red", "half_open": "yellow"}.get(word, "")
    return Text(sanitize(shown, 10), style=style)


def in_state(c: Component, ctx: RowContext) -> str:
    return fmt.seconds(c.since_s)


def edge_status(c: Component, ctx: RowContext) -> str:
    if c.kind is Kind.CDN:
        return fmt.word(c.metrics.get("cache_status"))
    return fmt.number(c.metrics.get("status_code"))


def edge_kind(c: Component, ctx: RowContext) -> str:
    return c.kind.value


# Wide panels (a terminal of 160 columns or more: two panels of ~79 columns side by side).
REPLICA = [
    Column("name", "Node", 11, name), Column("state", "State", 10, state), Column("role", "Role", 5, role),
    Column("lag", "Lag", 13, lag), Column("spark", "Lag trend", 13, history("lag_bytes", 12, lo=0)),
    Column("paused", "Replay", 7, paused), Column("probe", "Probe", 7, m("latency_ms", fmt.ms)),
    Column("reads", "Reads", 6, read_share), Column("src", "Src", 5, source),
]
BREAKER = [
    Column("name", "Breaker", 11, name), Column("state", "State", 10, state),
    Column("bstate", "Circuit", 10, breaker_state), Column("fail", "Fail", 7, m("failure_rate", fmt.pct)),
    Column("calls", "Calls", 8, m("calls_per_s", fmt.rate)), Column("rej", "Rejected", 9, m("rejected_per_s", fmt.rate)),
    Column("since", "For", 7, in_state), Column("src", "Src", 5, source),
]
CACHE = [
    Column("name", "Cache", 13, name), Column("state", "State", 10, state), Column("hit", "Hits", 7, m("hit_rate", fmt.pct)),
    Column("spark", "Hit trend", 13, history("hit_rate", 12, lo=0, hi=1)), Column("ops", "Ops", 8, m("ops_per_s", fmt.rate)),
    Column("evict", "Evict", 7, m("evictions", fmt.number)), Column("mem", "Memory", 9, m("memory_bytes", fmt.size)),
    Column("src", "Src", 5, source),
]
BATCHER = [
    Column("name", "Batcher", 10, name), Column("state", "State", 10, state),
    Column("in", "In", 8, m("messages_in_per_s", fmt.rate)), Column("out", "Out", 8, m("frames_out_per_s", fmt.rate)),
    Column("cut", "Cut", 7, m("reduction", fmt.pct)), Column("batch", "Batch", 6, m("avg_batch_size", fmt.number)),
    Column("p95", "p95", 8, m("flush_p95_ms", fmt.ms)), Column("subs", "Subs", 5, m("subscribers", fmt.number)),
    Column("src", "Src", 5, source),
]
EDGE = [
    Column("name", "Endpoint", 11, name), Column("state", "State", 10, state), Column("kind", "Kind", 5, edge_kind),
    Column("status", "HTTP", 5, edge_status), Column("latency", "Time", 8, m("latency_ms", fmt.ms)),
    Column("spark", "Latency", 13, history("latency_ms", 12, lo=0)), Column("err", "Err", 7, m("error_rate", fmt.pct)),
    Column("src", "Src", 5, source),
]

# Compact panels (80 columns: two panels of 39). Every row still shows its state
# word and its source; the primary reads "primary" where a replica shows its lag. The
# state column holds "STALE 12s" or "DEGRADED!" whole (see state_text); the last column
# needs no gap after it, so Src fits "prom" in 4.
COMPACT = {
    "replica": [Column("name", "Node", 10, name), Column("state", "State", 10, state),
                Column("lag", "Lag", 13, lag_or_role), Column("src", "Src", 5, source)],
    "breaker": [Column("name", "Breaker", 9, name), Column("state", "State", 10, state),
                Column("bstate", "Circuit", 10, breaker_state), Column("fail", "Fail", 6, m("failure_rate", fmt.pct)),
                Column("src", "Src", 4, source)],
    "cache": [Column("name", "Cache", 11, name), Column("state", "State", 10, state),
              Column("hit", "Hits", 7, m("hit_rate", fmt.pct)), Column("ops", "Ops", 7, m("ops_per_s", fmt.rate)),
              Column("src", "Src", 4, source)],
    "batcher": [Column("name", "Batcher", 9, name), Column("state", "State", 10, state),
                Column("in", "In", 7, m("messages_in_per_s", fmt.rate)), Column("cut", "Cut", 7, m("reduction", fmt.pct)),
                Column("src", "Src", 4, source)],
    "edge": [Column("name", "Name", 8, name), Column("state", "State", 10, state),
             Column("status", "HTTP", 5, edge_status), Column("latency", "Time", 7, m("latency_ms", fmt.ms)),
             Column("err", "Err", 5, m("error_rate", fmt.pct)), Column("src", "Src", 4, source)],
}
COLUMNS: dict[str, list[Column]] = {
    "replica": REPLICA, "breaker": BREAKER, "cache": CACHE, "batcher": BATCHER, "edge": EDGE,
}
PANEL_KINDS: dict[str, tuple[Kind, ...]] = {
    "replica": (Kind.REPLICA,), "breaker": (Kind.BREAKER,), "cache": (Kind.CACHE,),
    "batcher": (Kind.BATCHER,), "edge": (Kind.EDGE, Kind.CDN),
}
TITLES = {"replica": "Replicas", "breaker": "Breakers", "cache": "Caches", "batcher": "Batchers",
          "edge": "Edge & CDN"}


def severity_order(c: Component) -> tuple:
    return (-c.state.severity, c.name)


# Columns that are not figures: they stay as they are on a row whose figures are last known.
NOT_FIGURES = frozenset({"name", "state", "src"})

__all__ = ["COLUMNS", "COMPACT", "NOT_FIGURES", "PANEL_KINDS", "TITLES", "Column", "RowContext", "figures_last_known", "last_known",
           "severity_order", "State"]
