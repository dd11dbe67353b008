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
