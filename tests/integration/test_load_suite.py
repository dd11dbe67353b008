"""The shipped `load` suite can pass and can fail: a short run against a healthy lab passes
with RPS and percentiles for every request kind, and a lab whose edge function is broken
on purpose (errors, then latency, through the admin API, set back afterwards) fails,
naming the threshold that broke.

The suite runs as the runner runs it (Locust headless in its own process group, the
result judged from its exit code, CSV stats and output), with fewer users and a shorter
run time than it ships with. One lab serves the module.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import shutil
import socketserver
import subprocess
import sys
import threading

import pytest

from conftest import CANARY, ROOT
from dashboard.lab.stack import Lab
from lab_drive import edge_fault, module_lab
from dashboard.suites.catalog import read_shipped
from dashboard.suites.results import SuiteResult, Verdict
from dashboard.suites.runner import run_suite

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "load"
KINDS = ("read", "write", "edge", "subscribe")
lab = module_lab("load-lab")


@pytest.fixture(autouse=True)
def _suite_imports_this_tree(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def _short_run(lab: Lab) -> SuiteResult:
    spec = dataclasses.replace(read_shipped(SUITE_DIR), users=5, spawn_rate=5, run_time_s=12)
    result = asyncio.run(run_suite(spec, config_path=str(lab.config_path)))
    assert CANARY not in "\n".join(result.tail)
    return result


def _print_figures(title: str, result: SuiteResult) -> None:
    print(f"\n{title}: {result.verdict} ({result.reason or 'all thresholds met'})")
    for row in (*result.requests, result.requests_total):
        print(f"  {row.method:5} {row.name:22} {row.requests:5} req {row.rps:6.1f} req/s "
              f"{row.failure_rate:6.1%} failed  p50 {row.p50_ms} p95 {row.p95_ms} p99 {row.p99_ms} ms")


def test_load_suite_passes_against_a_healthy_lab_with_figures_per_request_kind(lab):
    result = _short_run(lab)
    _print_figures("healthy lab, 5 users, 12 s", result)
    assert result.verdict is Verdict.PASSED, (result.reason, result.tail[-30:])
    kinds = {row.name.split(" ", 1)[0] for row in result.requests}
    assert kinds == set(KINDS), kinds
    for row in result.requests:
        assert row.requests > 0 and row.p50_ms is not None and row.p95_ms is not None and row.p99_ms is not None
    assert result.requests_total.rps > 0 and result.requests_total.failures == 0
    assert any(line.startswith("load figures: subscribe:") and "frames" in line for line in result.tail)
    if shutil.which("k6") is None:
        assert [(s.name, "not on PATH" in s.reason) for s in result.skips] == [("k6", True)]


@pytest.mark.parametrize("fault,threshold", [
    ({"error_rate": 0.5}, "edge.error_rate"),
    ({"latency_ms": 1500}, "edge.p95_ms"),
], ids=["edge-errors", "edge-latency"])
def test_load_suite_fails_naming_the_threshold_the_broken_lab_missed(lab, fault, threshold):
    edge_fault(lab, "hello", **fault)
    try:
        result = _short_run(lab)
    finally:
        edge_fault(lab, "hello", error_rate=0.0, latency_ms=0)
    _print_figures(f"edge hello with {fault}", result)
    assert result.verdict is Verdict.FAILED and result.exit_code == 1, (result.reason, result.tail[-30:])
    assert [f.name for f in result.failures] == [threshold], result.failures
    assert threshold in result.reason
    # Only the edge broke: the other kinds still met theirs, and their figures are there.
    assert {row.name.split(" ", 1)[0] for row in result.requests} == set(KINDS)


class _SilentCloser:
    """A WebSocket server that accepts subscriptions and never answers a close frame,
    as a peer behind a proxy that drops it does. Loopback, stopped by the test."""

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler(), bind_and_activate=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _handler():
        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                headers = {}
                while (line := self.rfile.readline().decode("latin-1").strip()):
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                accept = base64.b64encode(hashlib.sha1(
                    (headers.get("sec-websocket-key", "") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                while self.rfile.read(1024):     # frames, the close frame too, are read and ignored
                    pass
        return Handler

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_run_ends_when_stopped_while_a_subscriber_hangs_up(write_config, tmp_path):
    """Locust stops users by killing their greenlets; a subscriber caught hanging up on a peer
    that never answers the close frame must still stop, or the run never ends (TIMEOUT).
    The run time is chosen so the stop lands while the first subscription is hanging up."""
    with _SilentCloser() as url:
        config = write_config(f'[service]\nurl = "{url}"\n')
        argv = [sys.executable, "-m", "locust", "-f", str(SUITE_DIR / "locustfile.py"), "--headless", "-u", "1",
                "-r", "1", "-t", "7s", "--csv", str(tmp_path / "locust"), "SubscribeUser"]
        env = {**os.environ, "SCALEDASH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("Locust never ended: a stopped subscriber ran on")
    # It ended, and judged: no frame came, and the other kinds made no request.
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "load check failed: subscribe.min_frames" in proc.stdout
