"""The suite runner's pure parts: reports, verdicts, the catalog, the environment, the JSON.

The JUnit XML and the Locust CSV under tests/fixtures/suites/ were written by real runs
(pytest 8.4 on a five-test module; Locust 2.47 headless, -u 2 -r 2 -t 3s, against a
local aiohttp server answering /ok 200 and /bad 500). Runs of real suite processes are
in tests/integration/test_suite_runs.py.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from dashboard.config import validate
from dashboard.config_types import SuiteTarget
from dashboard.suites import invocation
from dashboard.suites.catalog import (
    UnknownSuite, all_suites, configured_suite, find_suite, read_shipped, runs_pytest, shipped_suites,
)
from dashboard.suites.environment import child_environment, referenced_env_names
from dashboard.suites.invocation import SuiteUnavailable, build_invocation
from dashboard.suites.judge import judge
from dashboard.suites.reports import locust_current_rps, parse_junit, parse_locust_stats
from dashboard.suites.results import Counts, SuiteKind, SuiteResult, Verdict, exit_code

FIXTURES = Path(__file__).parent / "fixtures" / "suites"
JUNIT = FIXTURES / "junit_mixed.xml"
LOCUST_CSV = FIXTURES / "locust_stats.csv"
# The Aggregated line of Locust's console stats from the same run.
LOCUST_LINE = ("         Aggregated                                                                        94   "
               "23(24.47%) |      5       1      62      4 |   35.42        8.67")


# ------------------------------------------------------------------ JUnit

def test_junit_counts_and_failing_cases_from_a_real_pytest_report():
    report = parse_junit(JUNIT)
    assert report.counts == Counts(passed=2, failed=1, skipped=1, errors=1)
    by_name = {f.name: f for f in report.failures}
    assert set(by_name) == {"test_mixed::test_breaker_opens_after_failures", "test_mixed::test_cache_layers_answer"}
    assert not by_name["test_mixed::test_breaker_opens_after_failures"].error
    assert by_name["test_mixed::test_cache_layers_answer"].error
    assert "refused the connection" in by_name["test_mixed::test_cache_layers_answer"].message
    assert [(k.name, k.reason) for k in report.skips] == [("test_mixed::test_websocket_batching",
                                                           "the stack exposes no batcher")]


def test_junit_failure_messages_are_redacted_and_one_line():
    message = next(f.message for f in parse_junit(JUNIT).failures if "breaker" in f.name)
    assert message.startswith("AssertionError: breaker stayed closed")
    assert "hunter2-secret" not in message and "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("content", [None, b"", b"<?xml version='1.0'?><testsuites><testsuite name='x'><testc",
                                     b"<html><body>not a report</body></html>"])
def test_missing_empty_cut_or_foreign_junit_is_no_report(tmp_path, content):
    path = tmp_path / "junit.xml"
    if content is not None:
        path.write_bytes(content)
    assert parse_junit(path) is None


def test_junit_cut_in_half_is_no_report(tmp_path):
    data = JUNIT.read_bytes()
    path = tmp_path / "half.xml"
    path.write_bytes(data[: len(data) // 2])
    assert parse_junit(path) is None


# ------------------------------------------------------------------ Locust

def test_locust_stats_per_request_kind_and_aggregate_from_a_real_csv():
    rows, total = parse_locust_stats(LOCUST_CSV)
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {"read", "write"}
    read, write = by_name["read"], by_name["write"]
    assert (read.method, read.requests, read.failures) == ("GET", 53, 0)
    assert (write.requests, write.failures, write.failure_rate) == (17, 17, 1.0)
    assert (read.p50_ms, read.p95_ms, read.p99_ms) == (4, 12, 62)
    assert read.rps == pytest.approx(26.70, abs=0.01)
    assert total.name == "Aggregated" and total.requests == 70 and total.failures == 17


def test_locust_stats_header_only_missing_or_foreign_is_none(tmp_path):
    header_only = tmp_path / "h_stats.csv"
    header_only.write_text(LOCUST_CSV.read_text().splitlines()[0] + "\n")
    assert parse_locust_stats(header_only) == ((), None)
    assert parse_locust_stats(tmp_path / "missing.csv") is None
    foreign = tmp_path / "f.csv"
    foreign.write_text("a,b\n1,2\n")
    assert parse_locust_stats(foreign) is None


def test_locust_percentile_without_samples_is_none(tmp_path):
    lines = LOCUST_CSV.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("95%")] = "N/A"
    path = tmp_path / "na_stats.csv"
    path.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    (read,), _ = parse_locust_stats(path)
    assert read.p95_ms is None and read.p50_ms == 4


def test_locust_current_rps_is_read_from_its_aggregated_console_line():
    assert locust_current_rps(LOCUST_LINE) == pytest.approx(35.42)
    assert locust_current_rps("GET      read       71     0(0.00%) |  5  1  62  4 |   26.76   0.00") is None
    assert locust_current_rps("Aggregated is a word in a test name") is None


# ------------------------------------------------------------------ verdicts

def _spec(kind: SuiteKind = SuiteKind.PYTEST):
    return configured_suite(SuiteTarget("s", ("pytest",) if kind is SuiteKind.PYTEST else ("true",)))


def _judge(spec, **kw) -> SuiteResult:
    base = dict(returncode=0, ending=None, timeout_s=10, junit_path=None, locust_stats=None,
                started_at=1_700_000_000.0, duration_s=1.5, tail=("last line",))
    return judge(spec, **{**base, **kw})


def test_pytest_report_with_failures_is_failed_and_clean_report_is_passed(tmp_path):
    assert _judge(_spec(), returncode=1, junit_path=JUNIT).verdict is Verdict.FAILED
    clean = tmp_path / "clean.xml"
    clean.write_text('<testsuites><testsuite name="p"><testcase classname="m" name="t" time="0.1"/>'
                     '</testsuite></testsuites>')
    result = _judge(_spec(), returncode=0, junit_path=clean)
    assert result.verdict is Verdict.PASSED and result.counts.passed == 1


def test_pytest_without_report_or_with_a_crash_exit_is_error_with_its_last_lines(tmp_path):
    missing = _judge(_spec(), returncode=1, junit_path=tmp_path / "none.xml")
    assert missing.verdict is Verdict.ERROR and "no usable JUnit report" in missing.reason
    assert missing.tail == ("last line",)
    crashed = _judge(_spec(), returncode=4, junit_path=tmp_path / "none.xml")
    assert crashed.verdict is Verdict.ERROR and "conftest" in crashed.reason
    empty = _judge(_spec(), returncode=5, junit_path=tmp_path / "none.xml")
    assert empty.verdict is Verdict.ERROR and "no tests" in empty.reason


def test_a_pytest_run_that_skipped_every_test_is_no_answer_not_a_pass(tmp_path):
    skipped = tmp_path / "skipped.xml"
    skipped.write_text('<testsuites><testsuite name="p"><testcase classname="m" name="t" time="0.1">'
                       '<skipped type="pytest.skip" message="no admin endpoint">m.py:3</skipped></testcase>'
                       '</testsuite></testsuites>')
    result = _judge(_spec(), returncode=0, junit_path=skipped)
    assert result.verdict is Verdict.ERROR and "every test was skipped" in result.reason
    assert result.counts.skipped == 1


def test_timeout_and_cancel_win_over_whatever_the_run_left():
    assert _judge(_spec(), returncode=1, junit_path=JUNIT, ending=Verdict.TIMEOUT).verdict is Verdict.TIMEOUT
    cancelled = _judge(_spec(SuiteKind.COMMAND), returncode=0, ending=Verdict.CANCELLED)
    assert cancelled.verdict is Verdict.CANCELLED


def test_command_is_judged_by_its_exit_code():
    command = _spec(SuiteKind.COMMAND)
    assert _judge(command, returncode=0).verdict is Verdict.PASSED
    assert _judge(command, returncode=3).verdict is Verdict.FAILED
    assert _judge(command, returncode=-9).verdict is Verdict.ERROR


def test_locust_exit_code_decides_and_missing_stats_is_error(tmp_path):
    spec = read_shipped(_locust_dir(tmp_path))
    passed = _judge(spec, returncode=0, locust_stats=LOCUST_CSV)
    assert passed.verdict is Verdict.PASSED and len(passed.requests) == 2 and passed.requests_total.requests == 70
    assert _judge(spec, returncode=1, locust_stats=LOCUST_CSV).verdict is Verdict.FAILED
    assert _judge(spec, returncode=0, locust_stats=tmp_path / "none.csv").verdict is Verdict.ERROR


def test_exit_codes_of_suite_run():
    assert [exit_code(v) for v in Verdict] == [0, 1, 2, 2, 2]


def test_result_json_is_the_documented_contract():
    result = _judge(_spec(), returncode=1, junit_path=JUNIT)
    doc = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert set(doc) == {"suite", "kind", "verdict", "reason", "started_at", "finished_at", "duration_s",
                        "exit_code", "counts", "failures", "skips", "requests", "requests_total", "tail"}
    assert doc["counts"] == {"passed": 2, "failed": 1, "skipped": 1, "errors": 1}
    assert doc["started_at"] == "2023-11-14T22:13:20Z" and doc["verdict"] == "FAILED" and doc["kind"] == "pytest"
    assert {"name", "message", "duration_s", "error"} == set(doc["failures"][0])


# ------------------------------------------------------------------ catalog

def _locust_dir(tmp_path: Path) -> Path:
    d = tmp_path / "loady"
    d.mkdir()
    (d / "locustfile.py").write_text("")
    return d


def test_shipped_suite_is_read_from_its_SUITE_without_running_it(tmp_path):
    d = tmp_path / "scaling"
    d.mkdir()
    (d / "conftest.py").write_text("")
    (d / "test_reads.py").write_text("def test_x():\n    pass\n")
    marker = tmp_path / "imported"
    (d / "__init__.py").write_text(
        '"""Docstring line."""\n'
        f'open({str(marker)!r}, "w").close()\n'
        'SUITE = {"kind": "pytest", "description": "reads go to replicas", "generates_load": False,\n'
        '         "timeout_s": 120, "plugins": ["anyio"]}\n')
    spec = read_shipped(d)
    assert (spec.name, spec.kind, spec.source, spec.description) == ("scaling", SuiteKind.PYTEST, "shipped",
                                                                     "reads go to replicas")
    assert spec.timeout_s == 120 and spec.plugins == ("anyio",) and not spec.generates_load
    assert not marker.exists()


def test_shipped_locust_suite_without_SUITE_takes_its_docstring_and_generates_load(tmp_path):
    d = _locust_dir(tmp_path)
    (d / "__init__.py").write_text('"""Read-heavy browsing on Zipf keys.\n\nMore."""\n')
    spec = read_shipped(d)
    assert spec.kind is SuiteKind.LOCUST and spec.generates_load
    assert spec.description == "Read-heavy browsing on Zipf keys."
    assert spec.run_time_s == 30 and spec.timeout_s == 90


def test_shipped_suites_are_the_directories_with_tests_or_a_locustfile(tmp_path):
    _locust_dir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "_private").mkdir()
    (tmp_path / "_private" / "test_x.py").write_text("")
    assert [s.name for s in shipped_suites(tmp_path)] == ["loady"]


@pytest.mark.parametrize("command, expected", [
    (("pytest", "-q"), True), (("/srv/.venv/bin/pytest",), True), (("python3", "-m", "pytest"), True),
    (("py.test",), True), (("./smoke.sh",), False), (("python", "-m", "locust"), False), (("make", "test"), False),
])
def test_a_configured_command_is_pytest_only_when_it_runs_pytest(command, expected):
    assert runs_pytest(command) is expected


def test_a_configured_suite_takes_the_name_of_a_shipped_one_and_unknown_names_are_listed(tmp_path):
    _locust_dir(tmp_path)
    cfg = validate(tomllib.loads('[[suite]]\nname = "loady"\ncommand = ["./load.sh"]\n'
                                '[[suite]]\nname = "smoke"\ncommand = ["true"]\n'), "s.toml")
    suites = all_suites(cfg, tmp_path)
    assert [(s.name, s.source) for s in suites] == [("loady", "configured"), ("smoke", "configured")]
    with pytest.raises(UnknownSuite, match="suites: loady, smoke"):
        find_suite("nope", cfg, tmp_path)


# ------------------------------------------------------------------ environment and invocation

def test_child_environment_is_the_allow_list_plus_the_configs_env_references(isolated_secrets):
    from tests.conftest import CANARY

    parent = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "TERM": "xterm",
              "AWS_SECRET_ACCESS_KEY": CANARY, "GITHUB_TOKEN": CANARY, "PG_PASSWORD": "pg-pass-123",
              "SSH_AUTH_SOCK": "/tmp/agent"}
    env = child_environment("/etc/scaledash.toml", ["PG_PASSWORD", "NOT_SET"], {"X_RUNNER": "1"}, parent)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "TERM": "xterm",
                   "PG_PASSWORD": "pg-pass-123", "SCALEDASH_CONFIG": "/etc/scaledash.toml", "X_RUNNER": "1"}
    from dashboard.redact import redact
    assert redact("pg-pass-123") == "***"


def test_env_references_are_found_anywhere_in_the_config():
    cfg = validate(tomllib.loads(
        '[[replica]]\nname = "p"\ndsn = "postgresql://u@h/db"\npassword = "env:SCALEDASH_TEST_PG_PASSWORD"\n'
        '[[edge]]\nname = "e"\nurl = "http://127.0.0.1:1/f"\nheaders = { Authorization = "env:SCALEDASH_TEST_TOKEN" }\n'
    ), "e.toml")
    assert referenced_env_names(cfg) == ("SCALEDASH_TEST_PG_PASSWORD", "SCALEDASH_TEST_TOKEN")


def test_shipped_pytest_runs_isolated_from_the_users_pytest_setup(tmp_path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / "test_a.py").write_text("")
    work = tmp_path / "work"
    work.mkdir()
    inv = build_invocation(read_shipped(d), work)
    argv = inv.argv
    assert argv[1:4] == ("-m", "pytest", str(d))
    assert argv[argv.index("--rootdir") + 1] == str(d)
    assert Path(argv[argv.index("-c") + 1]).read_text() == "[pytest]\n"
    assert "no:cacheprovider" in argv and "no:randomly" in argv and "--junitxml" in argv
    assert inv.env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1" and inv.cwd == str(work)


def test_a_configured_pytest_command_gets_a_junit_report_and_a_plain_command_runs_as_written(tmp_path):
    pytest_spec = configured_suite(SuiteTarget("it", ("pytest", "-q", "tests"), cwd=str(tmp_path)))
    inv = build_invocation(pytest_spec, tmp_path)
    assert inv.argv[:3] == ("pytest", "-q", "tests") and "--junitxml" in inv.argv and inv.cwd == str(tmp_path)
    plain = build_invocation(configured_suite(SuiteTarget("smoke", ("./smoke.sh", "--fast"))), tmp_path)
    assert plain.argv == ("./smoke.sh", "--fast") and plain.junit_path is None
    with pytest.raises(SuiteUnavailable, match="not a directory"):
        build_invocation(configured_suite(SuiteTarget("x", ("true",), cwd=str(tmp_path / "gone"))), tmp_path)


def test_a_locust_suite_without_locust_installed_says_what_to_install(tmp_path, monkeypatch):
    real = invocation.importlib.util.find_spec
    monkeypatch.setattr(invocation.importlib.util, "find_spec",
                        lambda name, *a: None if name == "locust" else real(name, *a))
    with pytest.raises(SuiteUnavailable, match=r"Locust .* is not installed: pip install 'scaledash\[suites\]'"):
        build_invocation(read_shipped(_locust_dir(tmp_path)), tmp_path)
