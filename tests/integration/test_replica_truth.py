"""Replica figures you can trust, on a real primary with two streaming replicas.

Lag is the primary's current WAL position minus each replica's replay position; a
replica whose WAL receiver is cut is DEGRADED at once and gets no reads from the lab's
service; per-node lag limits act; a role without pg_monitor sees "n/a (privilege)" and
one notice; two writable nodes fail the check. Tests that break a replica put it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

import pytest

from conftest import CANARY, run_cli, wait_for
from fakes import component
from dashboard.config_schema import validate
from dashboard.engine import Engine
from dashboard.kinds import replica as replica_kind
from dashboard.lab.servers import PostgresCluster
from dashboard.model import Snapshot, State
from widgets.rows import RowContext
from widgets.rows.replica import paused

PG_PASSWORD = "env:SCALEDASH_TEST_PG_PASSWORD"
MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(120)


# ------------------------------------------------------------------ the cluster and its faults

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = PostgresCluster(tmp_path_factory.mktemp("pg-truth"), replica_names=["r1", "r2"], password=CANARY)
    c.start()
    c.psql(c.primary, "CREATE TABLE ticks (id serial, pad text)")
    yield c
    c.stop()


def node(cluster, name: str):
    return cluster.primary if name == "primary" else \
        next(r for r in cluster.replicas if r.name.removeprefix("postgres-") == name)


def write(cluster, rows: int) -> None:
    """About 130 bytes of WAL per row, written out before it returns (the cluster runs with
    synchronous_commit off, where the write position may still be short of the commit)."""
    cluster.psql(cluster.primary, "SET synchronous_commit = local;\n"
                 f"INSERT INTO ticks (pad) SELECT repeat('x', 80) FROM generate_series(1, {rows})")


def caught_up(cluster, name: str) -> bool:
    lsn = cluster.psql(cluster.primary, "SELECT pg_current_wal_lsn()").strip()
    return cluster.psql(node(cluster, name), f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'").strip() == "t"


def streaming(cluster, name: str) -> bool:
    return cluster.psql(node(cluster, name), "SELECT status FROM pg_stat_wal_receiver").strip() == "streaming"


@contextlib.contextmanager
def cut_receiver(cluster, name: str):
    """The replica loses its primary_conninfo: its WAL receiver stops, the node stays up."""
    replica = node(cluster, name)
    conninfo = cluster.psql(replica, "SHOW primary_conninfo").strip()
    cluster.psql(replica, "ALTER SYSTEM SET primary_conninfo = ''")
    cluster.psql(replica, "SELECT pg_reload_conf()")
    try:
        wait_for(lambda: cluster.psql(replica, "SELECT count(*) FROM pg_stat_wal_receiver").strip() == "0")
        yield replica
    finally:
        cluster.psql(replica, "ALTER SYSTEM SET primary_conninfo = '" + conninfo.replace("'", "''") + "'")
        cluster.psql(replica, "SELECT pg_reload_conf()")
        wait_for(lambda: streaming(cluster, name) and caught_up(cluster, name), timeout=20)


@contextlib.contextmanager
def frozen_walsender(cluster, name: str):
    """The primary's walsender for `name` stopped (SIGSTOP): nothing reaches the replica, yet
    its receiver still says "streaming" (as over a network cut, until wal_receiver_timeout)."""
    pid = int(cluster.psql(cluster.primary, f"SELECT pid FROM pg_stat_replication WHERE application_name = '{name}'"))
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: streaming(cluster, name) and caught_up(cluster, name), timeout=20)


@contextlib.contextmanager
def apply_delay(cluster, name: str, delay: str):
    """The replica receives and streams, but replays each commit only after `delay`."""
    replica = node(cluster, name)
    cluster.psql(replica, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
    cluster.psql(replica, "SELECT pg_reload_conf()")
    try:
        yield replica
    finally:
        cluster.psql(replica, "ALTER SYSTEM RESET recovery_min_apply_delay")
        cluster.psql(replica, "SELECT pg_reload_conf()")
        wait_for(lambda: caught_up(cluster, name), timeout=20)


# ------------------------------------------------------------------ the dashboard's view

def section(cluster, name: str, node_name: str | None = None, user: str = "monitor", **limits) -> dict:
    return {"name": name, "dsn": cluster.dsn(node(cluster, node_name or name), user), "password": PG_PASSWORD,
            **limits}


def snapshot_of(replicas: list[dict], rounds: int = 1, **thresholds) -> tuple[Snapshot, Engine]:
    """The engine's picture after `rounds` poll rounds (what `check` shows after its window)."""
    cfg = validate({"interval": 1.0, "timeout": 0.8, "replica": replicas,
                    **({"thresholds": thresholds} if thresholds else {})})

    async def run() -> tuple[Snapshot, Engine]:
        engine = Engine(cfg)
        try:
            for _ in range(rounds):
                await engine.poll_round()
            return engine.snapshot(), engine
        finally:
            await engine.close()

    return asyncio.run(run())


