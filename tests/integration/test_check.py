"""`scaledash check` end to end, against a real stack that follows DESIGN.md.

Real PostgreSQL (a primary, a streaming replica, a replica with replay paused), a
password-protected Redis under load, real HTTP servers serving resilience4j and
scaledash metrics, an edge function answering 503 and a CDN asset with X-Cache: HIT.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from dashboard.lab.servers import ServerError
from metric_texts import hostile_metrics, resilience4j_metrics, scaledash_metrics
from conftest import CANARY, run_cli, wait_for
from fakes import by_kind_and_name


def _replica_sections(pg) -> str:
    names = [("primary", pg.primary), ("replica-1", pg.replicas[0]), ("replica-2", pg.replicas[1])]
    return "".join(f"""
[[replica]]
name = "{name}"
dsn = "{pg.dsn(node)}"
password = "env:SCALEDASH_TEST_PG_PASSWORD"
""" for name, node in names)


@pytest.fixture
def paused_replica(pg):
    """replica-2 with replay paused after it replayed one transaction, then more WAL behind it."""
    pg.psql(pg.replicas[1], "SELECT pg_wal_replay_resume()")
    pg.psql(pg.primary, "INSERT INTO ticks DEFAULT VALUES")

    def replayed() -> bool:
        try:
            return int(pg.psql(pg.replicas[1], "SELECT count(*) FROM ticks").strip() or 0) > 0
        except ServerError:       # the table itself may not have been replayed yet
            return False

    wait_for(replayed)
    pg.psql(pg.replicas[1], "SELECT pg_wal_replay_pause()")
    pg.psql(pg.primary, "INSERT INTO ticks SELECT FROM generate_series(1, 2000)")
    time.sleep(0.3)
    yield pg.replicas[1]
    pg.psql(pg.replicas[1], "SELECT pg_wal_replay_resume()")


class RedisLoad:
    """Reads against the real Redis: 9 hits to 1 miss while the check runs."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, password=CANARY)
        self.client.set("hot", "1")
        for i in range(2000):          # lifetime hit rate starts low: the window must not see it
            self.client.get(f"cold:{i}")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            pipe = self.client.pipeline(transaction=False)
            for _ in range(9):
                pipe.get("hot")
            pipe.get("missing")
            pipe.execute()
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.client.close()


@pytest.mark.slow
def test_check_json_reports_the_whole_stack(pg, paused_replica, redis_server, http, write_config):
    http.routes["/metrics"] = scaledash_metrics()
    http.routes["/r4j/metrics"] = resilience4j_metrics()
    http.set("/functions/v1/hello", "hi")
    http.set("/functions/v1/broken", "upstream down", status=503)
    http.set("/assets/app.js", "js", headers={"X-Cache": "HIT", "Age": "42"})
    config = write_config(_replica_sections(pg) + f"""
[[replica]]
name = "dead"
dsn = "postgresql://monitor@127.0.0.1:1/postgres"

[[cache]]
name = "sessions"
url = "{redis_server.url()}"
password = "env:SCALEDASH_TEST_REDIS_PASSWORD"

[[source]]
name = "app"
scrape = "{http.url('/metrics')}"

[[source]]
name = "jvm"
scrape = "{http.url('/r4j/metrics')}"
preset = "resilience4j"

[[edge]]
name = "hello"
url = "{http.url('/functions/v1/hello')}"
method = "POST"
headers = {{ Authorization = "env:SCALEDASH_TEST_TOKEN" }}

[[edge]]
name = "broken"
url = "{http.url('/functions/v1/broken')}"

[[cdn]]
name = "assets"
url = "{http.url('/assets/app.js')}"
""")
    with RedisLoad(redis_server.url()):
        result = run_cli("check", "--json", "--config", str(config), "--window", "1s")
    assert result.code == 2, result.text
    report = json.loads(result.out)
    rows = by_kind_and_name(report)
    assert report["overall"] == "DOWN"

    primary = rows[("replica", "primary")]
    assert (primary["state"], primary["metrics"]["role"]) == ("OK", "primary")
    streaming = rows[("replica", "replica-1")]
    assert streaming["state"] == "OK" and streaming["metrics"]["role"] == "replica"
    assert streaming["metrics"]["replay_paused"] is False
    assert streaming["metrics"]["lag_bytes"] < 16 * 1024 * 1024
    paused = rows[("replica", "replica-2")]
    assert paused["state"] == "DEGRADED" and paused["reason"] == "replay paused"
    assert paused["metrics"]["replay_paused"] is True
    assert paused["metrics"]["lag_bytes"] > 0 and paused["metrics"]["lag_seconds"] > 0
    dead = rows[("replica", "dead")]
    assert dead["state"] == "DOWN" and "refused" in dead["reason"]

    cache = rows[("cache", "sessions")]
    assert cache["state"] == "OK", cache
    assert 0.8 < cache["metrics"]["hit_rate"] < 0.97       # the window's 90 %, not the lifetime's
    assert cache["metrics"]["ops_per_s"] > 100

    payments, inventory = rows[("breaker", "payments")], rows[("breaker", "inventory")]
    assert payments["metrics"]["state"] == "open" and payments["state"] == "DEGRADED"
    assert payments["metrics"]["failure_rate"] == pytest.approx(0.25)
    assert payments["metrics"]["rejected_per_s"] == pytest.approx(7, rel=0.2)
    assert inventory["metrics"]["state"] == "closed" and inventory["state"] == "OK"
    upstream = rows[("breaker", "upstream")]
    assert upstream["metrics"]["state"] == "open"
    assert upstream["metrics"]["failure_rate"] == pytest.approx(0.25, rel=0.05)

    batcher = rows[("batcher", "realtime")]
    assert batcher["metrics"]["reduction"] == pytest.approx(0.9, abs=0.02)
    assert batcher["metrics"]["avg_batch_size"] == pytest.approx(10, rel=0.1)
    assert 5 <= batcher["metrics"]["flush_p95_ms"] <= 50

    assert rows[("edge", "hello")]["state"] == "OK"
    broken = rows[("edge", "broken")]
    assert broken["state"] == "DOWN" and broken["metrics"]["status_code"] == 503
    assert rows[("cdn", "assets")]["metrics"]["cache_status"] == "HIT"

    kpis = {k["name"]: k for k in report["kpis"]}
    assert kpis["websocket_frame_reduction"]["value"] == pytest.approx(0.9, abs=0.02)
    assert kpis["primary_read_offload"]["value"] == pytest.approx(0.9, abs=0.02)
    assert kpis["primary_read_offload"]["met"] is True
    assert kpis["cache_hit_rate"]["value"] == pytest.approx(0.95, abs=0.02)
    assert kpis["failover_seconds"] == {**kpis["failover_seconds"], "value": None, "met": None}


