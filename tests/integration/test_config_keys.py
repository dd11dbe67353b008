"""Every key the config accepts changes something a user can see (issue 8).

The walk derives the accepted keys from the schema itself (`_TOP_KEYS`, `_SECTION_KEYS`
and the keys the `[thresholds]` check allows), so a key added later without a check
here fails it. Each check sets the key and shows the difference against its absence:
on the wire against real servers where the key shapes a request (conftest's
PostgreSQL, Redis, HTTP and Prometheus, and a self-signed TLS front made here), else
in a state, a figure or the `config check` output. Keys that would do nothing are
refused with a config error naming their key path, and that is checked too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import threading
import time
import warnings

import pytest

from conftest import CANARY, ROOT, run_cli, wait_for
from fakes import component, snapshot_after
from dashboard import config_schema
from dashboard.app import build_app
from dashboard.config import ConfigError, validate
from dashboard.engine import Engine
from dashboard.lab.servers.redis import redis_command
from dashboard.model import State
from metric_texts import resilience4j_metrics, scaledash_metrics

DRILL_STEPS = "tests/integration/test_drill_steps.py"
DRILL_SAFETY = "tests/integration/test_drill_safety.py"

# Keys another change makes act, with the file whose tests show it.
ELSEWHERE = {
    "replica.max_lag_bytes": "tests/integration/test_replica_truth.py",
    "replica.max_lag_seconds": "tests/integration/test_replica_truth.py",
    "thresholds.recovery_band": "tests/test_hysteresis.py",
    "thresholds.recovery_hold": "tests/test_hysteresis.py",
    # Drills act on servers and processes: shown by `drill run` on real ones there. A key
    # that does nothing on one side (`after` and `unless` on a method step, `irreversible`
    # on a rollback step) is shown refused there.
    "drill": DRILL_STEPS,
    "drills": DRILL_STEPS,
    "drills.allow": DRILL_STEPS,
    "drills.state_dir": DRILL_STEPS,
    "drills.processes": DRILL_STEPS,
    "drill.name": DRILL_STEPS,
    "drill.use": DRILL_STEPS,
    "drill.target": DRILL_STEPS,
    "drill.description": DRILL_STEPS,
    "drill.steady_state": DRILL_STEPS,
    "drill.commands": DRILL_STEPS,
    "drill.process": DRILL_STEPS,
    "drill.duration": DRILL_STEPS,
    "drill.writes_per_s": DRILL_STEPS,
    "drill.max_candidate_lag_bytes": DRILL_STEPS,
    "drill.failure_rate": DRILL_STEPS,
    "drill.step.do": DRILL_STEPS,
    "drill.step.label": DRILL_STEPS,
    "drill.step.name": DRILL_STEPS,
    "drill.step.irreversible": DRILL_SAFETY,
    "drill.step.timeout": DRILL_SAFETY,
    "drill.step.after": DRILL_STEPS,
    "drill.step.unless": DRILL_STEPS,
    "drill.step.verify": DRILL_SAFETY,
    "drill.step.node": DRILL_STEPS,
    "drill.step.sql": DRILL_STEPS,
    "drill.step.method": DRILL_STEPS,
    "drill.step.path": DRILL_STEPS,
    "drill.step.json": DRILL_STEPS,
    "drill.step.process": DRILL_STEPS,
    "drill.step.signal": DRILL_STEPS,
    "drill.step.command": DRILL_STEPS,
    "drill.step.until": DRILL_STEPS,
    "drill.step.deadline": DRILL_STEPS,
    "drill.step.duration": DRILL_STEPS,
    "drill.rollback.do": DRILL_STEPS,
    "drill.rollback.label": DRILL_STEPS,
    "drill.rollback.name": DRILL_STEPS,
    "drill.rollback.irreversible": DRILL_STEPS,
    "drill.rollback.timeout": DRILL_STEPS,
    "drill.rollback.after": DRILL_STEPS,
    "drill.rollback.unless": DRILL_STEPS,
    "drill.rollback.verify": DRILL_STEPS,
    "drill.rollback.node": DRILL_STEPS,
    "drill.rollback.sql": DRILL_STEPS,
    "drill.rollback.method": DRILL_STEPS,
    "drill.rollback.path": DRILL_STEPS,
    "drill.rollback.json": DRILL_STEPS,
    "drill.rollback.process": DRILL_STEPS,
    "drill.rollback.signal": DRILL_STEPS,
    "drill.rollback.command": DRILL_STEPS,
    "drill.rollback.until": DRILL_STEPS,
    "drill.rollback.deadline": DRILL_STEPS,
    "drill.rollback.duration": DRILL_STEPS,
    "source.max_series": "tests/integration/test_hostile_scale.py",
}

# Key path -> the test in this file that shows the key acting.
CHECKS = {
    "name": "test_top_level_name_titles_config_check_and_the_dashboard",
    "interval": "test_global_and_own_intervals_space_each_targets_probes",
    "timeout": "test_timeout_is_each_probes_deadline",
    "thresholds.replica_lag_bytes": "test_replica_lag_thresholds_judge_a_replica_behind_its_primary",
    "thresholds.replica_lag_seconds": "test_replica_lag_thresholds_judge_a_replica_behind_its_primary",
    "thresholds.cache_hit_rate": "test_cache_hit_rate_threshold_and_min_hit_rate_judge_a_real_redis",
    "thresholds.error_rate": "test_error_rate_threshold_judges_an_edge_function",
    "replica.name": "test_replica_dsn_and_password_reach_postgres_as_the_named_row",
    "replica.dsn": "test_replica_dsn_and_password_reach_postgres_as_the_named_row",
    "replica.password": "test_replica_dsn_and_password_reach_postgres_as_the_named_row",
    "replica.interval": "test_each_targets_own_interval_sets_its_next_probe",
    "cache.name": "test_cache_url_and_password_reach_redis_as_the_named_row",
    "cache.url": "test_cache_url_and_password_reach_redis_as_the_named_row",
    "cache.password": "test_cache_url_and_password_reach_redis_as_the_named_row",
    "cache.insecure": "test_insecure_lets_a_self_signed_tls_server_pass",
    "cache.min_hit_rate": "test_cache_hit_rate_threshold_and_min_hit_rate_judge_a_real_redis",
    "cache.interval": "test_each_targets_own_interval_sets_its_next_probe",
    "source.name": "test_scrape_url_and_preset_decide_the_rows_read",
    "source.scrape": "test_scrape_url_and_preset_decide_the_rows_read",
    "source.preset": "test_scrape_url_and_preset_decide_the_rows_read",
    "source.prometheus": "test_prometheus_job_selects_the_up_series_of_that_job",
    "source.job": "test_prometheus_job_selects_the_up_series_of_that_job",
    "source.rate_window": "test_prometheus_rate_window_is_the_range_of_every_rate",
    "source.username": "test_source_username_and_password_are_sent_as_basic_auth",
    "source.password": "test_source_username_and_password_are_sent_as_basic_auth",
    "source.insecure": "test_insecure_lets_a_self_signed_tls_server_pass",
    "source.interval": "test_each_targets_own_interval_sets_its_next_probe",
    "source.min_hit_rate": "test_a_sources_min_hit_rate_judges_the_cache_rows_it_found",
    "edge.name": "test_edge_method_reaches_the_server",
    "edge.url": "test_edge_method_reaches_the_server",
    "edge.method": "test_edge_method_reaches_the_server",
    "edge.expect_status": "test_edge_expect_status_decides_which_answer_is_ok",
    "edge.headers": "test_edge_and_cdn_headers_arrive_with_references_resolved",
    "edge.insecure": "test_insecure_lets_a_self_signed_tls_server_pass",
    "edge.interval": "test_each_targets_own_interval_sets_its_next_probe",
    "edge.contract": "test_edge_contract_is_what_the_edge_suite_checks_the_shape_against",
    "edge.contract.content_type": "test_edge_contract_body_and_content_type_judge_each_answers_shape",
    "edge.contract.body": "test_edge_contract_body_and_content_type_judge_each_answers_shape",
    "edge.contract.latency_ms": "test_edge_contract_latency_ms_and_samples_set_the_budget_and_the_calls",
    "edge.contract.samples": "test_edge_contract_latency_ms_and_samples_set_the_budget_and_the_calls",
    "edge.contract.request_body": "test_edge_contract_request_body_is_sent_as_json",
    "cdn.name": "test_cdn_url_reads_hit_or_miss_as_the_named_row",
    "cdn.url": "test_cdn_url_reads_hit_or_miss_as_the_named_row",
    "cdn.headers": "test_edge_and_cdn_headers_arrive_with_references_resolved",
    "cdn.insecure": "test_insecure_lets_a_self_signed_tls_server_pass",
    "cdn.interval": "test_each_targets_own_interval_sets_its_next_probe",
    "suite.name": "test_suites_are_listed_by_config_check_and_the_t_key",
    "suite.command": "test_suites_are_listed_by_config_check_and_the_t_key",
    "suite.cwd": "test_suites_are_listed_by_config_check_and_the_t_key",
    "service.url": "test_service_url_and_admin_token_are_what_the_suites_drive",
    "service.admin_token": "test_service_url_and_admin_token_are_what_the_suites_drive",
}


def _threshold_keys(monkeypatch) -> set[str]:
    """The keys `[thresholds]` allows, as the schema's own unknown-key check sees them."""
    seen: dict[str, set[str]] = {}
    table = config_schema._Checker.table

    def spy(self, path, value, allowed):
        if path == "thresholds":
            seen["keys"] = set(allowed)
        return table(self, path, value, allowed)

    monkeypatch.setattr(config_schema._Checker, "table", spy)
    validate({})
    monkeypatch.undo()
    return seen["keys"]


