"""The fast /metrics parser gives exactly what the reference parser gives, or steps aside."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.presets.exposition import ExpositionError, fast_parse, parse_text
from metric_texts import hostile_metrics, resilience4j_metrics, scaledash_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


def _reference(text: str) -> list[tuple]:
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2])))
        for x, y in zip(a, b))


BODIES = {path.name: path.read_text() for path in sorted(FIXTURES.glob("*.txt"))}
BODIES.update({
    "scaledash": scaledash_metrics()({})[2].decode(),
    "resilience4j": resilience4j_metrics()({})[2].decode(),
    "hostile": hostile_metrics({})[2].decode(),
    "escapes": '# TYPE foo counter\nfoo{a="x\\\\y",b="q\\"uote",c="new\\nline",d="}{,="} 3 1700000000\n'
               'bar 1e309\nbaz -Inf\n',
})


@pytest.mark.parametrize("name", sorted(BODIES))
def test_fast_parser_matches_the_reference_parser(name):
    text = BODIES[name]
    fast = fast_parse(text)
    assert fast is not None, f"{name}: the fast path stepped aside"
    assert _same([(s.name, dict(s.labels), s.value) for s in fast], _reference(text))


@pytest.mark.parametrize("text", [
    'foo{a="unterminated} 1\n',
    "foo{a=1} 2\n",
    "foo bar\n",
    "9starts_with_digit 1\n",
    '<html>oops</html>\n',
])
def test_lines_the_fast_path_does_not_understand_go_to_the_reference(text):
    assert fast_parse(text) is None
    with pytest.raises(ExpositionError):
        parse_text(text)
