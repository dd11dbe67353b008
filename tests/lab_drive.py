"""Driving a lab from a test: one lab per module, its service's admin endpoint, and a
shipped suite run the way the suite runner runs it, its JUnit cases read back.

Shared by the lab KPI tests and the shipped suites' proof tests, so each writes only
what it breaks and what it expects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import CANARY, ROOT
from dashboard.lab.stack import Lab


def module_lab(prefix: str):
    """A module-scoped `lab` fixture: one lab up for the whole module, down after it."""
    @pytest.fixture(scope="module")
    def lab(tmp_path_factory):
        the_lab = Lab(tmp_path_factory.mktemp(prefix))
        the_lab.up(log=lambda line: None)
        try:
            yield the_lab
        finally:
            the_lab.down()
    return lab


def service_url(lab: Lab) -> str:
    port = next(e.port for e in lab.entries() if e.name == "service")
    return f"http://127.0.0.1:{port}"


def admin(lab: Lab, method: str, path: str, body: dict | None = None,
          token: str | None = "lab") -> tuple[int, dict]:
    """One call to the service: `token` "lab" sends the lab's admin token, None sends none."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        secret = (lab.dir / "secrets" / "admin_token").read_text() if token == "lab" else token
        headers["Authorization"] = f"Bearer {secret}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(service_url(lab) + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def faults(lab: Lab, body: dict) -> dict:
    """POST /admin/faults with the lab's token; the service must accept it."""
    status, answer = admin(lab, "POST", "/admin/faults", body)
    assert status == 200, answer
    return answer


def switch(lab: Lab, **values) -> dict:
    return faults(lab, {"switches": values})


def edge_fault(lab: Lab, function: str, **values) -> dict:
    return faults(lab, {"edge": {function: values}})


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str            # passed | failed | error | skipped
    message: str


def parse_junit(path: Path) -> dict[str, Case]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = found.get("message", "") or (found.text or "")
                break
        cases[case.get("name")] = Case(case.get("name"), outcome, message)
    return cases


def run_shipped(suite_dir: Path, config: Path, tmp: Path, *select: str,
                timeout: float = 300) -> tuple[dict[str, Case], str, Path]:
    """Run a shipped pytest suite as the runner does (its own directory and pytest.ini,
    SCALEDASH_CONFIG naming the config); its cases by name, its output, its JUnit XML."""
    junit = tmp / f"junit-{len(list(tmp.glob('junit-*')))}.xml"
    argv = [sys.executable, "-m", "pytest", str(suite_dir), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--rootdir", str(suite_dir), "-c", str(suite_dir / "pytest.ini"), "--junitxml", str(junit), *select]
    env = {**os.environ, "SCALEDASH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert CANARY not in output
    assert junit.exists(), f"the suite wrote no JUnit XML (exit {proc.returncode}): {output[-2000:]}"
    return parse_junit(junit), output, junit


def summary(cases: dict[str, Case]) -> str:
    """The cases that did not pass, each with the start of its message."""
    return "; ".join(f"{c.name}: {c.outcome} {c.message[:300]}" for c in cases.values() if c.outcome != "passed")
