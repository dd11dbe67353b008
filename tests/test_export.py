"""The Prometheus export: what scaledash judged, in Prometheus' own terms.

Both sides of every judgement: the state a row is in reads 1 and the others 0; a met
KPI reads 1, a missed one 0, an unknown one is absent (never a made-up 0); and the
names pass Prometheus' own linter (promtool check metrics) where it is installed.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.export import SnapshotCollector, parse_address
from dashboard.model import Kpi, State
from test_recording import fleet


def exposition(snap) -> str:
    collector = SnapshotCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if snap is not None:
        collector.update(snap)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def state_of(found: dict, name: str) -> dict[str, float]:
    return {dict(labels)["state"]: v for (metric, labels), v in found.items()
            if metric == "scaledash_component_state" and dict(labels)["name"] == name}


def test_each_row_reads_1_for_its_state_and_0_for_every_other():
    found = samples(exposition(fleet(1000.0, replica=State.DOWN, reason="connection refused")))
    replica = state_of(found, "replica-1")
    assert replica == {s.value: (1.0 if s is State.DOWN else 0.0) for s in State}
    assert state_of(found, "primary")["OK"] == 1.0 and state_of(found, "primary")["DOWN"] == 0.0
    overall = {dict(l)["state"]: v for (m, l), v in found.items() if m == "scaledash_overall_state"}
    assert overall["DOWN"] == 1.0 and sum(overall.values()) == 1.0
    source = {dict(l)["state"]: v for (m, l), v in found.items() if m == "scaledash_source_state"}
    assert source["DOWN"] == 1.0 and source["OK"] == 0.0
    assert found[("scaledash_snapshot_timestamp_seconds", ())] == 1000.0


def test_kpis_read_their_value_and_met_or_missed_and_nothing_when_unknown():
    snap = fleet(1000.0)
    snap = type(snap)(**{**snap.__dict__, "kpis": (
        Kpi("cache_hit_rate", "cache hits", 0.91, "> 80 %", True),
        Kpi("error_rate", "errors", 0.05, "< 1 %", False),
        Kpi("failover_seconds", "failover", None, "< 1 s", None),
        Kpi("uptime", "uptime", math.nan, "> 99.9 %", None))})
    found = samples(exposition(snap))
    assert found[("scaledash_kpi", (("name", "cache_hit_rate"),))] == 0.91
    assert found[("scaledash_kpi_met", (("name", "cache_hit_rate"),))] == 1.0
    assert found[("scaledash_kpi", (("name", "error_rate"),))] == 0.05
    assert found[("scaledash_kpi_met", (("name", "error_rate"),))] == 0.0
    for unknown in ("failover_seconds", "uptime"):
        assert ("scaledash_kpi", (("name", unknown),)) not in found
        assert ("scaledash_kpi_met", (("name", unknown),)) not in found


def test_before_the_first_snapshot_nothing_is_exported_rather_than_zeros():
    assert "scaledash_" not in exposition(None)


def test_rows_the_labels_cannot_tell_apart_are_exported_once():
    snap = fleet(1000.0)
    twice = type(snap)(**{**snap.__dict__, "components": snap.components + snap.components[:1]})
    text = exposition(twice)
    assert text.count('scaledash_component_state{detail="",kind="replica",name="primary",state="OK"') == 1


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) is not installed")
def test_promtool_finds_nothing_to_say_about_the_names():
    text = exposition(fleet(1000.0, replica=State.DEGRADED, reason="lag"))
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stdout + lint.stderr


@pytest.mark.parametrize("text, address", [("9465", ("127.0.0.1", 9465)), ("0.0.0.0:9465", ("0.0.0.0", 9465)),
                                           ("[::1]:9465", ("::1", 9465)), (":9465", ("127.0.0.1", 9465))])
def test_an_address_is_host_and_port_or_a_port_on_loopback(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "9465:", "1:99999", "0"])
def test_a_bad_address_says_what_is_expected(text):
    with pytest.raises(ValueError, match="expected host:port or a port"):
        parse_address(text)
