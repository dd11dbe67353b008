"""The lab's targets seen on both sides: met on the healthy stack, missed when the
mechanism each one measures is broken on purpose.

tests/test_lab.py sees every KPI met; nothing there would notice a KPI judged "met"
whatever its value. Here each target is broken through the service's admin switches
(POST /admin/faults {"switches": ...}, bearer-guarded) or by stopping processes, and
`scaledash check --json` must report it missed; then the switch is set back and the
target must be met again. One lab serves the whole module; the test that stops the
replicas comes last, since it leaves them stopped.

Waits are for a state, never for a number of seconds: a recovery may take longer
once thresholds hold their state for a while (hysteresis), so they are generous.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, wait_for
from dashboard.lab.stack import Lab
from lab_drive import admin, switch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_S = 45
CHECK_CONFIG = "check-kpis.toml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    the_lab = Lab(tmp_path_factory.mktemp("kpi-lab"))
    the_lab.up(log=lambda line: None)
    try:
        _write_check_config(the_lab)
        yield the_lab
    finally:
        the_lab.down()


def _write_check_config(lab: Lab) -> None:
    """The lab's own config with longer deadlines: on a machine shared with other test
    runs, an 800 ms scrape deadline missed in the second round of `check` leaves the
    rates, and so the KPIs, unknown; this module judges KPIs, not deadlines."""
    text = lab.config_path.read_text()
    slow = text.replace('interval = "1s"\ntimeout = "800ms"', 'interval = "3s"\ntimeout = "2500ms"')
    assert slow != text, "the lab config no longer starts with interval 1s / timeout 800ms"
    (lab.dir / CHECK_CONFIG).write_text(slow)


def _upstream(lab: Lab, failure_rate: float) -> None:
    status, answer = admin(lab, "POST", "/admin/faults", {"upstream": {"failure_rate": failure_rate}})
    assert status == 200, answer


def _check(lab: Lab) -> tuple[int, dict]:
    result = run_cli("check", "--json", "--config", str(lab.dir / CHECK_CONFIG), "--window", "2s")
    assert result.code in (0, 1, 2), result.text
    return result.code, json.loads(result.out)


def _kpi(report: dict, name: str) -> dict:
    return next(k for k in report["kpis"] if k["name"] == name)


def wait_kpi(lab: Lab, name: str, met: bool) -> dict:
    """The first `check` report whose KPI `name` has `met` (True or False, never None)."""
    last: list[dict] = []

    def judged():
        report = _check(lab)[1]
        last[:] = [report]
        return report if _kpi(report, name)["met"] is met else None

    try:
        return wait_for(judged, timeout=WAIT_S, interval=0.5)
    except AssertionError:
        raise AssertionError(f"{name} never {'met' if met else 'missed'} within {WAIT_S}s; "
                             f"{_diagnosis(lab, last[0], name) if last else 'no report'}") from None


def _diagnosis(lab: Lab, report: dict, name: str) -> str:
    """The last KPI, the sources that feed the KPIs, and the tails of the service's and
    the traffic generator's logs: enough to tell a wrong judgement from a stalled lab."""
    sources = {(s.get("name"), s.get("state"), s.get("reason")) for s in report.get("sources", ())}
    tails = {entry.name: Path(entry.log).read_text(errors="replace").splitlines()[-5:]
             for entry in lab.entries() if entry.name in ("service", "traffic") and Path(entry.log).exists()}
    return f"last: {_kpi(report, name)}; sources: {sorted(map(str, sources))}; logs: {tails}"


def _rows(report: dict, kind: str, name: str) -> list[dict]:
    return [c for c in report["components"] if c["kind"] == kind and c["name"] == name]


def test_admin_switches_need_the_bearer_token_and_apply_all_or_nothing(lab):
    status, state = admin(lab, "GET", "/admin/state")
    assert status == 200
    assert state["switches"] == {"quote_fallback": True, "cache_bypass": False, "cache_hit_delay_ms": 0,
                                 "replica_reads": True, "batch_window_ms": 100, "breaker_bypass": False}
    assert admin(lab, "POST", "/admin/faults", {"switches": {"cache_bypass": True}}, token=None)[0] == 401
    assert admin(lab, "POST", "/admin/faults", {"switches": {"cache_bypass": True}},
                  token="wrong-token-123")[0] == 401
    for bad in ({"cache_bypass": True, "batch_window_ms": -1}, {"cache_bypass": True, "no_such": 1},
                {"cache_bypass": "yes"}, {"cache_hit_delay_ms": 10_001}, {"replica_reads": 0}):
        status, answer = admin(lab, "POST", "/admin/faults", {"switches": bad})
        assert status == 400 and "switch" in answer["error"], (bad, answer)
    assert admin(lab, "GET", "/admin/state")[1]["switches"] == state["switches"]   # nothing applied


def _fresh_quote(lab: Lab) -> None:
    """Wait for a quote the upstream answered, not the fallback's stale one: after an
    earlier test failed the upstream, its breaker stays open until its timeout."""
    def fresh() -> bool:
        status, quote = admin(lab, "GET", "/quote", token=None)
        return status == 200 and quote.get("stale") is False
    wait_for(fresh, timeout=60)


