"""Figures from metric sources that a user can trust (issue 8): sample times, non-finite
values on every kind, warnings on the rows they fed, uptime that counts every failed
probe, and a snapshot that says whether the first round is complete.

Real servers throughout: the test HTTP server serves /metrics text (or a body shaped as
a Prometheus answer where a real Prometheus cannot be made to give it: a clock years
off, a warning), and a real Prometheus scrapes it where one is involved.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

from conftest import run_cli, wait_for
from fakes import rows_of, snapshot_after
from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.model import Kind, Reading, State

# ------------------------------------------------------------------ helpers


def _engine(doc: dict) -> Engine:
    return Engine(validate({"interval": "1s", "timeout": "800ms", **doc}))


def _run(engine: Engine, rounds: int = 2, window: float = 0.3):
    return snapshot_after(engine, rounds, window)


def _scrape(http, path: str, preset: str = "scaledash") -> dict:
    return {"source": [{"name": "app", "scrape": http.url(path), "preset": preset}]}


def _serve(http, path: str, text: str) -> None:
    http.set(path, text, headers={"Content-Type": "text/plain; version=0.0.4"})


def _stamped(offset_s: float) -> str:
    """A /metrics body whose lines carry a timestamp `offset_s` from now (ms)."""
    ms = int((time.time() + offset_s) * 1000)
    return f"""# TYPE circuit_breaker_state gauge
circuit_breaker_state{{breaker="upstream"}} 0 {ms}
# TYPE cache_requests_total counter
cache_requests_total{{cache="catalog",layer="memory",result="hit"}} 80 {ms}
cache_requests_total{{cache="catalog",layer="memory",result="miss"}} 20 {ms}
"""


def _envelope(result: list, warnings: list | None = None) -> bytes:
    body: dict = {"status": "success", "data": {"resultType": "vector", "result": result}}
    if warnings:
        body["warnings"] = warnings
    return json.dumps(body).encode()


def _vector(name: str, labels: dict, value: str, at: float | None = None) -> dict:
    return {"metric": {"__name__": name, **labels}, "value": [time.time() if at is None else at, value]}


def _fake_prometheus(http, body_of) -> None:
    """The test server answering /api/v1/query as Prometheus would, with `body_of()`."""
    http.routes["/api/v1/query"] = lambda request: (200, {"Content-Type": "application/json"}, body_of())


# ------------------------------------------------------------------ 1. sample times


def test_scraped_sample_stamped_an_hour_ago_is_stale_with_its_age(http):
    _serve(http, "/old", _stamped(-3600))
    snap = _run(_engine(_scrape(http, "/old")), rounds=1)
    for row in rows_of(snap, "app").values():
        assert row.state is State.STALE, row
        assert "sample is 36" in row.reason and "s old" in row.reason
        assert row.age_s >= 3599


def test_scraped_sample_stamped_now_is_ok_with_a_small_age(http):
    _serve(http, "/now", _stamped(0))
    snap = _run(_engine(_scrape(http, "/now")), rounds=1)
    rows = rows_of(snap, "app")
    assert rows["upstream"].state is State.OK and rows["catalog/memory"].state is State.OK
    assert all(0 <= row.age_s < 2 for row in rows.values())


def test_scraped_sample_from_the_future_is_flagged_as_clock_skew(http):
    _serve(http, "/future", _stamped(+3600))
    snap = _run(_engine(_scrape(http, "/future")), rounds=1)
    for row in rows_of(snap, "app").values():
        assert row.state is State.DEGRADED, row
        assert "in the future (clock skew?)" in row.reason and "3600s" in row.reason
        assert 0 <= row.age_s < 2                    # never a negative age


def test_scraped_sample_a_little_ahead_of_our_clock_is_not_flagged(http):
    _serve(http, "/skew", _stamped(+1))                # within FUTURE_SKEW_S
    snap = _run(_engine(_scrape(http, "/skew")), rounds=1)
    assert rows_of(snap, "app")["upstream"].state is State.OK


@pytest.mark.parametrize("evaluated, state, words", [
    (-3 * 365 * 86400, State.STALE, "s old"),           # a caching proxy's answer from years ago
    (+3600, State.DEGRADED, "in the future (clock skew?)"),  # Prometheus' clock an hour ahead
    (0, State.OK, None),
])
def test_prometheus_answer_is_aged_by_its_evaluation_time(http, evaluated, state, words):
    _fake_prometheus(http, lambda: _envelope([
        _vector("circuit_breaker_state", {"breaker": "upstream"}, "0", time.time() + evaluated),
        _vector("up", {"job": "app"}, "1", time.time() + evaluated)]))
    snap = _run(_engine({"source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]}),
                rounds=1)
    row = rows_of(snap, "prom")["upstream"]
    assert row.state is state, row
    if words:
        assert words in row.reason
    else:
        assert row.age_s < 2


@pytest.mark.slow
def test_gauge_whose_last_sample_is_minutes_old_in_prometheus_is_stale(http, prometheus_factory):
    """An exporter stamping its lines 150 s late (Prometheus honours its timestamps):
    Prometheus still answers the gauge, evaluated now; timestamp() tells its age."""
    def body(request):
        ms = int((time.time() - 150) * 1000)
        text = f"""# TYPE circuit_breaker_state gauge
