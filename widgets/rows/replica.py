"""Replica rows: role, lag behind the primary, replay and WAL receiver, probe time, read share."""

from __future__ import annotations

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import Component, Kind
from dashboard.redact import sanitize
from widgets.rows.base import Column, Panel, RowContext, history, m, name, source, state


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


# The widest lag reads "1023 MiB 59.9s" (fmt.size, fmt.seconds): 14 characters and a gap,
# so a figure is never cut into a number without its unit.
LAG_WIDTH = 15

PANEL = Panel("replica", "Replicas", (Kind.REPLICA,), wide=[
    Column("name", "Node", 11, name), Column("state", "State", 10, state), Column("role", "Role", 5, role),
    Column("lag", "Lag", LAG_WIDTH, lag), Column("spark", "Lag trend", 13, history("lag_bytes", 12, lo=0)),
    Column("paused", "Replay", 7, paused), Column("probe", "Probe", 7, m("latency_ms", fmt.ms)),
    Column("reads", "Reads", 5, read_share), Column("src", "Src", 5, source),
], compact=[
    # The primary reads "primary" where a replica shows its lag.
    Column("name", "Node", 10, name), Column("state", "State", 10, state),
    Column("lag", "Lag", LAG_WIDTH, lag_or_role), Column("src", "Src", 4, source),
])
