"""The lab's sample service, upstream and traffic generator, run as real processes.

One stack per module: the session PostgreSQL cluster (an `app` role and database
added), a Redis of our own (so a test can stop it), the flaky upstream and the
service, each a subprocess started with `sys.executable -m ...` and stopped by its
PID.  Every response body and every log line is checked for the canary secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.lab.servers import RedisServer, free_port, redis_command
from tests.conftest import CANARY, ROOT, wait_for

AUTH = {"Authorization": f"Bearer {CANARY}"}
pytestmark = pytest.mark.timeout(90)


# ------------------------------------------------------------------ helpers

def write_private(path: Path, data: dict) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return path


@dataclass
class Child:
    """A lab process started by this module; stopped by PID with SIGTERM."""

    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
                raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s")
        return self.popen.returncode


def spawn(name: str, module: str, settings: Path, tmp: Path) -> Child:
    log = tmp / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen([sys.executable, "-m", module, str(settings)], stdout=out, stderr=out,
                                 stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    return Child(name, popen, log)


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


@dataclass
class Stack:
    url: str
    upstream_url: str
    tmp: Path
    redis: RedisServer
    children: dict[str, Child]
    seen: list[bytes] = field(default_factory=list)

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None,
             timeout: float = 5.0) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                answer = Answer(resp.status, dict(resp.headers), resp.read(), 0.0)
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, dict(exc.headers), exc.read(), 0.0)
        answer.seconds = time.perf_counter() - started
        self.seen.append(answer.body + json.dumps(answer.headers).encode())
        return answer

    def metrics(self, url: str | None = None) -> dict[tuple, float]:
        with urllib.request.urlopen((url or self.url) + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        self.seen.append(text.encode())
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def admin_state(self) -> dict:
        return self.call("GET", "/admin/state", headers=AUTH).json()


def value(metrics: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, lab), v in metrics.items()
               if n == name and all(dict(lab).get(k) == want for k, want in labels.items()))


def create_app_database(pg) -> None:
    # Sent on stdin by psql(); idempotent because other modules may share the session cluster.
    pg.psql(pg.primary, f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN
    CREATE ROLE app LOGIN PASSWORD '{CANARY}';
  END IF;
END $$;
""")
    if not pg.psql(pg.primary, "SELECT 1 FROM pg_database WHERE datname = 'app'").strip():
        pg.psql(pg.primary, "CREATE DATABASE app OWNER app")


def replica_node(pg, name: str):
    return next(r for r in pg.replicas if r.name.removeprefix("postgres-") == name)


