"""Every drill config key acts: a `[[drill]]` of every action on real servers.

The config keys walk (test_config_keys.py) lists the `drills.*`, `drill.*`,
`drill.step.*` and `drill.rollback.*` keys here. A drill of the operator's own runs
through `scaledash drill run` against the pg fixture's replica-2 (replay paused and
resumed with SQL as the DSN's role), the HTTP fixture as the [service] (its admin token
reaches it as a bearer token), a real `sleep` process named in a process table (a
signal), a command, waits and watches; rollback steps run when a step fails, each key
of theirs changing what runs. The built-ins' options show in `drill list` and in the
dry-run plan. Permission (`[drills] allow`) disables a drill with one notice while the
config still loads (RELIABILITY.md case 16). Every bad value is one config error line,
all reported at once.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CANARY, run_cli
from drill_stack import (PAUSE, PAUSED, RESUME, RUNNING, audit_records, config_text, drill, node, outcome,
                         replay_paused, replay_role, report, resumed, sleepers, step_statuses, timeline)

__all__ = ["replay_role", "resumed", "sleepers"]     # fixtures, used by name


def _recording(http, path: str, status: int = 200) -> list[dict]:
    seen: list[dict] = []

    def handler(request: dict):
        seen.append(request)
        return status, {}, b'{"ok": true}'
    http.routes[path] = handler
    return seen


EVERY_ACTION = """
[[drill]]
name = "every-action"
target = "replica-2"
description = "pause replay, call the admin API, signal a process, run a command"
steady_state = ["replica/replica-2.state == OK", "replica/replica-2.replay_paused == false"]

