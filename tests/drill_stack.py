"""What the drill tests share: a config on conftest's real servers, and a run's records.

The drill engine acts on the pg fixture's replica-2 (the one tests may pause), on the
session HTTP server as the stack's [service] (its admin token is the canary secret, as
is the DSN password), and on `sleep` processes listed in a process table written the
way a lab writes lab.json. Each test gets its own state directory, so locks, journals,
reports and audit records of one test never meet another's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CANARY, ROOT, Run, run_cli
from dashboard.drills.journal import process_start_ticks

TOKEN_ENV = "SCALEDASH_DRILL_TOKEN"
os.environ[TOKEN_ENV] = CANARY          # the admin token is the canary secret too (as the DSN password)
PAUSE = "SELECT pg_wal_replay_pause()"
RESUME = "SELECT pg_wal_replay_resume()"
PAUSED = "replica/replica-2.replay_paused == true"
RUNNING = "replica/replica-2.replay_paused == false"


def node(pg, name: str):
    return next(n for n in pg.nodes if n.name.removeprefix("postgres-") == name)


def replay_paused(pg) -> bool:
    return pg.psql(node(pg, "replica-2"), "SELECT pg_is_wal_replay_paused()").strip() == "t"


@pytest.fixture(scope="module")
def replay_role(pg):
    """The monitoring role may pause and resume replay (as a drill's DSN role would be granted),
    and replica-2 is replaying again whatever a test left behind."""
    functions = ("pg_wal_replay_pause()", "pg_wal_replay_resume()")
    pg.psql(pg.primary, "".join(f"GRANT EXECUTE ON FUNCTION {f} TO monitor;\n" for f in functions))
    yield
    pg.psql(node(pg, "replica-2"), RESUME)
    pg.psql(pg.primary, "".join(f"REVOKE EXECUTE ON FUNCTION {f} FROM monitor;\n" for f in functions))


@pytest.fixture
def resumed(pg, replay_role):
    """replica-2 replaying before and after the test."""
    pg.psql(node(pg, "replica-2"), RESUME)
    yield
    pg.psql(node(pg, "replica-2"), RESUME)


class Sleepers:
    """Real `sleep` processes in a process table file ({"processes": [{name, pid, start_ticks}]})."""

    def __init__(self, folder: Path) -> None:
        self.table = folder / "processes.json"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> "Sleepers":
        for name in names:
            self.procs[name] = subprocess.Popen(["sleep", "300"], start_new_session=True)
        self.table.write_text(json.dumps({"processes": [
            {"name": n, "pid": p.pid, "start_ticks": process_start_ticks(p.pid)} for n, p in self.procs.items()]}))
        return self

    def exit_signal(self, name: str, timeout: float = 5.0) -> int | None:
        """The signal that ended the process, or None while it runs."""
        try:
            code = self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return -code if code < 0 else None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def sleepers(tmp_path):
    started = Sleepers(tmp_path)
    yield started
    started.stop()


def config_text(pg, http, drills: str, *, state_dir: Path | None, processes: Path | None = None,
                allow: tuple[str, ...] = ("replica-2", "service"), extra: str = "", targets: str = "") -> str:
    """A config polling replica-2 every 500 ms, [service] on the HTTP fixture, and `drills`."""
    settings = [f"allow = {json.dumps(list(allow))}"]
    if state_dir is not None:
        settings.append(f'state_dir = "{state_dir}"')
    if processes is not None:
        settings.append(f'processes = "{processes}"')
    return "\n".join([
        'name = "drills"', 'interval = "500ms"', 'timeout = "400ms"', extra, "",
        "[service]", f'url = "{http.url("")}"', f'admin_token = "env:{TOKEN_ENV}"', "",
        "[[replica]]", 'name = "replica-2"', f'dsn = "{pg.dsn(node(pg, "replica-2"))}"',
        'password = "env:SCALEDASH_TEST_PG_PASSWORD"', "", targets, "",
        "[drills]", *settings, "", drills, ""])


def drill(config: Path, name: str, *args: str, timeout: float = 90, env: dict | None = None):
    """`scaledash drill run NAME --config F ARGS`, as an operator runs it."""
    return run_cli("drill", "run", name, "--config", str(config), *args, env=env, timeout=timeout)


def outcome(run) -> dict:
    """The `--json` outcome of a run."""
    return json.loads(run.out)


def json_lines(path: Path | str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def audit_records(state_dir: Path) -> list[dict]:
    path = state_dir / "audit.jsonl"
    return json_lines(path) if path.exists() else []


def report(result: dict) -> dict:
    return json.loads(Path(result["report_json"]).read_text())


def step_statuses(data: dict, key: str = "steps") -> dict[str, str]:
    return {s["label"]: s["status"] for s in data[key]}


def timeline(data: dict) -> str:
    return "\n".join(f"{e['kind']} {e['text']}" for e in data["timeline"])


_STARTED: list[subprocess.Popen] = []


@pytest.fixture
def background_drills():
    """Background runs a failed test left running are stopped by their PID at its end."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def start_drill(config: Path, name: str, *args: str) -> subprocess.Popen:
    """`scaledash drill run` in the background (in a session of its own), to signal it mid-run;
    use with the `background_drills` fixture."""
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "drill", "run", name, "--config", str(config),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "120"}, start_new_session=True)
    _STARTED.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> Run:
    """The background run's end, checked as run_cli checks a run (no traceback, no secret)."""
    out, err = proc.communicate(timeout=timeout)
    result = Run(proc.returncode, out, err)
    assert "Traceback" not in result.text, result.text
    assert CANARY not in result.text, "canary secret leaked into drill output"
    return result


def journal_text(state_dir: Path) -> str:
    """Every run journal's timeline so far (the drill writes it as it happens)."""
    texts = []
    for path in sorted((state_dir / "runs").glob("*.jsonl")) if (state_dir / "runs").exists() else ():
        for line in path.read_text().splitlines():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError):
                continue          # a line still being written
    return "\n".join(texts)


def no_secret_in(state_dir: Path) -> None:
    """No file the drills wrote holds the canary secret (journal, reports, audit, locks)."""
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_text(errors="replace"), path