def accepted_keys(monkeypatch) -> set[str]:
    sections = config_schema._SECTION_KEYS
    keys = {k for k in config_schema._TOP_KEYS if k not in sections and k not in ("thresholds", "service")}
    keys |= {f"service.{key}" for key in config_schema._SERVICE_KEYS}
    keys |= {f"{section}.{key}" for section, names in sections.items() for key in names}
    keys |= {f"thresholds.{key}" for key in _threshold_keys(monkeypatch)}
    keys |= {f"{table}.{key}" for table, names in config_schema._NESTED_KEYS.items() for key in names}
    return keys


def test_every_accepted_key_has_a_check_that_shows_it_acting(monkeypatch):
    accepted = accepted_keys(monkeypatch)
    unchecked = sorted(accepted - CHECKS.keys() - ELSEWHERE.keys())
    assert not unchecked, (f"accepted config keys with no check showing they act: {unchecked}; add a test "
                           "here and list it in CHECKS, or list the key in ELSEWHERE with the file that tests it")
    stale = sorted((CHECKS.keys() | ELSEWHERE.keys()) - accepted)
    assert not stale, f"checks for keys the schema no longer accepts: {stale}"
    module = sys.modules[__name__]
    missing = {key: name for key, name in CHECKS.items() if not callable(getattr(module, name, None))}
    assert not missing, f"checks named but not written: {missing}"
    assert {"thresholds.cache_hit_rate", "source.job", "drill", "edge.contract.body"} <= accepted  # every level
    for key, file in ELSEWHERE.items():
        path = ROOT / file
        assert path.exists(), f"{key} is said to be checked in {file}, which does not exist"
        assert key.split(".")[-1] in path.read_text(), f"{file} does not mention {key}"


