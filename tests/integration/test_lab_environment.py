"""Case 35: every process the lab starts gets an allow-listed environment, never ours.

An on-call shell holds cloud credentials and tokens; a lab server (or a library it
loads) must not see them. Each test puts a cloud secret and a canary-valued variable
in this process's environment, starts lab processes the way `scaledash lab up` does,
and reads what each one really got from /proc/<pid>/environ. The other side: what a
process needs (PATH, the C locale, an exporter's DSN) is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import CANARY
from dashboard.lab.servers import PrometheusServer, RedisServer, find_binary, spawn, start_redis_exporter

CLOUD_SECRET = "aws-secret-for-the-lab-env-test"


@pytest.fixture
def credentials_in_our_environment(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CLOUD_SECRET)
    monkeypatch.setenv("SCALEDASH_TEST_CANARY_VARIABLE", CANARY)
    monkeypatch.setenv("PGHOST", "db.example.com")        # would redirect a client the lab starts
    monkeypatch.setenv("TZ", "UTC")


def environ(pid: int) -> dict[str, str]:
    """What the process got (its values are not shown on failure: they may be real credentials)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    leaked = CANARY.encode() in raw or CLOUD_SECRET.encode() in raw
    assert not leaked, "a secret of ours reached a lab process"
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def assert_allow_listed(env: dict[str, str]) -> None:
    names = set(env)
    assert not names & {"AWS_SECRET_ACCESS_KEY", "SCALEDASH_TEST_CANARY_VARIABLE", "PGHOST"}, sorted(names)
    assert {"PATH", "LANG", "LC_ALL", "TZ"} <= names, sorted(names)
    assert (env["LANG"], env["LC_ALL"], env["TZ"]) == ("C", "C", "UTC")


def test_case_35_a_spawned_lab_process_gets_only_the_allow_listed_environment(credentials_in_our_environment,
                                                                                tmp_path):
    # The lab's own Python processes (service, traffic) are started this way (stack.py).
    proc = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], 0, tmp_path / "sleeper.log",
                 env={"PYTHONUNBUFFERED": "1"})
    try:
        env = environ(proc.pid)
        assert_allow_listed(env)
        assert env["PYTHONUNBUFFERED"] == "1"          # what the caller gives it on purpose
    finally:
        proc.stop(timeout=5)


# redis-server and postgres write their process titles over their environment block
# (/proc/<pid>/environ reads blank), so the Go servers the lab starts are read instead:
# they go through the same spawn.
@pytest.mark.skipif(find_binary("prometheus-redis-exporter") is None, reason="prometheus-redis-exporter not installed")
def test_case_35_an_exporter_gets_its_own_secret_and_none_of_ours(credentials_in_our_environment, tmp_path):
    with RedisServer(tmp_path / "redis", password="exporter-password") as redis:
        exporter = start_redis_exporter(tmp_path / "exporter", redis.url(), "exporter-password")
        try:
            env = environ(exporter.pid)
            assert_allow_listed(env)
            assert env["REDIS_PASSWORD"] == "exporter-password"     # its own secret, given on purpose
        finally:
            exporter.stop(timeout=5)


@pytest.mark.skipif(find_binary("prometheus") is None, reason="prometheus not installed")
def test_case_35_prometheus_gets_only_the_allow_listed_environment(credentials_in_our_environment, tmp_path):
    with PrometheusServer(tmp_path / "prometheus", {}) as prometheus:
        assert_allow_listed(environ(prometheus.process.pid))
