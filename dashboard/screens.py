"""The screens on top of the main one: a component's details, and the key help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from dashboard import format as fmt
from dashboard.model import Component, Snapshot
from dashboard.output import figure_text
from dashboard.redact import sanitize
from widgets.footer import KeyFooter
from widgets.rows import figures_last_known
from widgets.sparkline import spark
from widgets.style import state_text

CHART_HEIGHT = 4


def chart(values: tuple[float, ...], width: int, ascii_only: bool = False) -> Text:
    """A multi-line block chart of a figure's history, with its min and max."""
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    if not finite:
        return Text("no history yet", style="dim")
    low, high = min(finite), max(finite)
    width = max(10, width)
    lines = []
    for row in range(CHART_HEIGHT, 0, -1):
        band_lo = low + (high - low) * (row - 1) / CHART_HEIGHT
        band_hi = low + (high - low) * row / CHART_HEIGHT
        cells = []
        for v in finite[-width:]:
            if high == low:       # a flat series is a baseline, not a wall
                cells.append(("▁" if not ascii_only else "_") if row == 1 else " ")
            elif v >= band_hi:
                cells.append("█" if not ascii_only else "#")
            elif v > band_lo:
                cells.append(spark([v], 1, band_lo, band_hi, ascii_only))
            else:
                cells.append(" ")
        lines.append("".join(cells))
    text = Text("\n".join(lines))
    text.append(f"\nmin {figure_text(low)}  max {figure_text(high)}  last {figure_text(finite[-1])}"
                f"  ({len(finite)} samples)", style="dim")
    return text


class DetailScreen(Screen):
    """Everything known about one component; follows the live snapshot until Esc."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.pop_screen", "Back", show=False)]

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="detail-head")
            yield Static(id="detail-charts")
            yield Static(id="detail-figures")
        yield KeyFooter()

    def show(self, snap: Snapshot, interval: float, ascii_only: bool) -> None:
        component = next((c for c in snap.components if "|".join(c.key) == self.key), None)
        if component is None:
            self.query_one("#detail-head", Static).update(Text("this component is no longer reported"))
            return
        self.query_one("#detail-head", Static).update(self._head(component, snap, interval))
        width = max(20, self.size.width - 4)
        charts = Text()
        for figure, values in component.history.items():
            charts.append(f"\n{figure}\n", style="bold")
            charts.append_text(chart(values, width, ascii_only))
            charts.append("\n")
        self.query_one("#detail-charts", Static).update(charts or Text("no history yet", style="dim"))
        source = next((s for s in snap.sources if s.target == component.target), None)
        title = (f"last known figures ({fmt.seconds(component.age_s)} old)"
                 if figures_last_known(component, source) else "raw figures")
        table = Table(title=title, title_justify="left", show_edge=False)
        table.add_column("figure")
        table.add_column("value")
        for key, value in sorted(component.metrics.items()):
            if not key.startswith("_") and not isinstance(value, dict):
                table.add_row(Text(sanitize(key, 40)), Text(figure_text(value)))
        self.query_one("#detail-figures", Static).update(table)

    @staticmethod
    def _head(c: Component, snap: Snapshot, interval: float) -> Text:
        source = next((s for s in snap.sources if s.target == c.target), None)
        text = Text()
        text.append(f"{c.kind.value} ", style="bold")
        text.append(sanitize(c.name + (f"/{c.detail}" if c.detail else ""), 80), style="bold")
        text.append("  ")
        text.append_text(state_text(c.state, c.age_s, interval, warning=bool(c.warning)))
        rows = [
            ("reason", c.reason or "-"),
            *([("warning", c.warning)] if c.warning else []),
            ("source", f"{c.source} (target {c.target})"),
            ("data age", fmt.seconds(c.age_s)),
            ("in this state for", fmt.seconds(c.since_s)),
            ("last error", c.last_error or "-"),
        ]
        if source is not None:
            rows += [("probe latency", fmt.ms(source.latency_ms)),
                     ("consecutive failures", str(source.consecutive_failures)),
                     ("next probe in", fmt.seconds(source.next_probe_in_s))]
            if source.warning:
                rows.append(("source warning", source.warning))
        for label, value in rows:
            text.append(f"\n{label:>22}  ", style="dim")
            text.append(sanitize(value, 200))
        return text


class HelpScreen(ModalScreen):
    """Every key of the app, from the same BINDINGS that feed the footer and palette."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Close"), Binding("question_mark", "app.pop_screen",
                                                                         "Close", show=False)]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings_shown = bindings

    def compose(self) -> ComposeResult:
        text = Text("Keys\n\n", style="bold")
        for key, description in self.bindings_shown:
            text.append(f"{key:>12}  ", style="bold")
            text.append(f"{description}\n")
        text.append("\nEnter on a row opens its details; Esc goes back.", style="dim")
        text.append("\nWhile a drill runs, its timeline shows beside the panels:"
                    "\na aborts it with rollback, A without (asks first).", style="dim")
        yield Static(text, id="help-body")
