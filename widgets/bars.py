"""The header line, the KPI bar and the split-brain banner."""

from __future__ import annotations

import time

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import Kpi, Snapshot, State
from widgets.sources import first_probe_pending, starting
from widgets.style import STATE_STYLE
from widgets.text_line import TextLine

STARTING_STYLE = "bold"


class TopBar(TextLine):
    """Environment, overall state, sources answering, interval, RO and paused badges, clock."""

    def show(self, name: str, snap: Snapshot | None, interval: float, readonly: bool, paused: bool,
             now: float, replay: str | None = None) -> None:
        """`replay`: the badge of a recording being watched ("REPLAY 10x", "ATTACHED"); the
        time is then the recorded one, to the second and in UTC, as the timeline's."""
        text = Text()
        text.append(" scaledash ", style="bold reverse")
        text.append(f" {fmt.word(name)} ")
        if snap is not None:
            text.append_text(_overall(snap))
            text.append_text(_sources(snap))
        text.append(f"  every {fmt.seconds(interval)}")
        if paused:
            text.append("  PAUSED", style="bold yellow")
        if readonly:
            text.append("  RO", style="bold cyan")
        if replay:
            text.append(f"  {replay}", style="bold magenta")
            text.append(f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))} UTC")
        else:
            text.append(f"  {time.strftime('%H:%M', time.localtime(now))}")
        self.set_text(text)


def _overall(snap: Snapshot) -> Text:
    """The worst state, or "starting" until every target has answered (or failed) once:
    before that the worst state is the UNKNOWN of a probe still on its way. A failure
    already known has its line under the KPIs meanwhile."""
    if starting(snap):
        return Text(" starting ", style=STARTING_STYLE)
    overall = snap.overall
    return Text(f" {overall.value} ", style=STATE_STYLE[overall])


def _sources(snap: Snapshot) -> Text:
    """`sources 9/10 ok`: how many probe targets answered well (each one that did not has a line)."""
    total = len(snap.sources)
    if not total:
        return Text()
    if starting(snap):
        answered = sum(not first_probe_pending(s) for s in snap.sources)
        return Text(f"  sources {answered}/{total} in")
    ok = sum(s.state is State.OK for s in snap.sources)
    return Text(f"  sources {ok}/{total} ok", style="" if ok == total else "bold")


def _kpi_value(k: Kpi) -> str:
    if k.value is None:
        return "n/a"
    if k.name == "failover_seconds":
        return fmt.seconds(k.value)
    return fmt.pct(k.value)


class KpiBar(TextLine):
    """The seven targets: measured vs target, with a word (met/MISSED) and a colour."""

    def show(self, kpis: tuple[Kpi, ...]) -> None:
        text = Text()
        for i, k in enumerate(kpis):
            if i:
                text.append("  ")
            text.append(f"{k.label} ")
            if k.met is None:
                text.append("n/a", style="dim")
                continue
            text.append(_kpi_value(k), style="bold")
            text.append(" ok" if k.met else " MISS", style="green" if k.met else "bold red")
        self.set_text(text)


class Banner(TextLine):
    """Fleet alarms such as two writable primaries; hidden when there are none."""

    def show(self, banners: tuple[str, ...]) -> None:
        self.display = bool(banners)
        self.set_text(Text("  ".join(f"!! {b}" for b in banners)))
