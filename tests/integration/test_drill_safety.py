"""Drill safety through the real `scaledash drill run` (RELIABILITY.md cases 25-28, 30, 31).

Drills of the operator's own act on the pg fixture's replica-2 (replay paused and
resumed with SQL), on the HTTP fixture as the [service] and on commands, so every
refusal can be shown acting on nothing and every abort shown undoing what was done.
Runs that must be signalled mid-method run in the background; the test waits for the
step in the run's journal (written as it happens), then signals the drill's PID. The
DSN password and the admin token are both conftest's canary secret, which no output,
journal, report, audit record or lock file may hold.
"""

from __future__ import annotations

import json
import re
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CANARY, ROOT, run_cli, wait_for
from dashboard.drills import journal, lock, reports
from dashboard.drills.lock import TargetLocks
from drill_stack import (PAUSE, PAUSED, RESUME, audit_records, background_drills, config_text, drill, finish,
                         journal_text, no_secret_in, node, outcome, replay_paused, replay_role, report, resumed,
                         sleepers, start_drill, step_statuses, timeline)

__all__ = ["background_drills", "replay_role", "resumed", "sleepers"]     # fixtures, used by name


@pytest.fixture(autouse=True)
def _stop_background_drills(background_drills):
    """No drill a test started outlives it, whatever the test's end."""

OBSERVE = """
[[drill]]
name = "{name}"
target = "replica-2"
steady_state = ["replica/replica-2.state == OK"{steady}]

[[drill.step]]
do = "observe"
duration = "{duration}"
"""

# Pause replay, hold it paused, then resume: the rollback resumes too, and clears a fault.
PAUSE_AND_HOLD = """
[[drill]]
name = "pause-hold"
target = "replica-2"
steady_state = ["replica/replica-2.state == OK", "replica/replica-2.replay_paused == false"]

[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{pause}"
name = "pause"
label = "pause replay"

[[drill.step]]
do = "wait"
until = "{paused}"
deadline = "10s"
label = "wait until paused"

[[drill.step]]
do = "observe"
duration = "{hold}"
label = "hold the pause"

[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{resume}"
label = "resume replay"

[[drill.rollback]]
do = "sql"
node = "replica-2"
sql = "{resume}"
after = "pause"
label = "resume replay (rollback)"

[[drill.rollback]]
do = "http"
path = "/admin/clear"
after = "pause"
label = "clear the fault (rollback)"
"""


def _observe(name: str = "watch", duration: str = "200ms", steady: str = "") -> str:
    return OBSERVE.format(name=name, duration=duration, steady=f", {json.dumps(steady)}" if steady else "")


def _pause_and_hold(hold: str = "60s") -> str:
    return PAUSE_AND_HOLD.format(pause=PAUSE, resume=RESUME, paused=PAUSED, hold=hold)


def _config(pg, http, write_config, tmp_path, drills: str, name: str = "scaledash.toml", **kw) -> Path:
    return write_config(config_text(pg, http, drills, state_dir=tmp_path / "state", **kw), name)


def _recording(http, path: str) -> list[dict]:
    seen: list[dict] = []

    def handler(request: dict):
        seen.append(request)
        return 200, {}, b"{}"
    http.routes[path] = handler
    return seen


def _outcomes(state: Path) -> list[str]:
    return [r["outcome"] for r in audit_records(state) if r["record"] == "outcome"]


