"""The shipped `edge` suite can pass and can fail: it passes against a healthy lab and
fails, naming `hello`, when that function answers 200 with the wrong shape, answers
another status, or answers slower than its contract's budget (each fault set through
the lab's admin endpoint and cleared afterwards). A function without a contract has its
shape test skipped with the reason, never passed.

The suite runs as the runner runs it (a pytest subprocess on the suite's directory and
pytest.ini, SCALEDASH_CONFIG naming the config, results from its JUnit XML). One lab
serves the module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from lab_drive import Case, edge_fault, module_lab, run_shipped

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "edge"
STATUS = "test_function_answers_its_expected_status"
SHAPE = "test_function_answers_the_shape_its_contract_declares"
LATENCY = "test_function_answers_within_its_latency_budget"
HEALTHY = {"wrong_shape": False, "error_rate": 0.0, "latency_ms": 0}
lab = module_lab("edge-lab")


def run_suite(config: Path, tmp: Path) -> dict[str, Case]:
    """The suite's cases by name (`test[function]`)."""
    return run_shipped(SUITE_DIR, config, tmp, timeout=200)[0]




def _not_passed(cases: dict[str, Case]) -> dict[str, Case]:
    return {name: case for name, case in cases.items() if case.outcome != "passed"}


def test_suite_declares_itself_as_the_runner_expects():
    from dashboard.suites.shipped.edge import SUITE

    assert SUITE == {"kind": "pytest", "description": SUITE["description"], "generates_load": False,
                     "timeout_s": 300}
    assert "\n" not in SUITE["description"] and (SUITE_DIR / "pytest.ini").is_file()


def test_edge_suite_passes_against_a_healthy_lab(lab, tmp_path):
    cases = run_suite(lab.config_path, tmp_path)
    assert set(cases) == {f"{test}[{function}]" for test in (STATUS, SHAPE, LATENCY)
                          for function in ("hello", "resize")}, sorted(cases)
    assert not _not_passed(cases), _not_passed(cases)


@pytest.mark.parametrize("fault,failing,says", [
    ({"wrong_shape": True}, {SHAPE}, "hello answered 200 with the wrong shape"),
    ({"error_rate": 1.0}, {STATUS, SHAPE}, "did not answer 200"),
    ({"latency_ms": 1500}, {LATENCY}, "hello is slower than its budget"),
], ids=["wrong-shape", "wrong-status", "slower-than-budget"])
def test_edge_suite_fails_naming_the_function_that_breaks_its_contract(lab, tmp_path, fault, failing, says):
    edge_fault(lab, "hello", **fault)
    try:
        cases = run_suite(lab.config_path, tmp_path)
    finally:
        edge_fault(lab, "hello", **HEALTHY)
    broken = _not_passed(cases)
    assert set(broken) == {f"{test}[hello]" for test in failing}, broken
    assert all(case.outcome == "failed" for case in broken.values()), broken
    assert any(says in case.message for case in broken.values()), broken
    # resize, untouched, still passes everything: the suite named the function that broke.
    assert all(cases[f"{test}[resize]"].outcome == "passed" for test in (STATUS, SHAPE, LATENCY))


def test_a_function_without_a_contract_has_its_shape_skipped_with_the_reason(lab, tmp_path):
    text = lab.config_path.read_text()
    changed = re.sub(r"^\[edge\.contract\].*\n(^(?!\[).+\n)*", "", text, flags=re.MULTILINE)
    assert changed != text and "contract" not in changed.replace("# what", "")
    config = lab.dir / "no-contract.toml"
    config.write_text(changed)
    edge_fault(lab, "hello", wrong_shape=True)         # unseen without a contract: that is the point
    try:
        cases = run_suite(config, tmp_path)
    finally:
        edge_fault(lab, "hello", **HEALTHY)
    for function in ("hello", "resize"):
        shape = cases[f"{SHAPE}[{function}]"]
        assert shape.outcome == "skipped" and "its answer's shape was not checked" in shape.message, shape
        assert cases[f"{STATUS}[{function}]"].outcome == "passed"
        latency = cases[f"{LATENCY}[{function}]"]
        assert latency.outcome == "passed", latency
