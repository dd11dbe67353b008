"""The edge suite's judgement of one answer against `[edge.contract]`, both sides of each rule.

The calls themselves are shown against real servers in
tests/integration/test_config_keys.py and tests/integration/test_edge_suite.py; here
are the shapes no server in those tests answers (nested arrays, JSON's number types).
"""

from __future__ import annotations

import pytest

from dashboard.config import ConfigError, validate
from dashboard.config_types import EdgeContract
from dashboard.suites.shipped.edge.contract import NOT_JSON, Answer, answer_problems, percentile, shape_problems


@pytest.mark.parametrize("shape,met,missed,says", [
    ("number", 2.5, True, "expected number, got boolean"),
    ("number", 3, "3", "expected number, got string"),
    ("integer", 2.0, 2.5, "expected integer, got number"),
    ("boolean", False, 0, "expected boolean, got integer"),
    ("null", None, {}, "expected null, got object"),
    ("object", {}, [], "expected object, got array"),
    ("array", [], {}, "expected array, got object"),
    ("any", None, NOT_JSON, "expected any, got no JSON"),
])
def test_each_type_word_accepts_its_json_type_and_refuses_the_others(shape, met, missed, says):
    assert shape_problems(shape, met) == []
    assert shape_problems(shape, missed) == [f"body: {says}"]


def test_a_table_requires_its_keys_and_allows_more():
    shape = {"user": {"id": "integer", "tags": ["string"]}}
    assert shape_problems(shape, {"user": {"id": 1, "tags": ["a"], "extra": True}, "more": 1}) == []
    assert shape_problems(shape, {"user": {"tags": ["a", 2]}}) == [
        "body.user.id: missing (keys there: tags)", "body.user.tags[1]: expected string, got integer"]
    assert shape_problems(shape, {"user": None}) == ["body.user: expected an object, got null"]


def test_an_array_shape_checks_every_item_and_an_empty_array_meets_it():
    shape = [{"id": "integer"}]
    assert shape_problems(shape, []) == [] and shape_problems(shape, [{"id": 1}, {"id": 2}]) == []
    assert shape_problems(shape, [{"id": 1}, {"name": "x"}]) == ["body[1].id: missing (keys there: name)"]
    assert shape_problems(shape, {"id": 1}) == ["body: expected an array, got object"]


def test_problems_name_types_never_the_values():
    problems = shape_problems({"token": "integer"}, {"token": "secret-value-123"})
    assert problems == ["body.token: expected integer, got string"] and "secret-value" not in problems[0]


def test_content_type_is_compared_without_its_parameters():
    contract = EdgeContract(content_type="application/json")
    assert answer_problems(contract, Answer(200, "application/json", {})) == []
    assert answer_problems(contract, Answer(200, "text/html", NOT_JSON)) == [
        "content type text/html (expected application/json)"]
    assert answer_problems(EdgeContract(), Answer(200, "text/html", NOT_JSON)) == []


def test_p95_is_a_measured_value():
    assert percentile([10.0, 20.0, 30.0, 40.0, 500.0], 0.95) == 500.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([7.0], 0.5) == 7.0


def test_a_body_contract_on_head_is_refused():
    with pytest.raises(ConfigError) as caught:
        validate({"edge": [{"name": "f", "url": "http://127.0.0.1:1/f", "method": "HEAD",
                            "contract": {"body": {"a": "string"}}}]})
    assert caught.value.problems == [
        "edge[0].contract.body: a HEAD answer has no body to check (use GET, or content_type alone)"]
    validate({"edge": [{"name": "f", "url": "http://127.0.0.1:1/f", "method": "HEAD",
                        "contract": {"content_type": "text/html"}}]})