def _mid(state: Path, text: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until the run's journal shows `text` (a step running), the run still alive."""
    def there():
        assert proc.poll() is None, finish(proc, 5).text
        return text in journal_text(state)
    wait_for(there, timeout=timeout)


# ------------------------------------------------------------------ case 25: pre-flight refusals, dry run

@pytest.mark.slow
def test_a_steady_state_not_met_or_a_candidate_over_its_lag_limit_is_refused_with_an_audit_record(
        pg, http, resumed, write_config, tmp_path):
    # Each waits out the runner's 10 s for the steady state to show: run side by side.
    unmet_state = tmp_path / "unmet"
    unmet = write_config(config_text(pg, http, _observe(steady="replica/replica-2.replay_paused == false"),
                                     state_dir=unmet_state), "unmet.toml")
    lag_state = tmp_path / "lag"
    failover = """
[[drill]]
name = "crash"
use = "failover"
max_candidate_lag_bytes = 1
commands = { promote = ["false"], repoint = ["false"] }
"""
    primary = "\n".join(["[[replica]]", 'name = "primary"', f'dsn = "{pg.dsn(pg.primary)}"',
                         'password = "env:SCALEDASH_TEST_PG_PASSWORD"'])
    lagging = write_config(config_text(pg, http, failover, state_dir=lag_state, processes=tmp_path / "none.json",
                                       targets=primary, allow=("primary", "replica-2")), "lag.toml")
    pg.psql(node(pg, "replica-2"), PAUSE)
    pg.psql(pg.primary, "INSERT INTO ticks DEFAULT VALUES")     # WAL replica-2 cannot replay
    wait_for(lambda: replay_paused(pg))
    dry_state = tmp_path / "dry"
    dry = write_config(config_text(pg, http, _observe(steady="replica/replica-9.state == OK"), state_dir=dry_state),
                       "dry.toml")
    with ThreadPoolExecutor(3) as pool:
        refused_unmet = pool.submit(drill, unmet, "watch", "--confirm", "replica-2", "--json")
        refused_lag = pool.submit(drill, lagging, "crash", "--confirm", "primary", "--json")
        refused_dry = pool.submit(drill, dry, "watch", "--dry-run")
        unmet_run, lag_run, dry_run = refused_unmet.result(), refused_lag.result(), refused_dry.result()
    # A dry run is refused by the same checks as a run.
    assert dry_run.code == 3 and "no replica named replica-9 on screen" in dry_run.out, dry_run.text
    assert _outcomes(dry_state) == ["refused"]
    assert unmet_run.code == 3, unmet_run.text
    result = outcome(unmet_run)
    assert result["verdict"] == "refused", result
    assert "not met: replica/replica-2.replay_paused == false (seen True)" in result["reason"], result
    assert [(r["record"], r.get("outcome")) for r in audit_records(unmet_state)] == [
        ("intent", None), ("outcome", "refused")]
    assert audit_records(unmet_state)[1]["reason"] == result["reason"]
    assert lag_run.code == 3, lag_run.text
    lag = outcome(lag_run)
    assert lag["verdict"] == "refused" and "not met: replica/replica-2.lag_bytes <= 1 (seen " in lag["reason"], lag
    assert _outcomes(lag_state) == ["refused"]
    # Refused before acting: the method never started.
    assert report(result)["steps"] == [] and report(lag)["steps"] == []
    assert "step 1" not in journal_text(unmet_state) + journal_text(lag_state)
    no_secret_in(unmet_state)
    no_secret_in(lag_state)


def test_a_drill_on_a_target_another_drill_holds_is_refused_naming_the_holder(pg, http, write_config, tmp_path):
    state = tmp_path / "state"
    config = _config(pg, http, write_config, tmp_path, _observe())
    held = TargetLocks(state, ("replica-2",), "someone-elses-drill", "run-1").acquire()
    try:
        run = drill(config, "watch", "--confirm", "replica-2", "--json")
    finally:
        held.release()
    assert run.code == 3, run.text
    reason = outcome(run)["reason"]
    since = time.strftime("%H:%M:%S", time.localtime(held.info["since"]))
    assert reason == (f"another drill is active: replica-2 is held by drill someone-elses-drill by "
                      f"{held.info['user']}@{held.info['host']} (pid {os.getpid()}) since {since}"), reason
    assert _outcomes(state) == ["refused"]
    # Free again: the same drill runs.
    again = drill(config, "watch", "--confirm", "replica-2", "--json")
    assert again.code == 0 and outcome(again)["verdict"] == "passed", again.text


def test_a_dry_run_runs_every_check_and_acts_on_nothing(pg, http, sleepers, resumed, write_config, tmp_path):
    hits = _recording(http, "/admin/faults")
    sleepers.start("sleeper")
    touched = tmp_path / "touched"
    steps = f"""
[[drill]]
name = "everything"
target = "replica-2"
steady_state = ["replica/replica-2.state == OK"]
[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{PAUSE}"
[[drill.step]]
do = "http"
path = "/admin/faults"
[[drill.step]]
do = "signal"
process = "sleeper"
signal = "SIGKILL"
[[drill.step]]
do = "shell"
command = ["touch", "{touched}"]
"""
    config = _config(pg, http, write_config, tmp_path, steps, processes=sleepers.table)
    run = drill(config, "everything", "--dry-run")          # no --confirm needed: nothing acts
    assert run.code == 0, run.text
    assert run.out.startswith("drill everything on replica-2: dry-run: dry run: every check passed, nothing acted")
    for line in ("check  replica/replica-2.state == OK [ok]", f"would: step 1: SQL on replica-2: {PAUSE}",
                 "would: step 2: POST /admin/faults", "would: step 3: SIGKILL to sleeper",
                 f"would: step 4: touch {touched}"):
        assert line in run.err, (line, run.err)
    time.sleep(1.0)                        # anything sent late would arrive by now
    assert not hits and not replay_paused(pg) and not touched.exists()
    assert sleepers.exit_signal("sleeper", timeout=0.1) is None
    assert [(r["record"], r["mode"], r.get("outcome")) for r in audit_records(tmp_path / "state")] == [
        ("intent", "dry-run", None), ("outcome", "dry-run", "dry-run")]


# ------------------------------------------------------------------ case 26: abort with and without rollback

def test_sigusr1_mid_method_rolls_back_and_verifies_the_steady_state(pg, http, resumed, write_config, tmp_path):
    cleared = _recording(http, "/admin/clear")
    state = tmp_path / "state"
    proc = start_drill(_config(pg, http, write_config, tmp_path, _pause_and_hold()), "pause-hold",
                       "--confirm", "replica-2", "--json")
    _mid(state, "step 3: hold the pause", proc)
    assert replay_paused(pg)
    os.kill(proc.pid, signal.SIGUSR1)
    run = finish(proc, timeout=10)         # RELIABILITY.md 26: rollback and steady state within 10 s
    assert run.code == 2, run.text
    result = outcome(run)
    assert result["verdict"] == "aborted" and result["reason"] == "abort requested", result
    data = report(result)
    assert step_statuses(data, "rollbacks") == {"resume replay (rollback)": "ok", "clear the fault (rollback)": "ok"}
    assert not replay_paused(pg) and len(cleared) == 1
    text = timeline(data)
    assert "note abort requested: abort requested" in text
    assert text.index("phase rollback") < text.index("phase steady state again") < text.rindex(
        "check replica/replica-2.replay_paused == false")
    assert [c["status"] for c in _checks_after_method(data)] == ["ok", "ok"]
    assert _outcomes(state) == ["aborted"]
    no_secret_in(state)


def _checks_after_method(data: dict) -> list[dict]:
    timeline_ = data["timeline"]
    start = max(i for i, e in enumerate(timeline_) if e["text"] == "steady state again")
    return [e for e in timeline_[start:] if e["kind"] == "check"]


@pytest.mark.slow          # the steady state is not back (no rollback): the runner waits its 10 s
def test_sigusr2_aborts_without_rollback(pg, http, resumed, write_config, tmp_path):
    cleared = _recording(http, "/admin/clear")
    state = tmp_path / "state"
    proc = start_drill(_config(pg, http, write_config, tmp_path, _pause_and_hold()), "pause-hold",
                       "--confirm", "replica-2", "--json")
    _mid(state, "step 3: hold the pause", proc)
    os.kill(proc.pid, signal.SIGUSR2)
    run = finish(proc, timeout=30)
    assert run.code == 2, run.text
    result = outcome(run)
    assert result["verdict"] == "aborted" and result["reason"].startswith("abort without rollback"), result
    data = report(result)
    assert data["rollbacks"] == [] and not cleared
    assert "phase rollback skipped: aborted without rollback" in timeline(data)
    assert replay_paused(pg)               # left as it was: the operator asked for that
    assert _outcomes(state) == ["aborted"]


# ------------------------------------------------------------------ case 27: irreversible steps

IRREVERSIBLE = """
[[drill]]
name = "one-way"
target = "replica-2"
steady_state = ["replica/replica-2.state == OK"]

[[drill.step]]
do = "shell"
command = ["touch", "{promoted}"]
name = "promote"
label = "promote (cannot be undone)"
irreversible = true

[[drill.step]]
do = "observe"
duration = "60s"
label = "watch the new timeline"

[[drill.rollback]]
do = "shell"
command = ["touch", "{undone}"]
after = "promote"
label = "undo the promotion"
"""


def test_an_abort_after_an_irreversible_step_runs_no_rollback_and_says_so(pg, http, write_config, tmp_path):
    promoted, undone = tmp_path / "promoted", tmp_path / "undone"
    state = tmp_path / "state"
    config = _config(pg, http, write_config, tmp_path, IRREVERSIBLE.format(promoted=promoted, undone=undone))
    # Labelled so from the start: in the list and in the plan.
    listing = run_cli("drill", "list", "--config", str(config))
    assert listing.out.split()[:3] == ["one-way", "custom", "irreversible"], listing.out
    proc = start_drill(config, "one-way", "--confirm", "replica-2", "--json")
    _mid(state, "step 2: watch the new timeline", proc)
    assert promoted.exists()
    os.kill(proc.pid, signal.SIGUSR1)
    run = finish(proc, timeout=30)
    assert run.code == 2, run.text
    result = outcome(run)
    data = report(result)
    assert result["verdict"] == "aborted" and data["rollbacks"] == [] and not undone.exists()
    assert ("phase no automatic rollback: an irreversible step has run (promote (cannot be undone))"
            in timeline(data))
    assert "  step 1: promote (cannot be undone)  IRREVERSIBLE" in data["plan"]
    assert data["safety"] == "irreversible" and data["steps"][0]["irreversible"] is True
    assert "| promote (cannot be undone) (irreversible) | ok |" in Path(result["report"]).read_text()


# ------------------------------------------------------------------ case 28: a call with no answer

UNKNOWN = """
[[drill]]
name = "no-answer"
target = "{target}"
steady_state = ["replica/replica-2.state == OK"]

[[drill.step]]
{step}
timeout = "2s"              # long enough to connect on a loaded machine; the call holds 10 s
verify = "replica/replica-2.lag_bytes < 0"
label = "a destructive call"

[[drill.step]]
do = "observe"
duration = "200ms"
label = "never reached"
"""


@pytest.mark.slow
def test_a_destructive_call_without_an_answer_is_result_unknown_re_polled_and_never_sent_again(
        pg, http, write_config, tmp_path):
    calls: list[float] = []

    async def hold(request):
        import asyncio

        calls.append(time.monotonic())
        await asyncio.sleep(10)            # answers long after the step's timeout
        return 200, {}, b"{}"
    http.routes["/admin/promote"] = hold
    count = tmp_path / "count"
    http_step = 'do = "http"\npath = "/admin/promote"'
    shell_step = f'do = "shell"\ncommand = ["sh", "-c", "echo sent >> {count}; sleep 30"]'
    configs = {kind: write_config(config_text(pg, http, UNKNOWN.format(target=target, step=step),
                                              state_dir=tmp_path / kind), f"{kind}.toml")
               for kind, target, step in (("http", "service", http_step), ("shell", "replica-2", shell_step))}
    # Each re-polls its `verify` for the runner's 30 s: side by side.
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(configs, pool.map(lambda k: drill(configs[k], "no-answer", "--confirm",
                                                          "service" if k == "http" else "replica-2", "--json"),
                                          configs)))
    for kind, run in runs.items():
        assert run.code == 2, (kind, run.text)
        result = outcome(run)
        assert result["verdict"] == "result-unknown", result
        assert result["reason"].startswith("step 1 (a destructive call): "), result["reason"]
        # The lag seen (any figure >= 0: a loaded replica may be a few KiB behind) never meets < 0.
        assert re.search(r"; still unknown after 30s \(\d+\)$", result["reason"]), result["reason"]
        data = report(result)
        assert step_statuses(data) == {"a destructive call": "unknown"}       # nothing after it ran
        text = timeline(data)
        assert ("RESULT UNKNOWN: a destructive call: " in text
                and "re-polling 'replica/replica-2.lag_bytes < 0'" in text), text
        assert _outcomes(tmp_path / kind) == ["result-unknown"]
    assert "POST /admin/promote: no answer within 2s" in outcome(runs["http"])["reason"]
    assert "sh gave no answer within 2s (stopped)" in outcome(runs["shell"])["reason"]
    assert len(calls) == 1 and http.hits["/admin/promote"] == 1              # never sent again
    assert count.read_text() == "sent\n"


