"""Shared fixtures: real servers on loopback ports, a canary secret, and CLI helpers.

Every server a fixture starts is stopped by its PID at the end. The canary secret is
the password of every server and token used here; a hook fails any test whose
captured output or failure report contains it (RELIABILITY.md case 32).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from dashboard.lab.servers import PostgresCluster, PrometheusServer, RedisServer

# tests/bench/ holds benchmarks run on demand (`make bench`), not tests.
collect_ignore = ["bench"]

CANARY = "canary-Zq9x7-s3cr3t"
ROOT = Path(__file__).resolve().parent.parent

os.environ["SCALEDASH_TEST_PG_PASSWORD"] = CANARY
os.environ["SCALEDASH_TEST_REDIS_PASSWORD"] = CANARY
os.environ["SCALEDASH_TEST_TOKEN"] = f"Bearer {CANARY}"
os.environ.setdefault("XDG_STATE_HOME", str(Path("/tmp") / f"scaledash-test-state-{os.getpid()}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail a test whose output, logs or failure text shows the canary secret."""
    outcome = yield
    report = outcome.get_result()
    texts = [content for _, content in report.sections]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    if any(CANARY in text for text in texts) and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"the canary secret appeared in the output of {item.nodeid}"


# Fixtures that start or reach a real server: a test using one is an integration test.
SERVER_FIXTURES = {"pg", "redis_server", "http_server", "http", "blackhole", "disposable_lab", "prometheus_factory"}


def pytest_collection_modifyitems(config, items):
    """Mark tests/integration/ (and, as a safety net, any test using a server fixture)
    `integration`, so `make test-fast` (-m "not integration and not slow") runs the rest."""
    for item in items:
        in_dir = "integration" in Path(str(item.fspath)).parts
        if in_dir or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------ CLI helpers

@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> Run:
    """Run the real `scaledash` entry point in a subprocess, as a user would."""
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)
    result = Run(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in result.text, result.text
    assert CANARY not in result.text, "canary secret leaked into CLI output"
    assert "\x1b" not in result.out or "--color" in args, "raw escape bytes in non-tty output"
    return result


@pytest.fixture
def isolated_secrets():
    """Secrets registered by the test are forgotten afterwards, earlier ones kept."""
    from dashboard import redact

    saved = set(redact._known)
    yield
    with redact._known_lock:
        redact._known.clear()
        redact._known.update(saved)


@pytest.fixture
def write_config(tmp_path) -> Callable[[str], Path]:
    def write(text: str, name: str = "scaledash.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


# ------------------------------------------------------------------ real servers

@pytest.fixture(scope="session")
def pg(tmp_path_factory):
    """A primary with two streaming replicas; replica-2 is the one tests may pause."""
    cluster = PostgresCluster(tmp_path_factory.mktemp("pg"), replica_names=["replica-1", "replica-2"],
                              password=CANARY)
    cluster.start()
    cluster.psql(cluster.primary, "CREATE TABLE IF NOT EXISTS ticks (id serial, at timestamptz default now())")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), password=CANARY).start()
    yield server
    server.stop()


Handler = Callable[[dict], tuple[int, dict, bytes]]


@dataclass
class HttpServer:
    """A real aiohttp server in a thread; tests set `routes[path]` to change answers.

    A handler returns (status, headers, body); a body that is an async iterator of
    bytes is streamed chunk by chunk (an endless stream never ends on its own)."""

    port: int = 0
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: bytes | str = b"", status: int = 200, headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = lambda request: (status, headers or {}, data)


def _start_http_server() -> tuple[HttpServer, Callable[[], None]]:
    from aiohttp import web

    server = HttpServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        server.hits[request.path] = server.hits.get(request.path, 0) + 1
        handler = server.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        info = {"method": request.method, "headers": dict(request.headers), "query": dict(request.query),
                "path": request.path, "body": await request.read()}
        result = handler(info)
        if asyncio.iscoroutine(result):
            result = await result
        status, headers, body = result
        if isinstance(body, (bytes, bytearray)):
            return web.Response(status=status, headers=headers, body=body)
        return await _stream(request, status, headers, body)

    async def _stream(request, status: int, headers: dict, chunks) -> web.StreamResponse:
        """A body given as an async iterator of chunks (an endless stream): sent as it comes,
        until the client hangs up."""
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = site._server.sockets[0].getsockname()[1]
        state["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(main()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return server, stop


@pytest.fixture(scope="session")
def http_server():
    server, stop = _start_http_server()
    yield server
    stop()


@pytest.fixture
def http(http_server):
    """The session HTTP server with this test's routes cleared afterwards."""
    yield http_server
    http_server.routes.clear()


class Blackhole:
    """A TCP listener that accepts connections and never answers (RELIABILITY.md case 8)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
            except OSError:
                continue

    def open_connections(self) -> int:
        """ESTABLISHED connections to the hole, from the kernel's table (a peek cannot
        tell a closed connection with unread data from an open one)."""
        count = 0
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == self.port and fields[3] == "01":
                count += 1
        return count

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def disposable_lab(tmp_path):
    """A lab of its own for a test that breaks things; taken down afterwards."""
    from dashboard.lab.stack import Lab

    lab = Lab(tmp_path / "lab")
    lab.up(log=lambda line: None)
    yield lab
    lab.down()


@pytest.fixture
def prometheus_factory(tmp_path):
    """Start a real Prometheus scraping the given jobs; stopped at the end of the test."""
    started: list[PrometheusServer] = []

    def start(targets: dict[str, list[str]]) -> PrometheusServer:
        server = PrometheusServer(tmp_path / f"prom{len(started)}", targets, scrape_interval="1s").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.1):
    """Poll until `predicate()` is truthy; return its value or fail with the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# ------------------------------------------------------------------ async tests

@pytest.fixture
def anyio_backend():
    return "asyncio"

