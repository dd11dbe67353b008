"""The shipped `load` suite's files, checked without a server: the k6 script is valid and
declares the Locust scenarios and thresholds by name, the suite is declared as the runner
expects, a missed threshold is named in the runner's verdict, and a config without a
`[service]` url makes the suite refuse to start instead of loading some other host.

The locustfile is read with `ast`, never imported here: importing Locust patches the
whole process for gevent.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shutil
import subprocess

import pytest

from conftest import CANARY, ROOT
from dashboard.suites.catalog import read_shipped
from dashboard.suites.invocation import build_invocation
from dashboard.suites.judge import judge
from dashboard.suites.results import SuiteKind, Verdict
from dashboard.suites.runner import run_suite

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "load"
K6_SCRIPT = SUITE_DIR / "load.k6.js"
LOCUST_CSV = ROOT / "tests" / "fixtures" / "suites" / "locust_stats.csv"

# Which k6 metric carries which Locust threshold, per request kind.
HTTP_METRICS = {"error_rate": "http_req_failed", "p95_ms": "http_req_duration"}
WS_METRICS = {"error_rate": "ws_failed", "p95_ms": "ws_connecting", "min_frames": "ws_frames"}
K6_CONDITION = {"error_rate": "rate<={:g}", "p95_ms": "p(95)<={:g}", "min_frames": "count>={:g}"}


def _locustfile_literal(name: str):
    tree = ast.parse((SUITE_DIR / "locustfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"locustfile.py declares no {name}")


def _k6_options() -> dict:
    """`export const options = {...};` as JSON (the script keeps it a JSON literal on purpose)."""
    text = K6_SCRIPT.read_text()
    start = text.index("export const options = ") + len("export const options = ")
    depth = 0
    for end, char in enumerate(text[start:], start):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return json.loads(text[start:end + 1])
    raise AssertionError("options never closes")


def test_k6_script_parses():
    node = shutil.which("node")
    if node:
        proc = subprocess.run([node, "--check", str(K6_SCRIPT)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
    text = K6_SCRIPT.read_text()
    assert text.count("{") == text.count("}") and text.count("(") == text.count(")")
    assert re.search(r"^import http from \"k6/http\";$", text, re.MULTILINE)


def test_k6_options_declare_the_locust_scenarios_and_thresholds_by_name():
    options = _k6_options()
    scenarios, thresholds = _locustfile_literal("SCENARIOS"), _locustfile_literal("THRESHOLDS")
    assert set(options["scenarios"]) == set(scenarios)
    text = K6_SCRIPT.read_text()
    for name, scenario in options["scenarios"].items():
        assert re.search(rf"^export function {scenario['exec']}\(", text, re.MULTILINE), name
    expected = {}
    for kind, limits in thresholds.items():
        metrics = WS_METRICS if kind == "subscribe" else HTTP_METRICS
        for limit, value in limits.items():
            expected[f"{metrics[limit]}{{kind:{kind}}}"] = [K6_CONDITION[limit].format(value)]
    assert options["thresholds"] == expected
    # Every scenario's request kind has thresholds, in both tools.
    assert set(scenarios.values()) == set(thresholds)


def test_k6_inspect_accepts_the_script_when_k6_is_installed():
    k6 = shutil.which("k6")
    if k6 is None:
        pytest.skip("k6 is not on PATH: `k6 inspect` cannot run here (the structure checks above still do)")
    proc = subprocess.run([k6, "inspect", str(K6_SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SCALEDASH_SERVICE_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["scenarios"]) == set(_locustfile_literal("SCENARIOS"))


def test_load_suite_is_a_bounded_locust_run_that_generates_load(tmp_path):
    spec = read_shipped(SUITE_DIR)
    assert spec.kind is SuiteKind.LOCUST and spec.generates_load
    assert (spec.users, spec.spawn_rate, spec.run_time_s) == (10, 5, 30)
    assert spec.timeout_s > 2 * spec.run_time_s    # Locust's run, then k6's
    argv = build_invocation(spec, tmp_path).argv
    assert argv[argv.index("-u") + 1] == "10" and argv[argv.index("-t") + 1] == "30s"
    assert "--headless" in argv and "--host" not in argv     # the host comes from the config only


def test_missed_thresholds_are_named_in_the_verdict_and_skips_kept(tmp_path):
    spec = read_shipped(SUITE_DIR)
    tail = ("load figures: edge: 40 requests, 25.00% failed, p95 12 ms",
            "load check failed: edge.error_rate: 25.00% of 40 requests failed (limit 2.00%)",
            "load check skipped: k6: k6 is not on PATH")
    common = dict(ending=None, timeout_s=10, junit_path=None, locust_stats=LOCUST_CSV,
                  started_at=1_700_000_000.0, duration_s=1.5, tail=tail)
    failed = judge(spec, returncode=1, **common)
    assert failed.verdict is Verdict.FAILED and "edge.error_rate" in failed.reason
    assert [(f.name, f.message) for f in failed.failures] == \
        [("edge.error_rate", "25.00% of 40 requests failed (limit 2.00%)")]
    assert [(s.name, s.reason) for s in failed.skips] == [("k6", "k6 is not on PATH")]
    assert failed.requests_total is not None
    passed = judge(spec, returncode=0, **{**common, "tail": tail[2:]})
    assert passed.verdict is Verdict.PASSED and not passed.failures and passed.skips


def test_without_service_url_the_suite_refuses_to_start(write_config, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    config = write_config('[[edge]]\nname = "hello"\nurl = "http://127.0.0.1:9/functions/v1/hello"\n')
    spec = read_shipped(SUITE_DIR)
    result = asyncio.run(run_suite(spec, config_path=str(config)))
    text = "\n".join(result.tail)
    assert result.verdict is Verdict.ERROR and result.exit_code == 2, (result.reason, text)
    refusal = [line for line in result.tail if "refusing to send load" in line]
    assert len(refusal) == 1 and "has no [service] url" in refusal[0], text
    assert "Traceback" not in text and CANARY not in text and not result.requests


def test_thresholds_are_judged_on_both_sides_and_a_kind_without_requests_fails():
    from dashboard.suites.shipped.load.checks import KindFigures, missed

    limits = {"edge": {"error_rate": 0.02, "p95_ms": 1000},
              "subscribe": {"error_rate": 0.01, "p95_ms": 1000, "min_frames": 1}}
    met = {"edge": KindFigures("edge", 100, 2, 1000.0), "subscribe": KindFigures("subscribe", 4, 0, 30.0, frames=1)}
    assert missed(limits, met) == []
    broke = {"edge": KindFigures("edge", 100, 3, 1001.0), "subscribe": KindFigures("subscribe", 4, 0, 30.0, frames=0)}
    assert [name for name, _ in missed(limits, broke)] == ["edge.error_rate", "edge.p95_ms", "subscribe.min_frames"]
    nothing = {"edge": KindFigures("edge", 0, 0, None)}
    assert [name for name, _ in missed(limits, nothing)] == ["edge.requests", "subscribe.requests"]


def test_k6_runs_when_on_path_with_the_stack_in_its_environment_not_argv(tmp_path, monkeypatch):
    """k6 itself is not installed here: a stand-in on PATH records how it was called."""
    from dashboard.suites.shipped.load.k6 import run_k6
    from dashboard.suites.shipped.load.target import EdgeCall, LoadTarget

    target = LoadTarget("cfg", "http://127.0.0.1:9", (EdgeCall("hello", "http://127.0.0.1:9/functions/v1/hello",
                                                               "POST", (("Authorization", f"Bearer {CANARY}"),)),))
    monkeypatch.setenv("PATH", str(tmp_path) + ":/usr/bin:/bin")
    said: list[str] = []
    assert run_k6(target, 4, 12, said.append)[0] == "skipped"   # no k6 yet
    stand_in = tmp_path / "k6"
    stand_in.write_text('#!/bin/sh\necho "$@" > "$0.argv"\nenv > "$0.env"\necho "threshold crossed"\n'
                        'exit "${K6_EXIT:-0}"\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("K6_EXIT", "99")
    outcome, why = run_k6(target, 4, 12, said.append)
    assert outcome == "failed" and "exit code 99" in why and "k6: threshold crossed" in said
    argv = (tmp_path / "k6.argv").read_text()
    assert argv.split() == ["run", "--no-color", "--quiet", str(K6_SCRIPT)] and CANARY not in argv
    env = dict(line.split("=", 1) for line in (tmp_path / "k6.env").read_text().splitlines() if "=" in line)
    assert env["SCALEDASH_SERVICE_URL"] == "http://127.0.0.1:9" and env["SCALEDASH_K6_USERS"] == "4"
    assert env["SCALEDASH_K6_DURATION"] == "12s"
    assert json.loads(env["SCALEDASH_EDGES"])[0]["headers"] == {"Authorization": f"Bearer {CANARY}"}
    monkeypatch.setenv("K6_EXIT", "0")
    assert run_k6(target, 4, 12, said.append) is None
