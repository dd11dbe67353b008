"""Parse Prometheus text exposition into `Series`, behind one parse boundary.

prometheus_client's parser is the reference implementation of the format; anything it
raises on hostile input (including RecursionError, which is not a ValueError) becomes
one `ExpositionError`. It costs ~12 µs a line, which made parsing the biggest share of
the dashboard's CPU (py-spy, tests/bench), so plain lines go through a small fast path
that gives the same Series (a test holds the two together on real exporters' output);
any line the fast path does not fully understand hands the whole body to the reference.
"""

from __future__ import annotations

import functools
import re

from prometheus_client.parser import text_string_to_metric_families

from dashboard.config_types import SourceTarget
from dashboard.presets.base import Series, too_many_series

# name, label block, value, optional timestamp (milliseconds since the epoch)
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

MAX_SERIES = SourceTarget.max_series


class ExpositionError(ValueError):
    """The body is not valid Prometheus text exposition."""


class TooManySeries(ExpositionError):
    """More series than the source's cap: an ERROR of the source, not 100k rows."""

    def __init__(self, count: int, cap: int, at_least: bool = False):
        super().__init__(too_many_series(count, cap, at_least))
        self.count, self.cap = count, cap


def prefilter(text: str, families: tuple[str, ...]) -> str:
    """Only the lines of the metric families a preset reads."""
    return select(text, families)[0]


def select(text: str, families: tuple[str, ...]) -> tuple[str, int]:
    """The lines of the metric families a preset reads, and how many samples they hold.

    Parsing is ~12 µs a line and most of a real /metrics body is families no preset
    reads (process_*, python_gc_*, *_created), so dropping them first is the cheap win.
    The count comes free with the scan: a body over a source's cap is refused before a
    single Series is built (100k of them cost ~1 s and ~200 MB).
    """
    keep, samples = [], 0
    for line in text.splitlines():
        comment = line.startswith("#")
        if comment:
            parts = line.split(None, 3)
            name = parts[2] if len(parts) > 2 else ""
        else:
            # `or [""]`: a line that starts with "{" has no name (it is not a sample)
            name = (line.split("{", 1)[0].split(None, 1) or [""])[0]
        if name and name.startswith(families) and not name.endswith("_created"):
            keep.append(line)
            samples += not comment
    return "\n".join(keep) + "\n", samples


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
            raise TooManySeries(count_samples(text), max_series)
    return out


@functools.lru_cache(maxsize=16)
def _sample_line(families: tuple[str, ...]) -> re.Pattern:
    """A newline, then a sample of one of `families` (not a `_created` one): the newline
    first lets the regex engine jump from newline to newline (~30 ms for 100k lines,
    against ~180 ms to decode and split them)."""
    names = b"|".join(re.escape(f.encode()) for f in families)
    return re.compile(rb"\n[ \t]*(?:" + names + rb")(?![A-Za-z0-9_:]*_created[ \t{])")


def count_series(body: bytes, families: tuple[str, ...]) -> int:
    """How many samples of `families` a raw body holds, without decoding or splitting it:
    a body over its source's cap is refused for the price of one scan."""
    if not families:
        return 0
    return len(_sample_line(families).findall(b"\n" + body))


_NAME_ROOM = 4096    # bytes of an unfinished line kept: its metric name and then some


class SeriesWatch:
    """Counts the samples of `families` in a body as its pieces arrive, and stops the read
    (`TooManySeries`) once past `cap`: a 100k-series body is dropped after ~10k lines,
    not read whole (4.5 MB over a busy event loop took most of a deadline)."""

    def __init__(self, families: tuple[str, ...], cap: int):
        self.cap = cap
        self.count = 0
        self._pattern = _sample_line(families) if families else None
        self._tail = b"\n"          # the unfinished last line, from its newline on

    def __call__(self, piece: bytes) -> None:
        # Past the cap with more still coming: stop. A body that ends right after its
        # cap-passing piece is counted exactly by the caller (count_series).
        if self.count > self.cap:
            raise TooManySeries(self.count, self.cap, at_least=True)
        if self._pattern is None:
            return
        chunk = self._tail + piece
        cut = chunk.rfind(b"\n")
        # Only the start of an unfinished line matters (its name): a line without end
        # (a bomb of zeros) must not grow the tail.
        self._tail = chunk[cut:cut + _NAME_ROOM]
        self.count += len(self._pattern.findall(chunk, 0, cut))


def count_samples(text: str) -> int:
    """Sample lines of a body, without parsing them (for the "N > cap" of an error)."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


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
                    raise TooManySeries(count_samples(text), max_series)
    except ExpositionError:
        raise
    except (Exception, RecursionError) as exc:  # the parser raises many types on bad input
        raise ExpositionError(f"not Prometheus text format: {type(exc).__name__}: {exc}") from None
    return out
