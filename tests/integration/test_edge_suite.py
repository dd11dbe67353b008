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

import json
import os
import re
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import CANARY, ROOT
from dashboard.lab.stack import Lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "edge"
STATUS = "test_function_answers_its_expected_status"
SHAPE = "test_function_answers_the_shape_its_contract_declares"
LATENCY = "test_function_answers_within_its_latency_budget"
HEALTHY = {"wrong_shape": False, "error_rate": 0.0, "latency_ms": 0}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    the_lab = Lab(tmp_path_factory.mktemp("edge-lab"))
    the_lab.up(log=lambda line: None)
    try:
        yield the_lab
    finally:
        the_lab.down()


@dataclass(frozen=True)
class Case:
    outcome: str            # passed | failed | error | skipped
    message: str


def run_suite(config: Path, tmp: Path) -> dict[str, Case]:
    """Run the suite the runner's way; its test cases by name (`test[function]`)."""
    junit = tmp / f"junit-{len(list(tmp.glob('junit-*')))}.xml"
    argv = [sys.executable, "-m", "pytest", str(SUITE_DIR), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--rootdir", str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--junitxml", str(junit)]
    env = {**os.environ, "SCALEDASH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=200)
    output = proc.stdout + proc.stderr
    assert CANARY not in output
    assert junit.exists(), f"the suite wrote no JUnit XML (exit {proc.returncode}): {output[-2000:]}"
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = {"failure": "failed"}.get(kind, kind), found.get("message", "") or ""
                break
        cases[case.get("name")] = Case(outcome, message)
    return cases


def _fault(lab: Lab, function: str, **values) -> None:
    token = (lab.dir / "secrets" / "admin_token").read_text()
    port = next(e.port for e in lab.entries() if e.name == "service")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/faults", method="POST",
                                     data=json.dumps({"edge": {function: values}}).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


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
    _fault(lab, "hello", **fault)
    try:
        cases = run_suite(lab.config_path, tmp_path)
    finally:
        _fault(lab, "hello", **HEALTHY)
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
    _fault(lab, "hello", wrong_shape=True)         # unseen without a contract: that is the point
    try:
        cases = run_suite(config, tmp_path)
    finally:
        _fault(lab, "hello", **HEALTHY)
    for function in ("hello", "resize"):
        shape = cases[f"{SHAPE}[{function}]"]
        assert shape.outcome == "skipped" and "its answer's shape was not checked" in shape.message, shape
        assert cases[f"{STATUS}[{function}]"].outcome == "passed"
        latency = cases[f"{LATENCY}[{function}]"]
        assert latency.outcome == "passed", latency
