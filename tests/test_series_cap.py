"""The series cap of a metric source, counted on the raw body (RELIABILITY.md case 21).

A body over its source's `max_series` must be refused for the price of one scan of
its bytes: these hold the scan to the line-by-line selection the parser uses, on real
exporters' output, and show that nothing is decoded or parsed once the count is over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.config import validate
from dashboard.model import Failure
from dashboard.presets import NAMES, get
from dashboard.presets.exposition import count_series, family_prefixes, select
from dashboard.probes import scrape
from dashboard.probes.base import ProbeError

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


@pytest.mark.parametrize("preset", NAMES)
@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_counting_series_in_the_raw_bytes_agrees_with_the_line_scan(fixture, preset):
    families = family_prefixes(get(preset).METRICS)
    body = (FIXTURES / fixture).read_bytes()
    assert count_series(body, families) == select(body.decode(), families)[1]


def test_the_count_skips_comments_created_samples_and_other_families():
    body = (b"# TYPE circuit_breaker_calls_total counter\n"
            b"circuit_breaker_calls_total{breaker=\"a\"} 1\n"
            b"circuit_breaker_calls_created{breaker=\"a\"} 1.7e9\n"
            b"  circuit_breaker_state 0\n"
            b"process_cpu_seconds_total 3\n"
            b"circuit_breaker_state{breaker=\"b\"} 1")
    families = family_prefixes(get("scaledash").METRICS)
    assert count_series(body, families) == select(body.decode(), families)[1] == 3


def _probe(cap: int) -> scrape.ScrapeProbe:
    config = validate({"source": [{"name": "s", "scrape": "http://127.0.0.1:9/metrics", "max_series": cap}]})
    return scrape.ScrapeProbe(config.sources[0], 1.0)


def _breakers(count: int) -> bytes:
    return "".join(f'circuit_breaker_state{{breaker="b{i}"}} 0\n' for i in range(count)).encode()


def test_a_body_over_the_cap_is_refused_before_it_is_decoded_or_parsed(monkeypatch):
    def never(*args):
        raise AssertionError("a body over the cap was split into lines")

    monkeypatch.setattr(scrape, "select", never)
    with pytest.raises(ProbeError) as refused:
        _probe(10)._read(_breakers(11))
    assert refused.value.failure is Failure.ERROR and str(refused.value) == "too many series: 11 > 10"


def test_a_body_at_the_cap_is_read_whole():
    readings = _probe(10)._read(_breakers(10))
    assert sorted(r.name for r in readings) == sorted(f"b{i}" for i in range(10))


@pytest.mark.parametrize("piece", [1, 7, 64, 4096])
def test_counting_while_the_body_streams_agrees_with_the_whole_body_at_any_split(piece):
    from dashboard.presets.exposition import SeriesWatch, TooManySeries

    families = family_prefixes(get("postgres_exporter").METRICS)
    body = (FIXTURES / "postgres_exporter.txt").read_bytes()
    whole = count_series(body, families)
    watch = SeriesWatch(families, cap=10**6)
    for at in range(0, len(body), piece):
        watch(body[at:at + piece])
    watch(b"\n")                      # the last line, ended
    assert watch.count == whole
    stopped = SeriesWatch(families, cap=whole - 1)
    with pytest.raises(TooManySeries, match=r"at least \d+ > "):
        for at in range(0, len(body), piece):
            stopped(body[at:at + piece])
        stopped(b"\n")
        stopped(b"more to come\n")
