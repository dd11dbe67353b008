"""Cache rows (a Redis, or one layer of a multi-layer cache): hit rate and its trend, ops, memory."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.model import Kind
from widgets.rows.base import Column, Panel, history, m, name, source, state

PANEL = Panel("cache", "Caches", (Kind.CACHE,), wide=[
    Column("name", "Cache", 13, name), Column("state", "State", 10, state), Column("hit", "Hits", 7, m("hit_rate", fmt.pct)),
    Column("spark", "Hit trend", 13, history("hit_rate", 12, lo=0, hi=1)), Column("ops", "Ops", 8, m("ops_per_s", fmt.rate)),
    Column("evict", "Evict", 7, m("evictions", fmt.number)), Column("mem", "Memory", 9, m("memory_bytes", fmt.size)),
    Column("src", "Src", 5, source),
], compact=[
    Column("name", "Cache", 11, name), Column("state", "State", 10, state),
    Column("hit", "Hits", 7, m("hit_rate", fmt.pct)), Column("ops", "Ops", 7, m("ops_per_s", fmt.rate)),
    Column("src", "Src", 4, source),
])
