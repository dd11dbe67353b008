"""Metric sources under trouble: Prometheus down, up == 0, empty vectors, error
envelopes, warnings, and bad bodies (RELIABILITY.md cases 6, 17, 18, 19).

Real Prometheus and real HTTP servers; the bodies no real server sends (malformed
JSON, HTML with 200) come from the test HTTP server posing as Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.model import State
from metric_texts import scaledash_metrics
from conftest import CANARY, wait_for
from fakes import poll_rounds, rows_of


def _engine(doc: dict) -> Engine:
    return Engine(validate({"interval": "1s", "timeout": "800ms", **doc}))


def _no_canary(snap) -> None:
    texts = [c.reason or "" for c in snap.components] + [s.reason or "" for s in snap.sources]
    assert not any(CANARY in t for t in texts)


@pytest.mark.slow
def test_prometheus_down_is_an_error_of_the_source_while_direct_probes_stay_ok(
        pg, http, prometheus_factory):
    http.routes["/metrics"] = scaledash_metrics()
    prom = prometheus_factory({"app": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query('count(rate(circuit_breaker_calls_total[1m]))'), timeout=20)
    engine = _engine({
        "replica": [{"name": "primary", "dsn": pg.dsn(pg.primary), "password": "env:SCALEDASH_TEST_PG_PASSWORD"}],
        "source": [{"name": "prom", "prometheus": prom.url(), "preset": "scaledash"}],
    })

    async def scenario():
        try:
            before = await poll_rounds(engine)
            prom.stop()
            after = await poll_rounds(engine)
            return before, after
        finally:
            await engine.close()

    before, after = asyncio.run(scenario())
    breakers = rows_of(before, "prom")
    assert breakers["upstream"].state is State.DEGRADED and breakers["upstream"].metrics["state"] == "open"
    assert breakers["upstream"].source == "prometheus"
    assert breakers["upstream"].metrics["calls_per_s"] > 0          # rate() from PromQL
    for component in rows_of(after, "prom").values():
        assert component.state is State.ERROR, component
        assert "Prometheus unreachable" in component.reason
    assert rows_of(after, "primary")["primary"].state is State.OK
    _no_canary(after)


@pytest.mark.slow
def test_up_zero_is_down_via_prometheus_and_an_empty_vector_is_no_data(http, prometheus_factory):
    from dashboard.lab.servers import free_port

    prom = prometheus_factory({"gone": [f"127.0.0.1:{free_port()}"], "app": [f"127.0.0.1:{http.port}"]})
    http.routes["/metrics"] = scaledash_metrics()
    wait_for(lambda: prom.query('up{job="gone"} == 0'), timeout=20)
    engine = _engine({"source": [
        {"name": "gone", "prometheus": prom.url(), "preset": "redis_exporter", "job": "gone"},
        {"name": "empty", "prometheus": prom.url(), "preset": "resilience4j", "job": "app"},
    ]})

    async def scenario():
        try:
            return await poll_rounds(engine)
        finally:
            await engine.close()

    snap = asyncio.run(scenario())
    sources = {s.target: s for s in snap.sources}
    assert sources["gone"].state is State.DOWN and "via prometheus" in sources["gone"].reason
    assert sources["empty"].state is State.NO_DATA
    assert snap.overall is State.DOWN


def _envelope(result: list, warnings: list | None = None) -> bytes:
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    if warnings:
        body["warnings"] = warnings
    return json.dumps(body).encode()


def _vector(name: str, labels: dict, value: str) -> dict:
    # Stamped now, as a real Prometheus stamps an instant query's answer: a fixed past
    # time would be an old answer, and STALE (RELIABILITY.md case 23).
    return {"metric": {"__name__": name, **labels}, "value": [time.time(), value]}


def _fake_prometheus(http, body: bytes, status: int = 200, content_type: str = "application/json"):
    def handler(request):
        query = request["query"].get("query", "")
        if query.startswith("up"):
            return 200, {"Content-Type": "application/json"}, _envelope([_vector("up", {"job": "x"}, "1")])
        return status, {"Content-Type": content_type}, body
    http.routes["/api/v1/query"] = handler


def _good() -> bytes:
    """A good answer, stamped when asked for (a module-level constant ages with the run)."""
    return _envelope([_vector("circuit_breaker_state", {"breaker": "upstream"}, "0")])


@pytest.mark.parametrize("body, status, content_type, expected", [
    (b'{"status":"success","data":{"resultType":"vec', 200, "application/json", "not JSON"),
    (b"<html><body>Gateway says hi</body></html>", 200, "text/html", "not JSON"),
    (b"", 200, "application/json", "not JSON"),
    (b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}', 400,
     "application/json", "bad_data"),
    (b'{"status":"error","errorType":"execution","error":"query processing would load too many samples"}',
     422, "application/json", "execution"),
    (b'{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}', 503,
     "application/json", "timeout"),
    (b"<html>502 Bad Gateway</html>", 502, "text/html", "HTTP 502"),
    (b'{"status":"success","data":{"resultType":"vector","result":' + b"[" * 50000 + b"]" * 50000 + b"}}",
     200, "application/json", "not JSON"),
])
def test_bad_prometheus_answers_are_errors_that_keep_the_last_good_value(http, body, status, content_type,
                                                                         expected):
    _fake_prometheus(http, _good())
    engine = _engine({"source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]})

    async def scenario():
        try:
            good = await poll_rounds(engine, 1)
            _fake_prometheus(http, body, status, content_type)
            await asyncio.sleep(0.2)
            return good, await poll_rounds(engine, 1)
        finally:
            await engine.close()

    good, bad = asyncio.run(scenario())
    assert rows_of(good, "prom")["upstream"].state is State.OK
    upstream = rows_of(bad, "prom")["upstream"]
    assert upstream.state is State.ERROR
    assert expected in upstream.reason and len(upstream.reason) <= 120
    assert upstream.metrics["state"] == "closed"          # the last good value, kept
    assert upstream.age_s >= 0.2                          # with its age
    assert "\x1b" not in upstream.reason and "<" not in upstream.reason[:1]


def test_prometheus_warnings_are_kept_next_to_the_data(http):
    _fake_prometheus(http, _envelope([_vector("circuit_breaker_state", {"breaker": "b"}, "1")],
                                     warnings=["PromQL info: metric might not be a counter"]))
    engine = _engine({"source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]})

    async def scenario():
        try:
            return await poll_rounds(engine, 1)
        finally:
            await engine.close()

    snap = asyncio.run(scenario())
    assert rows_of(snap, "prom")["b"].metrics["state"] == "open"
    source = next(s for s in snap.sources if s.target == "prom")
    assert source.warning and "might not be a counter" in source.warning


def test_non_finite_values_from_prometheus_are_never_ok(http):
    _fake_prometheus(http, _envelope([
        _vector("circuit_breaker_state", {"breaker": "inf"}, "+Inf"),
        _vector("circuit_breaker_state", {"breaker": "nan"}, "NaN"),
        _vector("batcher_subscribers", {"batcher": "huge"}, "1e309"),
        {"metric": {"__name__": "circuit_breaker_state", "breaker": "null"}, "value": [1, None]},
    ]))
    engine = _engine({"source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}]})

    async def scenario():
        try:
            return await poll_rounds(engine, 1)
        finally:
            await engine.close()

    rows = rows_of(asyncio.run(scenario()), "prom")
    assert "null" not in rows                                  # unusable sample skipped, no crash
    assert rows["huge"].state is State.DEGRADED and "+Inf" in rows["huge"].reason
    for name in ("inf", "nan"):
        assert rows[name].state is not State.OK


def test_a_prometheus_round_is_one_request_with_every_metric_and_up(http):
    _fake_prometheus(http, _good())
    # A generous deadline: the point is how many requests a round makes, and a round cut
    # by 0.8 s on a loaded machine (seen in CI) skips the next one ("still running").
    engine = _engine({"interval": "5s", "timeout": "4s",
                      "source": [{"name": "prom", "prometheus": http.url(""), "preset": "scaledash", "job": "api"}]})
    seen: list[str] = []
    handler = http.routes["/api/v1/query"]
    http.routes["/api/v1/query"] = lambda request: (seen.append(request["query"]["query"]), handler(request))[1]

    async def scenario():
        try:
            return await poll_rounds(engine, 2, window=0.1)
        finally:
            await engine.close()

    asyncio.run(scenario())
    assert len(seen) == 2
    query = seen[0]
    assert 'label_replace(rate(circuit_breaker_calls_total{job="api"}[1m]), "scaledash_metric"' in query
    assert 'batcher_flush_seconds_bucket{job="api"}' in query and query.endswith('up{job="api"}')