def test_a_call_that_never_connected_is_a_failure_and_the_rollback_runs(pg, http, resumed, write_config, tmp_path):
    import socket

    # A listener whose accept queue is full: the kernel drops the SYN, the connect times out.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port))]
    try:
        steps = f"""
[[drill]]
name = "unreachable"
target = "service"
[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{PAUSE}"
name = "pause"
[[drill.step]]
do = "http"
path = "/admin/promote"
timeout = "500ms"
label = "a call that cannot connect"
[[drill.rollback]]
do = "sql"
node = "replica-2"
sql = "{RESUME}"
after = "pause"
label = "resume replay"
"""
        text = config_text(pg, http, steps, state_dir=tmp_path / "state").replace(http.url(""),
                                                                                 f"http://127.0.0.1:{port}")
        run = drill(write_config(text), "unreachable", "--confirm", "service", "--json")
    finally:
        for sock in (*queued, full):
            sock.close()
    assert run.code == 1, run.text
    result = outcome(run)
    assert result["verdict"] == "failed", result
    assert "POST /admin/promote: not sent: no connection within 0.5s" in result["reason"], result["reason"]
    assert step_statuses(report(result), "rollbacks") == {"resume replay": "ok"}
    assert not replay_paused(pg)


# ------------------------------------------------------------------ case 30: the audit journal