@pytest.fixture(scope="module")
def stack(pg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab-service")
    create_app_database(pg)
    redis = RedisServer(tmp / "redis", password=CANARY).start()
    children: dict[str, Child] = {}
    lab: Stack | None = None
    try:
        up_port, port = free_port(), free_port()
        write_private(tmp / "upstream.json", {"port": up_port, "admin_token": CANARY, "failure_rate": 0.0,
                                              "latency_ms": 0})
        write_private(tmp / "service.json", {
            "port": port, "primary_dsn": pg.dsn(pg.primary, "app", "app"),
            "replicas": {name: pg.dsn(replica_node(pg, name), "app", "app") for name in pg.replica_names},
            "pg_password": CANARY, "redis_url": redis.url(), "redis_password": CANARY,
            "upstream_url": f"http://127.0.0.1:{up_port}", "admin_token": CANARY})
        children["upstream"] = spawn("upstream", "dashboard.lab.upstream", tmp / "upstream.json", tmp)
        children["service"] = spawn("service", "dashboard.lab.service", tmp / "service.json", tmp)
        lab = Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{up_port}", tmp, redis, children)

        def up() -> bool:
            for child in children.values():
                assert child.popen.poll() is None, f"{child.name} exited: {child.log.read_text()[-500:]}"
            try:
                return lab.call("GET", "/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, timeout=40)
        wait_for(lambda: len(lab.admin_state()["healthy_replicas"]) == 2, timeout=10)
        yield lab
    finally:
        codes = {name: child.stop() for name, child in children.items()}
        (lab.redis if lab else redis).stop()
    assert set(codes.values()) == {0}, f"unclean exit after SIGTERM: {codes}"
    # The whole of every log, shutdown lines included.
    assert not [c.name for c in children.values() if CANARY in c.log.read_text()], "a log holds the secret"


# ------------------------------------------------------------------ routing

# Ids above the traffic generator's catalogue (10000) are never cached or written by it, so
# these tests do not depend on their order.

def test_reads_reach_both_replicas_round_robin(stack):
    before = stack.metrics()
    # Absent items (404) are not cached: every read goes to the database.
    nodes = [stack.call("GET", f"/items/{i}").headers.get("X-Db-Node") for i in range(20001, 20021)]
    after = stack.metrics()

    assert set(nodes) == {"replica-1", "replica-2"}
    served = {node: value(after, "db_queries_total", node=node, kind="read")
              - value(before, "db_queries_total", node=node, kind="read") for node in ("replica-1", "replica-2")}
    assert sum(served.values()) == 20 and min(served.values()) >= 5, served
    assert value(after, "db_queries_total", node="primary", kind="read") \
        == value(before, "db_queries_total", node="primary", kind="read")


def test_paused_replica_gets_no_reads_until_it_resumes(stack, pg):
    replica2 = replica_node(pg, "replica-2")
    pg.psql(replica2, "SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: stack.admin_state()["healthy_replicas"] == ["replica-1"], timeout=5)
        assert stack.admin_state()["routing"]["replicas"]["replica-2"]["reason"] == "replay paused"
        nodes = {stack.call("GET", f"/items/{i}").headers.get("X-Db-Node") for i in range(20101, 20107)}
        assert nodes == {"replica-1"}
    finally:
        pg.psql(replica2, "SELECT pg_wal_replay_resume()")
    wait_for(lambda: len(stack.admin_state()["healthy_replicas"]) == 2, timeout=5)


# ------------------------------------------------------------------ cache

def redis_keys_for(stack, item_id: int) -> int:
    reply = redis_command(stack.redis.port, "KEYS", f"items:*:{item_id}", password=CANARY)
    assert reply.startswith("*"), reply
    return int(reply[1:])


def redis_breaker_closed(stack) -> bool:
    stack.call("GET", "/items/20301")     # a call lets an open breaker try half-open
    return stack.admin_state()["breakers"]["redis"]["state"] == "closed"


def test_write_invalidates_every_cache_layer_before_it_returns(stack):
    wait_for(lambda: redis_breaker_closed(stack), timeout=10)
    assert stack.call("PUT", "/items/40042", {"price": 10, "name": "created"}).status == 200
    first = stack.call("GET", "/items/40042")
    second = stack.call("GET", "/items/40042")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT-memory")
    assert redis_keys_for(stack, 40042) == 1
    invalidations = value(stack.metrics(), "cache_invalidations_total", cache="items")

    written = stack.call("PUT", "/items/40042", {"price": 77.25, "name": "renamed"})

    assert written.status == 200 and written.json()["price"] == 77.25
    assert redis_keys_for(stack, 40042) == 0
    assert value(stack.metrics(), "cache_invalidations_total", cache="items") == invalidations + 1
    after = stack.call("GET", "/items/40042")
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["price"] == 77.25 and after.json()["name"] == "renamed"
    assert stack.call("GET", "/items/40042").headers["X-Cache"] == "HIT-memory"


def test_bulk_price_update_invalidates_each_key(stack):
    for item_id in (51, 52):
        stack.call("GET", f"/items/{item_id}")
    answer = stack.call("POST", "/items/prices", {"prices": {"51": 1.5, "52": 2.5}})
    assert answer.json() == {"updated": [51, 52]}
    reads = [stack.call("GET", f"/items/{item_id}") for item_id in (51, 52)]
    assert [r.headers["X-Cache"] for r in reads] == ["MISS", "MISS"]
    assert [r.json()["price"] for r in reads] == [1.5, 2.5]


def test_cache_skips_redis_for_a_key_whose_invalidation_missed_it(stack):
    """A write while Redis hangs must not let the old value come back when Redis does."""
    from dashboard.lab.service.breakers import Breakers
    from dashboard.lab.service.cache import LayeredCache, make_redis
    from dashboard.lab.service.metrics import ServiceMetrics

    async def scenario() -> list[tuple]:
        metrics = ServiceMetrics()
        redis = make_redis(stack.redis.url(), CANARY)
        cache = LayeredCache(metrics, redis, Breakers(metrics).register("redis"))
        db = {"k": b"old"}

        async def load():
            return db["k"]

        seen = [await cache.get("k", load)]
        stack.redis.process.pause()
        try:
            db["k"] = b"new"
            await cache.invalidate("k")      # the DEL times out: Redis still holds b"old"
            started = time.perf_counter()
            seen.append(await cache.get("other", load))
            seen.append(time.perf_counter() - started < 0.06)   # one Redis timeout (35 ms), not two
        finally:
            stack.redis.process.resume()
        cache.memory.delete("k")             # as an LRU eviction would
        seen.append(await cache.get("k", load))
        seen.append(await cache.get("k", load))
        cache.memory.delete("k")
        seen.append(await cache.get("k", load))
        await redis.aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [(b"old", None), (b"new", None), True, (b"new", None), (b"new", "memory"), (b"new", "redis")]


# ------------------------------------------------------------------ breakers

def test_failing_upstream_opens_its_breaker_and_the_stale_quote_answers(stack):
    good = stack.call("GET", "/quote")
    assert good.status == 200 and good.json()["stale"] is False
    set_faults = stack.call("POST", "/admin/faults", {"upstream": {"failure_rate": 1.0}}, headers=AUTH)
    assert set_faults.status == 200 and set_faults.json()["upstream"]["failure_rate"] == 1.0
    before = stack.metrics()
    try:
        answers = [stack.call("GET", "/quote") for _ in range(8)]
        after = stack.metrics()
    finally:
        stack.call("POST", "/admin/faults", {"upstream": {"failure_rate": 0.0}}, headers=AUTH)

    assert all(a.status == 200 and a.json()["stale"] is True for a in answers)
    assert answers[-1].json()["quote"] == good.json()["quote"]
    assert value(after, "circuit_breaker_state", breaker="upstream") == 1
    delta = {o: value(after, "circuit_breaker_calls_total", breaker="upstream", outcome=o)
             - value(before, "circuit_breaker_calls_total", breaker="upstream", outcome=o)
             for o in ("success", "failure", "rejected", "fallback")}
    assert delta == {"success": 0, "failure": 5, "rejected": 3, "fallback": 8}
    assert stack.admin_state()["breakers"]["upstream"]["state"] == "open"
    # Fallbacks that answered 200 are not failed requests.
    assert value(after, "http_requests_total", route="quote", status="503") == 0


# ------------------------------------------------------------------ batcher

async def _collect_frames(url: str, during, seconds: float) -> list[list]:
    frames: list[list] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws") + "/realtime") as ws:
            await asyncio.sleep(0.2)                 # the subscription is registered
            await asyncio.to_thread(during)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
                except asyncio.TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    frames.append(json.loads(msg.data))
    return frames


def test_a_burst_of_changes_arrives_as_few_frames(stack, pg):
    # 100 separate transactions, one notification each, straight into PostgreSQL.
    burst = "\\connect app\n" + "".join(
        f"UPDATE items SET price = price + 1 WHERE id = {i};\n" for i in range(601, 701))
    before = stack.metrics()

    frames = asyncio.run(_collect_frames(stack.url, lambda: pg.psql(pg.primary, burst), seconds=1.5))
    after = stack.metrics()

    events = [event for frame in frames for event in frame]
    assert sorted(e["id"] for e in events) == list(range(601, 701))
    assert {e["op"] for e in events} == {"update"}
    assert len(frames) <= 10, f"{len(frames)} frames for 100 changes"
    messages = value(after, "batcher_messages_total") - value(before, "batcher_messages_total")
    sent = value(after, "batcher_frames_total") - value(before, "batcher_frames_total")
    assert messages == 100 and sent == len(frames)
    assert 1 - sent / messages >= 0.8
    assert value(after, "batcher_flush_seconds_count", batcher="realtime") > 0


# ------------------------------------------------------------------ edge functions and admin

def test_edge_function_faults_are_injected_and_cleared(stack):
    assert stack.call("GET", "/functions/v1/hello?name=ops").json() == {"message": "Hello ops!"}
    assert stack.call("POST", "/functions/v1/hello", {"name": "lab"}).json() == {"message": "Hello lab!"}
    resized = stack.call("GET", "/functions/v1/resize?width=32&height=16")
    assert resized.status == 200 and resized.json()["width"] == 32
    assert stack.call("GET", "/functions/v1/nope").status == 404

    faults = {"edge": {"hello": {"error_rate": 1.0, "latency_ms": 60}}}
    assert stack.call("POST", "/admin/faults", faults, headers=AUTH).status == 200
    try:
        failed = stack.call("GET", "/functions/v1/hello")
    finally:
        stack.call("POST", "/admin/faults", {"edge": {"hello": {"error_rate": 0, "latency_ms": 0}}}, headers=AUTH)
    assert failed.status == 500 and failed.seconds >= 0.06
    assert stack.call("GET", "/functions/v1/hello").status == 200
    metrics = stack.metrics()
    assert value(metrics, "edge_function_invocations_total", function="hello", status="500") >= 1
    assert value(metrics, "edge_function_duration_seconds_count", function="resize") >= 1
    bad = stack.call("POST", "/admin/faults", {"edge": {"hello": {"error_rate": 2}}}, headers=AUTH)
    assert bad.status == 400


def test_admin_endpoints_need_the_bearer_token(stack):
    assert stack.call("GET", "/admin/state").status == 401
    assert stack.call("GET", "/admin/state", headers={"Authorization": "Bearer wrong-token"}).status == 401
    assert stack.call("POST", "/admin/faults", {"edge": {}}).status == 401
    state = stack.admin_state()
    assert state["routing"]["writes"] == "primary"
    assert set(state["breakers"]) == {"database", "redis", "upstream"}
    upstream = urllib.request.Request(stack.upstream_url + "/admin/faults", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(upstream, timeout=5)
    assert denied.value.code == 401


# ------------------------------------------------------------------ Redis down

@pytest.mark.slow
def test_reads_and_writes_go_on_from_the_database_while_redis_is_stopped(stack):
    ids = range(30001, 30021)
    stack.call("POST", "/items/prices", {"prices": {str(i): 5 for i in ids}})   # exist, cached nowhere
    port = stack.redis.port
    stack.redis.stop()
    try:
        reads = [stack.call("GET", f"/items/{i}") for i in ids]
        written = stack.call("PUT", "/items/30001", {"price": 9.5})
        reread = stack.call("GET", "/items/30001")
        metrics = stack.metrics()
    finally:
        stack.redis = RedisServer(stack.redis.base_dir, password=CANARY, port=port).start()

    assert [r.status for r in reads] == [200] * 20
    assert {r.headers["X-Cache"] for r in reads} == {"MISS"}
    assert statistics.median(r.seconds for r in reads) < 0.05
    assert written.status == 200 and reread.json()["price"] == 9.5 and reread.headers["X-Cache"] == "MISS"
    assert value(metrics, "circuit_breaker_calls_total", breaker="redis", outcome="failure") >= 5
    assert value(metrics, "circuit_breaker_state", breaker="redis") == 1
    assert value(metrics, "http_requests_total", route="items", status="503") == 0


# ------------------------------------------------------------------ traffic

@pytest.mark.slow
def test_traffic_generator_keeps_the_service_busy_and_measures_cached_reads(stack):
    metrics_port = free_port()
    settings = stack.tmp / "traffic.json"
    settings.write_text(json.dumps({"service_url": stack.url, "metrics_port": metrics_port, "rate": 40,
                                    "subscribers": 2}))
    traffic = spawn("traffic", "dashboard.lab.traffic", settings, stack.tmp)
    stack.children["traffic"] = traffic
    traffic_url = f"http://127.0.0.1:{metrics_port}"
    before = stack.metrics()
    try:
        wait_for(lambda: _scrape_ok(stack, traffic_url), timeout=15)
        time.sleep(6)
        client = stack.metrics(traffic_url)
        after = stack.metrics()
    finally:
        code = traffic.stop()
    assert code == 0

    ok = value(client, "traffic_requests_total", outcome="ok")
    assert ok >= 150, f"only {ok} requests in ~6 s at 40/s"
    assert value(client, "traffic_requests_total", outcome="error") == 0
    for cached in ("true", "false"):
        assert value(client, "http_request_duration_seconds_count", route="items", cached=cached) > 0
    assert value(client, "http_request_duration_seconds_bucket", route="items", cached="true", le="1.0") > 0
    assert value(after, "batcher_subscribers", batcher="realtime") == 2
    assert value(client, "traffic_ws_frames_total") > 0
    reads = value(after, "db_queries_total", kind="read") - value(before, "db_queries_total", kind="read")
    assert reads > 0
    assert "sending 40 requests/s" in traffic.log.read_text()


def _scrape_ok(stack, url: str) -> bool:
    try:
        return value(stack.metrics(url), "traffic_requests_total") > 0
    except OSError:
        return False


# ------------------------------------------------------------------ secrets

def test_settings_readable_by_others_are_refused_without_echoing_them(tmp_path):
    settings = tmp_path / "service.json"
    settings.write_text(json.dumps({"port": free_port(), "admin_token": CANARY, "pg_password": CANARY}))
    settings.chmod(0o644)
    run = subprocess.run([sys.executable, "-m", "dashboard.lab.service", str(settings)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "readable by others" in run.stderr
    assert CANARY not in run.stdout + run.stderr


def test_the_canary_is_in_no_log_argv_or_response(stack):
    assert stack.seen, "no responses recorded"
    assert not [body for body in stack.seen if CANARY.encode() in body]
    for child in stack.children.values():
        assert CANARY not in child.log.read_text(), f"{child.name} logged the secret"
        if child.popen.poll() is None:
            cmdline = Path(f"/proc/{child.popen.pid}/cmdline").read_bytes()
            assert CANARY.encode() not in cmdline
    assert "listening on" in stack.children["service"].log.read_text()
