"""Batcher rows: messages in, frames out, the cut between them, batch size, flush p95, subscribers."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.model import Kind
from widgets.rows.base import Column, Panel, m, name, source, state

PANEL = Panel("batcher", "Batchers", (Kind.BATCHER,), wide=[
    Column("name", "Batcher", 10, name), Column("state", "State", 10, state),
    Column("in", "In", 8, m("messages_in_per_s", fmt.rate)), Column("out", "Out", 8, m("frames_out_per_s", fmt.rate)),
    Column("cut", "Cut", 7, m("reduction", fmt.pct)), Column("batch", "Batch", 6, m("avg_batch_size", fmt.number)),
    Column("p95", "p95", 8, m("flush_p95_ms", fmt.ms)), Column("subs", "Subs", 5, m("subscribers", fmt.number)),
    Column("src", "Src", 5, source),
], compact=[
    Column("name", "Batcher", 9, name), Column("state", "State", 10, state),
    Column("in", "In", 7, m("messages_in_per_s", fmt.rate)), Column("cut", "Cut", 7, m("reduction", fmt.pct)),
    Column("src", "Src", 4, source),
])
