"""The names shown in a panel's first column: distinct, and saying where a row comes from.

A name column is narrow (8 to 13 cells) and names share prefixes (`items/memory`,
`items/memory-2`), so cutting the end made different rows read the same. Names are
cut in the middle instead, keeping the tail where such names differ, and a panel
checks that the names it shows are as distinct as the rows behind them.

A row read from a metric source is not the same thing as a target the dashboard
probed itself: the primary seen through postgres_exporter is not a fourth replica, and
an edge function counted in the service's /metrics is not its HTTP probe. In a panel
that has directly probed rows, a "via" mark goes before the name of every row that
came through Prometheus (an exporter's view of a target) and of every row a /metrics
scrape reports under the name of a probed one. Other scraped rows (breakers, the
service's cache layers) have no probed twin to be mistaken for; their Src says "scr".
"""

from __future__ import annotations

from collections import defaultdict

from dashboard.model import Component
from dashboard.redact import sanitize

METRIC_SOURCES = frozenset({"scrape", "prometheus"})
VIA_MARK, VIA_MARK_ASCII = "↳", "~"
ELLIPSIS = "…"


def label(c: Component) -> str:
    """A row's full name: its name, and its detail when one name has several rows."""
    return c.name + (f"/{c.detail}" if c.detail else "")


def via_metric_source(c: Component) -> bool:
    return c.source in METRIC_SOURCES


def fit_middle(text: str, width: int, head: int | None = None) -> str:
    """`text` in at most `width` characters, cut in the middle: `items/memory` -> `item…emory`.

    `head` is how many leading characters to keep (default: a little less than half,
    since names sharing a prefix differ at the end).
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    keep = width - 1
    head = keep // 2 if head is None else max(0, min(head, keep))
    tail = keep - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def shown_names(components: list[Component], width: int, ascii_only: bool = False) -> dict[tuple, str]:
    """The name each row shows in a column of `width` characters, by component key.

    Different rows never show the same text when their full names differ anywhere in a
    span the width can keep.
    """
    probed = {label(c) for c in components if not via_metric_source(c)}
    mark = VIA_MARK_ASCII if ascii_only else VIA_MARK
    full = {c.key: (mark if probed and _seen_via(c, probed) else "") + sanitize(label(c), 200)
            for c in components}
    full = _with_targets(components, full)
    shown = {key: fit_middle(text, width) for key, text in full.items()}
    groups: dict[str, list[tuple]] = defaultdict(list)
    for key, text in shown.items():
        groups[text].append(key)
    for keys in groups.values():
        if len({full[k] for k in keys}) > 1:
            shown.update(_distinct(keys, full, width))
    return shown


def _seen_via(c: Component, probed: set[str]) -> bool:
    return c.source == "prometheus" or (via_metric_source(c) and label(c) in probed)


def _with_targets(components: list[Component], full: dict[tuple, str]) -> dict[tuple, str]:
    """Rows of one name from different metric sources get `@source` (two scrapes that
    both export `hello`); a directly probed target keeps its plain name."""
    by_text: dict[str, list[Component]] = defaultdict(list)
    for c in components:
        by_text[full[c.key]].append(c)
    out = dict(full)
    for same in by_text.values():
        if len({c.target for c in same}) > 1:
            for c in same:
                if via_metric_source(c):
                    out[c.key] = f"{full[c.key]}@{sanitize(c.target, 200)}"
    return out


def _distinct(keys: list[tuple], full: dict[tuple, str], width: int) -> dict[tuple, str]:
    """The cut that tells `keys` apart: more of the tail first, then more of the head."""
    wanted = len({full[k] for k in keys})
    default = (width - 1) // 2
    for head in [*range(default, -1, -1), *range(default + 1, width)]:
        tried = {k: fit_middle(full[k], width, head) for k in keys}
        if len(set(tried.values())) == wanted:
            return tried
    return {k: fit_middle(full[k], width) for k in keys}
