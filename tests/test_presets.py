"""Presets for well-known exporters: real (or exactly modelled) exposition in, readings out.

Fixtures under tests/fixtures/metrics/: postgres_exporter*.txt and redis_exporter*.txt were
captured from the Debian exporters run against a real PostgreSQL 15 / Redis 7; the
resilience4j and supabase ones are modelled on published captures (see their headers).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dashboard.kinds import breaker as breaker_kind
from dashboard.kinds import cache as cache_kind
from dashboard.kinds import replica as replica_kind
from dashboard.model import Kind, State
from dashboard.presets import get
from dashboard.presets.base import MetricSpec, Series
from dashboard.presets.exposition import parse_text

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
PRESETS = ("resilience4j", "redis_exporter", "postgres_exporter", "supabase")


def read(preset: str, fixture: str, source: str = "src"):
    return get(preset).interpret(parse_text((FIXTURES / fixture).read_text()), source)


def by_name(readings):
    return {r.name: r for r in readings}


# --- resilience4j -------------------------------------------------------------------------


def test_resilience4j_makes_one_breaker_per_name_label():
    readings = read("resilience4j", "resilience4j.txt")
    assert {r.name for r in readings} == {"backendA", "backendB", "backendC"}
    assert all(r.kind is Kind.BREAKER for r in readings)


def test_resilience4j_percent_failure_rate_becomes_fraction():
    assert by_name(read("resilience4j", "resilience4j.txt"))["backendA"].figures["failure_rate"] == 0.25


def test_resilience4j_minus_one_failure_rate_means_not_enough_calls():
    figures = by_name(read("resilience4j", "resilience4j.txt"))["backendC"].figures
    assert figures["failure_rate"] is None
    assert figures["slow_call_rate"] is None


def test_resilience4j_state_is_the_series_at_one():
    readings = by_name(read("resilience4j", "resilience4j.txt"))
    assert readings["backendA"].figures["state"] == "closed"
    assert readings["backendB"].figures["state"] == "open"   # forced_open rejects like open


def test_resilience4j_counts_calls_by_kind_and_ignores_ignored_calls():
    figures = by_name(read("resilience4j", "resilience4j.txt"))["backendA"].figures
    assert figures["success_total"] == 30.0
    assert figures["failure_total"] == 10.0
    assert figures["rejected_total"] == 0.0
    assert not any("ignored" in key for key in figures)


def test_resilience4j_not_permitted_calls_are_rejected_calls():
    assert by_name(read("resilience4j", "resilience4j.txt"))["backendB"].figures["rejected_total"] == 17.0


@pytest.mark.parametrize("state,word", [("disabled", "disabled"), ("metrics_only", "metrics_only"),
                                        ("half_open", "half_open"), ("forced_open", "open")])
def test_resilience4j_state_words(state, word):
    s = Series("resilience4j_circuitbreaker_state", {"name": "b", "state": state}, 1.0)
    [reading] = get("resilience4j").interpret([s], "src")
    assert reading.figures["state"] == word


def test_resilience4j_own_collector_counts_when_micrometer_is_absent():
    series = [Series("resilience4j_circuitbreaker_calls_total", {"name": "b", "kind": kind}, value)
              for kind, value in (("successful", 8.0), ("failed", 2.0), ("not_permitted", 5.0), ("ignored", 1.0))]
    [reading] = get("resilience4j").interpret(series, "src")
    assert reading.figures == {"success_total": 8.0, "failure_total": 2.0, "rejected_total": 5.0}


def test_resilience4j_never_counts_the_same_calls_twice():
    series = [
        Series("resilience4j_circuitbreaker_calls_seconds_count", {"name": "b", "kind": "successful"}, 8.0),
        Series("resilience4j_circuitbreaker_calls_total", {"name": "b", "kind": "successful"}, 8.0),
        Series("resilience4j_circuitbreaker_calls_total", {"name": "b", "kind": "not_permitted"}, 3.0),
        Series("resilience4j_circuitbreaker_not_permitted_calls_total", {"name": "b", "kind": "not_permitted"}, 3.0),
    ]
    [reading] = get("resilience4j").interpret(series, "src")
    assert reading.figures["success_total"] == 8.0
    assert reading.figures["rejected_total"] == 3.0


def test_resilience4j_worst_instance_wins_when_instances_disagree():
    series = [
        Series("resilience4j_circuitbreaker_state", {"name": "b", "state": "closed", "instance": "a:8080"}, 1.0),
        Series("resilience4j_circuitbreaker_state", {"name": "b", "state": "open", "instance": "b:8080"}, 1.0),
        Series("resilience4j_circuitbreaker_failure_rate", {"name": "b", "instance": "a:8080"}, 10.0),
        Series("resilience4j_circuitbreaker_failure_rate", {"name": "b", "instance": "b:8080"}, 70.0),
    ]
    [reading] = get("resilience4j").interpret(series, "src")
    assert reading.figures["state"] == "open"
    assert reading.figures["failure_rate"] == pytest.approx(0.7)


def test_resilience4j_rated_calls_feed_the_breaker_kind():
    series = [
        Series("resilience4j_circuitbreaker_calls_seconds_count", {"name": "b", "kind": "successful"}, 9.0, rate=True),
        Series("resilience4j_circuitbreaker_calls_seconds_count", {"name": "b", "kind": "failed"}, 1.0, rate=True),
        Series("resilience4j_circuitbreaker_not_permitted_calls_total", {"name": "b", "kind": "not_permitted"}, 2.0,
               rate=True),
    ]
    [reading] = get("resilience4j").interpret(series, "src")
    metrics = breaker_kind.derive(reading, None, None)
    assert metrics["calls_per_s"] == 10.0
    assert metrics["rejected_per_s"] == 2.0
    assert metrics["failure_rate"] == pytest.approx(0.1)


# --- redis_exporter -----------------------------------------------------------------------


def test_redis_exporter_capture_is_one_cache_in_the_redis_layer():
    [reading] = read("redis_exporter", "redis_exporter.txt", "sessions")
    assert (reading.kind, reading.name, reading.detail, reading.state) == (Kind.CACHE, "sessions", "redis", None)
    figures = reading.figures
    assert (figures["hits_total"], figures["misses_total"]) == (30.0, 30.0)
    assert figures["ops_total"] == 3092.0
    assert figures["evictions_total"] == 2042.0
    assert figures["memory_bytes"] == 2098312.0


def test_redis_exporter_redis_up_zero_is_down():
    [reading] = read("redis_exporter", "redis_exporter_down.txt", "sessions")
    assert reading.state is State.DOWN
    assert reading.reason == "redis_up == 0 (via exporter)"
    assert reading.detail == "redis"


def test_redis_exporter_names_each_redis_by_instance_when_several():
    series = [Series("redis_up", {"instance": inst}, up) for inst, up in (("r1:6379", 1.0), ("r2:6379", 0.0))]
    series.append(Series("redis_keyspace_hits_total", {"instance": "r1:6379"}, 4.0, rate=True))
    readings = by_name(get("redis_exporter").interpret(series, "redis"))
    assert set(readings) == {"redis/r1:6379", "redis/r2:6379"}
    assert readings["redis/r2:6379"].state is State.DOWN
    assert readings["redis/r1:6379"].figures["hits_per_s"] == 4.0


def test_redis_exporter_rated_series_give_a_windowed_hit_rate():
    series = [Series("redis_keyspace_hits_total", {}, 9.0, rate=True),
              Series("redis_keyspace_misses_total", {}, 1.0, rate=True),
              Series("redis_commands_processed_total", {}, 50.0, rate=True)]
    [reading] = get("redis_exporter").interpret(series, "redis")
    metrics = cache_kind.derive(reading, None, None)
    assert metrics["hit_rate"] == pytest.approx(0.9)
    assert metrics["ops_per_s"] == 50.0


# --- postgres_exporter --------------------------------------------------------------------


def test_postgres_exporter_primary_capture_is_a_primary_with_its_standby():
    [reading] = read("postgres_exporter", "postgres_exporter.txt", "db-main")
    assert (reading.kind, reading.name, reading.state) == (Kind.REPLICA, "db-main", None)
    figures = reading.figures
    assert figures["role"] == "primary"
    assert figures["writable"] is True
    assert (figures["lag_bytes"], figures["lag_seconds"]) == (0, 0.0)
    assert figures["streaming_replicas"] == 1
    assert figures["xact_total"] > 0


def test_postgres_exporter_standby_capture_reads_role_and_lag():
    [reading] = read("postgres_exporter", "postgres_exporter_replica.txt", "db-replica")
    figures = reading.figures
    assert figures["role"] == "replica"
    assert figures["writable"] is False
    assert figures["lag_seconds"] == pytest.approx(0.004951)
    assert "lag_bytes" not in figures   # a standby's own exporter has no byte lag


def test_postgres_exporter_pg_up_zero_is_down():
    [reading] = read("postgres_exporter", "postgres_exporter_down.txt", "db-main")
    assert reading.state is State.DOWN
    assert reading.reason == "pg_up == 0 (via exporter)"


def test_postgres_exporter_newer_replication_collector_wins():
    series = [Series("pg_replication_is_replica", {}, 1.0), Series("pg_settings_in_hot_standby", {}, 0.0),
              Series("pg_replication_lag_seconds", {}, 2.5), Series("pg_replication_lag", {}, 900.0)]
    [reading] = get("postgres_exporter").interpret(series, "db")
    assert reading.figures["role"] == "replica"
    assert reading.figures["lag_seconds"] == 2.5


def test_postgres_exporter_counter_read_under_promql_and_parser_spellings():
    # PromQL sees the wire name; prometheus_client's parser appends `_total` to it.
    promql = [Series("pg_stat_database_xact_commit", {"datname": "app"}, 30.0, rate=True),
              Series("pg_stat_database_xact_rollback", {"datname": "app"}, 2.0, rate=True)]
    [reading] = get("postgres_exporter").interpret(promql, "db")
    assert replica_kind.derive(reading, None, None)["xact_per_s"] == 32.0
    parsed = parse_text("# TYPE pg_stat_database_xact_commit counter\npg_stat_database_xact_commit 7\n")
    [reading] = get("postgres_exporter").interpret(parsed, "db")
    assert reading.figures["xact_total"] == 7.0


def test_postgres_exporter_names_nodes_by_instance_when_several():
    series = [Series("pg_up", {"instance": "a:9187"}, 1.0),
              Series("pg_settings_in_hot_standby", {"instance": "a:9187"}, 0.0),
              Series("pg_up", {"instance": "b:9187"}, 0.0)]
    readings = by_name(get("postgres_exporter").interpret(series, "pg"))
    assert readings["pg/a:9187"].figures["role"] == "primary"
    assert readings["pg/b:9187"].state is State.DOWN


# --- supabase -----------------------------------------------------------------------------

REF = "abcdefghijklmnopqrst"
REPLICA_ID = f"{REF}-rr-us-east-1-abcde"


def supabase_series(name: str, value: float, identifier: str = REF, **labels) -> Series:
    base = {"supabase_project_ref": REF, "supabase_identifier": identifier, "service_type": "postgresql",
            "server": "localhost:5432"}
    return Series(name, {**base, **labels}, value)


def test_supabase_project_database_is_the_primary():
    [reading] = read("supabase", "supabase.txt", "supabase")
    assert (reading.kind, reading.name, reading.state) == (Kind.REPLICA, "supabase", None)
    figures = reading.figures
    assert figures["role"] == "primary"
    assert figures["lag_seconds"] == 0.0
    assert figures["replay_paused"] is False
    assert figures["xact_total"] == 2477.0          # commits + rollbacks
    assert "connected_to_primary" not in figures    # 0 on a primary means nothing


def test_supabase_read_replica_gets_a_row_of_its_own():
    series = [
        supabase_series("pg_status_in_recovery", 0.0),
        supabase_series("pg_status_in_recovery", 1.0, REPLICA_ID),
        supabase_series("physical_replication_lag_physical_replication_lag_seconds", 1.5, REPLICA_ID),
        supabase_series("physical_replication_lag_is_connected_to_primary", 1.0, REPLICA_ID),
    ]
    readings = by_name(get("supabase").interpret(series, "supabase"))
    assert readings["supabase"].figures["role"] == "primary"
    replica = readings[f"supabase/{REPLICA_ID}"].figures
    assert (replica["role"], replica["lag_seconds"], replica["connected_to_primary"]) == ("replica", 1.5, True)


def test_supabase_replica_is_recognised_by_its_identifier_alone():
    series = [supabase_series("pg_up", 1.0), supabase_series("pg_up", 1.0, REPLICA_ID)]
    readings = by_name(get("supabase").interpret(series, "supabase"))
    assert readings[f"supabase/{REPLICA_ID}"].figures["role"] == "replica"


def test_supabase_reads_the_lag_name_given_in_its_docs():
    series = [supabase_series("physical_replication_lag_physical_replica_lag_seconds", 3.0)]
    [reading] = get("supabase").interpret(series, "supabase")
    assert reading.figures["lag_seconds"] == 3.0


def test_supabase_pg_up_zero_is_down():
    [reading] = get("supabase").interpret([supabase_series("pg_up", 0.0)], "supabase")
    assert reading.state is State.DOWN
    assert reading.reason == "pg_up == 0 (via Supabase Metrics API)"


# --- every preset -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_declares_the_metrics_prometheus_should_query(preset):
    metrics = get(preset).METRICS
    assert metrics and all(isinstance(m, MetricSpec) for m in metrics)
    assert all(m.type in ("counter", "gauge", "histogram") for m in metrics)


COUNTERS = [(p, m.name) for p in PRESETS for m in get(p).METRICS if m.type == "counter"]


@pytest.mark.parametrize("preset,metric", COUNTERS)
def test_prometheus_rated_counters_become_per_second_figures(preset, metric):
    labels = {"name": "b", "kind": "successful", "instance": "host:1", "supabase_project_ref": REF}
    readings = get(preset).interpret([Series(metric, labels, 3.0, rate=True)], "src")
    keys = [k for r in readings for k in r.figures]
    assert any(k.endswith("_per_s") for k in keys), keys
    assert not any(k.endswith("_total") for k in keys), keys


GARBAGE = [
    Series("resilience4j_circuitbreaker_state", {}, 1.0),                                   # no name
    Series("resilience4j_circuitbreaker_state", {"name": "b", "state": "exploded"}, 1.0),
    Series("resilience4j_circuitbreaker_failure_rate", {"name": "b"}, math.nan),
    Series("resilience4j_circuitbreaker_slow_call_rate", {"name": "b"}, math.inf),
    Series("resilience4j_circuitbreaker_calls_seconds_count", {"name": "b", "kind": "weird"}, 1.0),
    Series("resilience4j_circuitbreaker_calls_total", {"name": "b"}, math.nan),
    Series("redis_up", {}, math.nan),
    Series("redis_keyspace_hits_total", {"instance": ""}, -math.inf),
    Series("redis_memory_used_bytes", {"addr": "x"}, math.nan),
    Series("pg_up", {"server": "s"}, math.nan),
    Series("pg_settings_in_hot_standby", {}, math.nan),
    Series("pg_replication_lag", {"server": "s"}, math.nan),
    Series("pg_stat_replication_pg_wal_lsn_diff", {}, math.nan),
    Series("pg_stat_database_xact_commit_total", {"datname": 'a"b'}, math.nan),
    Series("pg_status_in_recovery", {"supabase_project_ref": REF}, math.nan),
    Series("physical_replication_lag_is_wal_replay_paused", {"supabase_identifier": "x"}, math.nan),
    Series("physical_replication_lag_physical_replication_lag_seconds", {}, math.nan),
    Series("unrelated_metric", {"le": "nope"}, 1e308),
]


@pytest.mark.parametrize("preset", PRESETS)
def test_garbage_series_do_not_raise(preset):
    readings = get(preset).interpret(iter(GARBAGE), "src")
    assert isinstance(readings, list)
    assert get(preset).interpret([], "src") == []


def test_nan_failure_rate_is_passed_on_for_the_kind_to_flag():
    s = Series("resilience4j_circuitbreaker_failure_rate", {"name": "b"}, math.nan)
    [reading] = get("resilience4j").interpret([s], "src")
    assert math.isnan(reading.figures["failure_rate"])


def test_nan_role_signal_leaves_the_role_unknown():
    [reading] = get("postgres_exporter").interpret([Series("pg_settings_in_hot_standby", {}, math.nan)], "db")
    assert "role" not in reading.figures


@pytest.mark.parametrize("preset,fixture", [
    ("resilience4j", "redis_exporter.txt"), ("redis_exporter", "postgres_exporter.txt"),
    ("postgres_exporter", "resilience4j.txt"), ("supabase", "redis_exporter.txt"),
])
def test_preset_finds_nothing_in_another_exporters_output(preset, fixture):
    assert read(preset, fixture) == []


@pytest.mark.parametrize("fixture, preset", [
    ("postgres_exporter.txt", "postgres_exporter"), ("postgres_exporter_replica.txt", "postgres_exporter"),
    ("redis_exporter.txt", "redis_exporter"), ("resilience4j.txt", "resilience4j"), ("supabase.txt", "supabase"),
])
def test_prefiltering_a_body_keeps_every_reading_the_preset_finds(fixture, preset):
    from dashboard.presets import get
    from dashboard.presets.exposition import family_prefixes, parse_text, prefilter

    module = get(preset)
    text = (FIXTURES / fixture).read_text()
    filtered = prefilter(text, family_prefixes(module.METRICS))
    assert len(filtered) < len(text)
    assert module.interpret(parse_text(filtered), "src") == module.interpret(parse_text(text), "src")
