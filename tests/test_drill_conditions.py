"""Drill conditions judged on snapshots built by hand: every comparison on both sides.

A drill's steady state, pre-flight and waits are conditions on the engine's figures
(dashboard/drills/conditions.py). A condition met by mistake starts a drill on a
broken stack or ends a wait too early, so each operator is shown met and not met, a
missing or non-finite figure is shown never met (and saying why), and a condition
that does not read is refused with one line, also by the catalog that lists it.
"""

from __future__ import annotations

import math

import pytest

from dashboard.config import validate
from dashboard.drills import catalog
from dashboard.drills.conditions import Condition, ConditionError
from dashboard.model import Component, Kind, Kpi, Snapshot, State


def row(kind: Kind, name: str, row_state: State = State.OK, source: str = "postgres", **metrics) -> Component:
    return Component(kind, name, row_state, None, source, name, 0.1, metrics)


def snap(*components: Component, kpis: tuple[Kpi, ...] = ()) -> Snapshot:
    return Snapshot(0.0, tuple(components), (), kpis)


def judge(text: str, *components: Component, kpis: tuple[Kpi, ...] = ()) -> tuple[bool, str]:
    return Condition.parse(text).judge(snap(*components, kpis=kpis))


def lag(value) -> Snapshot:
    return snap(row(Kind.REPLICA, "replica-1", lag_bytes=value))


# ------------------------------------------------------------------ numbers

@pytest.mark.parametrize("op, met_at, missed_at", [
    ("<", 99, 100), ("<=", 100, 101), (">", 101, 100), (">=", 100, 99), ("==", 100, 101), ("!=", 101, 100),
])
def test_each_comparison_is_met_on_one_side_and_missed_on_the_other(op, met_at, missed_at):
    condition = Condition.parse(f"replica/replica-1.lag_bytes {op} 100")
    assert condition.judge(lag(met_at)) == (True, f"{float(met_at):.4g}")
    assert condition.judge(lag(missed_at)) == (False, f"{float(missed_at):.4g}")


@pytest.mark.parametrize("limit, inside, outside", [
    ("1MiB", 1024 ** 2 - 1, 1024 ** 2), ("2KiB", 2047, 2048), ("1GiB", 1024 ** 3 - 1, 1024 ** 3),
    ("10B", 9, 10), ("250ms", 0.249, 0.25), ("2s", 1.99, 2.0), ("1%", 0.0099, 0.01), ("1e3", 999, 1000),
])
def test_units_scale_the_limit(limit, inside, outside):
    condition = Condition.parse(f"replica/replica-1.lag_bytes < {limit}")
    assert condition.judge(lag(inside))[0] is True
    assert condition.judge(lag(outside))[0] is False


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_a_non_finite_figure_meets_no_condition(value, op):
    met, seen = Condition.parse(f"replica/replica-1.lag_bytes {op} 0").judge(lag(value))
    assert met is False, (op, value)
    assert seen in ("nan", "inf", "-inf")


def test_a_non_finite_kpi_meets_no_condition():
    for value in (math.nan, math.inf):
        kpi = Kpi("error_rate", "Errors", value, "< 0.01", None)
        assert judge("kpi.error_rate < 1%", kpis=(kpi,))[0] is False
        assert judge("kpi.error_rate != 1", kpis=(kpi,))[0] is False


def test_every_row_of_one_kind_and_name_must_hold():
    # One row per source (the node itself and its exporter): the worst one decides.
    direct = row(Kind.REPLICA, "replica-1", lag_bytes=10)
    exporter = row(Kind.REPLICA, "replica-1", source="prometheus", lag_bytes=5000)
    assert judge("replica/replica-1.lag_bytes < 1KiB", direct) == (True, "10")
    assert judge("replica/replica-1.lag_bytes < 1KiB", direct, exporter) == (False, "10, 5000")


# ------------------------------------------------------------------ missing figures

def test_a_missing_figure_is_not_met_and_says_which():
    assert judge("replica/replica-1.lag_bytes < 1MiB", row(Kind.REPLICA, "replica-1", State.DOWN)) == (
        False, "replica/replica-1 has no figure lag_bytes (DOWN)")
    assert judge("replica/replica-9.lag_bytes < 1MiB", row(Kind.REPLICA, "replica-1", lag_bytes=0)) == (
        False, "no replica named replica-9 on screen")
    assert Condition.parse("replica/replica-1.lag_bytes < 1MiB").judge(None) == (False, "no snapshot yet")
    # `!=` is no escape: a figure nobody reports is not "different from 5".
    assert judge("replica/replica-1.lag_bytes != 5", row(Kind.REPLICA, "replica-1"))[0] is False


