"""Tests for dashboard.lab.servers: real local servers, started and stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dashboard.lab.servers import (
    PostgresCluster,
    PrometheusServer,
    RedisServer,
    ServerError,
    find_pg_bin,
    free_port,
    redis_command,
    require_binary,
    start_postgres_exporter,
    start_redis_exporter,
    with_password,
)

PASSWORD = "s3cret-'quoted\"-pw"


def _port_free(port: int) -> bool:
    """Nobody listens, and a server could bind it again (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose cmdline mentions text (to catch leaked servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text in _cmdline(int(entry.name)) and _pid_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture
def cluster(tmp_path):
    c = PostgresCluster(tmp_path / "pg", replicas=2, replica_names=["alpha", "beta"], password=PASSWORD)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis", password=PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(60)
def test_cluster_replicas_stream_and_replicate(cluster):
    rows = cluster.psql(cluster.primary, "select application_name, state from pg_stat_replication order by 1")
    assert rows.split() == ["alpha|streaming", "beta|streaming"]
    assert cluster.psql(cluster.replicas[0], "select pg_is_in_recovery()").strip() == "t"

    cluster.psql(cluster.primary, "create table t(v text); insert into t values ('hello');")
    deadline = time.monotonic() + 5
    seen = ""
    while time.monotonic() < deadline and seen != "hello":
        try:
            seen = cluster.psql(cluster.replicas[1], "select v from t").strip()
        except ServerError:  # table not replayed yet
            time.sleep(0.05)
    assert seen == "hello"


@pytest.mark.timeout(60)
def test_monitor_role_needs_password_over_tcp(cluster):
    psql = find_pg_bin("psql")
    dsn = cluster.dsn(cluster.primary)
    assert dsn == f"postgresql://monitor@127.0.0.1:{cluster.primary.port}/postgres"
    sql = "select pg_has_role('pg_monitor', 'member')"

    def run(env_extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(env_extra, PGCONNECT_TIMEOUT="5")
        return subprocess.run([psql, "-X", "-A", "-t", "-w", dsn, "-c", sql],
                              capture_output=True, text=True, env=env, timeout=20)

    assert run({}).returncode != 0
    assert run({"PGPASSWORD": "wrong"}).returncode != 0
    ok = run({"PGPASSWORD": PASSWORD})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "t"


@pytest.mark.timeout(60)
def test_psql_error_is_server_error(cluster):
    with pytest.raises(ServerError) as info:
        cluster.psql(cluster.primary, "select * from no_such_table")
    assert "no_such_table" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.timeout(60)
def test_cluster_stop_leaves_nothing(tmp_path):
    c = PostgresCluster(tmp_path, replicas=2)
    started = time.monotonic()
    with c:
        took = time.monotonic() - started
        nodes = list(c.nodes)
        assert len(nodes) == 3
        # every backend of the primary, not just the postmaster, must go away too
        backends = c.psql(c.primary, "select pid from pg_stat_activity where pid is not null").split()
    assert took < 20
    for node in nodes:
        assert not node.alive()
        assert not _pid_alive(node.pid)
        assert _port_free(node.port)
    for pid in backends:
        assert not _pid_alive(int(pid))
    c.stop()  # idempotent


@pytest.mark.timeout(60)
def test_redis_requires_password_not_in_argv(redis):
    assert redis.url() == f"redis://127.0.0.1:{redis.port}/0"
    assert redis_command(redis.port, "PING").startswith("-NOAUTH")
    assert redis_command(redis.port, "PING", password="wrong").startswith("-")
    assert redis_command(redis.port, "PING", password=PASSWORD) == "+PONG"
    assert PASSWORD not in _cmdline(redis.process.pid)
    conf = redis.base_dir / "redis.conf"
    assert conf.stat().st_mode & 0o777 == 0o600


@pytest.mark.timeout(60)
def test_pause_hangs_and_resume_recovers(redis):
    redis.process.pause()
    try:
        with pytest.raises(OSError):  # socket.timeout is an OSError
            redis_command(redis.port, "PING", password=PASSWORD, timeout=0.5)
    finally:
        redis.process.resume()
    assert redis_command(redis.port, "PING", password=PASSWORD, timeout=5) == "+PONG"


@pytest.mark.timeout(60)
def test_stop_works_on_paused_process(redis):
    redis.process.pause()
    redis.stop(timeout=5)
    assert not _pid_alive(redis.process.pid)
    redis.stop()  # idempotent on a gone process


@pytest.mark.timeout(60)
def test_prometheus_scrapes_redis_exporter(tmp_path, redis):
    exporter = start_redis_exporter(tmp_path / "exp", redis.url(), PASSWORD)
    prom = None
    try:
        assert PASSWORD not in _cmdline(exporter.pid)
        prom = PrometheusServer(tmp_path / "prom", {"redis": [f"127.0.0.1:{exporter.port}"]}).start()
        deadline = time.monotonic() + 30
        up = redis_up = None
        while time.monotonic() < deadline and (up, redis_up) != ("1", "1"):
            time.sleep(0.3)
            result = prom.query('up{job="redis"}')
            up = result[0]["value"][1] if result else None
            result = prom.query('redis_up{job="redis"}')
            redis_up = result[0]["value"][1] if result else None
        assert up == "1"
        assert redis_up == "1"  # the exporter really authenticated to Redis
    finally:
        if prom is not None:
            prom.stop()
        exporter.stop()
    assert not exporter.alive() and not prom.process.alive()
    assert _port_free(exporter.port) and _port_free(prom.port)


@pytest.mark.timeout(60)
def test_postgres_exporter_connects_as_monitor(cluster, tmp_path):
    dsn = with_password(cluster.dsn(cluster.primary), PASSWORD)
    exporter = start_postgres_exporter(tmp_path / "pgexp", dsn)
    try:
        assert PASSWORD not in _cmdline(exporter.pid)
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline and "\npg_up 1" not in body:
            with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as s:
                s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                body = b"".join(iter(lambda: s.recv(65536), b"")).decode(errors="replace")
        assert "\npg_up 1" in body
    finally:
        exporter.stop()


@pytest.mark.timeout(60)
def test_port_taken_raises_one_line_error(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = RedisServer(tmp_path, port=port)
        with pytest.raises(ServerError) as info:
            server.start()
    message = str(info.value)
    assert "\n" not in message
    assert str(port) in message
    assert "in use" in message.lower()
    assert not server.process.alive()


@pytest.mark.timeout(60)
def test_postgres_port_taken_stops_everything(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        c = PostgresCluster(tmp_path, replicas=1, port=port)
        with pytest.raises(ServerError) as info:
            c.start()
    assert "\n" not in str(info.value)
    assert "postgres primary" in str(info.value)
    assert all(not node.alive() for node in c.nodes)
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.timeout(60)
def test_missing_binary_names_debian_package():
    with pytest.raises(ServerError) as info:
        require_binary("no-such-binary-xyz", package="some-package")
    assert "some-package" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.timeout(60)
def test_free_port_is_bindable():
    port = free_port()
    assert port not in (5432, 6379, 9090, 9121, 9187)
    assert _port_free(port)
