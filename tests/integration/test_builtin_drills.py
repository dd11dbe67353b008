"""Each built-in drill end to end on a real lab, through `scaledash drill run` (issue 10).

One lab for the module; the drills run in an order that leaves it whole for the next:
upstream-fault, replica-lag, redis-outage, then failover and rejoin (which bring it back
to three nodes, the old primary a replica of the new one). Each asserts its verdict,
its figures against sane bounds, both reports with the timeline, and the audit records.
Figures are checked for sanity, not speed (timings belong in tests/bench/).
"""

from __future__ import annotations

import json
import stat

import pytest

from conftest import CANARY, run_cli
from lab_drive import admin, module_lab

pytestmark = pytest.mark.slow

lab = module_lab("drills")


def drill(lab, name: str, *extra: str, timeout: float = 240):
    result = run_cli("drill", "run", name, "--config", str(lab.config_path), "--json", *extra, timeout=timeout)
    assert CANARY not in result.text
    try:
        outcome = json.loads(result.out)
    except ValueError:
        pytest.fail(f"no JSON outcome (exit {result.code}): {result.text[-2000:]}")
    return result, outcome


def reports_of(outcome: dict) -> tuple[str, dict]:
    md = open(outcome["report"]).read()
    data = json.load(open(outcome["report_json"]))
    for path in (outcome["report"], outcome["report_json"], outcome["journal"]):
        import os

        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert "## Timeline" in md and "## Steps" in md
    assert data["verdict"] == outcome["verdict"] and data["timeline"]
    return md, data


def audit_outcomes(lab) -> list[dict]:
    lines = (lab.dir / "drills" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_upstream_fault_opens_and_closes_the_breaker_while_the_fallback_serves(lab):
    result, outcome = drill(lab, "upstream-fault", "--confirm", "service")
    assert result.code == 0, outcome
    assert outcome["verdict"] == "passed"
    f = outcome["figures"]
    assert 0 < f["open_seconds"] < 30 and 0 < f["close_seconds"] < 60
    assert f["fault_error_rate"] is not None and f["fault_error_rate"] < 0.01
    md, data = reports_of(outcome)
    assert any("breaker upstream: state closed -> open" in e["text"] for e in data["timeline"]), data["timeline"]
    assert admin(lab, "GET", "/admin/state")[1]["breakers"]["upstream"]["state"] == "closed"
    records = [r for r in audit_outcomes(lab) if r["run"] == outcome["run"]]
    assert [r["record"] for r in records] == ["intent", "outcome"]
    assert records[1]["outcome"] == "passed" and records[0]["confirmation"] == "--confirm"


def test_replica_lag_moves_reads_away_and_the_lag_returns_to_zero(lab):
    result, outcome = drill(lab, "replica-lag", "--confirm", "replica-1")
    assert result.code == 0, outcome
    f = outcome["figures"]
    assert f["paused_read_share"] is not None and f["paused_read_share"] <= 0.01
    assert 0 <= f["catch_up_seconds"] < 30
    md, data = reports_of(outcome)
    assert any("replica replica-1: OK -> DEGRADED (replay paused)" in e["text"] for e in data["timeline"])
    routing = admin(lab, "GET", "/admin/state")[1]["routing"]
    assert "replica-1" in routing["reads"]


def test_a_wrong_confirmation_or_none_is_refused_and_nothing_acts(lab):
    result, outcome = drill(lab, "replica-lag", "--confirm", "replica-2", "--target", "replica-1")
    assert result.code == 3 and outcome["verdict"] == "refused"
    assert "confirmed for replica-2" in outcome["reason"]
    plain = run_cli("drill", "run", "replica-lag", "--config", str(lab.config_path))
    assert plain.code == 3 and "no terminal to confirm in" in plain.err
    assert admin(lab, "GET", "/admin/state")[1]["routing"]["replicas"]["replica-1"]["replay_paused"] is False


def test_redis_outage_falls_back_to_the_database_and_recovers(lab):
    result, outcome = drill(lab, "redis-outage", "--confirm", "redis")
    assert result.code == 0, outcome
    f = outcome["figures"]
    assert f["outage_error_rate"] is not None and f["outage_error_rate"] < 0.01
    assert f["outage_hit_rate"] is not None and 0 <= f["outage_hit_rate"] <= 1
    assert 0 < f["recovery_seconds"] < 30
    md, data = reports_of(outcome)
    assert any(e["text"].startswith("cache redis: ") and "-> DOWN" in e["text"] for e in data["timeline"]), \
        data["timeline"]
    assert any(e.alive() for e in lab.entries() if e.name == "redis-server")


def test_failover_then_rejoin_leaves_three_streaming_nodes_and_loses_no_acknowledged_write(lab):
    result, outcome = drill(lab, "failover", "--confirm", "primary")
    f = outcome["figures"]
    # The verdict judges failover < 1 s; a loaded CI machine may miss it, so the test
    # asserts sane bounds and the zero loss, and tests/bench/drill_failover.py gives figures.
    assert result.code in (0, 1) and outcome["verdict"] in ("passed", "failed"), outcome
    assert f["lost_writes"] == 0, f
    assert f["old_node"] == "primary" and f["new_node"] in ("replica-1", "replica-2")
    assert 0 < f["failover_seconds"] < 5, f
    assert f["acknowledged"] > 50 and f["failed_writes"] >= 0
    if outcome["verdict"] == "failed":
        assert outcome["reason"].startswith("missed: failover_seconds"), outcome
    md, data = reports_of(outcome)
    assert "promote" in md and "(irreversible)" in md
    assert any(f"replica {f['new_node']}: role replica -> primary" in e["text"] for e in data["timeline"])

    result, rejoined = drill(lab, "rejoin", "--confirm", "primary")
    assert result.code == 0, rejoined
    topology = json.loads(run_cli("lab", "topology", "--json", "--dir", str(lab.dir)).out)["nodes"]
    assert topology["primary"]["role"] == "standby" and topology["primary"]["upstream"] == f["new_node"]
    assert all(n["role"] == "standby" and n["upstream"] == f["new_node"]
               for name, n in topology.items() if name != f["new_node"])
    assert admin(lab, "GET", "/admin/state")[1]["routing"]["writes"] == f["new_node"]


def test_read_only_mode_refuses_the_failover_drill_with_an_audit_record(lab):
    ro = run_cli("--readonly", "drill", "run", "failover", "--config", str(lab.config_path), "--confirm", "x")
    assert ro.code == 3 and "read-only mode" in ro.err
    records = audit_outcomes(lab)
    assert records[-1]["outcome"] == "refused" and "read-only" in records[-1]["reason"]
