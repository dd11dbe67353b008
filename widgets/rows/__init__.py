"""One row renderer per component kind, and the registry of panels.

Adding a kind to the screen means one module here with its cells and PANEL, and one
line in PANELS (its figures and judgement live in dashboard/kinds/). The state column
holds "STALE 12s" or "DEGRADED!" whole (see widgets/style.state_text); the last column
needs no gap after it, so a compact Src fits "prom" in 4.
"""

from __future__ import annotations

from widgets.rows import batcher, breaker, cache, edge, replica
from widgets.rows.base import NOT_FIGURES, Column, Panel, RowContext, Trend, figures_last_known, last_known, \
    severity_order

PANELS: dict[str, Panel] = {p.key: p for p in (replica.PANEL, breaker.PANEL, cache.PANEL, batcher.PANEL, edge.PANEL)}

__all__ = ["NOT_FIGURES", "PANELS", "Column", "Panel", "RowContext", "Trend", "figures_last_known", "last_known",
           "severity_order"]