def test_the_audit_journal_has_an_intent_and_an_outcome_for_every_kind_of_attempt(pg, http, write_config, tmp_path):
    state = tmp_path / "state"
    failing = _observe().replace('duration = "200ms"', 'duration = "200ms"\n[[drill.step]]\ndo = "wait"\n'
                                 'until = "replica/replica-2.lag_bytes < 0"\ndeadline = "500ms"').replace(
        'name = "watch"', 'name = "never"')
    config = _config(pg, http, write_config, tmp_path, _observe() + failing)
    assert drill(config, "watch", "--confirm", "replica-2").code == 0                       # passed
    assert drill(config, "never", "--confirm", "replica-2").code == 1                       # failed
    assert drill(config, "watch", "--dry-run").code == 0                                    # dry-run
    assert drill(config, "watch").code == 3                                                 # refused: no terminal
    cancelled = _typed(config, "watch", "replica-9\n")                                      # cancelled
    assert cancelled.returncode == 3, cancelled
    path = state / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    records = audit_records(state)
    assert [(r["record"], r.get("outcome")) for r in records] == [
        ("intent", None), ("outcome", "passed"), ("intent", None), ("outcome", "failed"),
        ("intent", None), ("outcome", "dry-run"), ("intent", None), ("outcome", "refused"),
        ("intent", None), ("outcome", "cancelled")]
    for intent, result in zip(records[::2], records[1::2]):
        assert intent["attempt"] == result["attempt"]
        for record in (intent, result):
            assert {"operator", "host", "pid", "drill", "target", "mode", "at", "at_utc"} <= record.keys(), record
    assert records[0]["steps"] == ["watch 0.2s"] and records[0]["confirmation"] == "--confirm"
    assert records[1]["timings"] == {"watch 0.2s": pytest.approx(0.2, abs=0.5)} and records[1]["duration_s"] > 0
    assert records[3]["reason"].startswith("step 2 (wait until replica/replica-2.lag_bytes < 0) failed")
    assert records[7]["reason"] == "no terminal to confirm in: pass --confirm <target> (the target's name)"
    assert records[9]["reason"] == "the name typed did not match the target"
    # Append-only: every line is still the line it was.
    before = path.read_bytes()
    assert drill(config, "watch", "--dry-run").code == 0
    assert path.read_bytes().startswith(before)
    no_secret_in(state)


