"""Real suite processes run by the runner and by `scaledash suite run`.

Each test builds a tiny shipped-style suite in its tmp dir (the runner takes any
directory) or a configured [[suite]] command, runs it as a real subprocess, and reads
what a user would: the verdict, counts, failing names, lines, and /proc for what is
left of the suite's process group. Locust runs for real, headless and bounded
(-u 2 -r 2 -t 3s), against the session's aiohttp server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboard.suites.catalog import read_shipped
from dashboard.suites.runner import TAIL_LINES, SuiteRun
from dashboard.suites.results import SuiteKind, Verdict
from tests.conftest import CANARY, ROOT, run_cli, wait_for

DEMO_TESTS = '''
import pytest

def test_passes():
    assert True

def test_fails():
    assert 1 == 2, "one is not two"

def test_skipped():
    pytest.skip("nothing to check here")

def test_prints_many_lines(capsys):
    with capsys.disabled():
        for i in range(2000):
            print(f"line {i}")
'''

SLEEPY_TESTS = '''
import subprocess, sys, time
from pathlib import Path

def test_starts_a_child_and_sleeps():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    Path(__file__).with_name("child.pid").write_text(str(child.pid))
    time.sleep(300)
'''

LOCUSTFILE = '''
import os, tomllib
from urllib.parse import urlsplit
from locust import HttpUser, constant, task

with open(os.environ["SCALEDASH_CONFIG"], "rb") as handle:
    _url = urlsplit(tomllib.load(handle)["edge"][0]["url"])


class Browser(HttpUser):
    host = f"{_url.scheme}://{_url.netloc}"
    wait_time = constant(0.05)

    @task(3)
    def read(self):
        self.client.get("/suite/ok", name="read")

    @task
    def write(self):
        self.client.get("/suite/bad", name="write")
'''


def make_suite(root: Path, name: str, files: dict[str, str], suite: str | None = None) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "__init__.py").write_text(suite or f'SUITE = {{"kind": "pytest", "description": "{name}"}}\n')
    for filename, text in files.items():
        (directory / filename).write_text(text)
    return directory


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def run(coro):
    return asyncio.run(coro)


async def start_and_wait(run_: SuiteRun):
    await run_.start()
    return await run_.wait()


# ------------------------------------------------------------------ pytest suites

def test_a_real_pytest_suite_gives_counts_failing_names_progress_and_a_bounded_tail(tmp_path):
    suite = make_suite(tmp_path, "demo", {"conftest.py": "", "test_demo.py": DEMO_TESTS})
    progress, lines = [], []
    suite_run = SuiteRun(read_shipped(suite), on_progress=progress.append, on_line=lines.append)
    result = run(start_and_wait(suite_run))
    assert result.kind is SuiteKind.PYTEST and result.verdict is Verdict.FAILED and result.exit_code == 1
    assert (result.counts.passed, result.counts.failed, result.counts.skipped, result.counts.errors) == (2, 1, 1, 0)
    assert [f.name for f in result.failures] == ["test_demo::test_fails"]
    assert "one is not two" in result.failures[0].message
    assert (progress[-1].done, progress[-1].total) == (4, 4)
    assert "line 1999" in lines and len(lines) > 2000
    assert len(result.tail) == TAIL_LINES and "line 0" not in result.tail


def test_a_passing_suite_passes_and_its_lines_can_be_iterated(tmp_path):
    suite = make_suite(tmp_path, "green", {"test_ok.py": "def test_ok():\n    print('hello')\n"})

    async def scenario():
        suite_run = SuiteRun(read_shipped(suite))
        await suite_run.start()
        seen = [line async for line in suite_run.lines()]
        return seen, await suite_run.wait()

    seen, result = run(scenario())
    assert result.verdict is Verdict.PASSED and result.counts.passed == 1 and result.reason is None
    assert any("1 passed" in line for line in seen)


def test_a_suite_whose_conftest_raises_is_an_error_with_its_last_lines(tmp_path):
    suite = make_suite(tmp_path, "crashy", {"conftest.py": "raise RuntimeError('conftest exploded on import')\n",
                                             "test_x.py": "def test_x():\n    pass\n"})
    result = run(start_and_wait(SuiteRun(read_shipped(suite))))
    assert result.verdict is Verdict.ERROR and result.counts.total == 0
    assert any("conftest exploded on import" in line for line in result.tail), result.tail


def test_a_timeout_is_a_result_and_leaves_no_process_of_the_group(tmp_path):
    suite = make_suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY_TESTS})
    suite_run = SuiteRun(read_shipped(suite), timeout_s=6, grace_s=2)
    result = run(start_and_wait(suite_run))
    assert result.verdict is Verdict.TIMEOUT and result.reason == "timed out after 6 s"
    assert group_members(suite_run.pgid) == []
    child_pid = suite / "child.pid"
    if child_pid.exists():      # pytest reached the test (it does, unless the machine is very slow)
        assert not alive(int(child_pid.read_text()))


def test_cancel_mid_run_stops_the_whole_group(tmp_path):
    suite = make_suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY_TESTS})

    async def scenario():
        suite_run = SuiteRun(read_shipped(suite), grace_s=2)
        await suite_run.start()
        deadline = time.monotonic() + 60
        while not (suite / "child.pid").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        suite_run.cancel()
        return suite_run, await suite_run.wait()

    suite_run, result = run(scenario())
    assert result.verdict is Verdict.CANCELLED
    assert group_members(suite_run.pgid) == []
    assert not alive(int((suite / "child.pid").read_text()))


def test_a_cancelled_waiter_stops_the_suite_too(tmp_path):
    suite = make_suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY_TESTS})

    async def scenario():
        suite_run = SuiteRun(read_shipped(suite), grace_s=2)
        await suite_run.start()
        waiter = asyncio.create_task(suite_run.wait())
        await asyncio.sleep(0.5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return suite_run

    suite_run = run(scenario())
    assert group_members(suite_run.pgid) == [] and suite_run.result.verdict is Verdict.CANCELLED


# ------------------------------------------------------------------ environment

ENV_DUMP = "import json, os; print('ENV ' + json.dumps(sorted(os.environ))); print('AWS=' + os.environ.get('AWS_SECRET_ACCESS_KEY', 'absent'))"


def test_the_suite_sees_only_the_allow_listed_environment(tmp_path, write_config, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")
    monkeypatch.setenv("LC_TIME", "C")
    cfg = write_config(f'[[suite]]\nname = "env"\ncommand = {json.dumps([sys.executable, "-c", ENV_DUMP])}\n')
    result = run_cli("suite", "run", "env", "--config", str(cfg), "--json")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    names = set(json.loads(next(line for line in doc["tail"] if line.startswith("ENV "))[4:]))
    allowed = {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "SCALEDASH_CONFIG", "LC_TIME",
               "LC_CTYPE"}   # Python sets LC_CTYPE itself when it coerces a C locale
    assert names <= allowed and "LC_TIME" in names and "SCALEDASH_CONFIG" in names
    assert "AWS=absent" in doc["tail"]


def test_a_config_env_reference_reaches_the_suite_and_is_masked_in_its_output(write_config):
    # SCALEDASH_TEST_PG_PASSWORD is set to the canary by tests/conftest.py.
    show = ("import os; pw = os.environ['SCALEDASH_TEST_PG_PASSWORD']; print('pw=' + pw); "
            "print(chr(27) + '[31mpassword=' + pw + chr(27) + '[0m')")
    cfg = write_config(
        '[[replica]]\nname = "p"\ndsn = "postgresql://u@127.0.0.1:1/db"\npassword = "env:SCALEDASH_TEST_PG_PASSWORD"\n'
        f'[[suite]]\nname = "secret"\ncommand = {json.dumps([sys.executable, "-c", show])}\n')
    result = run_cli("suite", "run", "secret", "--config", str(cfg), "--json")
    assert result.code == 0, result.text
    tail = json.loads(result.out)["tail"]
    assert tail == ["pw=***", "password=***"]


# ------------------------------------------------------------------ configured suites and the CLI

def _pytest_command(directory: Path) -> str:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:looptime_plugin", str(directory)]
    return json.dumps(argv)


def test_suite_run_exit_codes_and_json(tmp_path, write_config):
    demo = make_suite(tmp_path, "demo", {"test_demo.py": DEMO_TESTS})
    green = make_suite(tmp_path, "green", {"test_ok.py": "def test_ok():\n    pass\n"})
    crashy = make_suite(tmp_path, "crashy", {"conftest.py": "raise RuntimeError('boom in conftest')\n",
                                             "test_x.py": "def test_x():\n    pass\n"})
    cfg = write_config(
        f'[[suite]]\nname = "green"\ncommand = {_pytest_command(green)}\ncwd = "{tmp_path}"\n'
        f'[[suite]]\nname = "demo"\ncommand = {_pytest_command(demo)}\ncwd = "{tmp_path}"\n'
        f'[[suite]]\nname = "crashy"\ncommand = {_pytest_command(crashy)}\ncwd = "{tmp_path}"\n'
        '[[suite]]\nname = "shell-ok"\ncommand = ["sh", "-c", "echo fine"]\n'
        '[[suite]]\nname = "shell-bad"\ncommand = ["sh", "-c", "echo broken; exit 7"]\n'
        '[[suite]]\nname = "no-tool"\ncommand = ["scaledash-no-such-tool"]\n')
    junit = tmp_path / "out" / "green.xml"
    junit.parent.mkdir()

    green_run = run_cli("suite", "run", "green", "--config", str(cfg), "--junit", str(junit))
    assert green_run.code == 0 and "suite green: PASSED" in green_run.out and "1 passed, 0 failed" in green_run.out
    assert "<testcase" in junit.read_text()

    failed = run_cli("suite", "run", "demo", "--config", str(cfg), "--json")
    doc = json.loads(failed.out)
    assert failed.code == 1 and doc["verdict"] == "FAILED" and doc["kind"] == "pytest"
    assert doc["counts"] == {"passed": 2, "failed": 1, "skipped": 1, "errors": 0}
    assert [f["name"] for f in doc["failures"]] == ["demo.test_demo::test_fails"]   # demo/ is a package
    assert "line 1999" in failed.err       # live output on stderr, stdout is the JSON only
    assert doc["skips"] == [{"name": "demo.test_demo::test_skipped", "reason": "nothing to check here"}]

    crashed = run_cli("suite", "run", "crashy", "--config", str(cfg))
    assert crashed.code == 2 and "ERROR" in crashed.out and "boom in conftest" in crashed.out

    assert run_cli("suite", "run", "shell-ok", "--config", str(cfg)).code == 0
    bad = run_cli("suite", "run", "shell-bad", "--config", str(cfg), "--json")
    assert bad.code == 1 and json.loads(bad.out)["exit_code"] == 7 and json.loads(bad.out)["kind"] == "command"

    missing = run_cli("suite", "run", "no-tool", "--config", str(cfg))
    assert missing.code == 3 and "cannot start scaledash-no-such-tool" in missing.err and not missing.out
    unknown = run_cli("suite", "run", "nope", "--config", str(cfg))
    assert unknown.code == 3 and "no suite named 'nope'" in unknown.err
    not_pytest = run_cli("suite", "run", "shell-ok", "--config", str(cfg), "--junit", str(junit))
    assert not_pytest.code == 3 and "only pytest suites" in not_pytest.err
    bad_config = run_cli("suite", "run", "green", "--config", str(tmp_path / "missing.toml"))
    assert bad_config.code == 3 and "config error" in bad_config.err
    readonly = run_cli("--readonly", "suite", "run", "green", "--config", str(cfg))
    assert readonly.code == 3 and "read-only" in readonly.err


def test_suite_run_timeout_flag_gives_exit_2_with_the_last_lines(write_config):
    cfg = write_config('[[suite]]\nname = "slow"\ncommand = ["sh", "-c", "echo waiting; sleep 300"]\n')
    result = run_cli("suite", "run", "slow", "--config", str(cfg), "--timeout", "1s")
    assert result.code == 2 and "TIMEOUT" in result.out and "    waiting" in result.out


def test_suite_list_shows_shipped_and_configured_and_config_check_says_how_to_run(write_config):
    cfg = write_config('[[suite]]\nname = "integration"\ncommand = ["pytest", "-q", "tests/integration"]\n'
                       '[[suite]]\nname = "smoke"\ncommand = ["./smoke.sh"]\n')
    listing = run_cli("suite", "list", "--config", str(cfg))
    assert listing.code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in listing.out.splitlines()}
    assert rows["integration"] == ["pytest", "configured"] and rows["smoke"] == ["command", "configured"]
    shipped = [name for name, (kind, source) in rows.items() if source == "shipped"]
    for name in shipped:
        assert (ROOT / "dashboard" / "suites" / "shipped" / name).is_dir()
    check = run_cli("config", "check", "--config", str(cfg))
    assert "suite smoke: ./smoke.sh: command, run with `scaledash suite run smoke`" in check.out
    assert "listed only" not in check.out


def test_ctrl_c_cancels_the_suites_group_and_exits_2(write_config):
    cfg = write_config('[[suite]]\nname = "hang"\n'
                       'command = ["sh", "-c", "echo pgid $$; sleep 300 & sleep 301 & wait"]\n')
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "suite", "run", "hang", "--config", str(cfg)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith("pgid "), first
        pgid = int(first.split()[1])
        wait_for(lambda: len(group_members(pgid)) >= 3, timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2 and "CANCELLED" in out and "Traceback" not in err
    assert group_members(pgid) == []


# ------------------------------------------------------------------ Locust

def test_a_real_locust_run_reports_per_request_stats_from_its_csv(tmp_path, http, write_config):
    if importlib.util.find_spec("locust") is None:   # never imported here: it monkey-patches with gevent
        pytest.skip("locust is not installed (pip install 'scaledash[suites]')")
    http.set("/suite/ok", "fine")
    http.set("/suite/bad", "broken", status=500)
    suite = make_suite(tmp_path, "loady", {"locustfile.py": LOCUSTFILE},
                       suite='SUITE = {"kind": "locust", "description": "tiny", "generates_load": True, '
                             '"users": 2, "spawn_rate": 2, "run_time_s": 3}\n')
    cfg = write_config(f'[[edge]]\nname = "e"\nurl = "{http.url("/suite/ok")}"\n')
    progress = []
    result = run(start_and_wait(SuiteRun(read_shipped(suite), config_path=str(cfg), on_progress=progress.append)))
    assert result.kind is SuiteKind.LOCUST
    assert result.verdict is Verdict.FAILED and result.exit_code == 1, result.tail   # /suite/bad fails
    rows = {r.name: r for r in result.requests}
    assert set(rows) == {"read", "write"}
    assert rows["read"].requests > 0 and rows["read"].failures == 0 and rows["read"].p50_ms is not None
    assert rows["write"].requests > 0 and rows["write"].failures == rows["write"].requests
    assert result.requests_total.requests == rows["read"].requests + rows["write"].requests
    assert progress and progress[-1].run_time_s == 3 and progress[-1].rps is not None
    assert http.hits["/suite/ok"] >= rows["read"].requests
