"""Parse Prometheus text exposition into `Series`, behind one parse boundary.

prometheus_client's parser is the reference implementation of the format; anything it
raises on hostile input (including RecursionError, which is not a ValueError) becomes
one `ExpositionError`. It costs ~12 µs a line, which made parsing the biggest share of
the dashboard's CPU (py-spy, tests/bench), so plain lines go through a small fast path
that gives the same Series (a test holds the two together on real exporters' output);
any line the fast path does not fully understand hands the whole body to the reference.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from dashboard.presets.base import Series

# name, label block, value, optional timestamp (milliseconds since the epoch)
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

MAX_SERIES = 100_000


class ExpositionError(ValueError):
    """The body is not valid Prometheus text exposition."""


def prefilter(text: str, families: tuple[str, ...]) -> str:
    """Only the lines of the metric families a preset reads.

    Parsing is ~12 µs a line and most of a real /metrics body is families no preset
    reads (process_*, python_gc_*, *_created), so dropping them first is the cheap win.
    """
    keep = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            name = parts[2] if len(parts) > 2 else ""
        else:
            # `or [""]`: a line that starts with "{" has no name (it is not a sample)
            name = (line.split("{", 1)[0].split(None, 1) or [""])[0]
        if name and name.startswith(families) and not name.endswith("_created"):
            keep.append(line)
    return "\n".join(keep) + "\n"


def family_prefixes(metrics) -> tuple[str, ...]:
    """The name stems of a preset's metrics: counters lose `_total`, so `_count`,
    `_bucket` and both counter spellings match."""
    return tuple(sorted({m.name.removesuffix("_total") for m in metrics}))


def _labels(block: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    while position < len(block):
        match = _LABEL.match(block, position)
        if match is None or match.end() == position:
            return None
        value = match.group(2)
        if "\\" in value:
            value = re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], value)
        labels[match.group(1)] = value
        position = match.end()
    return labels


def fast_parse(text: str, max_series: int = MAX_SERIES) -> list[Series] | None:
    """Series of a plain text exposition, or None where the reference parser is needed."""
    out: list[Series] = []
    counters: set[str] = set()
    for line in text.split("\n"):
        if not line or line.isspace():
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE" and parts[3].strip() == "counter":
                counters.add(parts[2])
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            return None
        name, block, raw, millis = match.groups()
        labels = _labels(block) if block else {}
        if labels is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            return None
        if name in counters and not name.endswith("_total"):
            name += "_total"          # as the reference parser names a counter's sample
        out.append(Series(name, labels, value, timestamp=int(millis) / 1000.0 if millis else None))
        if len(out) > max_series:
            raise ExpositionError(f"more than {max_series} series")
    return out


def _seconds(timestamp) -> float | None:
    """The reference parser's timestamp (seconds, or a Timestamp) as float seconds."""
    if timestamp is None:
        return None
    try:
        return float(timestamp)
    except (TypeError, ValueError):
        return None


def parse_text(text: str, max_series: int = MAX_SERIES) -> list[Series]:
    fast = fast_parse(text, max_series)
    if fast is not None:
        return fast
    out: list[Series] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.append(Series(sample.name, dict(sample.labels), float(sample.value),
                                  timestamp=_seconds(sample.timestamp)))
                if len(out) > max_series:
                    raise ExpositionError(f"more than {max_series} series")
    except ExpositionError:
        raise
    except (Exception, RecursionError) as exc:  # the parser raises many types on bad input
        raise ExpositionError(f"not Prometheus text format: {type(exc).__name__}: {exc}") from None
    return out
