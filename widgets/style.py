"""State words and their colours. A state is always a word, so NO_COLOR stays readable."""

from __future__ import annotations

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import State

STATE_STYLE = fmt.STATE_STYLE
STATE_WORD = {State.NO_DATA: "NO DATA"}
WARNING_MARK = "!"
WARNING_STYLE = "bold yellow"


def short_age(age_s: float) -> str:
    """An age in at most three characters (12s, 5m, 3h, 2d): it shares a cell with a word."""
    for unit, scale in (("d", 86400), ("h", 3600), ("m", 60)):
        if age_s >= scale:
            return f"{min(int(age_s // scale), 99)}{unit}"
    return f"{int(age_s)}s"


def state_text(state: State, age_s: float | None = None, interval: float = 1.0, *,
               warning: bool = False, width: int | None = None) -> Text:
    """"OK", or the state with the data's age when it is not fresh ("STALE 12s").

    `warning` adds a mark after the word ("OK!"): the source answered with a warning.
    With `width`, the age is left out rather than cut when word, mark and age do not fit,
    so a cell never ends in half a figure that reads as part of the next column.
    """
    text = Text(STATE_WORD.get(state, state.value), style=STATE_STYLE[state])
    if warning:
        text.append(WARNING_MARK, style=WARNING_STYLE)
    if age_s is not None and age_s > 2 * interval and state is not State.OK:
        age = f" {short_age(age_s) if width is not None else fmt.seconds(age_s)}"
        if width is None or text.cell_len + len(age) <= width:
            text.append(age, style=STATE_STYLE[state])
    return text
