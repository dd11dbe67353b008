"""Recording a real fleet: what a recording says about a moment is what the engine showed.

A primary and a streaming replica; the replica is killed mid-way through the recording.
The recording must hold the same states, at the same times, as the snapshots the
engine handed out live; seeking to the next state change must land on the kill; the
recorder must stop cleanly on SIGTERM; `check --from FILE --at TIME` must print the
contract for a recorded moment; and the replica's password must be nowhere in the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zlib

import pytest

from conftest import CANARY, ROOT, run_cli, wait_for
from dashboard.config_schema import validate
from dashboard.lab.servers import PostgresCluster
from dashboard.model import Kind
from dashboard.recording import Recording
from dashboard.recording.headless import record

pytestmark = pytest.mark.timeout(120)
PASSWORD_ENV = "SCALEDASH_TEST_PG_PASSWORD"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = PostgresCluster(tmp_path_factory.mktemp("pg-rec"), replica_names=["r1", "r2"], password=CANARY)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def password_env(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, CANARY)


def replicas(cluster, names=("primary", "r1", "r2")) -> list[dict]:
    nodes = {"primary": cluster.primary, **{r.name.removeprefix("postgres-"): r for r in cluster.replicas}}
    return [{"name": n, "dsn": cluster.dsn(nodes[n]), "password": f"env:{PASSWORD_ENV}"} for n in names]


def toml(rows: list[dict]) -> str:
    return "interval = \"0.5s\"\ntimeout = \"0.4s\"\n" + "\n".join(
        "[[replica]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in r.items()) for r in rows)


def states(snap) -> dict[str, str]:
    return {c.name: c.state.value for c in snap.components if c.kind is Kind.REPLICA}


def test_a_recording_replays_the_states_the_engine_showed_live(cluster, tmp_path, password_env):
    """r2 is killed (SIGKILL) three seconds in: the recording holds every live snapshot's
    states at its time, and seeking to the next change from the start lands on the first
    snapshot that no longer showed r2 OK."""
    cfg = validate({"interval": 0.5, "timeout": 0.4, "replica": replicas(cluster)})
    path = tmp_path / "fleet.sqlite"
    live = []
    victim = next(r for r in cluster.replicas if r.name.endswith("r2"))

    async def scenario():
        stop = asyncio.Event()

        def seen(snap):
            live.append(snap)
            if len(live) == 6:
                os.kill(victim.pid, signal.SIGKILL)
            # Stop once r2 has been seen failing for a while (DOWN after STALE, case 1).
            if sum(states(s).get("r2") == "DOWN" for s in live) >= 3 or len(live) > 60:
                stop.set()

        await record(cfg, path, None, stop=stop, on_write=seen)

    asyncio.run(scenario())
    assert states(live[0]) == {"primary": "OK", "r1": "OK", "r2": "OK"}, states(live[0])
    assert states(live[-1])["r2"] == "DOWN" and states(live[-1])["r1"] == "OK"

    recording = Recording(path)
    assert len(recording) == len(live)
    for snap in live:
        replayed = recording.at(snap.generated_at)
        assert replayed.generated_at == snap.generated_at
        assert [(c.name, c.state, c.reason) for c in replayed.components] == \
            [(c.name, c.state, c.reason) for c in snap.components]
        assert [(k.name, k.value, k.met) for k in replayed.kpis] == [(k.name, k.value, k.met) for k in snap.kpis]
        assert replayed.overall is snap.overall
    first_change = next(s for s in live if states(s)["r2"] != "OK")
    assert recording.next_change(live[0].generated_at) == first_change.generated_at
    assert recording.previous_change(live[-1].generated_at + 1) is not None
    # The replica's password is in the engine's memory (its DSN), never in the file.
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("fleet.sqlite-*"))
    bodies = b"".join(zlib.decompress(b) for (b,) in sqlite3.connect(path).execute("SELECT body FROM frames"))
    assert CANARY.encode() not in raw + bodies


def test_the_record_command_stops_on_sigterm_and_check_reads_a_moment_back(cluster, write_config, tmp_path):
    config = write_config(toml(replicas(cluster, ("primary", "r1"))))
    path = tmp_path / "cli.sqlite"
    env = {**os.environ, PASSWORD_ENV: CANARY}
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "record", str(path), "--keep", "1h",
                             "--config", str(config)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: path.exists() and _frames(path) >= 4, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err and CANARY not in out + err
    assert f"recording {path} every 0.5s, keeping 1h" in out
    count = _frames(path)
    assert f"recorded {count} snapshots to {path}" in out

    run = run_cli("check", "--json", "--from", str(path), env={PASSWORD_ENV: ""})
    assert run.code == 0, run.text
    report = json.loads(run.out)
    assert {c["name"]: c["state"] for c in report["components"]} == {"primary": "OK", "r1": "OK"}
    end = Recording(path).span()[1]
    assert report["generated_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))

    start = Recording(path).span()[0]
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 1))
    moment = json.loads(run_cli("check", "--json", "--from", str(path), "--at", at).out)
    assert moment["generated_at"] <= at

    table = run_cli("check", "--from", str(path), "--at", "end-0.5s")
    assert table.code == 0 and "r1" in table.out and "OK" in table.out


@pytest.mark.parametrize("args, message", [
    (["--at", "end"], "--at needs --from FILE"),
    (["--from", "{missing}"], "no such recording"),
    (["--from", "{config}"], "not a scaledash recording"),
    (["--from", "{recording}", "--at", "yesterday-ish"], "cannot read the time 'yesterday-ish'"),
    (["--from", "{recording}", "--at", "start-1h"], "starts at"),
])
def test_check_from_a_recording_answers_bad_input_in_one_line(tmp_path, write_config, args, message):
    from dashboard.recording import Recorder
    from test_recording import fleet

    recording = tmp_path / "r.sqlite"
    rec = Recorder(recording)
    rec.write(fleet(time.time()))
    rec.close()
    values = {"missing": tmp_path / "nope.sqlite", "config": write_config("interval = 1\n"),
              "recording": recording}
    run = run_cli("check", *[a.format(**values) for a in args])
    assert run.code == 3 and message in run.err and len(run.err.strip().splitlines()) == 1, run.text


@pytest.mark.parametrize("keep, message", [("1s", "--keep must be at least 1m"), ("forever", "--keep: expected a span such as 90s, 30m, 24h or 7d")])
def test_the_record_command_refuses_a_bad_keep(write_config, tmp_path, keep, message):
    run = run_cli("record", str(tmp_path / "r.sqlite"), "--keep", keep, "--config",
                  str(write_config("[[cache]]\nname = \"c\"\nurl = \"redis://127.0.0.1:1\"\n")))
    assert run.code == 3 and message in run.err, run.text
    assert not (tmp_path / "r.sqlite").exists()


def _frames(path) -> int:
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_the_daemon_serves_what_it_judged_to_a_real_prometheus(cluster, write_config, tmp_path, prometheus_factory):
    from dashboard.lab.servers import free_port

    config = write_config(toml(replicas(cluster, ("primary", "r1"))))
    port = free_port()
    path = tmp_path / "daemon.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "daemon", str(path), "--metrics", str(port),
                             "--config", str(config)], cwd=ROOT, env={**os.environ, PASSWORD_ENV: CANARY},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        prom = prometheus_factory({"scaledash": [f"127.0.0.1:{port}"]})
        up = wait_for(lambda: prom.query('scaledash_component_state{name="r1",state="OK"} == 1'), timeout=30)
        assert up[0]["metric"]["kind"] == "replica" and up[0]["metric"]["job"] == "scaledash"
        assert not prom.query('scaledash_component_state{name="r1",state="DOWN"} == 1')
        assert prom.query('scaledash_overall_state{state="OK"} == 1')
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in out and "keeping 1d" in out
    assert "warning" not in out and "Traceback" not in out + err and CANARY not in out + err
    with socket.socket() as s:       # the server went with the daemon
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_daemon_says_so_in_one_line_when_its_metrics_port_is_taken(write_config, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_cli("daemon", str(tmp_path / "d.sqlite"), "--metrics", f"127.0.0.1:{port}", "--config",
                      str(write_config("[[cache]]\nname = \"c\"\nurl = \"redis://127.0.0.1:1\"\n")))
    assert run.code == 3 and f"cannot serve metrics on 127.0.0.1:{port}" in run.err, run.text
    assert len(run.err.strip().splitlines()) == 1


def test_the_recorder_follows_a_drill_running_on_its_state_directory(cluster, tmp_path, password_env):
    """A drill's process writes its journal (the real Journal); the recorder, like a
    dashboard, finds the run on the config's state directory and records its timeline."""
    from dashboard.drills import journal

    state = tmp_path / "drills"
    cfg = validate({"interval": 0.5, "timeout": 0.4, "replica": replicas(cluster, ("primary",)),
                    "drills": {"state_dir": str(state)}})
    files = journal.RunFiles(state, journal.run_id("failover"))
    writer = journal.Journal(files)
    writer.add("start", "drill failover on primary", drill="failover", target="primary", pid=os.getpid(),
               start_ticks=journal.process_start_ticks(os.getpid()))
    path = tmp_path / "drill.sqlite"
    written = []

    async def scenario():
        stop = asyncio.Event()

        def seen(snap):
            written.append(snap)
            if len(written) == 2:
                writer.add("step", "step 1: kill the primary", "ok")
            if len(written) == 4:
                writer.add("end", "passed", "ok", verdict="passed", figures={"failover_seconds": 0.4})
            if len(written) == 6:
                stop.set()

        await record(cfg, path, None, stop=stop, on_write=seen)

    asyncio.run(scenario())
    drill = Recording(path).drill_at(written[-1].generated_at)
    assert (drill.drill, drill.target, drill.ended) == ("failover", "primary", True)
    assert [e.kind for e in drill.entries] == ["start", "step", "end"]
    assert Recording(path).drill_at(writer.entries[0].at - 0.01) is None
