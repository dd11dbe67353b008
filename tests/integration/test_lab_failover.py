"""The lab's side of failover drills, on a real lab: the service follows a promotion on its
own, acknowledged canary writes survive a crash of the primary, and the lab verbs the drill
engine runs (`scaledash lab topology|promote|repoint|rejoin|restart`) do what they say.

The crash drill gets a lab of its own (it ends with `lab down`); the other tests share one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from conftest import run_cli, wait_for
from dashboard.lab import topology
from dashboard.lab.servers import redis_command
from dashboard.lab.stack import Lab
from lab_drive import admin, module_lab, service_url

lab = module_lab("lab-failover")

CANARY_RATE = 50          # writes a second, as the failover drill writes them


@dataclass
class Answer:
    seq: int
    status: int | str     # HTTP status, or the client error when there was no answer
    node: str | None
    at: float             # monotonic time the answer arrived


@dataclass
class CanaryWriter:
    """Writes canary rows through POST /canary at CANARY_RATE a second in a thread."""

    url: str
    run: str
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "CanaryWriter":
        self._thread = threading.Thread(target=self._write_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _write_forever(self) -> None:
        seq = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            self.answers.append(self._write(seq))
            seq += 1
            self._stop.wait(max(0.0, 1 / CANARY_RATE - (time.monotonic() - sent)))

    def _write(self, seq: int) -> Answer:
        body = json.dumps({"run": self.run, "seq": seq}).encode()
        request = urllib.request.Request(self.url + "/canary", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return Answer(seq, resp.status, json.loads(resp.read())["node"], time.monotonic())
        except urllib.error.HTTPError as exc:
            return Answer(seq, exc.code, None, time.monotonic())
        except OSError as exc:
            return Answer(seq, type(exc).__name__, None, time.monotonic())

    def acked(self, node: str | None = None) -> list[Answer]:
        return [a for a in list(self.answers) if a.status == 200 and (node is None or a.node == node)]


def post_canary(lab: Lab, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(service_url(lab) + "/canary", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def lab_cli(lab: Lab, *args: str):
    return run_cli("lab", *args, "--dir", str(lab.dir), timeout=120)


def routing(lab: Lab) -> dict:
    return admin(lab, "GET", "/admin/state")[1]["routing"]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------ the crash drill

@pytest.mark.slow
@pytest.mark.timeout(240)
def test_service_follows_a_crashed_primary_to_the_promoted_replica_without_losing_an_acknowledged_write(tmp_path):
    the_lab = Lab(tmp_path / "lab")
    the_lab.up(log=lambda line: None)
    try:
        _crash_promote_repoint_rejoin(the_lab)
    finally:
        the_lab.down()


def _crash_promote_repoint_rejoin(lab: Lab) -> None:
    wait_for(lambda: len(routing(lab)["reads"]) == 2, timeout=20, interval=0.2)
    writer = CanaryWriter(service_url(lab), "drill-1").start()
    try:
        wait_for(lambda: len(writer.acked("primary")) >= CANARY_RATE, timeout=20, interval=0.05)
        os.kill(lab.entry("postgres-primary").pid, signal.SIGKILL)
        killed = time.monotonic()
        # The most caught-up replica, as the drill picks it: the one that received the most WAL.
        standbys = [s for s in topology.nodes(lab).values() if s.role == "standby"]
        new = max(standbys, key=lambda s: topology.lsn_bytes(s.receive_lsn) or 0).name
        other = next(s.name for s in standbys if s.name != new)
        picked = time.monotonic()
        promoted = lab_cli(lab, "promote", new)
        promote_cli = time.monotonic() - picked
        assert promoted.code == 0 and promoted.out.startswith(f"lab: promoted {new} in "), promoted.text
        repointed = lab_cli(lab, "repoint", other, "--primary", new)
        assert repointed.code == 0 and f"{other} streams from {new}" in repointed.out, repointed.text
        wait_for(lambda: len(writer.acked(new)) >= CANARY_RATE // 2, timeout=20, interval=0.05)
    finally:
        writer.stop()

    last_old, first_new = writer.acked("primary")[-1], writer.acked(new)[0]
    failed = [a for a in writer.answers if last_old.seq < a.seq < first_new.seq]
    gap = first_new.at - last_old.at
    print(f"failover gap {gap:.3f}s: last 200 from primary (seq {last_old.seq}) -> first 200 from {new} "
          f"(seq {first_new.seq}); {len(failed)} writes failed in between; candidate picked "
          f"{picked - killed:.3f}s after the kill, `lab promote` ran {promote_cli:.3f}s: {promoted.out.strip()}")
    assert 0 < gap < 5
    assert {a.status for a in writer.answers} <= {200, 503}, "a write hung or failed other than with 503"
    assert routing(lab)["writes"] == new

    status, rows = admin(lab, "GET", "/admin/canary?run=drill-1")
    assert status == 200 and rows["node"] == new and not rows["truncated"]
    lost = sorted({a.seq for a in writer.acked()} - set(rows["seqs"]))
    assert lost == [], f"acknowledged canary writes missing on {new}: {lost}"

    rejoined = lab_cli(lab, "rejoin", "primary", "--primary", new)
    assert rejoined.code == 0, rejoined.text
    print(rejoined.out.strip())
    assert rejoined.out.startswith(f"lab: rejoined primary as a standby of {new} by pg_rewind in ")
    report = json.loads(lab_cli(lab, "topology", "--json").out)
    assert {n: (s["role"], s["upstream"], s["receiver"]) for n, s in report["nodes"].items()} == {
        "primary": ("standby", new, "streaming"), new: ("primary", None, None),
        other: ("standby", new, "streaming")}
    assert report["primary"] == new and report["redis"]["alive"]
    wait_for(lambda: "primary" in routing(lab)["reads"], timeout=30, interval=0.5)
    assert routing(lab)["writes"] == new

    status = lab_cli(lab, "status")
    assert status.code == 0 and "DEAD" not in status.out, status.text
    entries = lab.entries()
    down = lab_cli(lab, "down")
    assert down.code == 0 and "stopped 10 processes" in down.out, down.text
    for entry in entries:
        assert not entry.alive(), entry.name
        assert port_free(entry.port), f"{entry.name} still holds port {entry.port}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_rejoin_falls_back_to_a_fresh_base_backup_when_pg_rewind_fails(tmp_path, monkeypatch):
    from dashboard.lab import failover
    from dashboard.lab.servers import ServerError, standby

    def rewind_fails(*args, **kwargs):
        raise ServerError("pg_rewind failed (made to fail by the test)")

    the_lab = Lab(tmp_path / "lab")
    the_lab.up(log=lambda line: None)
    try:
        the_lab.entry("postgres-primary").process().kill()
        failover.promote(the_lab, "replica-1")
        failover.repoint(the_lab, "replica-2", "replica-1")
        monkeypatch.setattr(standby, "_rewind", rewind_fails)
        line = failover.rejoin(the_lab, "primary", "replica-1")
        assert line.startswith("lab: rejoined primary as a standby of replica-1 by pg_basebackup in "), line
        state = topology.nodes(the_lab)["primary"]
        assert (state.role, state.upstream, state.receiver) == ("standby", "replica-1", "streaming")
        assert the_lab.entry("postgres-primary").alive()
    finally:
        the_lab.down()


# ------------------------------------------------------------------ canary endpoints

@pytest.mark.parametrize("body, error", [
    (b"not json", "body must be JSON"),
    (b'["run", 1]', 'body must be {"run"'),
    (b'{"run": "r1"}', 'body must be {"run"'),
    (b'{"run": "r1", "seq": 1, "node": "x"}', 'body must be {"run"'),
    (b'{"run": "", "seq": 1}', "run must be 1 to 64 characters"),
    (('{"run": "%s", "seq": 1}' % ("r" * 65)).encode(), "run must be 1 to 64 characters"),
    (b'{"run": "r 1", "seq": 1}', "run must be 1 to 64 characters"),
    (b'{"run": 7, "seq": 1}', "run must be 1 to 64 characters"),
    (b'{"run": "r1", "seq": -1}', "seq must be an integer"),
    (b'{"run": "r1", "seq": true}', "seq must be an integer"),
    (b'{"run": "r1", "seq": 1.5}', "seq must be an integer"),
    (b'{"run": "r1", "seq": "1"}', "seq must be an integer"),
    (b'{"run": "r1", "seq": 2147483648}', "seq must be an integer"),
])
def test_canary_write_that_is_not_a_run_and_seq_is_refused_with_a_one_line_400(lab, body, error):
    status, answer = post_canary(lab, body)
    assert status == 400 and answer["error"].startswith(error) and "\n" not in answer["error"], answer


def test_canary_write_is_acknowledged_by_the_primary_and_read_back_from_it(lab):
    for seq in (0, 1, 2147483647, 1):       # a seq sent again keeps its row
        assert post_canary(lab, json.dumps({"run": "Run_1-a", "seq": seq}).encode()) == (
            200, {"node": "primary", "seq": seq})
    assert admin(lab, "GET", "/admin/canary?run=Run_1-a") == (
        200, {"node": "primary", "seqs": [0, 1, 2147483647], "truncated": False, "max_seqs": 10000})
    assert admin(lab, "GET", "/admin/canary?run=never-written")[1]["seqs"] == []


def test_canary_read_back_needs_the_token_and_a_valid_run(lab):
    assert admin(lab, "GET", "/admin/canary?run=r1", token=None)[0] == 401
    assert admin(lab, "GET", "/admin/canary?run=r1", token="wrong-token")[0] == 401
    assert admin(lab, "GET", "/admin/canary?run=bad%20run")[0] == 400
    assert admin(lab, "GET", "/admin/canary")[0] == 400


def test_canary_read_back_of_a_huge_run_is_capped_and_says_so(lab):
    cluster = lab.cluster()
    cluster.psql(lab.entry("postgres-primary").process(), "\\c app\nINSERT INTO canary (run, seq, node) "
                 "SELECT 'huge', g, 'primary' FROM generate_series(0, 10000) AS g;\n")
    status, answer = admin(lab, "GET", "/admin/canary?run=huge")
    assert status == 200 and answer["truncated"] is True
    assert answer["seqs"] == list(range(10_000))


# ------------------------------------------------------------------ verbs that refuse

def test_promote_of_a_node_that_is_not_a_standby_exits_1_with_the_reason(lab):
    result = lab_cli(lab, "promote", "primary")
    assert result.code == 1 and result.out == ""
    assert result.err.strip() == "lab: cannot promote primary: primary is a primary, not a standby"
    assert topology.topology(lab)["primary"] == "primary"


def test_verbs_without_their_node_or_primary_exit_1_with_usage(lab):
    for args, reason in ((("promote",), "usage: scaledash lab promote NAME"),
                         (("repoint", "replica-2"), "lab repoint needs --primary NODE"),
                         (("rejoin", "replica-2", "--primary", "primary"), "cannot rejoin replica-2: it is running"),
                         (("restart", "nothing-such"), "no lab process named 'nothing-such'")):
        result = lab_cli(lab, *args)
        assert result.code == 1 and result.err.startswith(f"lab: {reason}"), result.text
        assert len(result.err.strip().splitlines()) == 1


def test_topology_reads_each_nodes_role_and_upstream_from_the_servers(lab):
    report = json.loads(lab_cli(lab, "topology", "--json").out)
    nodes = report["nodes"]
    assert {n: (s["role"], s["upstream"]) for n, s in nodes.items()} == {
        "primary": ("primary", None), "replica-1": ("standby", "primary"), "replica-2": ("standby", "primary")}
    assert all(nodes[n]["receiver"] == "streaming" and nodes[n]["receive_lsn_bytes"] > 0 for n in ("replica-1",
                                                                                                  "replica-2"))
    assert nodes["primary"]["wal_lsn_bytes"] > 0 and report["primary"] == "primary"
    line = lab_cli(lab, "topology")
    assert line.code == 0 and line.out.startswith("topology: primary primary lsn ") and line.out.count("\n") == 1
    assert "replica-1 standby of primary streaming" in line.out and line.out.strip().endswith("redis alive")


# ------------------------------------------------------------------ restart

def test_redis_killed_is_restarted_on_its_port_and_recorded_with_its_new_pid(lab):
    before = lab.entry("redis-server")
    refused = lab_cli(lab, "restart", "redis-server")
    assert refused.code == 1 and "still running" in refused.err, refused.text
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not before.alive(), timeout=5, interval=0.05)
    assert "DEAD" in lab_cli(lab, "status").out

    result = lab_cli(lab, "restart", "redis-server")
    assert result.code == 0 and result.out.startswith("lab: restarted redis-server in "), result.text
    after = lab.entry("redis-server")
    assert after.pid != before.pid and after.port == before.port and after.alive()
    assert f"(pid {after.pid}, port {after.port})" in result.out
    password = (lab.dir / "secrets" / "redis_password").read_text()
    assert redis_command(after.port, "PING", password=password) == "+PONG"
    status = lab_cli(lab, "status")
    assert status.code == 0 and "DEAD" not in status.out, status.text


def test_a_killed_standby_is_restarted_and_streams_again(lab):
    before = lab.entry("postgres-replica-2")
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not before.alive(), timeout=5, interval=0.05)
    result = lab_cli(lab, "restart", "postgres-replica-2")
    assert result.code == 0, result.text
    assert lab.entry("postgres-replica-2").pid != before.pid
    wait_for(lambda: topology.nodes(lab)["replica-2"].receiver == "streaming", timeout=15, interval=0.1)
    assert lab_cli(lab, "status").code == 0


# ------------------------------------------------------------------ the writable-node search

def test_the_writable_node_is_the_one_not_in_recovery_whatever_its_configured_name(pg):
    from dashboard.lab.service.writer import WritableNode
    from dashboard.lab.servers import free_port
    from conftest import CANARY

    dsns = {p.name.removeprefix("postgres-"): pg.dsn(p) for p in pg.nodes}
    dead = f"postgresql://monitor@127.0.0.1:{free_port()}/postgres"

    async def search(nodes: dict[str, str]) -> str | None:
        writer = WritableNode(nodes, CANARY)
        try:
            return await writer.search_once()
        finally:
            await writer._close_probes()

    # Standbys and a dead node listed first are passed over, as target_session_attrs=read-write does.
    order = {"gone": dead, "replica-2": dsns["replica-2"], "replica-1": dsns["replica-1"], "main": dsns["primary"]}
    assert asyncio.run(search(order)) == "main"
    assert asyncio.run(search({"gone": dead, "replica-1": dsns["replica-1"]})) is None


def test_a_failed_write_looks_for_the_writable_node_again_only_when_the_node_may_have_changed():
    import asyncpg

    from dashboard.lab.service.writer import says_not_writable

    for exc in (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only"),
                asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
                asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
                asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
                asyncpg.exceptions.ObjectNotInPrerequisiteStateError("recovery is in progress"),
                ConnectionRefusedError(111, "refused"), asyncio.TimeoutError(),
                asyncpg.InternalClientError("cannot switch to state 15")):
        assert says_not_writable(exc), exc
    for exc in (asyncpg.exceptions.UniqueViolationError("duplicate key"),
                asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
                asyncpg.exceptions.UndefinedTableError("no such table")):
        assert not says_not_writable(exc), exc


def test_lab_json_records_how_to_restart_each_process_but_never_a_secret(lab):
    recorded = lab.state_path.read_text()
    for secret in (lab.dir / "secrets").iterdir():
        assert secret.read_text() not in recorded, secret.name
    redis = lab.entry("redis-server")
    assert redis.argv and redis.argv[0].endswith("redis-server") and redis.cwd and not redis.env_withheld
    assert lab.entry("postgres-replica-1").user == "postgres"
    if "redis-exporter" not in {e.name for e in lab.entries()}:
        return          # prometheus-redis-exporter is not installed here
    exporter = lab.entry("redis-exporter")
    assert exporter.env_withheld == ["REDIS_PASSWORD"] and exporter.env == {}
    # Last in the module: the lab keeps a dead exporter from here on.
    exporter.process().kill()
    refused = lab_cli(lab, "restart", "redis-exporter")
    assert refused.code == 1 and "secrets in its environment (REDIS_PASSWORD)" in refused.err, refused.text