[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{pause}"
name = "pause"
label = "pause replay on replica-2"

[[drill.step]]
do = "wait"
until = "{paused}"
deadline = "10s"

[[drill.step]]
do = "http"
method = "PUT"
path = "/admin/faults"
json = {{ upstream = {{ failure_rate = 0.5 }} }}

[[drill.step]]
do = "signal"
process = "sleeper"
signal = "SIGTERM"

[[drill.step]]
do = "shell"
command = ["touch", "{touched}"]
timeout = "10s"

[[drill.step]]
do = "observe"
duration = "200ms"

[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{resume}"

[[drill.step]]
do = "wait"
until = "{running}"
deadline = "10s"

[[drill.rollback]]
do = "sql"
node = "replica-2"
sql = "{resume}"
after = "pause"
"""


def test_a_drill_of_every_action_acts_on_real_servers(pg, http, sleepers, resumed, write_config, tmp_path):
    faults = _recording(http, "/admin/faults")
    sleepers.start("sleeper")
    touched = tmp_path / "touched"
    state = tmp_path / "state"
    text = EVERY_ACTION.format(pause=PAUSE, resume=RESUME, paused=PAUSED, running=RUNNING, touched=touched)
    config = write_config(config_text(pg, http, text, state_dir=state, processes=sleepers.table))
    run = drill(config, "every-action", "--confirm", "replica-2", "--json")
    result = outcome(run)
    assert run.code == 0 and result["verdict"] == "passed", run.text
    data = report(result)
    assert list(step_statuses(data).values()) == ["ok"] * 8, data["steps"]
    steps = {s["label"]: s["detail"] for s in data["steps"]}
    # sql: the replica really paused (the engine saw it), then resumed.
    assert steps["pause replay on replica-2"].startswith("replica-2 answered")
    assert "replay_paused == true after" in steps[f"wait until {PAUSED}"]
    assert not replay_paused(pg)
    # http: the method, path, JSON body and the bearer token from [service] admin_token.
    assert len(faults) == 1 and faults[0]["method"] == "PUT"
    assert json.loads(faults[0]["body"]) == {"upstream": {"failure_rate": 0.5}}
    assert faults[0]["headers"]["Authorization"] == f"Bearer {CANARY}"
    assert steps["PUT /admin/faults"] == "PUT /admin/faults: 200"
    # signal: the process the table names got the signal named.
    assert sleepers.exit_signal("sleeper") == 15
    assert steps["SIGTERM to sleeper"].startswith("SIGTERM sent to sleeper (pid ")
    # shell and observe.
    assert touched.exists()
    assert steps["watch 0.2s"] == "watched 0.2s"
    # Nothing failed: the rollback did not run.
    assert data["rollbacks"] == []
    # Every record in the state_dir; the secrets in none of them.
    records = audit_records(state)
    assert [r["record"] for r in records] == ["intent", "outcome"] and records[1]["outcome"] == "passed"
    for path in [state / "audit.jsonl", Path(result["journal"]), Path(result["report"]), Path(result["report_json"])]:
        assert CANARY not in path.read_text(), path


ROLLBACKS = """
[[drill]]
name = "rollbacks"
target = "replica-2"
steady_state = ["replica/replica-2.state == OK"]

[[drill.step]]
do = "sql"
node = "replica-2"
sql = "{pause}"
name = "pause"

[[drill.step]]
do = "wait"
until = "replica/replica-2.lag_bytes < 0"
deadline = "1s"
label = "a wait that never holds"

[[drill.step]]
do = "shell"
command = ["touch", "{never}"]
name = "never-started"

[[drill.rollback]]
do = "sql"
node = "replica-2"
sql = "{resume}"
after = "pause"
name = "resume"
label = "resume replay"

[[drill.rollback]]
do = "http"
path = "/admin/never"
after = "never-started"
label = "undo a step that never started"

[[drill.rollback]]
do = "http"
method = "PUT"
path = "/admin/undo"
json = {{ undo = true }}
after = "resume"
label = "runs once resume ran"

[[drill.rollback]]
do = "shell"
command = ["touch", "{skipped}"]
unless = "replica/replica-2.role == replica"
label = "skipped while replica-2 is a replica"

[[drill.rollback]]
do = "shell"
command = ["touch", "{done}"]
unless = "replica/replica-2.role == primary"
label = "runs while replica-2 is not a primary"

[[drill.rollback]]
do = "wait"
until = "{running}"
deadline = "10s"
label = "wait for replay"

[[drill.rollback]]
do = "signal"
process = "sleeper"
signal = "SIGINT"

[[drill.rollback]]
do = "observe"
duration = "300ms"

[[drill.rollback]]
do = "shell"
command = ["sleep", "5"]
timeout = "300ms"
verify = "replica/replica-2.role == replica"
label = "a slow command, verified"
"""


def test_a_failed_step_runs_the_rollback_each_key_deciding_what_runs(pg, http, sleepers, resumed, write_config,
                                                                     tmp_path):
    never, undo = _recording(http, "/admin/never"), _recording(http, "/admin/undo")
    sleepers.start("sleeper")
    paths = {k: tmp_path / k for k in ("never", "skipped", "done")}
    text = ROLLBACKS.format(pause=PAUSE, resume=RESUME, running=RUNNING, **paths)
    config = write_config(config_text(pg, http, text, state_dir=tmp_path / "state", processes=sleepers.table))
    run = drill(config, "rollbacks", "--confirm", "replica-2", "--json")
    result = outcome(run)
    assert run.code == 1 and result["verdict"] == "failed", run.text
    # deadline: the wait gave up after 1 s, naming what it saw.
    assert result["reason"].startswith("step 2 (a wait that never holds) failed: not within 1s: "
                                       "replica/replica-2.lag_bytes < 0 (seen "), result["reason"]
    data = report(result)
    assert step_statuses(data) == {f"SQL on replica-2: {PAUSE}": "ok", "a wait that never holds": "failed"}
    rollbacks = step_statuses(data, "rollbacks")
    assert rollbacks == {"resume replay": "ok", "runs once resume ran": "ok",
                         "runs while replica-2 is not a primary": "ok", "wait for replay": "ok",
                         "SIGINT to sleeper": "ok", "watch 0.3s": "ok", "a slow command, verified": "ok"}, rollbacks
    # after: a step that never started is not undone; a rollback step's name is an `after` too.
    assert not never and len(undo) == 1 and json.loads(undo[0]["body"]) == {"undo": True}
    # unless: skipped while it holds, said in the timeline.
    assert not paths["skipped"].exists() and paths["done"].exists() and not paths["never"].exists()
    assert ("step rollback: skipped while replica-2 is a replica: not needed (replica/replica-2.role == replica)"
            in timeline(data))
    assert sleepers.exit_signal("sleeper") == 2
    assert not replay_paused(pg)
    # timeout and verify: the slow command got no answer in 0.3 s; the condition said it was done.
    slow = next(r for r in data["rollbacks"] if r["label"] == "a slow command, verified")
    assert slow["detail"].startswith("sleep gave no answer within 0.3s (stopped); it happened: "
                                     "replica/replica-2.role == replica"), slow
    assert "RESULT UNKNOWN: a slow command, verified" in timeline(data)


# ------------------------------------------------------------------ built-ins: their options in the plan

CLOSED_BREAKER = (b'# TYPE circuit_breaker_state gauge\ncircuit_breaker_state{breaker="upstream"} 0\n'
                  b'# TYPE circuit_breaker_calls_total counter\n'
                  b'circuit_breaker_calls_total{breaker="upstream",outcome="success"} 10\n')

BUILTINS = """
[[drill]]
name = "crash"
use = "failover"
process = "pg-{{primary}}"
writes_per_s = 20
max_candidate_lag_bytes = 4096
duration = "500ms"
commands = {{ promote = ["promote-cmd", "{{node}}"], repoint = ["repoint-cmd", "{{node}}", "{{primary}}"] }}

[[drill]]
name = "lag-2"
use = "replica-lag"
target = "replica-2"
duration = "3s"
description = "pause replica-2 while the reads test runs"
steady_state = ["overall <= DEGRADED"]

[[drill]]
name = "upstream"
use = "upstream-fault"
failure_rate = 0.25
duration = "2s"

[[drill]]
name = "cache-out"
use = "redis-outage"
target = "redis"
process = "redis-main"
duration = "4s"
commands = {{ restart = ["restart-redis", "{{process}}"] }}
"""


def _builtins_config(pg, http, redis_server, write_config, tmp_path, name: str) -> Path:
    targets = "\n".join([
        *(line for n in ("primary", "replica-1") for line in (
            "[[replica]]", f'name = "{n}"', f'dsn = "{pg.dsn(node(pg, n))}"',
            'password = "env:SCALEDASH_TEST_PG_PASSWORD"')),
        "[[cache]]", 'name = "redis"', f'url = "{redis_server.url()}"',
        'password = "env:SCALEDASH_TEST_REDIS_PASSWORD"', "min_hit_rate = 0.0",
        "[[source]]", 'name = "app"', f'scrape = "{http.url("/metrics")}"', 'preset = "scaledash"'])
    return write_config(config_text(pg, http, BUILTINS.format(), state_dir=tmp_path / name,
                                    processes=tmp_path / "lab.json", targets=targets,
                                    allow=("primary", "replica-1", "replica-2", "redis", "service")), f"{name}.toml")


@pytest.mark.slow
def test_builtin_options_show_in_drill_list_and_the_dry_run_plan(pg, http, redis_server, write_config, tmp_path):
    http.set("/metrics", CLOSED_BREAKER)
    configs = {name: _builtins_config(pg, http, redis_server, write_config, tmp_path, name)
               for name in ("crash", "lag-2", "upstream", "cache-out")}
    listing = run_cli("drill", "list", "--config", str(configs["crash"]))
    assert listing.code == 0, listing.text
    rows = {line.split()[0]: line.split() for line in listing.out.splitlines()}
    assert rows["crash"][1:3] == ["failover", "irreversible"] and rows["crash"][-1] == "ready", listing.out
    assert rows["lag-2"][1:5] == ["replica-lag", "reversible", "on", "replica-2"], listing.out
    assert rows["cache-out"][1:5] == ["redis-outage", "reversible", "on", "redis"], listing.out
    assert rows["upstream"][1:5] == ["upstream-fault", "reversible", "on", "service"], listing.out

    with ThreadPoolExecutor(4) as pool:      # separate state dirs: no lock is shared
        runs = dict(zip(configs, pool.map(lambda n: drill(configs[n], n, "--dry-run", "--json"), configs)))
    plans = {}
    for name, run in runs.items():
        result = outcome(run)
        assert run.code == 0 and result["verdict"] == "dry-run", (name, run.text)
        plans[name] = "\n".join(report(result)["plan"])
    crash = plans["crash"]
    assert "write canary rows through the service at 20/s" in crash                      # writes_per_s
    assert "crash the primary primary: SIGKILL to pg-primary" in crash                   # process
    # commands; the replica promoted is the one with the most WAL once the primary is dead
    assert ("step 4: promote the replica that received the most WAL of replica-1, replica-2 (now replica-1): "
            "promote-cmd {node}  IRREVERSIBLE") in crash
    assert "repoint replica-2 at the new primary" in crash
    assert "pre-flight: replica/replica-1.lag_bytes <= 4096" in crash                    # max_candidate_lag_bytes
    assert "watch 0.5s of writes acknowledged by primary" in crash                       # duration
    lag = plans["lag-2"]
    assert lag.startswith("drill lag-2 on replica-2 (reversible)")                       # name, target
    assert "what: pause replica-2 while the reads test runs" in lag                      # description
    assert "steady state: overall <= DEGRADED" in lag                                    # steady_state
    assert "watch 3s: lag grows, reads move away" in lag
    assert "make the upstream fail (25% of calls)" in plans["upstream"]                  # failure_rate
    assert "watch 2s: the fallback serves" in plans["upstream"]
    outage = plans["cache-out"]
    assert "stop Redis redis: SIGTERM to redis-main" in outage
    assert "restart Redis redis: restart-redis redis-main" in outage
    assert "watch 4s of the outage" in outage
    # The default description, where none is configured.
    assert "what: pause replay on a replica; lag grows and reads move away" not in lag
    assert "what: make the upstream fail; the breaker opens" in plans["upstream"]


# ------------------------------------------------------------------ [drills]: allow, state_dir, processes

WATCH = """
[[drill]]
name = "watch"
target = "{target}"
steady_state = ["replica/replica-2.state == OK"]

[[drill.step]]
do = "observe"
duration = "200ms"
"""


def test_a_drill_on_a_target_not_allowed_is_disabled_with_one_notice_and_the_config_loads(pg, http, write_config,
                                                                                         tmp_path):
    state = tmp_path / "state"
    text = WATCH.format(target="replica-2") + WATCH.format(target="service").replace('"watch"', '"watch-service"')
    denied = write_config(config_text(pg, http, text, state_dir=state, allow=("service",)), "denied.toml")
    check = run_cli("config", "check", "--config", str(denied))
    assert check.code == 0, check.text
    notice = ("drill watch (custom): disabled: not allowed on replica-2: drills act only on targets listed in "
              "[drills] allow")
    assert [line for line in check.out.splitlines() if line.startswith("drill ")] == [
        notice, "drill watch-service (custom): reversible, run with `scaledash drill run watch-service`"], check.out
    listing = run_cli("drill", "list", "--config", str(denied))
    assert "disabled: not allowed on replica-2" in listing.out and listing.out.count("disabled") == 1, listing.out
    refused = drill(denied, "watch", "--confirm", "replica-2", "--json")
    assert refused.code == 3 and outcome(refused)["verdict"] == "refused", refused.text
    assert "not allowed on replica-2" in outcome(refused)["reason"]
    assert [r.get("outcome") for r in audit_records(state)] == [None, "refused"]
    # The same drill, allowed: it runs.
    allowed = write_config(config_text(pg, http, text, state_dir=state), "allowed.toml")
    assert "drill watch (custom): reversible" in run_cli("config", "check", "--config", str(allowed)).out
    ran = drill(allowed, "watch", "--confirm", "replica-2", "--json")
    assert ran.code == 0 and outcome(ran)["verdict"] == "passed", ran.text
    # A target that does not exist cannot be allowed.
    bad = run_cli("config", "check", "--config", str(write_config(
        config_text(pg, http, "", state_dir=state, allow=("replica-9",)), "bad.toml")))
    assert bad.code == 3 and "drills.allow: no target named 'replica-9' (targets: replica-2, service)" in bad.err


def test_state_dir_holds_every_record_else_the_users_state_home(pg, http, write_config, tmp_path):
    state, home = tmp_path / "state", tmp_path / "home"
    text = WATCH.format(target="replica-2")
    placed = drill(write_config(config_text(pg, http, text, state_dir=state), "placed.toml"), "watch",
                   "--dry-run", "--json", env={"XDG_STATE_HOME": str(home)})
    result = outcome(placed)
    for key in ("journal", "report", "report_json"):
        assert Path(result[key]).parent.parent == state, result
    assert [r["outcome"] for r in audit_records(state) if r["record"] == "outcome"] == ["dry-run"]
    assert not home.exists()
    default = drill(write_config(config_text(pg, http, text, state_dir=None), "default.toml"), "watch",
                    "--dry-run", "--json", env={"XDG_STATE_HOME": str(home)})
    assert Path(outcome(default)["journal"]).parent.parent == home / "scaledash", default.out
    assert [r["outcome"] for r in audit_records(home / "scaledash") if r["record"] == "outcome"] == ["dry-run"]
    assert len(audit_records(state)) == 2                    # nothing more went to the other one


SIGNAL = """
[[drill]]
name = "signal"
target = "replica-2"

[[drill.step]]
do = "signal"
process = "{process}"
signal = "SIGTERM"
"""


def test_processes_is_the_table_signal_steps_take_pids_from(pg, http, sleepers, write_config, tmp_path):
    sleepers.start("sleeper", "bystander")
    state = tmp_path / "state"
    without = write_config(config_text(pg, http, SIGNAL.format(process="sleeper"), state_dir=state), "none.toml")
    listing = run_cli("drill", "list", "--config", str(without))
    assert ("disabled: needs [drills] processes (the process table its signal steps read PIDs from)"
            in listing.out), listing.out
    # A name the table does not hold acts on nothing.
    unknown = write_config(config_text(pg, http, SIGNAL.format(process="nobody"), state_dir=state,
                                       processes=sleepers.table), "unknown.toml")
    missed = drill(unknown, "signal", "--confirm", "replica-2", "--json")
    assert missed.code == 1 and f"no process nobody in the process table {sleepers.table}" in outcome(missed)[
        "reason"], missed.text
    # A PID that now belongs to another process (its start time differs) is not signalled.
    table = json.loads(sleepers.table.read_text())
    table["processes"][0]["start_ticks"] += 1
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(table))
    reused = drill(write_config(config_text(pg, http, SIGNAL.format(process="sleeper"), state_dir=state,
                                            processes=stale), "stale.toml"), "signal", "--confirm", "replica-2",
                   "--json")
    assert reused.code == 1 and "sleeper (pid" in outcome(reused)["reason"] and "is not running" in outcome(
        reused)["reason"], reused.text
    assert sleepers.exit_signal("sleeper", timeout=0.2) is None
    # The table's own entry: that process, and no other.
    sent = drill(write_config(config_text(pg, http, SIGNAL.format(process="sleeper"), state_dir=state,
                                          processes=sleepers.table), "table.toml"), "signal", "--confirm",
                 "replica-2", "--json")
    assert sent.code == 0, sent.text
    assert sleepers.exit_signal("sleeper") == 15 and sleepers.exit_signal("bystander", timeout=0.2) is None


# ------------------------------------------------------------------ bad values: every one, at once

def test_bad_drill_values_are_each_one_config_error_all_at_once(write_config):
    text = """
[drills]
allow = "primary"
state_dir = 5
processes = ["lab.json"]

[[drill]]
name = "bad name!"
use = "failover"
writes_per_s = 0
max_candidate_lag_bytes = -1
failure_rate = 2
process = 7
duration = "forever"
commands = { promote = [] }
steady_state = "overall == OK"
target = 3

[[drill]]
name = "mine"
target = "x"
[[drill.step]]
do = "teleport"
[[drill.step]]
do = "sql"
[[drill.step]]
do = "wait"
until = 5
deadline = "2 weeks"
after = "x"
unless = "overall == OK"
[[drill.step]]
do = "shell"
command = "rm -rf /"
timeout = "10ms"
irreversible = "yes"
[[drill.rollback]]
do = "observe"
duration = "1s"
irreversible = true

[[drill]]
name = "mine"
use = "replica-lag"
[[drill.step]]
do = "observe"
duration = "1s"

[[drill]]
name = "nothing"
"""
    result = run_cli("config", "check", "--config", str(write_config(text)))
    assert result.code == 3, result.text
    lines = [line.split(": ", 2)[2] for line in result.err.splitlines()]
    assert lines == [
        "drill[0].name: use letters, digits, '_', '-', '.', ':' (max 63) (got 'bad name!')",
        "drill[0].steady_state: expected an array (got 'overall == OK')",
        "drill[0].commands.promote: expected a non-empty array of strings (a command and its arguments) (got [])",
        "drill[0].writes_per_s: must be a number from 1 to 1000 (got 0)",
        "drill[0].max_candidate_lag_bytes: must be a number from 0 to 1099511627776 (got -1)",
        "drill[0].failure_rate: must be a number from 0 to 1 (got 2)",
        "drill[0].process: expected a process name (as the process table lists it) (got 7)",
        'drill[0].duration: expected a duration such as 1, "500ms" or "2s" (got \'forever\')',
        "drill[0].target: expected a string (got 3)",
        "drill[1].step[0].do: unknown action; expected one of sql, http, signal, shell, wait, observe (got 'teleport')",
        "drill[1].step[1].node: a sql step needs node",
        "drill[1].step[1].sql: a sql step needs sql",
        "drill[1].step[2].until: expected a string (got 5)",
        'drill[1].step[2].deadline: expected a duration such as 1, "500ms" or "2s" (got \'2 weeks\')',
        "drill[1].step[2].after: only applies to a [[drill.rollback]] step (it names the method step whose start "
        "this rollback step undoes) (got 'x')",
        "drill[1].step[2].unless: only applies to a [[drill.rollback]] step (it skips this rollback step while its "
        "condition holds) (got 'overall == OK')",
        "drill[1].step[3].timeout: must be between 50ms and 1h (got '10ms')",
        "drill[1].step[3].command: expected a non-empty array of strings (a command and its arguments) "
        "(got 'rm -rf /')",
        "drill[1].step[3].irreversible: expected true or false (got 'yes')",
        "drill[1].rollback[0].irreversible: only applies to a [[drill.step]] step (it marks a method step that is "
        "never undone; a rollback step is not undone) (got True)",
        "drill[2].name: duplicate name (also drill[1]) (got 'mine')",
        "drill[2].step: a built-in drill (replica-lag) has its own steps; configure it with its options",
        "drill[3]: give use = one of failover, rejoin, redis-outage, upstream-fault, replica-lag, or "
        "[[drill[3].step]] tables for a drill of your own",
        "drills.allow: expected an array (got 'primary')",
        "drills.state_dir: expected a string (got 5)",
        "drills.processes: expected a string (got ['lab.json'])",
    ], result.err


# ------------------------------------------------------------------ the drill's own engine

def test_a_slow_target_is_not_seen_down_at_the_start_of_a_drill(pg, http, write_config, tmp_path):
    # An edge answering in 0.35 s at a 0.5 s interval: slow, never failing. A probe round
    # beside the engine's own loops found theirs in flight and recorded a failure, so
    # the drill started seeing the target DOWN (on the lab: all three PostgreSQL nodes).
    async def slow(request):
        await asyncio.sleep(0.35)
        return 200, {}, b"ok"
    http.routes["/slow"] = slow
    edge = f'[[edge]]\nname = "slow"\nurl = "{http.url("/slow")}"\n'
    text = ('[[drill]]\nname = "watch-edge"\ntarget = "slow"\nsteady_state = ["edge/slow.state == OK"]\n'
            '[[drill.step]]\ndo = "observe"\nduration = "200ms"\n')
    config = write_config(config_text(pg, http, text, state_dir=tmp_path / "state", targets=edge,
                                      allow=("slow",)))
    run = drill(config, "watch-edge", "--confirm", "slow", "--json")
    assert run.code == 0, run.text
    text = timeline(report(outcome(run)))
    states = [line for line in text.splitlines() if line.startswith("state edge slow")]
    assert all(line.endswith("-> OK") for line in states), states          # OK from its first answer on
    assert "previous probe still running" not in text