circuit_breaker_state{{breaker="lagging"}} 0 {ms}
circuit_breaker_state{{breaker="fresh"}} 0
"""
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()

    http.routes["/metrics"] = body
    prom = prometheus_factory({"app": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query('circuit_breaker_state{breaker="lagging"}')
             and prom.query('circuit_breaker_state{breaker="fresh"}'), timeout=30)
    snap = _run(_engine({"source": [{"name": "prom", "prometheus": prom.url(), "preset": "scaledash",
                                     "job": "app", "rate_window": "1m"}]}), rounds=1)
    rows = rows_of(snap, "prom")
    assert rows["lagging"].state is State.STALE, rows["lagging"]
    assert "sample is 15" in rows["lagging"].reason and rows["lagging"].age_s >= 145
    assert rows["fresh"].state is State.OK, rows["fresh"]
    assert rows["fresh"].age_s < 5                       # a scrape interval (1 s) and a round


@pytest.mark.slow
def test_metrics_sharing_one_label_set_all_reach_their_row_through_prometheus(http, prometheus_factory):
    """PromQL's `or` matches series without their name: redis_exporter's series all have
    the same labels, so the round's query kept redis_up and dropped the rest (and a
    gauge's timestamp() along with them)."""
    t0 = time.monotonic()

    def body(request):
        t = time.monotonic() - t0
        text = f"""# TYPE redis_up gauge
redis_up 1
# TYPE redis_keyspace_hits_total counter
redis_keyspace_hits_total {90 * t}
# TYPE redis_keyspace_misses_total counter
redis_keyspace_misses_total {10 * t}
# TYPE redis_memory_used_bytes gauge
redis_memory_used_bytes 1048576
"""
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()

    http.routes["/metrics"] = body
    prom = prometheus_factory({"redis": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query("rate(redis_keyspace_hits_total[1m])"), timeout=30)
    snap = _run(_engine({"source": [{"name": "cache", "prometheus": prom.url(), "preset": "redis_exporter",
                                     "job": "redis"}]}), rounds=1)
    row = rows_of(snap, "cache")["cache/redis"]
    assert row.metrics["memory_bytes"] == 1048576
    assert row.metrics["hits_per_s"] > 0 and 0.85 < row.metrics["hit_rate"] < 0.95
    assert row.state is State.OK, row


@pytest.mark.parametrize("with_exporter", [True, False])
def test_a_redis_exporter_beside_the_service_cache_layers_is_not_counted_twice(http, with_exporter):
    """The Redis behind a service's "redis" layer, also scraped through redis_exporter:
    its keyspace lookups are the layer's own, so the hit-rate KPI is the service's."""
    t0 = time.monotonic()

    def service(request):
        t = time.monotonic() - t0
        text = f"""# TYPE cache_requests_total counter
cache_requests_total{{cache="items",layer="memory",result="hit"}} {76 * t}
cache_requests_total{{cache="items",layer="memory",result="miss"}} {24 * t}
cache_requests_total{{cache="items",layer="redis",result="hit"}} {8 * t}
cache_requests_total{{cache="items",layer="redis",result="miss"}} {16 * t}
"""
        return 200, {"Content-Type": "text/plain"}, text.encode()

    def exporter(request):
        t = time.monotonic() - t0
        text = f"redis_up 1\nredis_keyspace_hits_total {8 * t}\nredis_keyspace_misses_total {16 * t}\n"
        return 200, {"Content-Type": "text/plain"}, text.encode()

    http.routes["/service"], http.routes["/exporter"] = service, exporter
    sources = [{"name": "service", "scrape": http.url("/service"), "preset": "scaledash"}]
    if with_exporter:
        sources.append({"name": "redis", "scrape": http.url("/exporter"), "preset": "redis_exporter"})
    kpi = next(k for k in _run(_engine({"source": sources})).kpis if k.name == "cache_hit_rate")
    assert kpi.value == pytest.approx(0.84, abs=0.02), kpi       # (76 + 8) of 100 requests
    assert kpi.met is True


# ------------------------------------------------------------------ 2. non-finite values

def _scaledash_text(bad: str, value: str) -> str:
    """Every scaledash kind in one body; the figure named `bad` holds `value`."""
    v = {name: (value if name == bad else default) for name, default in {
        "breaker_failures": "3", "cache_hits": "80", "batcher_frames": "20", "edge_invocations": "50",
        "http_failed": "0"}.items()}
    return f"""# TYPE circuit_breaker_state gauge
circuit_breaker_state{{breaker="upstream"}} 0
# TYPE circuit_breaker_calls_total counter
circuit_breaker_calls_total{{breaker="upstream",outcome="success"}} 300
circuit_breaker_calls_total{{breaker="upstream",outcome="failure"}} {v["breaker_failures"]}
# TYPE cache_requests_total counter
cache_requests_total{{cache="catalog",layer="memory",result="hit"}} {v["cache_hits"]}
cache_requests_total{{cache="catalog",layer="memory",result="miss"}} 20
# TYPE batcher_messages_total counter
batcher_messages_total{{batcher="realtime"}} 200
# TYPE batcher_frames_total counter
batcher_frames_total{{batcher="realtime"}} {v["batcher_frames"]}
# TYPE edge_function_invocations_total counter
edge_function_invocations_total{{function="hello",status="200"}} {v["edge_invocations"]}
# TYPE http_requests_total counter
http_requests_total{{status="200"}} 1000
http_requests_total{{status="500"}} {v["http_failed"]}
"""


SCALEDASH_ROWS = [   # (figure made non-finite, row, the figure the reason names)
    ("breaker_failures", "upstream", "failure_total"),
    ("cache_hits", "catalog/memory", "hits_total"),
    ("batcher_frames", "realtime", "frames_total"),
    ("edge_invocations", "hello", "invocations_total"),
]


@pytest.mark.parametrize("bad, row, figure", SCALEDASH_ROWS)
@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_non_finite_counter_makes_its_row_degraded_on_every_scaledash_kind(http, bad, row, figure, value):
    _serve(http, "/m", _scaledash_text(bad, value))
    rows = rows_of(_run(_engine(_scrape(http, "/m"))), "app")
    assert rows[row].state is State.DEGRADED, rows[row]
    assert rows[row].reason == f"non-finite value {figure}={value}"
    others = [r for name, r in rows.items() if name != row]
    assert others and all(r.state is State.OK for r in others), others


def test_finite_scaledash_figures_leave_every_row_ok(http):
    _serve(http, "/m", _scaledash_text("", ""))
    rows = rows_of(_run(_engine(_scrape(http, "/m"))), "app")
    assert {name for name in rows} >= {"upstream", "catalog/memory", "realtime", "hello"}
    assert all(r.state is State.OK for r in rows.values()), rows


def _redis_exporter_text(hits: str) -> str:
    return f"""# TYPE redis_up gauge
redis_up 1
# TYPE redis_keyspace_hits_total counter
redis_keyspace_hits_total {hits}
# TYPE redis_keyspace_misses_total counter
redis_keyspace_misses_total 10
# TYPE redis_memory_used_bytes gauge
redis_memory_used_bytes 1048576
"""


def _postgres_exporter_text(commits: str) -> str:
    return f"""# TYPE pg_up gauge
pg_up 1
# TYPE pg_settings_in_hot_standby gauge
pg_settings_in_hot_standby{{server="db:5432"}} 0
# TYPE pg_stat_database_xact_commit counter
pg_stat_database_xact_commit{{datid="5",datname="app",server="db:5432"}} {commits}
"""


def _resilience4j_text(failure_rate: str) -> str:
    return f"""# TYPE resilience4j_circuitbreaker_state gauge
resilience4j_circuitbreaker_state{{name="payments",state="closed",}} 1.0
# TYPE resilience4j_circuitbreaker_failure_rate gauge
resilience4j_circuitbreaker_failure_rate{{name="payments",}} {failure_rate}
"""


EXPORTER_ROWS = [   # (preset, body for a value, row, the figure the reason names)
    ("redis_exporter", _redis_exporter_text, "app/redis", "hits_total"),
    ("postgres_exporter", _postgres_exporter_text, "app", "xact_total"),
    ("resilience4j", _resilience4j_text, "payments", "failure_rate"),
]


@pytest.mark.parametrize("preset, text, row, figure", EXPORTER_ROWS)
@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_non_finite_exporter_figure_makes_its_row_degraded(http, preset, text, row, figure, value):
    _serve(http, "/m", text(value))
    rows = rows_of(_run(_engine(_scrape(http, "/m", preset))), "app")
    assert rows[row].state is State.DEGRADED, rows[row]
    assert rows[row].reason.startswith(f"non-finite value {figure}=")


@pytest.mark.parametrize("preset, text, row, figure", EXPORTER_ROWS)
def test_finite_exporter_figures_are_ok(http, preset, text, row, figure):
    _serve(http, "/m", text("25"))
    rows = rows_of(_run(_engine(_scrape(http, "/m", preset))), "app")
    assert rows[row].state is State.OK, rows[row]


class _CdnWithNaNLatency:
    """No real CDN answers a NaN latency: the one fake here, to hold the rule on the cdn kind."""

    target, source, deadline, kind = "cdn", "http", 0.8, Kind.CDN

    def __init__(self, latency: float):
        self.latency = latency

    async def collect(self):
        return [Reading(Kind.CDN, "cdn", {"cache_status": "HIT", "latency_ms": self.latency, "status_code": 200})]

    async def close(self):
        pass


@pytest.mark.parametrize("latency, state", [(math.nan, State.DEGRADED), (12.5, State.OK)])
def test_non_finite_figure_on_a_cdn_row_is_degraded(latency, state):
    engine = Engine(validate({"interval": "1s"}), probes=[_CdnWithNaNLatency(latency)])
    row = rows_of(_run(engine, rounds=1), "cdn")["cdn"]
    assert row.state is state
    if state is State.DEGRADED:
        assert row.reason == "non-finite value latency_ms=NaN"


@pytest.mark.slow
@pytest.mark.parametrize("failed, expected", [("NaN", None), ("0", 0.0)])
def test_a_nan_failed_request_counter_in_prometheus_gives_no_made_up_error_rate(http, prometheus_factory,
                                                                              failed, expected):
    """rate() of a NaN counter is NaN; clamped, it read as a 100 % error rate."""
    t0 = time.monotonic()

    def body(request):
        t = time.monotonic() - t0
        text = f"""# TYPE http_requests_total counter
http_requests_total{{status="200"}} {100 * t}
http_requests_total{{status="500"}} {failed}
"""
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()

    http.routes["/metrics"] = body
    prom = prometheus_factory({"app": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query('rate(http_requests_total{status="500"}[1m])'), timeout=30)
    snap = _run(_engine({"source": [{"name": "prom", "prometheus": prom.url(), "preset": "scaledash",
                                     "job": "app"}]}), rounds=1)
    kpi = next(k for k in snap.kpis if k.name == "error_rate")
    if expected is None:
        assert kpi.value is None and kpi.met is None, kpi
    else:
        assert kpi.value == expected and kpi.met is True, kpi


# ------------------------------------------------------------------ 3. warnings on the rows

WARNING = "PromQL info: metric might not be a counter"


def _prometheus_config(write_config, http) -> str:
    return str(write_config(f"""
[[source]]
name = "prom"
prometheus = "{http.url('')}"
preset = "scaledash"
"""))


@pytest.mark.parametrize("warnings", [[WARNING], None])
def test_prometheus_warning_marks_the_rows_it_fed_in_the_check_table_and_json(http, write_config, warnings):
    _fake_prometheus(http, lambda: _envelope([_vector("circuit_breaker_state", {"breaker": "upstream"}, "0"),
                                              _vector("up", {"job": "app"}, "1")], warnings))
    config = _prometheus_config(write_config, http)
    report = json.loads(run_cli("check", "--json", "--window", "200ms", "--config", config).out)
    row = next(c for c in report["components"] if c["name"] == "upstream")
    table = run_cli("check", "--window", "200ms", "--config", config).out
    line = next(line for line in table.splitlines() if "upstream" in line)
    if warnings:
        assert row["warning"] and "might not be a counter" in row["warning"]
        assert "OK!" in line and "! PromQL info" in line
    else:
        assert row["warning"] is None
        assert "!" not in line


def test_a_warning_is_cleared_from_the_rows_when_the_next_answer_has_none(http):
    answers = iter([[WARNING], None])
    _fake_prometheus(http, lambda: _envelope([_vector("circuit_breaker_state", {"breaker": "upstream"}, "0")],
                                             next(answers)))
    engine = _engine({"source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]})

    async def scenario():
        try:
            await engine.poll_round()
            first = engine.snapshot()
            await engine.poll_round()
            return first, engine.snapshot()
        finally:
            await engine.close()

    first, second = asyncio.run(scenario())
    assert WARNING in rows_of(first, "prom")["upstream"].warning
    assert rows_of(second, "prom")["upstream"].warning is None


# ------------------------------------------------------------------ 4. uptime

def _uptime(snap):
    return next(k for k in snap.kpis if k.name == "uptime")


@pytest.mark.parametrize("status, met", [(503, False), (200, True)])
def test_edge_function_answering_an_unexpected_status_lowers_uptime(http, status, met):
    http.set("/functions/v1/hello", "hi", status=status)
    engine = _engine({"edge": [{"name": "hello", "url": http.url("/functions/v1/hello"), "expect_status": 200}]})
    kpi = _uptime(_run(engine, rounds=3, window=0.05))
    assert kpi.met is met, kpi
    assert (kpi.value < 0.999) if not met else kpi.value == 1.0


@pytest.mark.parametrize("prometheus_ok, met", [(False, False), (True, True)])
def test_metric_source_in_error_lowers_uptime(http, prometheus_ok, met):
    http.set("/functions/v1/hello", "hi")
    if prometheus_ok:
        _fake_prometheus(http, lambda: _envelope([_vector("circuit_breaker_state", {"breaker": "b"}, "0")]))
    else:
        http.set("/api/v1/query", "<html>502 Bad Gateway</html>", status=502)
    engine = _engine({"edge": [{"name": "hello", "url": http.url("/functions/v1/hello")}],
                      "source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]})
    snap = _run(engine, rounds=2, window=0.05)
    assert next(s for s in snap.sources if s.target == "prom").state is (State.OK if prometheus_ok else State.ERROR)
    kpi = _uptime(snap)
    assert kpi.met is met, kpi
    assert kpi.value == (1.0 if met else 0.5)


# ------------------------------------------------------------------ 5. first round

def test_snapshot_says_starting_until_every_target_finished_its_first_probe(http, blackhole):
    http.set("/functions/v1/hello", "hi")
    engine = _engine({"edge": [{"name": "hello", "url": http.url("/functions/v1/hello")},
                               {"name": "silent", "url": f"http://127.0.0.1:{blackhole.port}/"}]})
    before = engine.snapshot()
    after = _run(engine, rounds=1)                       # the silent one fails at its deadline
    assert before.starting is True
    assert after.starting is False
    assert next(s for s in after.sources if s.target == "silent").state is not State.OK