def test_every_component_has_every_contract_key(pg, write_config, http):
    http.routes["/metrics"] = scaledash_metrics()
    config = write_config(_replica_sections(pg) + f"""
[[source]]
name = "app"
scrape = "{http.url('/metrics')}"
""")
    report = json.loads(run_cli("check", "--json", "--config", str(config)).out)
    keys = {
        "replica": {"role", "lag_bytes", "lag_seconds", "replay_paused", "latency_ms"},
        "breaker": {"state", "failure_rate", "calls_per_s", "rejected_per_s"},
        "cache": {"hit_rate", "hits_per_s", "misses_per_s", "ops_per_s", "evictions"},
        "batcher": {"messages_in_per_s", "frames_out_per_s", "reduction", "avg_batch_size", "flush_p95_ms"},
    }
    for component in report["components"]:
        assert set(component) >= {"kind", "name", "state", "reason", "source", "age_s", "metrics"}
        assert keys[component["kind"]] <= set(component["metrics"]), component
    assert set(report) >= {"generated_at", "overall", "components", "kpis"}
    assert [k["name"] for k in report["kpis"]] == [
        "primary_read_offload", "cache_latency_improvement", "websocket_frame_reduction", "error_rate",
        "cache_hit_rate", "failover_seconds", "uptime"]


def test_exit_code_is_0_when_everything_is_ok(pg, write_config):
    config = write_config(f"""
[[replica]]
name = "primary"
dsn = "{pg.dsn(pg.primary)}"
password = "env:SCALEDASH_TEST_PG_PASSWORD"
""")
    result = run_cli("check", "--config", str(config))
    assert result.code == 0, result.text
    assert "primary" in result.out and "OK" in result.out


def test_exit_code_is_1_for_a_degraded_replica(pg, paused_replica, write_config):
    config = write_config(_replica_sections(pg))
    result = run_cli("check", "--config", str(config))
    assert result.code == 1, result.text
    assert "DEGRADED" in result.out and "replay paused" in result.out


def test_exit_code_is_3_for_bad_arguments_and_config(write_config):
    assert run_cli("check", "--window", "soon").code == 3
    bad = write_config("interval = 'fast'\n")
    result = run_cli("check", "--config", str(bad))
    assert result.code == 3 and result.err.startswith("config error:")
    assert run_cli("check", "--config", str(write_config("", "empty.toml"))).code == 3


def test_hostile_and_non_finite_figures_are_shown_literally_and_never_ok(http, write_config):
    http.routes["/metrics"] = hostile_metrics
    config = write_config(f"""
[[source]]
name = "hostile"
scrape = "{http.url('/metrics')}"
""")
    result = run_cli("check", "--json", "--config", str(config))
    report = json.loads(result.out)
    names = [c["name"] for c in report["components"]]
    assert all(len(name) <= 120 for name in names)
    raw = result.out
    assert "\x1b" not in raw and "\\u001b" not in raw and "\u202e" not in raw and "\\u202e" not in raw
    assert "\x00" not in raw and "\\u0000" not in raw
    assert any(name.startswith("[/bold]") for name in names)   # literal, not parsed as markup
    batcher = next(c for c in report["components"] if c["name"] == "nan-batcher")
    assert batcher["metrics"]["subscribers"] == "NaN"
    assert batcher["state"] == "DEGRADED" and "non-finite" in batcher["reason"]
    table = run_cli("check", "--config", str(config))
    assert "\x1b" not in table.out and "[/bold]" in table.out