def test_a_missing_kpi_or_kpi_value_is_not_met_and_says_why():
    unknown = Kpi("error_rate", "Errors", None, "< 0.01", None, "no traffic")
    assert judge("kpi.error_rate < 1%") == (False, "no KPI named error_rate")
    assert judge("kpi.error_rate < 1%", kpis=(unknown,)) == (False, "KPI error_rate has no value (no traffic)")
    assert judge("kpi.error_rate.met == true", kpis=(unknown,)) == (False, "KPI error_rate unknown")
    assert judge("kpi.error_rate.met == false", kpis=(unknown,))[0] is False


# ------------------------------------------------------------------ words: states, roles, booleans

@pytest.mark.parametrize("state, at_most_degraded", [
    (State.OK, True), (State.NO_DATA, True), (State.DEGRADED, True),
    (State.STALE, False), (State.ERROR, False), (State.DOWN, False),
])
def test_state_words_compare_by_severity(state, at_most_degraded):
    node = row(Kind.REPLICA, "replica-1", state)
    assert judge("replica/replica-1.state <= DEGRADED", node)[0] is at_most_degraded
    assert judge("replica/replica-1.state > DEGRADED", node)[0] is not at_most_degraded
    assert judge("replica/replica-1.state == OK", node)[0] is (state is State.OK)
    assert judge("replica/replica-1.state != OK", node)[0] is (state is not State.OK)


def test_state_words_read_in_any_case():
    assert judge("cache/redis.state == ok", row(Kind.CACHE, "redis", source="redis"))[0] is True
    assert judge("cache/redis.state == down", row(Kind.CACHE, "redis", source="redis"))[0] is False


def test_overall_is_the_worst_state_on_screen():
    calm = (row(Kind.REPLICA, "a"), row(Kind.CACHE, "redis", source="redis"))
    assert judge("overall == OK", *calm) == (True, "OK")
    assert judge("overall <= DEGRADED", calm[0], row(Kind.CACHE, "redis", State.DOWN)) == (False, "DOWN")


def test_breaker_state_word_reads_the_breakers_figure_and_a_state_word_reads_the_row():
    # The breaker row is OK (its source answered) while the breaker itself is open.
    breaker = row(Kind.BREAKER, "upstream", State.DEGRADED, source="scaledash", state="open")
    assert judge("breaker/upstream.state == open", breaker) == (True, "open")
    assert judge("breaker/upstream.state == closed", breaker) == (False, "open")
    assert judge("breaker/upstream.state == DEGRADED", breaker) == (True, "DEGRADED")
    assert judge("breaker/upstream.state == OK", breaker) == (False, "DEGRADED")
    closed = row(Kind.BREAKER, "upstream", source="scaledash", state="closed")
    assert judge("breaker/upstream.state == closed", closed) == (True, "closed")
    assert judge("breaker/upstream.state == OK", closed) == (True, "OK")


def test_roles_compare_as_words_and_never_by_order():
    primary = row(Kind.REPLICA, "db-1", role="primary")
    assert judge("replica/db-1.role == primary", primary) == (True, "primary")
    assert judge("replica/db-1.role == replica", primary) == (False, "primary")
    assert judge("replica/db-1.role != replica", primary) == (True, "primary")
    met, seen = judge("replica/db-1.role < primary", primary)
    assert met is False and "not comparable" in seen


def test_booleans_compare_as_booleans():
    paused = row(Kind.REPLICA, "replica-2", replay_paused=True)
    running = row(Kind.REPLICA, "replica-2", replay_paused=False)
    assert judge("replica/replica-2.replay_paused == true", paused)[0] is True
    assert judge("replica/replica-2.replay_paused == true", running)[0] is False
    assert judge("replica/replica-2.replay_paused == false", running)[0] is True
    assert judge("replica/replica-2.replay_paused != false", running)[0] is False
    assert judge("replica/replica-2.replay_paused > false", paused)[0] is False     # no order on booleans


# ------------------------------------------------------------------ KPIs

