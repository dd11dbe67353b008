"""The suites screen without running a suite: the list, the refusals, the confirmation,
the drawing of results. Real runs from the TUI are in tests/integration/test_tui_suites_live.py.

Scripted results are SuiteResult values as the runner builds them; the fleet behind
the main screen is the scripted one of tests/scripted.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dashboard.app import ScaledashApp, build_app
from dashboard.suite_session import SuiteSession
from dashboard.suites.catalog import SuiteSpec, all_suites
from dashboard.suites.results import CaseFailure, Counts, RequestStats, SuiteKind, SuiteResult, Verdict
from dashboard.suites_screen import ConfirmLoad, SuiteLinesArrived, SuitesScreen
from scripted import WALL, advance, scripted_engine

pytestmark = pytest.mark.anyio

HOSTILE = "[bold red]x[/]\x1b[31m\u202e"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def make_app(readonly: bool = False, specs: tuple[SuiteSpec, ...] | None = None) -> ScaledashApp:
    engine = scripted_engine()
    app = build_app(engine.config, readonly=readonly, engine=engine, autostart=False)
    if specs is not None:
        app.suite_session = SuiteSession(specs, wall=lambda: WALL)
    return app


def screen_text(app: ScaledashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def load_suite_dir(root: Path) -> Path:
    """A shipped-style suite that says it generates load (its test would leave a mark)."""
    directory = root / "hammer"
    directory.mkdir(parents=True)
    (directory / "__init__.py").write_text('SUITE = {"kind": "pytest", "description": "hammers the stack", '
                                           '"generates_load": True}\n')
    (directory / "test_hammer.py").write_text(
        "from pathlib import Path\n\ndef test_mark():\n    Path(__file__).with_name('ran').write_text('x')\n")
    return directory


def scripted_specs() -> tuple[SuiteSpec, ...]:
    return (SuiteSpec("scaling", SuiteKind.PYTEST, "shipped", "replica routing, breaker, cache, batching"),
            SuiteSpec("load", SuiteKind.LOCUST, "shipped", "read-heavy browsing, writes, edge calls",
                      generates_load=True, users=2, run_time_s=30),
            SuiteSpec("smoke", SuiteKind.COMMAND, "configured", "./smoke.sh --quick"))


def scripted_results() -> list[SuiteResult]:
    failing = SuiteResult(
        "scaling", SuiteKind.PYTEST, Verdict.FAILED, WALL - 400, WALL - 380, 20.4, 1,
        reason="2 of 9 tests failed", counts=Counts(passed=6, failed=2, skipped=1),
        failures=(CaseFailure("test_replicas::test_reads_go_to_replicas", "primary took 95% of reads", 1.2),
                  CaseFailure("test_breaker::test_fallback_when_upstream_fails",
                              f"503 from /quote {HOSTILE}", 0.8)),
        tail=("collected 9 items", "test_replicas.py F.", f"remote said {HOSTILE}", "2 failed, 6 passed"))
    passing = SuiteResult(
        "scaling", SuiteKind.PYTEST, Verdict.PASSED, WALL - 900, WALL - 880, 19.8, 0,
        counts=Counts(passed=8, skipped=1))
    total = RequestStats("", "Aggregated", 1050, 3, 35.0, 0.1, 12.0, 48.0, 90.0)
    load = SuiteResult(
        "load", SuiteKind.LOCUST, Verdict.PASSED, WALL - 120, WALL - 60, 60.2, 0,
        requests=(RequestStats("GET", "read", 800, 0, 26.7, 0.0, 9.0, 30.0, 60.0),
                  RequestStats("POST", "write", 250, 3, 8.3, 0.1, 20.0, 70.0, 110.0)),
        requests_total=total)
    return [passing, failing, load]


def with_history(app: ScaledashApp) -> None:
    for result in scripted_results():
        app.suite_session.record(result.name, result)


async def test_t_opens_the_suites_screen_with_every_shipped_and_configured_suite(tmp_path):
    from dashboard.config import validate

    config = validate({"name": "x", "suite": [{"name": "mine", "command": ["pytest", "-q", "tests"]}]},
                      str(tmp_path / "x.toml"))
    app = make_app()
    app.config = config
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, SuitesScreen)
        text = screen_text(app)
        for spec in all_suites(config):
            assert spec.name in text
        assert "mine" in text and "configured" in text and "scaling" in text and "pytest" in text
        assert "suites are not available" not in text
        await pilot.press("escape")
        assert not isinstance(app.screen, SuitesScreen)


async def test_the_list_shows_each_suites_last_verdict_counts_duration_and_age():
    app = make_app(specs=scripted_specs())
    with_history(app)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        scaling = next(line for line in lines if "> scaling" in line)
        assert "FAILED" in scaling and "6 passed, 2 failed, 1 skipped" in scaling and "20.4s" in scaling
        assert "6m" in scaling and "(2 runs)" in scaling        # finished 380 s before the wall clock
        load = next(line for line in lines if " load " in line and "locust" in line)
        assert "PASSED" in load and "35.0 req/s" in load and " yes " in load
        smoke = next(line for line in lines if "smoke" in line and "command" in line)
        assert " - " in smoke
        text = screen_text(app)
        assert "FAILED test_replicas::test_reads_go_to_replicas: primary took 95% of reads" in text


async def test_history_key_shows_earlier_results_newest_first():
    app = make_app(specs=scripted_specs())
    with_history(app)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("t", "h")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        start = next(i for i, line in enumerate(lines) if "History of scaling" in line)
        assert "FAILED" in lines[start + 1] and "first failure: test_replicas::test_reads_go_to_replicas" in \
            lines[start + 1]
        assert "PASSED" in lines[start + 2] and "8 passed" in lines[start + 2]
        await pilot.press("h")
        await pilot.pause()
        assert "History of scaling" not in screen_text(app)



async def test_help_over_the_suites_screen_lists_its_keys():
    app = make_app(specs=scripted_specs())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t", "question_mark")
        await pilot.pause()
        text = screen_text(app)
        for description in ("Run suite", "Cancel run", "History", "Pause/resume"):
            assert description in text


async def test_suite_text_is_drawn_literally_never_as_markup_or_escapes():
    app = make_app(specs=scripted_specs())
    with_history(app)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(app)
        assert "[bold red]x[/]" in text          # in the failure message and in the output tail
        assert "\x1b" not in text and "\u202e" not in text


async def test_read_only_mode_refuses_a_load_suite_by_key_and_by_any_other_way(tmp_path):
    load_suite_dir(tmp_path / "shipped")
    app = make_app(readonly=True, specs=all_suites(None, tmp_path / "shipped"))
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, SuitesScreen) and app.suite_session.specs[0].generates_load
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmLoad), "no confirmation: the run is refused before"
        assert any("read-only mode" in n.message and "hammer" in n.message and "generates load" in n.message
                   for n in app._notifications)
        assert app.start_suite("hammer") is False       # the one way to a run refuses too
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Suites", "Run suite", "Cancel run", "History"} <= set(titles)
        for command in app.get_system_commands(app.screen):
            if command.title in ("Suites", "Run suite"):
                await command.callback()
        await pilot.pause(0.5)
        assert app.suite_session.live == {} and app.suite_session.history == {}
    assert not (tmp_path / "shipped" / "hammer" / "ran").exists()


async def test_the_load_confirmation_starts_on_cancel_and_esc_or_cancel_run_nothing(tmp_path):
    load_suite_dir(tmp_path / "shipped")
    app = make_app(specs=all_suites(None, tmp_path / "shipped"))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("t", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmLoad)
        assert app.focused is not None and app.focused.id == "confirm-cancel"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, SuitesScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmLoad)
        await pilot.press("enter")           # on the focused Cancel
        await pilot.pause(0.5)
        assert isinstance(app.screen, SuitesScreen)
        assert app.suite_session.live == {} and app.suite_session.history == {}
    assert not (tmp_path / "shipped" / "hammer" / "ran").exists()


def test_lines_arrived_messages_of_one_suite_merge_and_of_two_suites_do_not():
    assert SuiteLinesArrived("a").can_replace(SuiteLinesArrived("a"))
    assert not SuiteLinesArrived("a").can_replace(SuiteLinesArrived("b"))


def test_suites_screen_snapshot(snap_compare):
    app = make_app(specs=scripted_specs())
    with_history(app)

    async def run_before(pilot):
        await advance(app.engine)
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("size", [(60, 16), (80, 24)])
async def test_the_suites_screen_keeps_one_line_per_suite_at_any_size(size):
    app = make_app(specs=scripted_specs())
    with_history(app)
    async with app.run_test(size=size) as pilot:
        await pilot.press("t")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(" > scaling"))
        assert lines[at + 1].startswith("   load") and lines[at + 2].startswith("   smoke")