def _typed(config: Path, name: str, typed: str, *args: str) -> subprocess.CompletedProcess:
    """`drill run` at a terminal (a pty): the operator types `typed` at the confirmation."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "drill", "run", name, "--config", str(config),
                             *args], stdin=child, stdout=subprocess.PIPE, stderr=child, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "120"}, start_new_session=True)
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 30
    while b"type the target's name" not in seen and time.monotonic() < deadline:
        seen += _read(main, 0.5)
    os.write(main, typed.encode())
    out, _ = proc.communicate(timeout=60)
    while chunk := _read(main, 0.2):
        seen += chunk
    os.close(main)
    text = seen.decode(errors="replace") + out.decode(errors="replace")
    assert "Traceback" not in text and CANARY not in text, text
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), seen.decode(errors="replace"))


def _read(fd: int, wait: float) -> bytes:
    import select

    if not select.select([fd], [], [], wait)[0]:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:          # the other side closed
        return b""


def test_the_name_typed_at_the_terminal_confirms_the_drill(pg, http, write_config, tmp_path):
    config = _config(pg, http, write_config, tmp_path, _observe())
    typed = _typed(config, "watch", "replica-2\n")
    assert typed.returncode == 0, typed
    assert "drill watch on replica-2 (reversible)" in typed.stderr and "step 1: watch 0.2s" in typed.stderr
    assert "type the target's name (replica-2) to run drill watch" in typed.stderr       # asked on the terminal
    assert typed.stdout.startswith("drill watch on replica-2: passed"), typed.stdout       # stdout: the outcome only
    records = audit_records(tmp_path / "state")
    assert records[0]["confirmation"] == "typed" and records[1]["outcome"] == "passed"


def test_a_journal_others_can_read_is_refused_and_left_alone(pg, http, write_config, tmp_path):
    state = tmp_path / "state"
    config = _config(pg, http, write_config, tmp_path, _observe())
    assert drill(config, "watch", "--dry-run").code == 0
    path = state / "audit.jsonl"
    path.chmod(0o644)
    before = path.read_bytes()
    run = drill(config, "watch", "--confirm", "replica-2", "--json")
    assert run.code == 3, run.text
    assert outcome(run)["verdict"] == "could-not-run"
    assert f"is readable by others (mode 644): chmod 600 {path}" in outcome(run)["reason"]
    refused = drill(config, "watch")                       # the no-terminal refusal says so too
    assert refused.code == 3 and f"chmod 600 {path}" in refused.err, refused.text
    assert path.read_bytes() == before


def test_the_secret_in_the_dsn_and_the_token_reaches_no_record(pg, http, write_config, tmp_path):
    seen = _recording(http, "/admin/faults")
    echo = """
