"""Render a Snapshot for `check`: the JSON contract and the human table.

The JSON shape is a stable contract (DESIGN.md); strict JSON has no NaN or Infinity,
so non-finite figures are written as the strings "NaN", "+Inf" and "-Inf".
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from dashboard.kinds import contract_metrics
from dashboard.format import STATE_STYLE as STYLE, format_float
from dashboard.model import MAX_ROWS_PER_SOURCE, Component, Snapshot, SourceStatus, State
from dashboard.redact import safe_message

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3


def exit_code(snap: Snapshot) -> int:
    overall = snap.overall
    if overall in (State.DOWN, State.ERROR):
        return EXIT_CRITICAL
    if overall is State.OK:
        return EXIT_OK
    return EXIT_WARNING


def _plain(value: Any) -> Any:
    """A JSON-safe copy: finite floats rounded, non-finite as words, strings sanitised."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else format_float(value)
    if isinstance(value, str):
        return safe_message(value, 200)
    if isinstance(value, dict):
        return {safe_message(k, 80): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def insecure_targets(snap: Snapshot) -> set[str]:
    """Targets whose certificate checks the config turned off (`insecure = true`)."""
    return {s.target for s in snap.sources if s.insecure}


def to_json(snap: Snapshot) -> dict:
    components = []
    insecure = insecure_targets(snap)
    for c in snap.components:
        components.append({
            "kind": c.kind.value, "name": safe_message(c.name, 120), "state": c.state.value,
            "reason": safe_message(c.reason, 200) if c.reason else None,
            "source": c.source, "age_s": _plain(c.age_s), "target": c.target,
            "metrics": _plain(contract_metrics(c.kind, dict(c.metrics))),
            "warning": safe_message(c.warning, 200) if c.warning else None,
            "insecure": c.target in insecure,
        })
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.generated_at)),
        "overall": snap.overall.value,
        "components": components,
        "kpis": [{"name": k.name, "value": _plain(k.value), "target": k.target, "met": k.met,
                  "detail": k.detail} for k in snap.kpis],
        "sources": [{"name": s.target, "source": s.source, "state": s.state.value,
                     "reason": safe_message(s.reason, 200) if s.reason else None,
                     "age_s": _plain(s.age_s), "latency_ms": _plain(s.latency_ms),
                     "warning": s.warning, "truncated": _truncated(s), "insecure": s.insecure} for s in snap.sources],
        "banners": list(snap.banners),
    }


def _truncated(s: SourceStatus) -> dict | None:
    """The note for a source that reported more rows than the engine tracks: how many
    components are missing from `components`, per kind (null when none are)."""
    if not s.rows_omitted:
        return None
    return {"rows_omitted": sum(s.rows_omitted.values()), "by_kind": dict(s.rows_omitted),
            "rows_per_source": MAX_ROWS_PER_SOURCE}


def omitted_line(s: SourceStatus) -> str | None:
    """`source big (scrape): 9800 more rows not shown (200 rows per source)`, or None."""
    if not s.rows_omitted:
        return None
    return (f"source {safe_message(s.target, 40)} ({s.source}): {sum(s.rows_omitted.values())} more rows "
            f"not shown ({MAX_ROWS_PER_SOURCE} rows per source)")


def dumps(snap: Snapshot) -> str:
    return json.dumps(to_json(snap), indent=2, allow_nan=False)


def figure_text(value: Any) -> str:
    """A figure as a short word for tables: 0.86 -> 0.86, NaN -> NaN, None -> -."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return format_float(value)
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return safe_message(value, 40)


WARNING_MARK = "!"
# A word, not a symbol: it must read the same under TERM=dumb, NO_COLOR and LANG=C.
INSECURE_BADGE = "[insecure]"


def _state_text(c: Component):
    """The state word, with a "!" when the source warned about the data of this row."""
    from rich.text import Text

    text = Text(c.state.value, style=STYLE[c.state])
    if c.warning:
        text.append(WARNING_MARK, style="bold yellow")
    return text


def _reason_text(c: Component):
    from rich.text import Text

    text = Text(safe_message(c.reason or "", 80))
    if c.warning:
        text.append(("; " if c.reason else "") + f"{WARNING_MARK} {safe_message(c.warning, 80)}", style="yellow")
    return text


def render_table(snap: Snapshot, console) -> None:
    """The human table (rich). Remote text is passed as Text, never parsed as markup."""
    from rich.table import Table
    from rich.text import Text

    from dashboard.kinds import KINDS

    from rich import box

    table = Table(title=f"scaledash check: {snap.overall.value}", title_justify="left", expand=False,
                  box=box.SIMPLE_HEAD)
    for column in ("kind", "name", "state", "figures", "age", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column in ("kind", "state", "age"))
    insecure = insecure_targets(snap)
    for c in snap.components:
        name = c.name + (f"/{c.detail}" if c.detail else "")
        age = "-" if c.age_s is None else f"{c.age_s:.1f}s"
        shown_name = Text(safe_message(name, 40))
        if c.target in insecure:
            shown_name.append(f" {INSECURE_BADGE}", style="bold yellow")
        table.add_row(Text(c.kind.value), shown_name, _state_text(c),
                      Text(KINDS[c.kind].brief(dict(c.metrics))), Text(f"{age} {c.source}"), _reason_text(c))
    console.print(table)
    for s in snap.sources:
        if s.state is not State.OK:
            console.print(Text(f"source {s.target} ({s.source}): {s.state.value}"
                               f"{': ' + s.reason if s.reason else ''}", style=STYLE[s.state]))
        if omitted_line(s):
            console.print(Text(omitted_line(s), style="yellow"))
        if s.insecure:        # also when it has no row (a source that found nothing)
            console.print(Text(f"{INSECURE_BADGE} {s.target} ({s.source}): TLS certificate not verified "
                               "(insecure = true in the config)", style="yellow"))
    for banner in snap.banners:
        console.print(Text(f"!! {banner}", style="bold red"))
    for event in reversed(snap.events):
        if event.state is None:      # a notice (e.g. a missing grant), not a state change
            console.print(Text(f"note: {event.target}: {safe_message(event.message, 200)}", style="yellow"))
    kpis = Table(title="targets", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("kpi", "measured", "target", "met", "detail"):
        kpis.add_column(column)
    for k in snap.kpis:
        met = "n/a" if k.met is None else ("MET" if k.met else "MISSED")
        kpis.add_row(Text(k.name), Text(figure_text(k.value)), Text(k.target),
                     Text(met, style={"MET": "green", "MISSED": "red"}.get(met, "dim")), Text(k.detail or ""))
    console.print(kpis)