def _breaker_degraded(lab: Lab) -> list[dict] | None:
    rows = _rows(_check(lab)[1], "breaker", "upstream")
    return rows if rows and all(row["state"] == "DEGRADED" for row in rows) else None


def test_error_rate_is_met_while_the_fallback_answers_and_missed_without_it(lab):
    wait_kpi(lab, "error_rate", met=True)
    # A good quote first: before one, there is nothing to fall back to.
    _fresh_quote(lab)
    _upstream(lab, 1.0)
    try:
        # The upstream fails every call, but the stale quote answers: no failed request.
        report = wait_kpi(lab, "error_rate", met=True)
        switch(lab, quote_fallback=False)
        report = wait_kpi(lab, "error_rate", met=False)
        assert _kpi(report, "error_rate")["value"] >= 0.01
        # Failed requests miss the error rate at once; the breaker opens only after its
        # failure count, which at the lab's quote rate can take a few more seconds.
        upstream = wait_for(lambda: _breaker_degraded(lab), timeout=WAIT_S, interval=0.5)
        assert upstream and all(row["state"] == "DEGRADED" for row in upstream), upstream
    finally:
        switch(lab, quote_fallback=True)
        _upstream(lab, 0.0)
    wait_kpi(lab, "error_rate", met=True)


def test_error_rate_is_missed_while_the_upstream_fails_with_its_breaker_bypassed(lab):
    _fresh_quote(lab)
    _upstream(lab, 1.0)
    try:
        wait_kpi(lab, "error_rate", met=True)
        assert switch(lab, breaker_bypass=True)["switches"]["breaker_bypass"] is True
        # No breaker, no fallback: the upstream's failure is the answer.
        status, answer = admin(lab, "GET", "/quote", token=None)
        assert status == 502 and "breaker bypassed" in answer["detail"], (status, answer)
        report = wait_kpi(lab, "error_rate", met=False)
        assert _kpi(report, "error_rate")["value"] >= 0.01
    finally:
        switch(lab, breaker_bypass=False)
        _upstream(lab, 0.0)
    wait_kpi(lab, "error_rate", met=True)
    assert admin(lab, "GET", "/admin/state")[1]["switches"]["breaker_bypass"] is False


def test_hit_rate_is_missed_when_the_cache_is_bypassed(lab):
    wait_kpi(lab, "cache_hit_rate", met=True)
    switch(lab, cache_bypass=True)
    try:
        report = wait_kpi(lab, "cache_hit_rate", met=False)
        assert _kpi(report, "cache_hit_rate")["value"] <= 0.8
        layers = _rows(report, "cache", "items")
        assert layers and all(row["state"] == "DEGRADED" for row in layers), layers
    finally:
        switch(lab, cache_bypass=False)
    wait_kpi(lab, "cache_hit_rate", met=True)


def test_cache_speed_up_is_missed_when_hits_are_no_faster_than_the_database(lab):
    wait_kpi(lab, "cache_latency_improvement", met=True)
    switch(lab, cache_hit_delay_ms=50)
    try:
        report = wait_kpi(lab, "cache_latency_improvement", met=False)
        assert _kpi(report, "cache_latency_improvement")["value"] < 0.5
        # The cache still hits; it is only slow. (Not "the hit-rate KPI is met": the lab's
        # hit rate sits at 0.80-0.85, on that target's edge, and dipped under it in one run.)
        assert _kpi(report, "cache_hit_rate")["value"] >= 0.5, _kpi(report, "cache_hit_rate")
    finally:
        switch(lab, cache_hit_delay_ms=0)
    wait_kpi(lab, "cache_latency_improvement", met=True)


def test_frame_reduction_is_missed_without_batching(lab):
    wait_kpi(lab, "websocket_frame_reduction", met=True)
    switch(lab, batch_window_ms=0)
    try:
        report = wait_kpi(lab, "websocket_frame_reduction", met=False)
        assert _kpi(report, "websocket_frame_reduction")["value"] < 0.8
    finally:
        switch(lab, batch_window_ms=100)
    wait_kpi(lab, "websocket_frame_reduction", met=True)


def test_read_offload_is_missed_when_every_read_goes_to_the_primary(lab):
    wait_kpi(lab, "primary_read_offload", met=True)
    switch(lab, replica_reads=False)
    try:
        assert admin(lab, "GET", "/admin/state")[1]["routing"]["reads"] == ["primary"]
        report = wait_kpi(lab, "primary_read_offload", met=False)
        assert _kpi(report, "primary_read_offload")["value"] < 0.8
    finally:
        switch(lab, replica_reads=True)
    wait_kpi(lab, "primary_read_offload", met=True)


def test_replicas_gone_are_down_and_read_offload_is_missed(lab):
    """Last in the module, after the offload test ends met: the replicas stay stopped."""
    wait_kpi(lab, "primary_read_offload", met=True)
    for entry in lab.entries():
        if entry.name in ("postgres-replica-1", "postgres-replica-2"):
            entry.process().stop()
    wait_kpi(lab, "primary_read_offload", met=False)
    code, report = _check(lab)
    assert code == 2 and report["overall"] == "DOWN"
    replicas = {c["name"]: c["state"] for c in report["components"]
                if c["kind"] == "replica" and c["source"] == "postgres"}
    assert replicas == {"primary": "OK", "replica-1": "DOWN", "replica-2": "DOWN"}
