"""Short human forms of figures, shared by `check`'s table and the TUI.

Remote strings are sanitised here too, so a caller can never forget it.
"""

from __future__ import annotations

import math
from typing import Any

from dashboard.model import State
from dashboard.redact import safe_message

# The one colour map of states, for `check`'s table and the TUI. A state is always
# shown as a word too, so NO_COLOR and TERM=dumb stay readable.
STATE_STYLE = {
    State.OK: "green", State.UNKNOWN: "dim", State.NO_DATA: "cyan", State.DEGRADED: "bold yellow",
    State.STALE: "magenta", State.ERROR: "bold red", State.DOWN: "bold white on red",
}


def format_float(value: float) -> str:
    """A float as a short word; NaN and the infinities as Prometheus writes them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:g}"


def _bad(value: Any) -> str | None:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return format_float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return safe_message(value, 20)
    return None


def size(value: Any) -> str:
    """Bytes: 0 B, 151 KiB, 16.0 MiB."""
    if (bad := _bad(value)) is not None:
        return bad
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}" if abs(value) < 10 * scale else f"{value / scale:.0f} {unit}"
    return f"{int(value)} B"


# Two significant figures where a third would only flicker: a figure that changes in
# its last digit every second repaints its line every second, costing bytes on SSH.

def pct(value: Any) -> str:
    """0.4%, 76%, 99.9%, 100%: decimals only where they carry meaning (errors, uptime)."""
    if (bad := _bad(value)) is not None:
        return bad
    percent = value * 100
    if percent == 100 or abs(percent) >= 1000:
        return f"{percent:.0f}%"
    if percent < 10 or 99 <= percent < 100:
        return f"{percent:.1f}%"
    return f"{percent:.0f}%"


def rate(value: Any) -> str:
    if (bad := _bad(value)) is not None:
        return bad
    if value >= 1000:
        return f"{value / 1000:.1f}k/s"
    return f"{value:.1f}/s" if value < 10 else f"{value:.0f}/s"


def ms(value: Any) -> str:
    if (bad := _bad(value)) is not None:
        return bad
    return f"{value:.1f}ms" if value < 10 else f"{value:.0f}ms"


def seconds(value: Any) -> str:
    if (bad := _bad(value)) is not None:
        return bad
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def number(value: Any) -> str:
    if (bad := _bad(value)) is not None:
        return bad
    return f"{value:g}" if isinstance(value, float) else str(value)


def word(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return safe_message(value, 20)