def test_kpi_value_and_met_are_both_readable():
    good = Kpi("error_rate", "Errors", 0.005, "< 0.01", True)
    bad = Kpi("error_rate", "Errors", 0.02, "< 0.01", False)
    assert judge("kpi.error_rate < 1%", kpis=(good,)) == (True, "0.005")
    assert judge("kpi.error_rate < 1%", kpis=(bad,)) == (False, "0.02")
    assert judge("kpi.error_rate.met == true", kpis=(good,)) == (True, "True")
    assert judge("kpi.error_rate.met == true", kpis=(bad,)) == (False, "False")
    assert judge("kpi.error_rate.met == false", kpis=(bad,)) == (True, "False")


def test_a_target_name_with_dots_is_read_up_to_the_last_dot():
    node = row(Kind.REPLICA, "db.eu-1", lag_bytes=10)
    assert judge("replica/db.eu-1.lag_bytes < 1KiB", node) == (True, "10")
    assert judge("replica/db.eu-1.lag_bytes > 1KiB", node) == (False, "10")


# ------------------------------------------------------------------ unreadable conditions

@pytest.mark.parametrize("text", [
    "", "   ", "lag < 5", "replica/replica-1.lag_bytes", "replica/replica-1.lag_bytes <", "replica/replica-1 < 5",
    "replica/replica-1.lag_bytes ~= 5", "replica/replica-1.lag_bytes < 5 6", "kpi. < 5", "Replica/x.state == OK",
    "overall", "lag\n< 5",
])
def test_an_unreadable_condition_raises_one_line_naming_it(text):
    with pytest.raises(ConditionError) as caught:
        Condition.parse(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot read condition {text!r}"), message
    assert "expected '<kind>/<name>.<field> <op> <value>'" in message


def test_a_drill_with_an_unreadable_condition_is_disabled_with_that_line():
    doc = {"replica": [{"name": "db", "dsn": "postgresql://monitor@127.0.0.1:1/postgres"}],
           "drills": {"allow": ["db"]},
           "drill": [{"name": "bad-wait", "target": "db",
                      "step": [{"do": "wait", "until": "replica/db.lag_bytes is small"}]},
                     {"name": "bad-steady", "use": "replica-lag", "target": "db", "steady_state": ["db is up"]},
                     {"name": "good", "target": "db", "steady_state": ["replica/db.state == OK"],
                      "step": [{"do": "wait", "until": "replica/db.lag_bytes < 1MiB"}]}]}
    listed = {d.name: d.disabled for d in catalog.listed(validate(doc, "conditions.toml"))}
    assert listed["bad-wait"] == ("cannot read condition 'replica/db.lag_bytes is small': expected "
                                  "'<kind>/<name>.<field> <op> <value>', 'kpi.<name> <op> <value>' or "
                                  "'overall <op> <STATE>'")
    assert listed["bad-steady"].startswith("cannot read condition 'db is up'")
    assert listed["good"] is None


# ------------------------------------------------------------------ plans resolved on a snapshot

def _failover_config():
    nodes = [{"name": n, "dsn": f"postgresql://monitor@127.0.0.1:{i + 1}/postgres"}
             for i, n in enumerate(("primary", "replica-1", "replica-2"))]
    return validate({"replica": nodes, "drills": {"allow": ["primary", "replica-1", "replica-2"],
                                                  "processes": "/tmp/lab.json"},
                     "drill": [{"name": "failover", "use": "failover",
                                "commands": {"promote": ["promote", "{node}"],
                                             "repoint": ["repoint", "{node}", "{primary}"]}}]}, "plan.toml")


def test_a_failover_is_refused_while_a_node_does_not_answer():
    config = _failover_config()
    primary = row(Kind.REPLICA, "primary", role="primary")
    healthy = snap(primary, row(Kind.REPLICA, "replica-1", role="replica", lag_bytes=0),
                   row(Kind.REPLICA, "replica-2", role="replica", lag_bytes=10))
    plan = catalog.plan(config.drills[0], config, healthy)
    assert plan.problems == () and plan.context["candidate"] == "replica-1"
    assert plan.context["replicas"] == "replica-1,replica-2"    # either may be promoted: the one with most WAL
    silent = snap(primary, row(Kind.REPLICA, "replica-1", role="replica", lag_bytes=0),
                  row(Kind.REPLICA, "replica-2", State.UNKNOWN))
    plan = catalog.plan(config.drills[0], config, silent)
    assert plan.problems == ("replica-2 is not answering as a primary or a replica: a failover now would leave "
                             "it behind",)
