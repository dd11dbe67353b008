"""Every numbered case of RELIABILITY.md has a test, or a stated reason why not.

A case is covered by a test named `test_case_NN_*` anywhere under tests/, or by an
entry in COVERED_BY below (tests written before the naming rule, file::name). A case
with neither is a failure; a case listed in GAPS, or whose only tests live in files not
in this tree yet (another branch), is a visible skip naming it. The table printed by
`test_the_case_to_test_table` is the README's reliability matrix.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# The spec is kept in the repo (docs/), so CI on a clean clone reads the same cases.
SPEC_CANDIDATES = [os.environ.get("SCALEDASH_RELIABILITY_MD", ""), ROOT / "docs" / "RELIABILITY.md"]

_ENGINE = "tests/integration/test_engine_faults.py"
_HOSTILE = "tests/integration/test_hostile_scale.py"
_SOURCES = "tests/integration/test_metric_sources.py"
_TRUTH = "tests/integration/test_replica_truth.py"
_CONFIG = "tests/test_config.py"
_REDACT = "tests/test_redact.py"
_TUI = "tests/test_tui.py"
_DRILL_SAFETY = "tests/integration/test_drill_safety.py"      # branch drills-tests
_TUI_DRILLS = "tests/test_tui_drills.py"                     # branch drills-tui

# Tests written before the `test_case_NN_` rule, by case. Partial coverage is said so.
COVERED_BY: dict[int, list[str]] = {
    1: [f"{_ENGINE}::test_killed_replica_goes_stale_then_down_with_refused_and_backs_off",
        f"{_ENGINE}::test_redis_restarted_on_the_same_port_is_ok_on_the_first_good_probe"],
    2: [f"{_ENGINE}::test_hung_primary_times_out_at_the_deadline_without_pile_up"],
    3: [f"{_ENGINE}::test_hung_or_stopped_redis_polls_end_by_the_deadline"],
    4: [f"{_TRUTH}::test_promoted_replica_makes_split_brain_down_and_check_exit_2",
        f"{_TUI}::test_two_writable_primaries_raise_the_split_brain_banner"],
    5: [f"{_TRUTH}::test_role_without_pg_monitor_sees_na_privilege_and_one_notice_naming_the_grant"],
    6: [f"{_SOURCES}::test_prometheus_down_is_an_error_of_the_source_while_direct_probes_stay_ok",
        f"{_SOURCES}::test_up_zero_is_down_via_prometheus_and_an_empty_vector_is_no_data"],
    8: [f"{_ENGINE}::test_blackhole_every_probe_type_ends_by_the_deadline_with_bounded_sockets"],
    9: [f"{_ENGINE}::test_connection_refused_is_down_within_two_rounds_with_the_next_retry_shown"],
    12: ["tests/test_engine_schedule.py::test_hysteresis_one_failure_is_not_down_two_are_one_success_is_ok",
         "tests/test_engine_schedule.py::test_overrunning_probe_skips_the_next_tick_instead_of_queueing",
         "tests/test_event_limit.py::test_a_flapping_target_is_summarised_then_settles_with_its_final_state_and_a_whole_budget",
         "tests/test_event_limit.py::test_a_flapping_target_never_holds_back_another_targets_down"],
    13: [f"{_CONFIG}::test_missing_config_file_is_one_config_error_line_with_exit_3",
         f"{_CONFIG}::test_directory_given_as_config_is_one_config_error_line_with_exit_3",
         f"{_CONFIG}::test_unreadable_config_path_is_one_config_error_line_with_exit_3"],
    14: [f"{_CONFIG}::test_every_problem_in_a_config_is_reported_at_once_with_key_path_and_value",
         f"{_CONFIG}::test_timeout_longer_than_interval_is_refused_with_both_values",
         f"{_CONFIG}::test_names_must_be_unique_across_target_kinds"],
    15: [f"{_CONFIG}::test_hostile_file_is_refused_as_a_config_error_within_the_parse_budget",
         f"{_CONFIG}::test_loader_fuzz_raises_nothing_but_config_error"],
    16: ["tests/integration/test_drill_steps.py::test_a_drill_on_a_target_not_allowed_is_disabled_with_one_notice_and_the_config_loads"],
    17: [f"{_SOURCES}::test_bad_prometheus_answers_are_errors_that_keep_the_last_good_value"],
    18: [f"{_SOURCES}::test_bad_prometheus_answers_are_errors_that_keep_the_last_good_value",
         f"{_SOURCES}::test_prometheus_warnings_are_kept_next_to_the_data"],
    19: [f"{_SOURCES}::test_non_finite_values_from_prometheus_are_never_ok"],
    20: [f"{_HOSTILE}::test_gzip_bomb_is_refused_on_its_decompressed_size_and_memory_stays_flat",
         f"{_HOSTILE}::test_a_50_mb_body_is_refused_as_too_large",
         f"{_HOSTILE}::test_an_endless_stream_is_cut_at_the_cap_while_the_neighbour_keeps_polling"],
    21: [f"{_HOSTILE}::test_100k_series_are_an_error_and_the_neighbour_stays_on_time",
         f"{_HOSTILE}::test_rows_beyond_the_bound_per_source_are_counted_not_tracked",
         "tests/test_presets.py::test_garbage_series_do_not_raise"],
    22: [f"{_REDACT}::test_markup_lookalike_is_kept_literally",
          f"{_REDACT}::test_hostile_strings_lose_every_escape_control_and_bidi_character",
          f"{_REDACT}::test_ten_thousand_character_label_is_cut_to_the_limit_with_an_ellipsis"],
    23: ["tests/integration/test_metric_truth.py::test_scraped_sample_stamped_an_hour_ago_is_stale_with_its_age",
         "tests/integration/test_metric_truth.py::test_scraped_sample_from_the_future_is_flagged_as_clock_skew"],
    24: [f"{_TUI_DRILLS}::test_the_confirmation_shows_the_plan_with_focus_on_cancel_and_esc_only_writes_cancelled",
         f"{_TUI_DRILLS}::test_a_wrong_name_or_a_10kb_paste_starts_nothing"],
    25: [f"{_DRILL_SAFETY}::test_a_steady_state_not_met_or_a_candidate_over_its_lag_limit_is_refused_with_an_audit_record",
         f"{_DRILL_SAFETY}::test_a_drill_on_a_target_another_drill_holds_is_refused_naming_the_holder",
         f"{_DRILL_SAFETY}::test_a_dry_run_runs_every_check_and_acts_on_nothing"],
    26: [f"{_DRILL_SAFETY}::test_sigusr1_mid_method_rolls_back_and_verifies_the_steady_state"],
    27: [f"{_DRILL_SAFETY}::test_an_abort_after_an_irreversible_step_runs_no_rollback_and_says_so"],
    28: [f"{_DRILL_SAFETY}::test_a_destructive_call_without_an_answer_is_result_unknown_re_polled_and_never_sent_again"],
    29: ["tests/integration/test_builtin_drills.py::test_read_only_mode_refuses_the_failover_drill_with_an_audit_record",
         f"{_TUI_DRILLS}::test_read_only_mode_reaches_no_mutating_path_by_any_binding_or_palette_command"],
    30: [f"{_DRILL_SAFETY}::test_the_audit_journal_has_an_intent_and_an_outcome_for_every_kind_of_attempt",
         f"{_DRILL_SAFETY}::test_a_journal_others_can_read_is_refused_and_left_alone"],
    31: [f"{_DRILL_SAFETY}::test_a_second_run_on_a_target_is_refused_and_a_killed_holder_frees_it_at_once",
         f"{_DRILL_SAFETY}::test_a_heartbeat_that_stops_aborts_with_rollback"],
    # The canary is every password of every test; conftest fails any test whose output shows it.
    32: [f"{_CONFIG}::test_secret_values_never_appear_in_errors_warnings_or_reprs",
         "tests/integration/test_fault_matrix.py::test_case_08_blackhole"],
    33: [f"{_REDACT}::test_secret_repr_and_str_never_show_the_value",
         f"{_REDACT}::test_crash_report_writes_one_redacted_line_and_a_private_file_without_locals"],
    34: [f"{_REDACT}::test_registered_secret_value_is_masked_wherever_it_appears",
         f"{_REDACT}::test_url_userinfo_password_is_masked",
         f"{_REDACT}::test_authorization_values_are_masked"],
    35: [f"{_CONFIG}::test_group_or_other_readable_secret_file_is_refused_with_chmod_hint",
         f"{_CONFIG}::test_inline_password_warns_and_still_validates"],
    # Partial: `insecure` passes a self-signed server; the clear ERROR and the badge are
    # tests/integration/test_tls.py::test_case_36_* on branch fuzz-edges.
    36: ["tests/integration/test_config_keys.py::test_insecure_lets_a_self_signed_tls_server_pass"],
    37: [f"{_TUI}::test_any_terminal_size_draws_without_crashing", f"{_TUI}::test_a_resize_storm_keeps_polling"],
    38: ["tests/integration/test_tui_terminal.py::test_state_words_survive_c_locale_no_color_and_dumb_terminals"],
    39: ["tests/integration/test_tui_terminal.py::test_ssh_drop_ends_the_process_within_5s_without_spinning",
         "tests/integration/test_tui_terminal.py::test_ssh_drop_without_a_sighup_still_ends_the_process_within_5s_without_spinning",
         "tests/integration/test_tui_terminal.py::test_ssh_drop_on_the_lab_ends_the_process_within_5s_without_spinning"],
    40: [f"{_TUI}::test_key_mashing_and_a_huge_paste_do_not_end_the_app",
         f"{_TUI_DRILLS}::test_ctrl_c_asks_while_a_drill_runs_and_says_it_keeps_running_and_rolls_back"],
}

# Cases known to have no test yet, and why: each is a visible skip until one lands.
GAPS: dict[int, str] = {}

_CASE_LINE = re.compile(r"^(\d+)\.\s+(.*)")
_NAMED = re.compile(r"^\s*(?:async\s+)?def\s+(test_case_(\d+)_\w*)", re.M)
_DEF = "(?:async\\s+)?def\\s+{}\\b"


@functools.cache
def spec_path() -> Path | None:
    return next((Path(p) for p in SPEC_CANDIDATES if p and Path(p).is_file()), None)


@functools.cache
def spec_cases() -> dict[int, str]:
    """Case number -> its first line, from RELIABILITY.md's numbered lists."""
    path = spec_path()
    if path is None:
        return {}
    cases = {}
    for line in path.read_text().splitlines():
        match = _CASE_LINE.match(line)
        if match:
            cases[int(match.group(1))] = match.group(2).strip()
    return cases


