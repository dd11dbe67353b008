"""Text sparklines: one block character per sample, drawn as plain text.

A text cell instead of Textual's animated Sparkline widget: it repaints only when a
new sample arrives, which keeps the bytes sent over slow SSH links low.
"""

from __future__ import annotations

import math
from typing import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_BLOCKS = "_.-=+*#@"


def spark(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None,
          ascii_only: bool = False) -> str:
    """The last `width` values as blocks scaled to [lo, hi] (default: their own range)."""
    blocks = ASCII_BLOCKS if ascii_only else BLOCKS
    recent = [v for v in values[-width:] if isinstance(v, (int, float)) and math.isfinite(v)]
    if not recent or width <= 0:
        return " " * max(width, 0)
    low = min(recent) if lo is None else lo
    high = max(recent) if hi is None else hi
    span = high - low
    out = []
    for v in recent:
        level = 0 if span <= 0 else int((min(max(v, low), high) - low) / span * (len(blocks) - 1) + 0.5)
        out.append(blocks[level])
    return "".join(out).rjust(width)
