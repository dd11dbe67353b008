"""Parse Prometheus text exposition into `Series`, behind one parse boundary.

prometheus_client's parser is the reference implementation of the format; anything it
raises on hostile input (including RecursionError, which is not a ValueError) becomes
one `ExpositionError`.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from dashboard.presets.base import Series

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
            name = line.split("{", 1)[0].split(None, 1)[0] if line.strip() else ""
        if name and name.startswith(families) and not name.endswith("_created"):
            keep.append(line)
    return "\n".join(keep) + "\n"


def family_prefixes(metrics) -> tuple[str, ...]:
    """The name stems of a preset's metrics: counters lose `_total`, so `_count`,
    `_bucket` and both counter spellings match."""
    return tuple(sorted({m.name.removesuffix("_total") for m in metrics}))


def parse_text(text: str, max_series: int = MAX_SERIES) -> list[Series]:
    out: list[Series] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.append(Series(sample.name, dict(sample.labels), float(sample.value)))
                if len(out) > max_series:
                    raise ExpositionError(f"more than {max_series} series")
    except ExpositionError:
        raise
    except (Exception, RecursionError) as exc:  # the parser raises many types on bad input
        raise ExpositionError(f"not Prometheus text format: {type(exc).__name__}: {exc}") from None
    return out