def toml(replicas: list[dict]) -> str:
    out = []
    for r in replicas:
        out.append("[[replica]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in r.items()))
    return "\n".join(out)


def check_json(write_config, replicas: list[dict]) -> tuple[int, dict]:
    result = run_cli("check", "--json", "--config", str(write_config(toml(replicas))))
    return result.code, json.loads(result.out)


def json_row(report: dict, name: str) -> dict:
    return next(c for c in report["components"] if c["name"] == name)


# ------------------------------------------------------------------ lag across nodes

def test_streaming_replica_is_ok_with_no_lag_behind_its_primary(cluster):
    write(cluster, 100)
    wait_for(lambda: caught_up(cluster, "r1"))
    snap, _ = snapshot_of([section(cluster, "primary"), section(cluster, "r1")])
    r1 = component(snap, "r1")
    assert (r1.state, r1.reason) == (State.OK, None)
    assert r1.metrics["receiver"] == "streaming" and r1.metrics["receiver_since_s"] > 0
    assert r1.metrics["lag_basis"] == "primary" and r1.metrics["lag_primary"] == "primary"
    assert r1.metrics["lag_bytes"] < 64 * 1024 and r1.metrics["lag_seconds"] < 5
    assert component(snap, "primary").metrics["streaming_replicas"] == 2


def test_replica_with_cut_receiver_is_degraded_at_once_and_its_lag_grows(cluster, write_config):
    replicas = [section(cluster, "primary"), section(cluster, "r1"), section(cluster, "r2")]
    with cut_receiver(cluster, "r2"):
        write(cluster, 1000)

        async def two_rounds():
            engine = Engine(validate({"interval": 1.0, "timeout": 0.8, "replica": replicas}))
            try:
                await engine.poll_round()
                first = component(engine.snapshot(), "r2")
                await asyncio.to_thread(write, cluster, 1000)
                await engine.poll_round()
                return first, engine.snapshot()
            finally:
                await engine.close()

        first, snap = asyncio.run(two_rounds())
        code, report = check_json(write_config, replicas)

    # Its own counters read "all replayed" (receive minus replay is nothing, or the tail of
    # a record the receiver got only part of before it stopped: 1.7 KB in CI, never
    # applied): only the primary's position shows the gap.
    assert 0 <= first.metrics["receive_lsn"] - first.metrics["replay_lsn"] < 64 * 1024
    assert (first.state, first.reason) == (State.DEGRADED, "WAL receiver not streaming (stopped)")
    assert first.metrics["receiver"] == "stopped" and first.metrics["lag_bytes"] > 100_000
    second = component(snap, "r2")
    assert second.state is State.DEGRADED and second.metrics["lag_bytes"] > first.metrics["lag_bytes"] + 100_000
    assert second.metrics["lag_seconds"] > 0
    assert second.history["lag_bytes"][-1] == second.metrics["lag_bytes"], "the trend shows the row's figure"
    r1 = component(snap, "r1")
    assert r1.state is State.OK and r1.metrics["receiver"] == "streaming"
    assert paused(second, RowContext(read_share={})).plain == "stopped"
    assert paused(r1, RowContext(read_share={})).plain == "no"

    assert code == 1, report
    r2 = json_row(report, "r2")
    assert (r2["state"], r2["reason"]) == ("DEGRADED", "WAL receiver not streaming (stopped)")
    assert r2["metrics"]["receiver"] == "stopped" and r2["metrics"]["lag_bytes"] > 200_000
    assert json_row(report, "r1")["state"] == "OK"


def test_replica_cut_off_while_its_receiver_says_streaming_is_judged_by_lag_behind_the_primary(cluster):
    replicas = [section(cluster, "primary"), section(cluster, "r2", max_lag_bytes=MiB)]
    with frozen_walsender(cluster, "r2"):
        write(cluster, 20_000)          # ~2.6 MB the replica never receives
        snap, _ = snapshot_of(replicas)
    r2 = component(snap, "r2")
    assert r2.metrics["receiver"] == "streaming"
    assert r2.metrics["receive_lsn"] == r2.metrics["replay_lsn"]      # by its own figures: caught up
    assert r2.metrics["lag_bytes"] > 2 * MiB
    assert r2.state is State.DEGRADED and r2.reason.startswith("lag ") and "> 1.0 MiB" in r2.reason


def test_a_write_landing_between_the_two_nodes_probes_is_not_lag_in_seconds(cluster):
    """After an idle spell the last replayed transaction is old: a write read on the primary
    but not yet on the replica must not show that age as lag (here, any second is too many)."""
    cfg = validate({"interval": 1.0, "timeout": 0.8,
                    "replica": [section(cluster, "primary"), section(cluster, "r1", max_lag_seconds=0)]})
    write(cluster, 1)
    wait_for(lambda: caught_up(cluster, "r1"))

    async def run():
        engine = Engine(cfg)
        try:
            await engine.poll_round()
            await asyncio.to_thread(write, cluster, 10)
            await engine._poll(engine.targets[0])        # the primary's probe sees the write first
            return component(engine.snapshot(), "r1")
        finally:
            await engine.close()

    r1 = asyncio.run(run())
    assert r1.metrics["lag_bytes"] > 0 and r1.metrics["replay_age_s"] > 0
    assert r1.metrics["lag_seconds"] == 0.0 and (r1.state, r1.reason) == (State.OK, None)


def test_without_a_primary_a_replica_shows_its_own_lag_and_says_so(cluster):
    snap, _ = snapshot_of([section(cluster, "r1")])
    r1 = component(snap, "r1")
    assert r1.state is State.OK and r1.metrics["lag_basis"] == "own"
    assert "no single primary" in r1.reason and "received minus replayed" in r1.reason


# ------------------------------------------------------------------ per-replica limits

def test_per_replica_lag_limits_override_the_global_thresholds(cluster):
    with apply_delay(cluster, "r1", "60s"):
        write(cluster, 1)        # replay stops before this commit, and so before all that follows
        write(cluster, 1000)
        wait_for(lambda: cluster.psql(node(cluster, "r1"),
                                      "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()").strip() == "t")
        strict, _ = snapshot_of([section(cluster, "primary"),
                                 section(cluster, "bytes", "r1", max_lag_bytes=1000),
                                 section(cluster, "seconds", "r1", max_lag_seconds=0)])
        lenient, _ = snapshot_of([section(cluster, "primary"), section(cluster, "global", "r1"),
                                  section(cluster, "roomy", "r1", max_lag_bytes=1 << 30, max_lag_seconds=3600)],
                                 replica_lag_bytes=1000, replica_lag_seconds=0)

    by_bytes, by_seconds = component(strict, "bytes"), component(strict, "seconds")
    assert by_bytes.metrics["lag_bytes"] > 100_000 and by_bytes.metrics["receiver"] == "streaming"
    assert by_bytes.state is State.DEGRADED and by_bytes.reason.endswith("> 1000 B")
    assert by_seconds.state is State.DEGRADED and by_seconds.reason.endswith("> 0.0s")
    assert component(lenient, "global").state is State.DEGRADED        # the tight global thresholds apply
    roomy = component(lenient, "roomy")
    assert roomy.metrics["lag_bytes"] > 100_000
    assert (roomy.state, roomy.reason) == (State.OK, None)      # the same lag, under its own larger limits


def test_per_replica_lag_limits_are_validated():
    from dashboard.config_types import ConfigError

    with pytest.raises(ConfigError) as err:
        validate({"replica": [{"name": "r", "dsn": "postgresql://m@127.0.0.1/db", "max_lag_bytes": -1,
                               "max_lag_seconds": float("inf")}]})
    assert {p.split(":")[0] for p in err.value.problems} == {"replica[0].max_lag_bytes",
                                                            "replica[0].max_lag_seconds"}


# ------------------------------------------------------------------ privileges

@pytest.fixture(scope="module")
def plain_role(cluster):
    """A login role without pg_monitor, known to every node."""
    cluster.psql(cluster.primary, f"CREATE ROLE plain LOGIN PASSWORD '{CANARY}'")
    wait_for(lambda: all(cluster.psql(r, "SELECT count(*) FROM pg_roles WHERE rolname = 'plain'").strip() == "1"
                         for r in cluster.replicas))
    return "plain"


def test_role_without_pg_monitor_sees_na_privilege_and_one_notice_naming_the_grant(cluster, plain_role,
                                                                                     write_config):
    wait_for(lambda: streaming(cluster, "r1") and streaming(cluster, "r2"))
    replicas = [section(cluster, "primary"), section(cluster, "r1"),
                section(cluster, "primary-plain", "primary", plain_role),
                section(cluster, "r1-plain", "r1", plain_role)]
    snap, engine = snapshot_of(replicas, rounds=3)

    primary, plain_primary = component(snap, "primary"), component(snap, "primary-plain")
    assert primary.metrics["streaming_replicas"] == 2 and "hidden_by_privilege" not in primary.metrics
    assert plain_primary.state is State.OK
    assert plain_primary.metrics["streaming_replicas"] is None            # not a wrong 0
    assert "streaming_replicas" in plain_primary.metrics["hidden_by_privilege"]
    assert "n/a (privilege)" in replica_kind.brief(dict(plain_primary.metrics))

    r1, plain_r1 = component(snap, "r1"), component(snap, "r1-plain")
    assert r1.metrics["receiver"] == "streaming"
    assert plain_r1.metrics["receiver"] is None and "receiver" in plain_r1.metrics["hidden_by_privilege"]
    assert (plain_r1.state, plain_r1.reason) == (State.OK, None)          # everything else still works
    assert plain_r1.metrics["lag_basis"] == "primary" and plain_r1.metrics["lag_bytes"] == r1.metrics["lag_bytes"]
    assert "recv n/a (privilege)" in replica_kind.brief(dict(plain_r1.metrics))
    assert paused(plain_r1, RowContext(read_share={})).plain == "n/a"

    notices = [e for e in snap.events if "GRANT pg_monitor TO plain" in e.message]
    assert sorted(e.target for e in notices) == ["primary-plain", "r1-plain"], "one notice per target, not per poll"
    assert not [e for e in snap.events if "pg_monitor" in e.message and e.target in ("primary", "r1")]

    result = run_cli("check", "--config", str(write_config(toml(replicas))))
    assert result.code == 0, result.text
    assert "n/a (privilege)" in result.out
    assert " ".join(result.out.split()).count("GRANT pg_monitor TO plain") == 2   # one note per target


# ------------------------------------------------------------------ split-brain

def test_promoted_replica_makes_split_brain_down_and_check_exit_2(tmp_path, write_config):
    c = PostgresCluster(tmp_path / "pg", replica_names=["r1"], password=CANARY).start()
    try:
        replicas = [section(c, "primary"), section(c, "r1")]
        wait_for(lambda: caught_up(c, "r1"))
        code, report = check_json(write_config, replicas)
        assert (code, report["overall"], report["banners"]) == (0, "OK", []), report

        c.psql(node(c, "r1"), "SELECT pg_promote()")
        code, report = check_json(write_config, replicas)
    finally:
        c.stop()
    assert report["banners"] == ["2 primaries - possible split-brain: primary, r1"]
    assert [json_row(report, n)["state"] for n in ("primary", "r1")] == ["OK", "OK"]   # each node answers
    assert report["overall"] == "DOWN" and code == 2


# ------------------------------------------------------------------ the lab service's read routing

@pytest.fixture(scope="module")
def app_db(cluster):
    """The service's own role (no pg_monitor, as in the lab) and database."""
    cluster.psql(cluster.primary, f"CREATE ROLE app LOGIN PASSWORD '{CANARY}'")
    cluster.psql(cluster.primary, "CREATE DATABASE app OWNER app")
    return {"primary": cluster.dsn(cluster.primary, "app", "app"),
            "replicas": {name: cluster.dsn(node(cluster, name), "app", "app") for name in ("r1", "r2")}}


def route_reads(app_db, scenario, max_lag_bytes: int = MiB) -> dict:
    """Run the service's Database (routing, health monitors, per-node counters) around
    `scenario(db, reads)`, where `await reads(n)` sends n reads and returns the reads per node."""
    from dashboard.lab.service.breakers import Breakers
    from dashboard.lab.service.database import Database
    from dashboard.lab.service.metrics import ServiceMetrics
    from dashboard.lab.service.queries import SELECT_ITEM
    from dashboard.lab.service.settings import ServiceSettings

    settings = ServiceSettings(port=0, primary_dsn=app_db["primary"], replicas=app_db["replicas"],
                               redis_url="redis://127.0.0.1:1", upstream_url="http://127.0.0.1:1",
                               pg_password=CANARY, admin_token="not-used-here", max_replica_lag_bytes=max_lag_bytes)
    metrics = ServiceMetrics()
    ids = iter(range(900_001, 999_999))      # absent ids: never fenced by a write

    def served() -> dict[str, float]:
        return {n: metrics.registry.get_sample_value("db_queries_total", {"node": n, "kind": "read"}) or 0.0
                for n in ("primary", "r1", "r2")}

    async def reads(n: int) -> dict[str, float]:
        before = served()
        for _ in range(n):
            key = next(ids)
            await db.read_row(key, SELECT_ITEM, key)
        return {k: v - before[k] for k, v in served().items()}

    async def run():
        await db.start()
        try:
            await until(lambda: db.healthy_replicas() == ["r1", "r2"], 15)
            return await scenario(db, reads)
        finally:
            await db.close()

    db = Database(settings, metrics, Breakers(metrics).register("database"))
    return asyncio.run(run())


async def until(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


def test_lab_routes_no_reads_to_a_replica_whose_receiver_is_cut(cluster, app_db):
    async def scenario(db, reads):
        healthy = await reads(20)
        with cut_receiver(cluster, "r2"):
            await asyncio.to_thread(write, cluster, 100)
            await until(lambda: db.healthy_replicas() == ["r1"], 10)
            reason = db.routing_table()["replicas"]["r2"]["reason"]
            cut = await reads(20)
        await until(lambda: db.healthy_replicas() == ["r1", "r2"], 15)
        return healthy, reason, cut, await reads(20)

    healthy, reason, cut, restored = route_reads(app_db, scenario)
    assert healthy["r1"] >= 5 and healthy["r2"] >= 5, healthy
    assert reason == "WAL receiver not streaming (stopped)"
    assert cut == {"primary": 0, "r1": 20, "r2": 0}
    assert restored["r2"] >= 5, restored


def test_lab_routes_no_reads_to_a_replica_far_behind_the_primary_while_its_receiver_says_streaming(cluster, app_db):
    async def scenario(db, reads):
        with frozen_walsender(cluster, "r2"):
            await asyncio.to_thread(write, cluster, 20_000)        # ~2.6 MB r2 never receives
            await until(lambda: db.healthy_replicas() == ["r1"], 10)
            health = db.routing_table()["replicas"]["r2"]
            behind = await reads(20)
        return health, behind

    health, behind = route_reads(app_db, scenario, max_lag_bytes=MiB)
    assert health["lag_bytes"] > 2 * MiB and "behind the primary" in health["reason"]
    assert behind == {"primary": 0, "r1": 20, "r2": 0}


def test_a_read_replica_not_connected_to_its_primary_by_the_supabase_metrics_is_degraded():
    from dashboard.config_types import Thresholds
    from dashboard.model import Kind, Reading

    def judged(connected: bool):
        figures = {"role": "replica", "writable": False, "lag_seconds": 0.0, "replay_paused": False,
                   "connected_to_primary": connected}
        return replica_kind.assess(replica_kind.derive(Reading(Kind.REPLICA, "rr", figures), None, None),
                                   Thresholds())

    assert judged(True) == (State.OK, None)
    assert judged(False) == (State.DEGRADED, "WAL receiver not streaming (not connected)")
