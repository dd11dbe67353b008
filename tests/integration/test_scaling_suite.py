"""The shipped `scaling` suite can pass and can fail: it passes against a healthy lab, and
fails, naming the right test, when the lab is broken on purpose through the service's
admin switches (each set back afterwards). Against a config that lacks `[service]` (or
its admin token) the tests that need it are skipped with the reason, never passed.

The suite runs as the suite runner runs it: a pytest subprocess on the suite's own
directory and pytest.ini, SCALEDASH_CONFIG naming the config, results read from its
JUnit XML. One lab serves the module; broken-lab runs select their test with -k.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from dashboard.lab.stack import Lab
from lab_drive import Case, module_lab, run_shipped, summary
from lab_drive import switch as set_switches

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SUITE_DIR = ROOT / "dashboard" / "suites" / "shipped" / "scaling"
lab = module_lab("scaling-lab")


def run_suite(config: Path, tmp: Path, *select: str) -> dict[str, Case]:
    """The suite's cases by name (parametrized ids kept)."""
    return run_shipped(SUITE_DIR, config, tmp, *select)[0]




def _without(lab: Lab, pattern: str, name: str) -> Path:
    """The lab's config with the lines matching `pattern` removed."""
    text = lab.config_path.read_text()
    changed = re.sub(pattern, "", text, flags=re.MULTILINE)
    assert changed != text, f"the lab's config no longer has {pattern!r}"
    path = lab.dir / name
    path.write_text(changed)
    return path


def test_suite_declares_itself_as_the_runner_expects():
    from dashboard.suites.shipped.scaling import SUITE

    assert SUITE == {"kind": "pytest", "description": SUITE["description"], "generates_load": False,
                     "timeout_s": 600}
    assert "\n" not in SUITE["description"] and (SUITE_DIR / "pytest.ini").is_file()


def test_scaling_suite_passes_against_a_healthy_lab(lab, tmp_path):
    cases = run_suite(lab.config_path, tmp_path)
    assert len(cases) >= 15, sorted(cases)
    assert all(c.outcome == "passed" for c in cases.values()), summary(cases)


@pytest.mark.parametrize("switch,broken,healthy,test,says", [
    ("replica_reads", False, True, "test_reads_are_served_by_replicas_and_writes_by_the_primary",
     "the replicas should take them all"),
    ("quote_fallback", False, True, "test_fallback_answers_while_the_breaker_is_open", "answered 503"),
    ("batch_window_ms", 0, 100, "test_batching_sends_far_fewer_frames_than_changes",
     "40 changes came in 40 frames"),
    ("cache_bypass", True, False, "test_cache_answers_from_the_database_then_memory_then_redis",
     "no Redis entry"),
], ids=["reads-to-the-primary", "no-fallback", "no-batching", "cache-bypassed"])
def test_scaling_suite_fails_naming_the_test_when_the_lab_is_broken(lab, tmp_path, switch, broken, healthy, test,
                                                                     says):
    set_switches(lab, **{switch: broken})
    try:
        cases = run_suite(lab.config_path, tmp_path, "-k", test)
    finally:
        set_switches(lab, **{switch: healthy})
    assert set(cases) == {test}, sorted(cases)
    assert cases[test].outcome == "failed" and says in cases[test].message, f"{switch}={broken}: {cases[test]}"
    # The same selection passes once the switch is back: the failure was the break, not the test.
    again = run_suite(lab.config_path, tmp_path, "-k", test)
    assert again[test].outcome == "passed", f"{switch} restored: {again[test]}"


def test_without_service_table_every_test_is_skipped_with_the_reason(lab, tmp_path):
    config = _without(lab, r"^\[service\]\n^url = .*\n^admin_token = .*\n", "no-service.toml")
    cases = run_suite(config, tmp_path)
    assert cases and all(c.outcome == "skipped" for c in cases.values()), summary(cases)
    assert all("has no [service] url" in c.message for c in cases.values()), summary(cases)


def test_without_admin_token_the_admin_tests_are_skipped_and_the_rest_still_run(lab, tmp_path):
    config = _without(lab, r"^admin_token = .*\n", "no-admin-token.toml")
    cases = run_suite(config, tmp_path, "-k", "breaker or hanging or reads_are_served")
    admin = {"test_fallback_answers_while_the_breaker_is_open",
             "test_breaker_half_opens_and_closes_after_its_timeout_once_the_fault_is_gone",
             "test_hanging_upstream_gets_the_fallback_or_503_never_a_hang"}
    assert admin <= set(cases), sorted(cases)
    for name in admin:
        assert cases[name].outcome == "skipped" and "no [service] admin_token" in cases[name].message, cases[name]
    routing = cases["test_reads_are_served_by_replicas_and_writes_by_the_primary"]
    assert routing.outcome == "passed", routing


def test_a_role_that_may_not_pause_replay_skips_the_health_and_lag_checks(lab, tmp_path):
    """The service's own role `app` reaches every node but was granted no replay control."""
    text = lab.config_path.read_text()
    config = lab.dir / "app-role.toml"
    config.write_text(text.replace("postgresql://monitor@", "postgresql://app@"))
    assert config.read_text() != text
    cases = run_suite(config, tmp_path, "-k", "paused_replica or lag_grows or reads_are_served")
    for name in ("test_paused_replica_leaves_the_read_set_and_returns_after_resume",
                 "test_replica_lag_grows_while_replay_is_paused_and_reads_move_away"):
        assert cases[name].outcome == "skipped" and "may not pause replay" in cases[name].message, cases[name]
    routing = cases["test_reads_are_served_by_replicas_and_writes_by_the_primary"]
    assert routing.outcome == "passed", routing