# ------------------------------------------------------------------ helpers

def _run(doc: dict, rounds: int = 2, window: float = 0.05):
    """Validate `doc`, poll every target `rounds` times, return the snapshot."""
    cfg = validate({"interval": "1s", **doc}, "keys.toml")

    return snapshot_after(Engine(cfg), rounds, window)


def _source(snap, target: str):
    return next(s for s in snap.sources if s.target == target)


def _recording(http, path: str, status: int = 200, headers: dict | None = None, body: bytes = b"ok") -> list:
    """Answer `path` and keep every request (method, headers, query) it received."""
    seen: list[dict] = []

    def handler(request: dict):
        seen.append(request)
        return status, headers or {}, body
    http.routes[path] = handler
    return seen


def _problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(doc, "keys.toml")
    return caught.value.problems


PG_PASSWORD = "env:SCALEDASH_TEST_PG_PASSWORD"
REDIS_PASSWORD = "env:SCALEDASH_TEST_REDIS_PASSWORD"


# ------------------------------------------------------------------ top level

def test_top_level_name_titles_config_check_and_the_dashboard(write_config):
    named = run_cli("config", "check", "--config", str(write_config('name = "checkout-prod"\n', "a.toml")))
    unnamed = run_cli("config", "check", "--config", str(write_config("", "fleet.toml")))
    assert "dashboard name: checkout-prod" in named.out, named.text
    assert "dashboard name: fleet" in unnamed.out, unnamed.text     # the file's stem otherwise

    async def title(doc: dict) -> str:
        cfg = validate(doc, "fleet.toml")
        app = build_app(cfg, engine=Engine(cfg, probes=[]), autostart=False)
        async with app.run_test(size=(100, 20)) as pilot:
            app.refresh_view()
            await pilot.pause()
            return "\n".join(strip.text for strip in app.screen._compositor.render_strips()[:2])

    assert "checkout-prod" in asyncio.run(title({"name": "checkout-prod"}))
    assert "checkout-prod" not in asyncio.run(title({}))


def test_global_and_own_intervals_space_each_targets_probes(http):
    http.set("/every-tick", "ok")
    http.set("/own-interval", "ok")
    cfg = validate({"interval": "100ms", "timeout": "80ms", "edge": [
        {"name": "fast", "url": http.url("/every-tick")},
        {"name": "slow", "url": http.url("/own-interval"), "interval": "500ms"},
    ]}, "keys.toml")
    http.hits.clear()

    async def scenario():
        engine = Engine(cfg)
        engine.start()
        try:
            while http.hits.get("/own-interval", 0) < 3:
                await asyncio.sleep(0.05)
        finally:
            await engine.close()
        return dict(http.hits)

    hits = asyncio.run(asyncio.wait_for(scenario(), 30))
    # Ignoring the global interval (1 s default) or the own one, both would poll alike.
    assert hits["/every-tick"] >= 2 * hits["/own-interval"], hits


def test_timeout_is_each_probes_deadline(http):
    async def slow(request):
        await asyncio.sleep(0.4)
        return 200, {}, b"late"
    http.routes["/slow"] = slow
    edge = {"edge": [{"name": "slow", "url": http.url("/slow")}]}
    cut = _source(_run({"timeout": "100ms", **edge}, rounds=1), "slow")
    assert cut.state is not State.OK and cut.reason == "timeout", cut
    waited = _source(_run(edge, rounds=1), "slow")         # default: 0.8 x the 1 s interval
    assert waited.state is State.OK, waited


def test_service_url_and_admin_token_are_what_the_suites_drive(http, write_config, monkeypatch,
                                                               isolated_secrets):
    from dashboard.suites.stack import load_stack

    monkeypatch.setenv("SCALEDASH_WALK_ADMIN", CANARY)
    metrics = _recording(http, "/metrics", body=b"db_queries_total{node=\"primary\",kind=\"read\"} 7.0\n")
    admin_seen: list[dict] = []

    def admin_state(request: dict):
        admin_seen.append(request)
        ok = request["headers"].get("Authorization") == f"Bearer {CANARY}"
        return (200, {}, b'{"switches": {}}') if ok else (401, {}, b'{"error": "unauthorized"}')
    http.routes["/admin/state"] = admin_state

    none = load_stack(str(write_config('name = "walk"\n', "none.toml")))
    with pytest.raises(pytest.skip.Exception, match=r"has no \[service\] url"):
        none.service                                                     # noqa: B018 - the property skips
    url_only = load_stack(str(write_config(f'[service]\nurl = "{http.url("")}"\n', "url.toml")))
    assert url_only.metrics().value("db_queries_total", node="primary") == 7.0 and len(metrics) == 1
    admin, reason = url_only.find_admin()
    assert admin is None and "no [service] admin_token" in reason and not admin_seen
    with_token = load_stack(str(write_config(
        f'[service]\nurl = "{http.url("")}"\nadmin_token = "env:SCALEDASH_WALK_ADMIN"\n', "token.toml")))
    admin, reason = with_token.find_admin()
    assert admin is not None and admin.state() == {"switches": {}}, reason
    assert admin_seen[-1]["headers"]["Authorization"] == f"Bearer {CANARY}"
    monkeypatch.setenv("SCALEDASH_WALK_ADMIN", "not-the-token")
    wrong = load_stack(str(write_config(
        f'[service]\nurl = "{http.url("")}"\nadmin_token = "env:SCALEDASH_WALK_ADMIN"\n', "wrong.toml")))
    assert wrong.find_admin() == (None, "the service has no usable /admin/state (it answered 401): "
                                        "no admin endpoint on this service")
    for stack in (none, url_only, with_token, wrong):
        stack.close()
    # The token opens endpoints that break the stack: never inline, always a reference.
    assert _problems({"service": {"url": http.url(""), "admin_token": "inline-token-1"}}) == [
        'service.admin_token: must be a reference such as "env:NAME" or "file:/path", never the token itself']
    assert _problems({"service": {"admin_token": "env:SCALEDASH_WALK_ADMIN"}}) == [
        "service.url: missing required key"]


