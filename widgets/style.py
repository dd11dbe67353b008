"""State words and their colours. A state is always a word, so NO_COLOR stays readable."""

from __future__ import annotations

from rich.text import Text

from dashboard import format as fmt
from dashboard.model import State

STATE_STYLE = fmt.STATE_STYLE
STATE_WORD = {State.NO_DATA: "NO DATA"}


def state_text(state: State, age_s: float | None = None, interval: float = 1.0) -> Text:
    """"OK", or the state with the data's age when it is not fresh ("STALE 12s")."""
    word = STATE_WORD.get(state, state.value)
    if age_s is not None and age_s > 2 * interval and state is not State.OK:
        word = f"{word} {fmt.seconds(age_s)}"
    return Text(word, style=STATE_STYLE[state])
