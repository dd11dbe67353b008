"""The shipped `performance` suite can pass and can fail: against a healthy lab every A/B
pair passes and its figures are in the output; with a feature broken on the stack as
it runs (its "on" side), the test measuring that feature fails and is named. A config
without the admin token gets the live figures and A/B tests skipped with the reason.

The suite runs as the runner runs it (a pytest subprocess on its own directory and
pytest.ini, SCALEDASH_CONFIG naming the config, results from its JUnit XML). One lab
serves the module; broken-lab runs select their tests with -k.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT
from lab_drive import Case, module_lab, run_shipped, summary, switch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "performance"
lab = module_lab("performance-lab")


def run_suite(config: Path, tmp: Path, *select: str) -> tuple[dict[str, Case], str, Path]:
    return run_shipped(SUITE_DIR, config, tmp, *select)


SPEED_UP = "test_cache_takes_the_p50_read_time_down_by_at_least_half"
OFFLOAD = "test_replicas_take_the_primary_read_load_down_by_at_least_80_percent"
BATCHING = "test_batching_takes_websocket_frames_down_by_at_least_80_percent"
BREAKERS = "test_breakers_keep_the_error_rate_under_1_percent_while_the_upstream_fails"
HIT_RATE = "test_cache_hit_rate_is_over_80_percent_on_the_workload"
QUERIES_SAVED = "test_cache_saves_the_database_most_of_the_workload_s_queries"
LIVE = "test_live_figures_are_measured_whatever_the_stack_allows"
A_B = {SPEED_UP, OFFLOAD, BATCHING, BREAKERS, QUERIES_SAVED}
# One line per pair in the run's "performance figures" section.
PAIR_LINES = [r"replicas: primary reads per request [\d.]+ with replicas vs [\d.]+ primary-only .* down [\d.]+ %",
              r"cache: p50 read time [\d.]+ ms with the cache vs [\d.]+ ms bypassed .* down -?[\d.]+ %",
              r"batching: \d+ WebSocket frames with batching vs \d+ without .* down [\d.]+ %",
              r"breakers: error rate [\d.]+ % with breakers vs [\d.]+ % without \(breaker_bypass=True\)",
              r"cache: hit rate [\d.]+ % on 300 reads",
              r"cache: the workload read the database \d+ times with the cache vs \d+ bypassed: -?\d+ queries saved"]


def test_suite_declares_itself_as_the_runner_expects():
    from dashboard.suites.catalog import shipped_suites
    from dashboard.suites.shipped.performance import SUITE

    assert SUITE == {"kind": "pytest", "description": SUITE["description"], "generates_load": True,
                     "timeout_s": 300}
    assert "\n" not in SUITE["description"] and (SUITE_DIR / "pytest.ini").is_file()
    spec = next(s for s in shipped_suites() if s.name == "performance")
    assert spec.generates_load and spec.directory == SUITE_DIR


def test_performance_suite_passes_against_a_healthy_lab_and_prints_every_pair(lab, tmp_path):
    cases, output, junit = run_suite(lab.config_path, tmp_path)
    assert set(cases) == A_B | {HIT_RATE, LIVE}, sorted(cases)
    assert all(c.outcome == "passed" for c in cases.values()), summary(cases)
    section = output[output.index("performance figures"):]
    for line in PAIR_LINES:
        assert re.search(line, section), f"no figure matching {line!r} in the output: {section[:3000]}"
    print(section[:section.index("\n=")] if "\n=" in section else section)
    properties = {p.get("name") for p in ET.parse(junit).getroot().iter("property")}
    assert {"replicas_primary_read_reduction", "cache_p50_reduction", "batching_frame_reduction",
            "breakers_error_rate_on", "breakers_error_rate_off", "cache_hit_rate",
            "cache_db_reads_saved"} <= properties, sorted(properties)


@pytest.mark.parametrize("broken,healthy,select,failed,says", [
    ({"cache_hit_delay_ms": 50}, {"cache_hit_delay_ms": 0}, "test_cache", SPEED_UP, "the p50 read time down by -"),
    ({"replica_reads": False}, {"replica_reads": True}, "test_replicas", OFFLOAD,
     "took the primary's read load down by"),
    ({"batch_window_ms": 0}, {"batch_window_ms": 100}, "test_batching", BATCHING, "40 frames with it vs 40"),
    ({"quote_fallback": False}, {"quote_fallback": True}, "test_breakers", BREAKERS, "100.0 % of 200 requests"),
], ids=["slow-cache-hits", "no-replica-reads", "no-batching", "no-fallback"])
def test_performance_suite_fails_naming_the_test_when_a_feature_is_broken_on_the_stack(
        lab, tmp_path, broken, healthy, select, failed, says):
    """The switch stays broken for the whole run: the stack as it runs is the "on" side."""
    switch(lab, **broken)
    try:
        cases, output, _ = run_suite(lab.config_path, tmp_path, "-k", select)
    finally:
        switch(lab, **healthy)
    assert failed in cases and cases[failed].outcome == "failed" and says in cases[failed].message, \
        f"{broken}: {cases.get(failed)}"
    # Only the broken feature's test fails: slow hits are still hits, and save the same queries.
    others = {name: c for name, c in cases.items() if name != failed}
    assert all(c.outcome == "passed" for c in others.values()), f"{broken}: {summary(others)}"
    assert "FAILED" in output and failed in output


def test_without_admin_token_the_a_b_tests_skip_and_the_live_figures_still_run(lab, tmp_path):
    text = lab.config_path.read_text()
    config = lab.dir / "no-admin-token.toml"
    config.write_text(re.sub(r"^admin_token = .*\n", "", text, flags=re.MULTILINE))
    assert config.read_text() != text, "the lab's config no longer has an admin_token line"
    cases, output, _ = run_suite(config, tmp_path)
    for name in A_B:
        assert cases[name].outcome == "skipped", cases[name]
        assert "no [service] admin_token" in cases[name].message and "live figures only" in cases[name].message, \
            cases[name]
    assert cases[LIVE].outcome == "passed" and cases[HIT_RATE].outcome == "passed", summary(cases)
    assert "live: A/B pairs not measured" in output and "live: the primary (primary) took" in output, output[-3000:]
