"""The lab as a user meets it: `scaledash lab up|status|down` and `check` on it.

One lab serves the read-only tests (session fixture `lab`); tests that break things
start their own (`disposable_lab`).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from conftest import run_cli, wait_for
from dashboard.lab.stack import Lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    the_lab = Lab(tmp_path_factory.mktemp("lab"))
    started = time.monotonic()
    the_lab.up(log=lambda line: None)
    the_lab.up_seconds = time.monotonic() - started
    yield the_lab
    the_lab.down()


def _check(lab: Lab, window: str = "2s") -> dict:
    result = run_cli("check", "--json", "--config", str(lab.config_path), "--window", window)
    assert result.code in (0, 1, 2), result.text
    return json.loads(result.out)


def _kpis(report: dict) -> dict:
    return {k["name"]: k for k in report["kpis"]}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_lab_shows_the_whole_stack_with_its_targets_met(lab):
    print(f"lab up took {lab.up_seconds:.1f}s")
    needed = ("primary_read_offload", "cache_hit_rate", "websocket_frame_reduction", "error_rate",
              "cache_latency_improvement")

    last: list[dict] = []

    def settled():
        report = _check(lab)
        last[:] = [report]
        return report if all(_kpis(report)[name]["met"] for name in needed) else None

    try:
        report = wait_for(settled, timeout=45, interval=1)
    except AssertionError:
        shown = {k["name"]: (k["value"], k["detail"]) for k in last[0]["kpis"]} if last else "no report"
        raise AssertionError(f"lab KPIs not in target within 45 s: {shown}") from None
    rows = report["components"]
    replicas = {c["name"]: c for c in rows if c["kind"] == "replica" and c["source"] == "postgres"}
    assert {n: (c["state"], c["metrics"]["role"]) for n, c in replicas.items()} == {
        "primary": ("OK", "primary"), "replica-1": ("OK", "replica"), "replica-2": ("OK", "replica")}
    assert len({c["name"] for c in rows if c["kind"] == "breaker"}) >= 2
    layers = {c["metrics"].get("layer") for c in rows if c["kind"] == "cache" and c["name"] == "items"}
    assert {"memory", "redis"} <= layers
    assert any(c["kind"] == "batcher" for c in rows)
    assert {"hello", "resize"} <= {c["name"] for c in rows if c["kind"] == "edge"}
    kpis = _kpis(report)
    assert kpis["primary_read_offload"]["value"] >= 0.8
    assert kpis["cache_hit_rate"]["value"] > 0.8
    assert kpis["websocket_frame_reduction"]["value"] >= 0.8
    assert kpis["error_rate"]["value"] < 0.01
    assert kpis["failover_seconds"]["value"] is None and kpis["failover_seconds"]["detail"] == "not measured yet"


def test_lab_up_on_a_running_lab_changes_nothing(lab):
    before = [(e.name, e.pid) for e in lab.entries()]
    result = run_cli("lab", "up", "--dir", str(lab.dir))
    assert result.code == 0 and "already running" in result.out
    assert [(e.name, e.pid) for e in lab.entries()] == before


def test_lab_status_lists_every_process_alive(lab):
    result = run_cli("lab", "status", "--dir", str(lab.dir))
    assert result.code == 0, result.text
    for name in ("postgres-primary", "postgres-replica-1", "postgres-replica-2", "redis-server", "service",
                 "upstream", "traffic"):
        assert name in result.out
    assert "DEAD" not in result.out


def test_lab_secrets_stay_in_0600_files_and_out_of_argv(lab):
    for path in (lab.dir / "secrets").iterdir():
        assert path.stat().st_mode & 0o077 == 0
        secret = path.read_text()
        for entry in lab.entries():
            cmdline = open(f"/proc/{entry.pid}/cmdline", "rb").read().decode(errors="replace")
            assert secret not in cmdline, entry.name
        assert secret not in lab.config_path.read_text()


@pytest.mark.slow
def test_lab_down_stops_everything_even_after_a_crash(disposable_lab):
    entries = disposable_lab.entries()
    crashed = next(e for e in entries if e.name == "upstream")
    crashed.process().kill()
    status = run_cli("lab", "status", "--dir", str(disposable_lab.dir))
    assert status.code == 1 and "DEAD" in status.out
    result = run_cli("lab", "down", "--dir", str(disposable_lab.dir))
    assert result.code == 0
    for entry in entries:
        assert not entry.alive(), entry.name
        assert _port_free(entry.port), f"{entry.name} still holds port {entry.port}"
    assert not disposable_lab.state_path.exists()
    assert run_cli("lab", "status", "--dir", str(disposable_lab.dir)).code == 3


@pytest.mark.slow
def test_without_prometheus_the_lab_still_works_on_direct_scrapes(tmp_path, monkeypatch):
    from dashboard.lab import servers

    real = servers.find_binary
    monkeypatch.setattr(servers, "find_binary",
                        lambda name: None if name.startswith("prometheus") else real(name))
    the_lab = Lab(tmp_path / "lab")
    lines: list[str] = []
    try:
        the_lab.up(log=lines.append)
        assert any("prometheus: not installed" in line for line in lines)
        config = the_lab.config_path.read_text()
        assert "prometheus =" not in config and "scrape =" in config
        assert not any(e.name == "prometheus" for e in the_lab.entries())
        report = _check(the_lab, window="1s")
        assert any(c["kind"] == "batcher" for c in report["components"])
        assert all(c["source"] != "prometheus" for c in report["components"])
    finally:
        the_lab.down()