def test_suites_are_listed_by_config_check_and_the_t_key(write_config):
    text = ('[[suite]]\nname = "integration"\ncommand = ["pytest", "-q", "tests/integration"]\ncwd = "/srv/app"\n'
            '\n[[suite]]\nname = "smoke"\ncommand = ["./smoke.sh"]\n')
    result = run_cli("config", "check", "--config", str(write_config(text)))
    assert result.code == 0, result.text
    assert "2 suites" in result.out
    assert ("suite integration: pytest -q tests/integration (in /srv/app): pytest, "
            "run with `scaledash suite run integration`") in result.out
    assert "suite smoke: ./smoke.sh: command, run with `scaledash suite run smoke`" in result.out
    shown = asyncio.run(_suites_screen_text(text))
    assert "integration" in shown and "smoke" in shown, shown
    assert "smoke" not in asyncio.run(_suites_screen_text(""))


async def _suites_screen_text(text: str) -> str:
    """What the t key's suites screen shows for a config."""
    import tomllib

    cfg = validate(tomllib.loads(text), "keys.toml")
    app = build_app(cfg, engine=Engine(cfg, probes=[]), autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


# ------------------------------------------------------------------ thresholds

def _delay_replay(pg, node, delay: str) -> None:
    pg.psql(node, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
    pg.psql(node, "SELECT pg_reload_conf()")


def test_replica_lag_thresholds_judge_a_replica_behind_its_primary(pg):
    delayed = pg.replicas[-1]
    nodes = [{"name": "primary", "dsn": pg.dsn(pg.primary), "password": PG_PASSWORD},
             {"name": "behind", "dsn": pg.dsn(delayed), "password": PG_PASSWORD}]
    # A commit replayed first, so the replica has a last replay time to be behind from.
    pg.psql(pg.primary, "INSERT INTO ticks DEFAULT VALUES")
    wait_for(lambda: pg.psql(delayed, "SELECT pg_last_xact_replay_timestamp() IS NOT NULL").strip() == "t")
    _delay_replay(pg, delayed, "1h")
    try:
        pg.psql(pg.primary, "INSERT INTO ticks DEFAULT VALUES")
        # Received but not replayed: the replica is behind by that commit's WAL.
        wait_for(lambda: pg.psql(delayed, "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")
                 .strip() == "t")
        # Behind in time too (its last replayed commit is older than the primary's):
        # generous seconds, so each key is seen acting alone.
        loose = component(_run({"replica": nodes, "thresholds": {"replica_lag_seconds": 3600}}, rounds=1), "behind")
        by_bytes = component(_run({"replica": nodes, "thresholds": {"replica_lag_bytes": 0, "replica_lag_seconds": 3600}},
                                  rounds=1), "behind")
        by_seconds = component(_run({"replica": nodes, "thresholds": {"replica_lag_seconds": 0}}, rounds=1), "behind")
    finally:
        pg.psql(delayed, "ALTER SYSTEM RESET recovery_min_apply_delay")
        pg.psql(delayed, "SELECT pg_reload_conf()")
    assert loose.metrics["lag_bytes"] > 0 and loose.state is State.OK, loose
    assert by_bytes.state is State.DEGRADED and "> 0 B" in by_bytes.reason, by_bytes
    assert by_seconds.state is State.DEGRADED and "> 0.0s" in by_seconds.reason, by_seconds


def _lookups(redis_server, hits: int, misses: int) -> None:
    redis_command(redis_server.port, "SET", "walk:key", "v", password=CANARY)
    for _ in range(hits):
        redis_command(redis_server.port, "GET", "walk:key", password=CANARY)
    for i in range(misses):
        redis_command(redis_server.port, "GET", f"walk:absent:{i}", password=CANARY)


def _cache_state(redis_server, cache: dict, thresholds: dict | None = None):
    """The Redis row after a window with a 50 % hit rate, judged under `thresholds`."""
    cfg = validate({"interval": "1s", "thresholds": thresholds or {},
                    "cache": [{"name": "redis", "url": redis_server.url(), "password": REDIS_PASSWORD,
                               **cache}]}, "keys.toml")

    async def scenario():
        engine = Engine(cfg)
        try:
            await engine.poll_round()
            await asyncio.to_thread(_lookups, redis_server, 20, 20)
            await engine.poll_round()
            return component(engine.snapshot(), "redis")
        finally:
            await engine.close()

    return asyncio.run(scenario())


def test_cache_hit_rate_threshold_and_min_hit_rate_judge_a_real_redis(redis_server):
    default = _cache_state(redis_server, {})
    assert default.metrics["hit_rate"] == pytest.approx(0.5)
    assert default.state is State.DEGRADED and "< 80%" in default.reason, default
    assert _cache_state(redis_server, {}, {"cache_hit_rate": 0.4}).state is State.OK
    assert _cache_state(redis_server, {"min_hit_rate": 0.4}).state is State.OK
    own = _cache_state(redis_server, {"min_hit_rate": 0.9}, {"cache_hit_rate": 0.4})
    assert own.state is State.DEGRADED and "< 90%" in own.reason, own    # the Redis's own floor wins


def test_error_rate_threshold_judges_an_edge_function(http):
    started = time.monotonic()

    def metrics(request):
        t = time.monotonic() - started + 10.0
        body = (f'edge_function_invocations_total{{function="hello",status="200"}} {95 * t}\n'
                f'edge_function_invocations_total{{function="hello",status="500"}} {5 * t}\n')
        return 200, {"Content-Type": "text/plain"}, body.encode()
    http.routes["/metrics"] = metrics
    source = {"source": [{"name": "app", "scrape": http.url("/metrics"), "preset": "scaledash"}]}
    strict = component(_run(source, window=0.3), "hello")
    assert strict.metrics["error_rate"] == pytest.approx(0.05, abs=0.01)
    assert strict.state is State.DEGRADED and "> 1.0%" in strict.reason, strict
    assert component(_run({**source, "thresholds": {"error_rate": 0.1}}, window=0.3), "hello").state is State.OK


def test_a_sources_min_hit_rate_judges_the_cache_rows_it_found(http):
    started = time.monotonic()

    def metrics(request):
        t = time.monotonic() - started + 10.0
        body = (f'cache_requests_total{{cache="sessions",layer="redis",result="hit"}} {50 * t}\n'
                f'cache_requests_total{{cache="sessions",layer="redis",result="miss"}} {50 * t}\n')
        return 200, {"Content-Type": "text/plain"}, body.encode()
    http.routes["/metrics"] = metrics
    source = {"name": "app", "scrape": http.url("/metrics"), "preset": "scaledash"}
    default = component(_run({"source": [source]}, window=0.3), "sessions")
    assert default.metrics["hit_rate"] == pytest.approx(0.5, abs=0.05)
    assert default.state is State.DEGRADED and "< 80%" in default.reason, default
    floored = component(_run({"source": [{**source, "min_hit_rate": 0.4}]}, window=0.3), "sessions")
    assert floored.state is State.OK, floored


# ------------------------------------------------------------------ targets

def test_replica_dsn_and_password_reach_postgres_as_the_named_row(pg):
    node = {"name": "db-main", "dsn": pg.dsn(pg.primary)}
    refused = component(_run({"replica": [node]}, rounds=1), "db-main")
    assert refused.state is State.ERROR and "authentication failed" in refused.reason, refused
    answered = component(_run({"replica": [{**node, "password": PG_PASSWORD}]}, rounds=1), "db-main")
    assert answered.state is State.OK and answered.metrics["role"] == "primary", answered


def test_cache_url_and_password_reach_redis_as_the_named_row(redis_server):
    cache = {"name": "sessions", "url": redis_server.url()}
    refused = component(_run({"cache": [cache]}, rounds=1), "sessions")
    assert refused.state is State.ERROR, refused
    answered = component(_run({"cache": [{**cache, "password": REDIS_PASSWORD}]}, rounds=1), "sessions")
    assert answered.state is State.OK and answered.metrics["memory_bytes"] > 0, answered


def test_scrape_url_and_preset_decide_the_rows_read(http):
    http.routes["/r4j"] = resilience4j_metrics()
    source = {"name": "payments-svc", "scrape": http.url("/r4j")}
    read = _run({"source": [{**source, "preset": "resilience4j"}]})
    assert {"payments", "inventory"} <= {c.name for c in read.components}
    assert _source(read, "payments-svc").state is State.OK
    wrong = _source(_run({"source": [source]}), "payments-svc")    # default preset: scaledash
    assert wrong.state is State.NO_DATA and "no series for preset scaledash" in wrong.reason, wrong


def test_prometheus_job_selects_the_up_series_of_that_job(http, prometheus_factory):
    from dashboard.lab.servers import free_port

    http.routes["/metrics"] = scaledash_metrics()
    prom = prometheus_factory({"gone": [f"127.0.0.1:{free_port()}"], "app": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query('up{job="gone"} == 0') and prom.query('up{job="app"} == 1'), timeout=20)
    source = {"name": "prom", "prometheus": prom.url(), "preset": "scaledash"}
    everything = _run({"source": [source]}, rounds=1)
    assert _source(everything, "prom").state is State.OK
    gone = _run({"source": [{**source, "job": "gone"}]}, rounds=1)
    assert _source(gone, "prom").state is State.DOWN or "up == 0" in (_source(gone, "prom").reason or ""), gone
    app = _run({"source": [{**source, "job": "app"}]}, rounds=1)
    assert _source(app, "prom").state is State.OK and any(c.name == "upstream" for c in app.components)


def _prometheus_answer(request: dict):
    now = time.time()
    body = ('{"status":"success","data":{"resultType":"vector","result":['
            f'{{"metric":{{"__name__":"circuit_breaker_state","breaker":"db"}},"value":[{now},"0"]}},'
            f'{{"metric":{{"__name__":"up"}},"value":[{now},"1"]}}]}}}}')
    return 200, {"Content-Type": "application/json"}, body.encode()


def _recording_prometheus(http) -> list[dict]:
    """The HTTP server answers as a Prometheus would, keeping every query it received."""
    seen: list[dict] = []

    def handler(request: dict):
        seen.append(request)
        return _prometheus_answer(request)
    http.routes["/api/v1/query"] = handler
    return seen


def test_prometheus_rate_window_is_the_range_of_every_rate(http):
    seen = _recording_prometheus(http)
    source = {"name": "prom", "prometheus": http.url(""), "preset": "scaledash"}
    _run({"source": [source]}, rounds=1)
    _run({"source": [{**source, "rate_window": "5m"}]}, rounds=1)
    default, five = seen[0]["query"]["query"], seen[-1]["query"]["query"]
    assert "[1m]" in default and "[5m]" not in default
    assert "[5m]" in five and "[1m]" not in five


def test_scrape_refuses_the_prometheus_only_keys():
    problems = _problems({"source": [{"name": "app", "scrape": "http://127.0.0.1:1/metrics",
                                      "rate_window": "5m", "job": "api"}]})
    assert "source[0].rate_window: only applies to a prometheus = source, not to a scrape (got '5m')" in problems
    assert "source[0].job: only applies to a prometheus = source, not to a scrape (got 'api')" in problems


def _authorization(seen: list[dict]) -> str | None:
    header = seen[-1]["headers"].get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    assert scheme == "Basic", scheme
    return base64.b64decode(value).decode()


def test_source_username_and_password_are_sent_as_basic_auth(http, monkeypatch, isolated_secrets):
    monkeypatch.setenv("SCALEDASH_WALK_SECRET", "walk-pass-5e1")
    seen = _recording(http, "/metrics", body=b"")
    source = {"name": "app", "scrape": http.url("/metrics")}
    _run({"source": [source]}, rounds=1)
    assert _authorization(seen) is None
    _run({"source": [{**source, "username": "service_role", "password": "env:SCALEDASH_WALK_SECRET"}]}, rounds=1)
    assert _authorization(seen) == "service_role:walk-pass-5e1"
    _run({"source": [{**source, "username": "token-as-user"}]}, rounds=1)     # was dropped without a password
    assert _authorization(seen) == "token-as-user:"

    queries = _recording_prometheus(http)
    prom = {"name": "prom", "prometheus": http.url(""), "username": "reader"}
    _run({"source": [prom]}, rounds=1)
    assert _authorization(queries) == "reader:"
    _run({"source": [{**prom, "password": "env:SCALEDASH_WALK_SECRET"}]}, rounds=1)
    assert _authorization(queries) == "reader:walk-pass-5e1"


def test_edge_method_reaches_the_server(http):
    seen = _recording(http, "/functions/v1/hello")
    edge = {"name": "hello", "url": http.url("/functions/v1/hello")}
    assert component(_run({"edge": [edge]}, rounds=1), "hello").state is State.OK
    assert seen[-1]["method"] == "GET"
    assert component(_run({"edge": [{**edge, "method": "post"}]}, rounds=1), "hello").state is State.OK
    assert seen[-1]["method"] == "POST"


def test_edge_expect_status_decides_which_answer_is_ok(http):
    _recording(http, "/maintenance", status=503)
    edge = {"name": "status-page", "url": http.url("/maintenance")}
    missed = component(_run({"edge": [edge]}), "status-page")
    assert missed.state is State.DOWN and missed.reason == "HTTP 503 (expected 200)", missed
    met = component(_run({"edge": [{**edge, "expect_status": 503}]}), "status-page")
    assert met.state is State.OK, met


def test_edge_and_cdn_headers_arrive_with_references_resolved(http, monkeypatch, isolated_secrets):
    monkeypatch.setenv("SCALEDASH_WALK_TOKEN", "Bearer walk-token-9f2")
    edge_seen = _recording(http, "/fn")
    cdn_seen = _recording(http, "/asset.js", headers={"X-Cache": "HIT"})
    headers = {"Authorization": "env:SCALEDASH_WALK_TOKEN", "X-Tenant": "acme"}
    bare = {"edge": [{"name": "fn", "url": http.url("/fn")}], "cdn": [{"name": "asset", "url": http.url("/asset.js")}]}
    _run(bare, rounds=1)
    for seen in (edge_seen, cdn_seen):
        assert "X-Tenant" not in seen[-1]["headers"] and "Authorization" not in seen[-1]["headers"]
    _run({section: [{**targets[0], "headers": headers}] for section, targets in bare.items()}, rounds=1)
    for seen in (edge_seen, cdn_seen):
        assert seen[-1]["headers"]["X-Tenant"] == "acme"
        assert seen[-1]["headers"]["Authorization"] == "Bearer walk-token-9f2"


# ------------------------------------------------------------------ [edge.contract] (the edge suite)

def _contracted(http, contract: dict | None, **edge) -> tuple:
    """The `hello` target with `contract`, and its answers as the edge suite calls it."""
    from dashboard.suites.shipped.edge.contract import call_samples

    fields = {"name": "hello", "url": http.url("/functions/v1/hello"), **edge}
    cfg = validate({"interval": "1s", "edge": [{**fields, **({"contract": contract} if contract else {})}]})
    target = cfg.edges[0]
    return target, call_samples(target, cfg.timeout)


def _json_route(http, path: str, body: object, content_type: str = "application/json", delay: float = 0.0):
    async def handler(request: dict):
        await asyncio.sleep(delay)
        return 200, {"Content-Type": content_type}, json.dumps(body).encode()
    http.routes[path] = handler


def test_edge_contract_body_and_content_type_judge_each_answers_shape(http):
    from dashboard.suites.shipped.edge.contract import answer_problems

    def problems(contract: dict | None) -> list[str]:
        target, answers = _contracted(http, contract)
        return [p for a in answers for p in answer_problems(target.contract or _no_contract(), a)]

    _json_route(http, "/functions/v1/hello", {"data": {"message": "hi"}, "items": [1, "two"]})
    body = {"message": "string", "items": ["number"]}
    wrapped = problems({"body": body})
    assert "body.message: missing (keys there: data, items)" in wrapped
    assert "body.items[1]: expected number, got string" in wrapped
    assert problems(None) == [] and problems({"content_type": "application/json"}) == []
    _json_route(http, "/functions/v1/hello", {"message": "hi", "items": [1, 2.5]}, content_type="text/plain")
    assert problems({"body": body}) == []
    assert set(problems({"content_type": "application/json"})) == {
        "content type text/plain (expected application/json)"}
    # Type words are a closed list, and every problem names its key path.
    assert _problems({"edge": [{"name": "f", "url": "http://127.0.0.1:1/f",
                                "contract": {"body": {"n": {"deep": "strnig"}, "list": ["a", "b"]},
                                             "content_type": "json"}}]}) == [
        'edge[0].contract.content_type: expected a media type such as "application/json" (no parameters) '
        "(got 'json')",
        "edge[0].contract.body.n.deep: unknown type; expected one of string, number, integer, boolean, null, "
        "object, array, any, a table or a one-item array (got 'strnig')",
        "edge[0].contract.body.list: an array shape names its items' shape once, such as [\"number\"] "
        "(got ['a', 'b'])"]


def _no_contract():
    from dashboard.config_types import EdgeContract

    return EdgeContract()


def test_edge_contract_latency_ms_and_samples_set_the_budget_and_the_calls(http):
    from dashboard.suites.shipped.edge.contract import budget_ms, percentile

    _json_route(http, "/functions/v1/hello", {"message": "hi"}, delay=0.15)
    http.hits.clear()
    target, answers = _contracted(http, {"samples": 3})
    assert http.hits["/functions/v1/hello"] == 4 and [a.timed for a in answers] == [False, True, True, True]
    target, answers = _contracted(http, None)
    assert http.hits["/functions/v1/hello"] == 4 + 6                       # default: 5 timed calls
    p95 = percentile([a.elapsed_ms for a in answers if a.timed], 0.95)
    assert p95 >= 150 and budget_ms(target, 0.8) == 800.0               # default: the config's timeout
    tight, _ = _contracted(http, {"latency_ms": 100, "samples": 1})
    assert budget_ms(tight, 0.8) == 100.0 < p95                           # the same function, now too slow
    assert _problems({"edge": [{"name": "f", "url": "http://127.0.0.1:1/f",
                                "contract": {"latency_ms": 0, "samples": 1000}}]}) == [
        "edge[0].contract.latency_ms: must be more than 0 and at most 60000 (a minute) (got 0)",
        "edge[0].contract.samples: must be from 1 to 100 (got 1000)"]


def test_edge_contract_request_body_is_sent_as_json(http):
    seen = _recording(http, "/functions/v1/hello", body=b'{"message": "hi"}')
    _contracted(http, {"samples": 1}, method="POST")
    assert seen[-1]["body"] == b"" and "Content-Type" not in seen[-1]["headers"]
    _contracted(http, {"samples": 1, "request_body": {"name": "scaledash", "n": [1, 2]}}, method="POST")
    assert json.loads(seen[-1]["body"]) == {"name": "scaledash", "n": [1, 2]}
    assert seen[-1]["headers"]["Content-Type"] == "application/json"
    assert _problems({"edge": [{"name": "f", "url": "http://127.0.0.1:1/f",
                                "contract": {"request_body": {"name": "x"}}}]}) == [
        "edge[0].contract.request_body: only applies to method POST or PUT (GET sends no body)"]


def test_edge_contract_is_what_the_edge_suite_checks_the_shape_against(http, write_config):
    _json_route(http, "/functions/v1/hello", {"message": "hi"})
    edge = f'[[edge]]\nname = "hello"\nurl = "{http.url("/functions/v1/hello")}"\n'
    shape = "test_edge_functions::test_function_answers_the_shape_its_contract_declares[hello]"
    bare = json.loads(run_cli("suite", "run", "edge", "--json", "--config", str(write_config(edge, "bare.toml"))).out)
    assert bare["verdict"] == "PASSED" and bare["counts"]["skipped"] == 1, bare
    assert [s["name"] for s in bare["skips"]] == [shape]
    assert "no [edge.contract] content_type or body" in bare["skips"][0]["reason"]
    contract = edge + '[edge.contract]\nbody = { message = "string" }\n'
    checked = json.loads(run_cli("suite", "run", "edge", "--json", "--config",
                                 str(write_config(contract, "contract.toml"))).out)
    assert checked["verdict"] == "PASSED" and checked["counts"] == {"passed": 3, "failed": 0, "skipped": 0,
                                                                    "errors": 0}, checked
    wrong = contract.replace('"string"', '"integer"')
    failed = run_cli("suite", "run", "edge", "--json", "--config", str(write_config(wrong, "wrong.toml")))
    assert failed.code == 1 and [f["name"] for f in json.loads(failed.out)["failures"]] == [shape], failed.text


def test_cdn_url_reads_hit_or_miss_as_the_named_row(http):
    _recording(http, "/hit.js", headers={"X-Cache": "Hit from cloudfront"})
    _recording(http, "/miss.js", headers={"CF-Cache-Status": "MISS"})
    snap = _run({"cdn": [{"name": "hot", "url": http.url("/hit.js")}, {"name": "cold", "url": http.url("/miss.js")}]},
                rounds=1)
    assert component(snap, "hot").metrics["cache_status"] == "HIT"
    assert component(snap, "cold").metrics["cache_status"] == "MISS"


def test_each_targets_own_interval_sets_its_next_probe(pg, redis_server, http):
    http.routes["/metrics"] = scaledash_metrics()
    http.set("/ok", "ok", headers={"X-Cache": "HIT"})
    own = {"interval": "5s"}
    doc = {"interval": "400ms", "timeout": "350ms",
           "replica": [{"name": "db", "dsn": pg.dsn(pg.primary), "password": PG_PASSWORD, **own}],
           "cache": [{"name": "redis", "url": redis_server.url(), "password": REDIS_PASSWORD, **own}],
           "source": [{"name": "app", "scrape": http.url("/metrics"), **own}],
           "edge": [{"name": "fn", "url": http.url("/ok"), **own}, {"name": "control", "url": http.url("/ok")}],
           "cdn": [{"name": "asset", "url": http.url("/ok"), **own}]}
    cfg = validate(doc, "keys.toml")

    async def scenario():
        engine = Engine(cfg)
        engine.start()
        try:
            while any(s.age_s is None for s in engine.snapshot().sources):
                await asyncio.sleep(0.05)
            return engine.snapshot()
        finally:
            await engine.close()

    snap = asyncio.run(asyncio.wait_for(scenario(), 30))
    waits = {s.target: s.next_probe_in_s for s in snap.sources}
    assert waits["control"] < 1.0, waits                    # the global interval (0.4 s)
    for target in ("db", "redis", "app", "fn", "asset"):
        assert waits[target] > 1.0, (target, waits)         # its own: next probe seconds away


def test_an_own_interval_below_the_global_one_warns_that_the_global_one_wins():
    edge = {"name": "fn", "url": "http://127.0.0.1:1/fn"}
    cfg = validate({"interval": "2s", "edge": [edge, {**edge, "name": "quick", "interval": "500ms"}]})
    assert cfg.warnings == ("edge[1].interval: 0.5s is below the global interval 2s, "
                            "which this target follows instead",)
    assert validate({"interval": "2s", "edge": [{**edge, "interval": "5s"}]}).warnings == ()


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def tls_server_context(tmp_path_factory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 (the openssl CLI; ~0.1 s)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class TlsFront:
    """TLS with a self-signed certificate in front of a plain loopback server (HTTP or Redis)."""

    def __init__(self, context: ssl.SSLContext, backend_port: int):
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: None)   # refused handshakes are the point
        ready = threading.Event()

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", backend_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        async def main():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(main()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def tls_front(tls_server_context):
    fronts: list[TlsFront] = []

    def start(backend_port: int) -> TlsFront:
        fronts.append(TlsFront(tls_server_context, backend_port))
        return fronts[-1]

    yield start
    for front in fronts:
        front.close()


@pytest.mark.parametrize("section", ["edge", "cdn", "scrape", "prometheus", "cache"])
def test_insecure_lets_a_self_signed_tls_server_pass(section, http, redis_server, tls_front):
    http.set("/ok", "ok", headers={"X-Cache": "HIT"})
    http.routes["/metrics"] = scaledash_metrics()
    http.routes["/api/v1/query"] = _prometheus_answer
    front = tls_front(redis_server.port if section == "cache" else http.port)
    base = f"https://127.0.0.1:{front.port}"
    target = {
        "edge": ("edge", {"url": f"{base}/ok"}),
        "cdn": ("cdn", {"url": f"{base}/ok"}),
        "scrape": ("source", {"scrape": f"{base}/metrics"}),
        "prometheus": ("source", {"prometheus": base}),
        "cache": ("cache", {"url": f"rediss://127.0.0.1:{front.port}/0", "password": REDIS_PASSWORD}),
    }
    key, fields = target[section]
    doc = {key: [{"name": "tls", **fields}]}
    refused = _source(_run(doc, rounds=1), "tls")
    assert refused.state is State.ERROR and "TLS verification failed" in refused.reason, refused
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        passed = _source(_run({key: [{"name": "tls", **fields, "insecure": True}]}, rounds=1), "tls")
    assert passed.state is State.OK, passed
    assert not [w for w in printed if "Unverified HTTPS" in str(w.message)]    # no line per request


@pytest.mark.parametrize("section, fields, scheme", [
    ("edge", {"url": "http://127.0.0.1:1/fn"}, "https://"),
    ("cdn", {"url": "http://127.0.0.1:1/a.js"}, "https://"),
    ("source", {"scrape": "http://127.0.0.1:1/metrics"}, "https://"),
    ("cache", {"url": "redis://127.0.0.1:1/0"}, "rediss://"),
])
def test_insecure_on_a_plain_url_is_refused_as_doing_nothing(section, fields, scheme):
    problems = _problems({section: [{"name": "plain", **fields, "insecure": True}]})
    assert problems == [f"{section}[0].insecure: only applies to a {scheme} URL "
                        "(no TLS, no certificate to check) (got True)"]
    validate({section: [{"name": "plain", **fields, "insecure": False}]})     # the default, said aloud
