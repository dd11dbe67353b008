"""The sources in trouble, one line each, under the KPI bar.

A `[[source]]` (a /metrics scrape, a Prometheus) has no row of its own: when it never
answers, the rows it would feed simply do not exist, and only the header's colour said
so. Each probe target that is not OK, or that answered with a warning, gets a line here
with its state, how long ago it last answered and why; the line disappears when it
recovers. Targets still waiting for their first answer are "starting", not failures.
A source that reported more rows than the engine tracks says how many are missing.
"""

from __future__ import annotations

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import MAX_ROWS_PER_SOURCE, Snapshot, SourceStatus, State
from dashboard.redact import sanitize
from widgets.style import STATE_STYLE, state_text
from widgets.text_line import TextLine

# The same word as `check`'s table (dashboard/output.py, which widgets may not import).
INSECURE_BADGE = "[insecure]"

SOURCE_WORDS = {"postgres": "postgres", "redis": "redis", "scrape": "scrape", "prometheus": "prometheus",
                "http": "http"}


def first_probe_pending(source: SourceStatus) -> bool:
    """No probe of this target has finished yet (the engine's state before the first answer)."""
    return source.state is State.UNKNOWN and source.age_s is None


def starting(snap: Snapshot) -> bool:
    """True until the first round of every target is in (a failed first probe counts as in)."""
    flag = getattr(snap, "starting", None)       # the engine may say so itself
    if isinstance(flag, bool):
        return flag
    return any(first_probe_pending(s) for s in snap.sources)


def troubled(sources: tuple[SourceStatus, ...]) -> list[SourceStatus]:
    """Targets to show a line for, worst first: not OK, with a warning, or with rows
    untracked, and every target whose certificate checks are off (a badge that stays
    while the config says so)."""
    shown = [s for s in sources if s.insecure or
             (not first_probe_pending(s) and (s.state is not State.OK or s.warning
                                              or getattr(s, "rows_omitted", None)))]
    return sorted(shown, key=lambda s: (-s.state.severity, s.target))


def source_line(s: SourceStatus) -> Text:
    """`ERROR  service  scrape · never answered: connection refused`."""
    text = Text()
    text.append_text(state_text(s.state, warning=bool(s.warning)))   # its colour, not the line's
    text.append("  ")
    text.append(sanitize(s.target, 40), style="bold")
    text.append(f"  {SOURCE_WORDS.get(s.source, sanitize(s.source, 12))}", style="dim")
    if s.insecure:
        text.append(f" {INSECURE_BADGE} TLS not verified", style="bold yellow")
    if s.state is not State.OK and not first_probe_pending(s):    # pending: shown only for its badge
        text.append(" · never answered" if s.age_s is None else f" · last answer {fmt.seconds(s.age_s)} ago")
    why = s.reason if s.state is not State.OK else None
    for part in (why, s.warning, _untracked(s)):
        if part:
            text.append(": " + sanitize(part, 200))
    return text


def _untracked(s: SourceStatus) -> str | None:
    """Rows the source reported beyond what the engine tracks per source (model.py)."""
    omitted = sum((getattr(s, "rows_omitted", None) or {}).values())
    return f"{omitted} more rows not tracked ({MAX_ROWS_PER_SOURCE} rows per source)" if omitted else None


class SourceList(TextLine):
    """One line per target in trouble; hidden when every target is OK (app.tcss)."""

    def show(self, sources: tuple[SourceStatus, ...], room: int) -> None:
        lines = troubled(sources)
        self.set_class(bool(lines), "-troubled")
        room = max(room, 1)
        if len(lines) > room:
            lines, hidden = lines[: room - 1], lines[room - 1:]
        else:
            hidden = []
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, source in enumerate(lines):
            if i:
                text.append("\n")
            text.append_text(source_line(source))
        if hidden:
            if lines:
                text.append("\n")
            text.append(f"+{len(hidden)} more: ", style=STATE_STYLE[hidden[0].state])
            text.append(", ".join(sanitize(s.target, 40) for s in hidden))
        self.set_text(text)
