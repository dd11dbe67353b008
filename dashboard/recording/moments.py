"""The moments a user names on the command line (`check --from FILE --at TIME`, replay's
seek): one parser, so every command reads a time the same way."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .store import Recording, RecordingError

_LONG_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|d)\s*$")


def parse_span(text: str) -> float:
    """Seconds from a span on the command line: the config's durations ("90s", "5m") and
    hours and days ("24h", "7d"), which a poll interval never needs but a retention does."""
    from ..config import parse_duration

    m = _LONG_SPAN.match(text)
    if m:
        return float(m.group(1)) * {"h": 3600.0, "d": 86400.0}[m.group(2)]
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError("expected a span such as 90s, 30m, 24h or 7d") from None


def parse_moment(text: str, recording: Recording) -> float:
    """Epoch seconds from `--at`: an ISO 8601 time (UTC unless it says otherwise), a time of
    day HH:MM[:SS] (UTC, on the day the recording starts; the next day when it is before
    the start), epoch seconds, or `start`/`end` with an optional +/- duration ("end-5m").
    Raises ValueError with the accepted forms."""
    span = recording.span()
    if span is None:
        raise RecordingError(f"{recording.path}: the recording is empty")
    text = text.strip()
    for anchor, at in (("start", span[0]), ("end", span[1])):
        if text.startswith(anchor):
            rest = text[len(anchor):].strip()
            if not rest:
                return at
            if rest[0] in "+-":
                return at + (1 if rest[0] == "+" else -1) * parse_span(rest[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    parts = text.split(":")
    if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
        h, m, s = (int(p) for p in parts + ["0"] * (3 - len(parts)))
        if h < 24 and m < 60 and s < 60:
            day = datetime.fromtimestamp(span[0], timezone.utc).replace(hour=h, minute=m, second=s, microsecond=0)
            at = day.timestamp()
            return at + 86400 if at < span[0] - 1 else at
    raise ValueError(f"cannot read the time {text!r}: give an ISO time (2026-12-02T10:40:00Z), a time of day "
                     f"(10:40:00, UTC), epoch seconds, or start/end with an offset (end-5m)")