@functools.cache
def named_tests() -> dict[int, list[str]]:
    """`test_case_NN_*` functions under tests/, by case number."""
    found: dict[int, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for match in _NAMED.finditer(path.read_text(errors="replace")):
            found.setdefault(int(match.group(2)), []).append(f"{path.relative_to(ROOT)}::{match.group(1)}")
    return found


@functools.cache
def entry_status(entry: str) -> str:
    """"present", "pending" (its file is not in this tree: another branch), or "stale"."""
    file, name = entry.split("::")
    path = ROOT / file
    if not path.is_file():
        return "pending"
    return "present" if re.search(_DEF.format(re.escape(name)), path.read_text()) else "stale"


def coverage() -> dict[int, dict[str, list[str]]]:
    """Per case: its tests present in this tree, and those still pending elsewhere."""
    named = named_tests()
    out = {}
    for case in spec_cases():
        entries = named.get(case, []) + COVERED_BY.get(case, [])
        out[case] = {"present": [e for e in entries if entry_status(e) == "present"],
                     "pending": [e for e in entries if entry_status(e) == "pending"]}
    return out


CASES = sorted(spec_cases())


def test_the_case_to_test_table():
    """Prints the case -> test table; fails on map entries that name no test any more."""
    if spec_path() is None:
        pytest.skip(f"RELIABILITY.md not found (looked in {[str(p) for p in SPEC_CANDIDATES if p]})")
    stale = [e for entries in COVERED_BY.values() for e in entries if entry_status(e) == "stale"]
    assert not stale, f"COVERED_BY names tests that do not exist (renamed?): {stale}"
    unknown = sorted((set(COVERED_BY) | set(GAPS)) - set(CASES))
    assert not unknown, f"COVERED_BY or GAPS name cases RELIABILITY.md does not have: {unknown}"
    titles = spec_cases()
    print("\n| case | behaviour | tests |\n|---|---|---|")
    for case, found in coverage().items():
        tests = [f"`{e}`" for e in found["present"]] + [f"`{e}` (not merged)" for e in found["pending"]]
        if not found["present"] and case in GAPS:
            tests.append(f"no test yet: {GAPS[case]}")
        title = titles[case].split(":")[0].split(".")[0][:60]
        print(f"| {case} | {title} | {'<br>'.join(tests) or '**none**'} |")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"case_{c:02d}")
def test_reliability_case_has_a_test(case):
    found = coverage()[case]
    if found["present"]:
        assert case not in GAPS, f"case {case} has tests now ({found['present']}): take it out of GAPS"
        return
    if case in GAPS:
        pytest.skip(f"case {case} has no test yet: {GAPS[case]}")
    if found["pending"]:
        pytest.skip(f"case {case}: its tests are not in this tree yet: {found['pending']}")
    pytest.fail(f"case {case} ({spec_cases()[case][:60]}) has no test_case_{case:02d}_* test and no "
                f"COVERED_BY entry: write one, or list it in GAPS with the reason")