[[drill]]
name = "echo"
target = "replica-2"
[[drill.step]]
do = "http"
path = "/admin/faults"
[[drill.step]]
do = "shell"
command = ["sh", "-c", "echo value $SCALEDASH_DRILL_TOKEN and $SCALEDASH_TEST_PG_PASSWORD"]
[[drill.step]]
do = "sql"
node = "replica-2"
sql = "SELECT current_user"
[[drill.step]]
do = "shell"
command = ["sh", "-c", "echo $SCALEDASH_DRILL_TOKEN; exit 1"]
"""
    state = tmp_path / "state"
    run = drill(_config(pg, http, write_config, tmp_path, echo), "echo", "--confirm", "replica-2")
    assert run.code == 1, run.text          # the last command fails, printing the secret as it goes
    assert seen[0]["headers"]["Authorization"] == f"Bearer {CANARY}"         # it was used
    data = json.loads(Path(run.out.split("(json: ")[1].split(")")[0]).read_text())
    details = [s["detail"] for s in data["steps"]]
    assert details[1].startswith("value ") and " and " in details[1] and CANARY not in details[1], details
    assert details[2] == "replica-2 answered monitor"
    assert details[3].startswith("exit 1: ") and CANARY not in details[3], details
    no_secret_in(state)


# ------------------------------------------------------------------ case 31: one drill per target, dead-man's switch

def test_a_second_run_on_a_target_is_refused_and_a_killed_holder_frees_it_at_once(pg, http, write_config,
                                                                                   tmp_path):
    state = tmp_path / "state"
    config = _config(pg, http, write_config, tmp_path, _observe("long", "60s") + _observe("short"))
    first = start_drill(config, "long", "--confirm", "replica-2")
    try:
        _mid(state, "step 1: watch 60s", first)
        second = drill(config, "short", "--confirm", "replica-2", "--json")
        assert second.code == 3, second.text
        reason = outcome(second)["reason"]
        assert reason.startswith("another drill is active: replica-2 is held by drill long by ") and (
            f"(pid {first.pid}) since " in reason), reason
        assert lock.holder(state, "replica-2")["pid"] == first.pid
        # What a new dashboard re-attaches to: the journal of a run whose process lives.
        attached = journal.running(state)
        assert [(r.start.data["drill"], r.start.data["pid"]) for r in attached] == [("long", first.pid)]
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    assert lock.holder(state, "replica-2") is None            # the kernel freed it with the process
    assert journal.running(state) == []                       # a dead run is not re-attached to
    again = drill(config, "short", "--confirm", "replica-2", "--json")
    assert again.code == 0 and outcome(again)["verdict"] == "passed", again.text


@pytest.mark.slow
def test_a_heartbeat_that_stops_aborts_with_rollback(pg, http, resumed, write_config, tmp_path):
    state = tmp_path / "state"
    beat = tmp_path / "heartbeat"
    beat.touch()
    proc = start_drill(_config(pg, http, write_config, tmp_path, _pause_and_hold()), "pause-hold",
                       "--confirm", "replica-2", "--json", "--heartbeat", str(beat))

    def beating_until_paused():
        os.utime(beat)
        return "step 3: hold the pause" in journal_text(state) or proc.poll() is not None
    wait_for(beating_until_paused, timeout=30)
    assert proc.poll() is None and replay_paused(pg)
    run = finish(proc, timeout=30)          # the heartbeat stops: the switch trips after ~6 s
    assert run.code == 2, run.text
    result = outcome(run)
    assert result["verdict"] == "aborted"
    assert result["reason"].startswith("the dashboard watching this drill went away (no heartbeat for "), result
    assert step_statuses(report(result), "rollbacks")["resume replay (rollback)"] == "ok"
    assert not replay_paused(pg)


def test_a_heartbeat_file_that_never_appears_trips_the_switch_too(pg, http, write_config, tmp_path):
    never = tmp_path / "never-touched"
    run = drill(_config(pg, http, write_config, tmp_path, _observe("long", "60s")), "long", "--confirm",
                "replica-2", "--json", "--heartbeat", str(never))
    assert run.code == 2, run.text
    result = outcome(run)
    assert result["verdict"] == "aborted" and "no heartbeat for " in result["reason"], result


def test_sighup_aborts_with_rollback(pg, http, resumed, write_config, tmp_path):
    state = tmp_path / "state"
    proc = start_drill(_config(pg, http, write_config, tmp_path, _pause_and_hold()), "pause-hold",
                       "--confirm", "replica-2", "--json")
    _mid(state, "step 3: hold the pause", proc)
    os.kill(proc.pid, signal.SIGHUP)
    run = finish(proc, timeout=30)
    assert run.code == 2, run.text
    result = outcome(run)
    assert result["verdict"] == "aborted"
    assert result["reason"] == "the terminal went away (dead-man's switch)", result
    assert step_statuses(report(result), "rollbacks")["resume replay (rollback)"] == "ok"
    assert not replay_paused(pg)


def test_an_unattended_run_carries_on_without_heartbeat_or_terminal(pg, http, resumed, write_config, tmp_path):
    state = tmp_path / "state"
    stale = tmp_path / "heartbeat"
    stale.touch()
    old = time.time() - 120
    os.utime(stale, (old, old))             # a watcher gone two minutes ago
    proc = start_drill(_config(pg, http, write_config, tmp_path, _pause_and_hold(hold="2s")), "pause-hold",
                       "--confirm", "replica-2", "--json", "--unattended", "--heartbeat", str(stale))
    _mid(state, "step 3: hold the pause", proc)
    os.kill(proc.pid, signal.SIGHUP)
    run = finish(proc, timeout=60)
    assert run.code == 0, run.text
    result = outcome(run)
    assert result["verdict"] == "passed" and report(result)["rollbacks"] == [], result
    assert not replay_paused(pg)
    assert "abort requested" not in journal_text(state)


def test_a_stale_heartbeat_without_unattended_aborts_at_once(pg, http, resumed, write_config, tmp_path):
    stale = tmp_path / "heartbeat"
    stale.touch()
    old = time.time() - 120
    os.utime(stale, (old, old))
    run = drill(_config(pg, http, write_config, tmp_path, _pause_and_hold(hold="2s")), "pause-hold",
                "--confirm", "replica-2", "--json", "--heartbeat", str(stale))
    assert run.code in (2, 3), run.text
    assert "no heartbeat for" in outcome(run)["reason"]
    assert not replay_paused(pg)


# ------------------------------------------------------------------ the CLI: exit codes, --json, reports

def test_exit_codes_for_verdicts_and_refusals(pg, http, write_config, tmp_path):
    config = _config(pg, http, write_config, tmp_path, _observe())
    unknown = drill(config, "nope", "--confirm", "replica-2")
    assert unknown.code == 3 and "no drill named nope (drills: watch)" in unknown.err, unknown.text
    readonly = run_cli("--readonly", "drill", "run", "watch", "--config", str(config), "--confirm", "replica-2")
    assert readonly.code == 3 and "read-only mode: drills never run with --readonly" in readonly.err, readonly.text
    no_terminal = drill(config, "watch")
    assert no_terminal.code == 3 and "pass --confirm <target>" in no_terminal.err, no_terminal.text
    other = drill(config, "watch", "--confirm", "service", "--json")
    assert other.code == 3, other.text
    assert outcome(other)["reason"] == "confirmed for service, but the drill's target is replica-2 now"
    assert _outcomes(tmp_path / "state") == ["refused"] * 3          # the unknown name is no attempt
    passed = drill(config, "watch", "--confirm", "replica-2", "--json")
    assert passed.code == 0, passed.text
    result = outcome(passed)
    assert set(result) >= {"verdict", "figures", "report", "report_json", "journal", "exit_code"}
    assert result["verdict"] == "passed" and result["exit_code"] == 0 and isinstance(result["figures"], dict)
    for key in ("report", "report_json", "journal"):
        assert Path(result[key]).is_file() and stat.S_IMODE(Path(result[key]).stat().st_mode) == 0o600
    data = report(result)
    assert data["verdict"] == "passed" and [s["label"] for s in data["steps"]] == ["watch 0.2s"]
    assert [e["kind"] for e in data["timeline"]][:1] == ["start"] and "phase method" in timeline(data)
    markdown = Path(result["report"]).read_text()
    for heading in ("# Drill watch on replica-2: PASSED", "## Steps", "| watch 0.2s | ok |", "## Timeline",
                    "## Rollbacks", "## Plan"):
        assert heading in markdown, heading


def test_last_figure_is_the_newest_report_that_measured_it(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    for name, figures in (("20260101T000000-failover-1", {"failover_seconds": 0.8}),
                          ("20260102T000000-failover-2", {"failover_seconds": 0.4}),
                          ("20260103T000000-redis-3", {"recovery_seconds": 2.0}),
                          ("20260104T000000-failover-4", {"failover_seconds": None})):
        (folder / f"{name}.json").write_text(json.dumps({"run": name, "figures": figures}))
    (folder / "20260105T000000-broken.json").write_text("{not json")
    value, data = reports.last_figure(tmp_path, "failover_seconds")
    assert value == 0.4 and data["run"] == "20260102T000000-failover-2"
    assert reports.last_figure(tmp_path, "recovery_seconds")[0] == 2.0
    assert reports.last_figure(tmp_path, "lost_writes") is None
    assert reports.last_figure(tmp_path / "nowhere", "failover_seconds") is None


def test_a_pipe_in_a_command_or_its_output_stays_in_its_report_cell():
    data = {"drill": "d", "target": "t", "run": "r", "operator": "o", "host": "h", "started": 0.0, "ended": 1.0,
            "verdict": "failed", "reason": "x", "figures": {}, "targets": {}, "safety": "reversible",
            "steps": [{"label": "sh -c ps | grep pg", "status": "failed", "seconds": 0.1,
                       "detail": "exit 1: a | b", "irreversible": False}],
            "rollbacks": [], "timeline": [], "plan": []}
    row = next(line for line in reports.markdown(data).splitlines() if line.startswith("| sh -c"))
    assert row == r"| sh -c ps \| grep pg | failed | 0.10 | exit 1: a \| b |"
    assert len(row.replace(r"\|", "").split("|")) == 6            # four cells, as the header has
