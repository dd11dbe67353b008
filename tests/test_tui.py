"""The dashboard's keys, screens and layout, driven with Pilot.

Layout and keys run on scripted, fixed-clock data (see scripted.py) so that the
snapshots are deterministic; live behaviour against real servers is in
test_tui_live.py.
"""

from __future__ import annotations

import time

import pytest

from rich.text import Text

from dashboard.app import ScaledashApp, build_app
from dashboard.model import Failure, Kind, Reading, State
from dashboard.probes.base import ProbeError
from dashboard.screens import DetailScreen, HelpScreen
from scripted import ScriptedProbe, advance, healthy_fleet, probe_of, replica, scripted_engine, with_warnings
from widgets.row_table import RowTable

pytestmark = pytest.mark.anyio

HOSTILE = "[/bold]\x1b[31mred\x1b]52;c;ZXZpbA==\x07\u202eevil\x00" + "x" * 300


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def make_app(readonly: bool = False, hostile: str | None = None, extra_replicas: int = 0,
             probes: list[ScriptedProbe] | None = None) -> ScaledashApp:
    engine = scripted_engine(hostile, extra_replicas, probes)
    return build_app(engine.config, readonly=readonly, engine=engine, autostart=False)


async def settle(app: ScaledashApp, pilot) -> None:
    await advance(app.engine)
    await pilot.pause()          # the first layout is done: panels know their heights
    app.refresh_view()
    await pilot.pause()


def screen_text(app: ScaledashApp) -> str:
    """Every character currently on the screen, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def row_line(app: ScaledashApp, panel: str, name: str, source: str | None = None) -> Text:
    """The drawn line of a panel's row for the component `name` (from `source`, if given)."""
    table = app.query_one(f"#table-{panel}", RowTable)
    for key, line in zip(table._keys, table._lines):
        target, _, row_name, _ = key.split("|")
        component = next(c for c in app.snapshot.components if "|".join(c.key) == key)
        if row_name == name and (source is None or component.source == source):
            return line
    raise AssertionError(f"no row {name} in {panel}")


def dimmed(app: ScaledashApp, line: Text, piece: str) -> bool:
    at = line.plain.index(piece)
    return all(line.get_style_at_offset(app.console, i).dim for i in range(at, at + len(piece)))


def source_lines_shown(app: ScaledashApp) -> bool:
    found = app.query("#sources")
    return bool(found) and found.first().display


def top_line(app: ScaledashApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_main_screen_shows_every_kind_with_state_words():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        for word in ("Replicas", "Breakers", "Caches", "Batchers", "Edge & CDN", "Events",
                     "replica-2", "DEGRADED", "DOWN", "upstream", "open", "item…emory", "realtime",
                     "hello", "static", "Offload", "Hits", "Uptime", "pg", "scr", "rds", "http"):
            assert word in text, word


async def test_rows_that_do_not_fit_become_a_summary_with_the_worst_first():
    app = make_app(extra_replicas=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "Replicas (16)" in text and "more" in text
        assert "replica-3" in text and "DOWN" in text        # the DOWN row is never the one hidden
        assert "r11 " not in text


async def test_two_writable_primaries_raise_the_split_brain_banner():
    from scripted import replica

    app = make_app()
    app.engine.targets[1].probe.readings = [replica("replica-1", "primary")]   # promoted behind our back
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "2 primaries - possible split-brain: primary, replica-1" in text
        assert len(app.snapshot.banners) == 1


async def test_every_key_does_what_it_says():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Pause/resume" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("p")
        assert app.engine.paused
        await pilot.press("p")
        assert not app.engine.paused

        interval = app.engine.interval
        await pilot.press("plus")
        assert app.engine.interval > interval
        await pilot.press("minus", "minus")
        assert app.engine.interval < interval
        assert all(t.probe.deadline <= app.engine.interval for t in app.engine.targets)

        calls = len(app.engine.targets[0].probe.calls)
        app.engine.start()
        await pilot.press("r")
        await pilot.pause(0.5)
        assert len(app.engine.targets[0].probe.calls) > calls

        focused = app.focused
        await pilot.press("tab")
        assert app.focused is not focused

        await pilot.press("shift+tab", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)

        await pilot.press("slash")
        await pilot.press(*"replica-2")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "replica-2" in text and "primary " not in text and "upstream" not in text
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert "upstream" in screen_text(app)

        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_the_drill_and_suite_keys_open_their_screens_in_read_only_mode():
    from dashboard.drills_screen import DrillsScreen
    from dashboard.suites_screen import SuitesScreen

    app = make_app(readonly=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        assert "RO" in screen_text(app)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
        assert "read-only mode" in screen_text(app)
        await pilot.press("escape", "t")
        await pilot.pause()
        assert isinstance(app.screen, SuitesScreen)
        assert not any("not available" in n.message for n in app._notifications)


async def test_command_palette_offers_the_same_actions_as_the_keys():
    app = make_app()
    async with app.run_test(size=(120, 40)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for description in ("Pause/resume", "Refresh now", "Filter", "Slower", "Faster", "Help"):
            assert description in titles


async def test_hostile_names_and_non_finite_values_are_drawn_literally():
    app = make_app(hostile=HOSTILE)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "[/bold]" in text
        assert "\x1b" not in text and "\u202e" not in text and "\x00" not in text
        hostile = next(c for c in app.snapshot.components if c.name.startswith("[/bold]"))
        assert hostile.state is not State.OK


@pytest.mark.parametrize("size", [(1, 1), (20, 5), (59, 30), (80, 15), (80, 24), (160, 48), (300, 100)])
async def test_any_terminal_size_draws_without_crashing(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        small = size[0] < 60 or size[1] < 16
        if small and size[0] >= 20:
            assert "too small" in text and "Replicas" not in text
        elif not small:
            assert "Replicas" in text and "too small" not in text


async def test_a_resize_storm_keeps_polling():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        rounds = app.engine.rounds
        for width, height in [(30, 10), (200, 60), (80, 24), (1, 1), (160, 48)] * 4:
            await pilot.resize_terminal(width, height)
            await advance(app.engine, 1)
        await pilot.pause(0.1)
        assert app.engine.rounds == rounds + 20
        assert "Replicas" in screen_text(app)


@pytest.mark.slow      # ~15 s of key presses: `make test` runs it, `make test-fast` does not
async def test_key_mashing_and_a_huge_paste_do_not_end_the_app():
    import random

    app = make_app()
    rng = random.Random(7)
    keys = [k for k in "abcefghijklmnosuvwxyz0123456789[]{}()<>!@#$%^&*" ] + ["tab", "up", "down", "enter", "escape"]
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        for _ in range(300):
            await pilot.press(rng.choice(keys))
        await pilot.press("escape", "escape", "slash")
        app.query_one("#filter").insert_text_at_cursor("x" * 10_000)
        await pilot.pause(0.1)
        await pilot.press("escape")
        assert app.is_running


async def test_no_color_and_dumb_terminals_keep_every_state_a_word(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        for word in ("OK", "DEGRADED", "DOWN", "open", "closed"):
            assert word in text


async def test_an_unexpected_error_ends_with_one_redacted_line_and_a_crash_file(tmp_path, monkeypatch):
    from conftest import CANARY

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = make_app()

    def boom() -> None:
        dsn = f"postgresql://monitor:{CANARY}@db/app"   # a local that a traceback would print
        raise RuntimeError(f"cannot reach {dsn}")

    with pytest.raises(RuntimeError):
        async with app.run_test(size=(80, 24)) as pilot:
            app.refresh_view = boom
            app.call_later(boom)
            await pilot.pause(0.2)
    assert app.crash_line.startswith("scaledash: unexpected error (RuntimeError)")
    reports = list((tmp_path / "scaledash").glob("crash-*.txt"))
    assert len(reports) == 1 and oct(reports[0].stat().st_mode & 0o777) == "0o600"
    body = reports[0].read_text()
    assert CANARY not in body and CANARY not in app.crash_line and "RuntimeError" in body


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_main_screen_snapshot(snap_compare, size):
    app = make_app()

    async def run_before(pilot):
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_detail_screen_snapshot(snap_compare):
    app = make_app()

    async def run_before(pilot):
        await settle(app, pilot)
        await advance(app.engine, 6)
        await pilot.press("enter")
        await pilot.pause(0.1)
        app.refresh_view()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)


def test_help_screen_snapshot(snap_compare):
    app = make_app()
    assert snap_compare(app, terminal_size=(100, 30), press=["question_mark"])


async def test_sparklines_move_only_every_few_ticks_so_their_rows_stay_quiet():
    from dataclasses import replace as swap

    from dashboard.app import SPARK_EVERY
    from widgets.row_table import RowTable

    app = make_app()
    cdn = next(t.probe for t in app.engine.targets if t.probe.target == "static")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        table = app.query_one("#table-edge", RowTable)

        def static_line() -> str:
            return next(line.plain for key, line in zip(table._keys, table._lines) if "static" in key)

        first = static_line()
        cdn.readings = [swap(r, figures={**r.figures, "latency_ms": 300.0}) for r in cdn.readings]
        await advance(app.engine, 1)
        app.refresh_view()
        held = static_line()
        assert "300ms" in held and held.split("300ms")[1][:14] == first.split("3.0ms")[1][:14]
        for _ in range(SPARK_EVERY - 1):
            await advance(app.engine, 1)
            app.refresh_view()
        assert static_line().split("300ms")[1][:14] != held.split("300ms")[1][:14]


async def test_the_app_paints_its_first_frame_before_building_its_probes():
    """Building the probes imports the drivers (~150 ms): the first frame must not wait."""
    from dashboard.config import validate

    config = validate({"name": "t", "interval": 1.0, "timeout": 0.5,
                       "replica": [{"name": "primary", "dsn": "postgresql://monitor@127.0.0.1:1/postgres"}]})
    app = build_app(config)
    assert app.engine.targets == [], "no probe (and no driver import) before the first frame"
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert [t.probe.target for t in app.engine.targets] == ["primary"]
        assert "primary" in screen_text(app)



async def test_what_start_up_built_is_left_out_of_later_garbage_collections_until_the_app_ends():
    """A full collection walks every object it tracks while keys wait: on the lab the
    start-up heap made each one 80-190 ms (tests/bench/hostile_scale.py)."""
    import gc

    from dashboard.config import validate

    def walked(obj) -> bool:
        return any(o is obj for o in gc.get_objects())

    config = validate({"name": "t", "interval": 1.0, "timeout": 0.5,
                       "replica": [{"name": "primary", "dsn": "postgresql://monitor@127.0.0.1:1/postgres"}]})
    app = build_app(config)
    assert walked(app.engine), "before the app runs, nothing is left out"
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(50):          # the first tick comes within an interval
            if not walked(app.engine):
                break
            await pilot.pause(0.1)
        assert not walked(app.engine) and not walked(app.screen)
        later = [object()]
        assert walked(later), "what comes later is collected as usual"
    assert walked(app.engine), "handed back when the app ends"


# ---------------------------------------------------------------- a screen that never misleads


async def test_a_source_that_never_answered_has_a_line_with_its_reason_until_it_answers():
    billing = ScriptedProbe("billing", "scrape", [], failure=ProbeError(Failure.DOWN, "connection refused"))
    app = make_app(probes=healthy_fleet() + [billing])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        line = next(line for line in text.splitlines() if "billing" in line)
        assert "DOWN" in line and "never answered" in line and "connection refused" in line
        assert "sources 6/7 ok" in top_line(app)
        assert "Replicas (3)" in text and "Edge & CDN" in text       # the panels still fit 80x24

        billing.failure = None
        await settle(app, pilot)
        assert "billing" not in screen_text(app) and not source_lines_shown(app)
        assert "sources 7/7 ok" in top_line(app)

        billing.failure = ProbeError(Failure.ERROR, "HTTP 500 from /metrics")
        await settle(app, pilot)
        line = next(line for line in screen_text(app).splitlines() if "billing" in line)
        assert "ERROR" in line and "last answer" in line and "HTTP 500" in line


async def test_every_source_answering_leaves_no_source_line():
    app = make_app(probes=healthy_fleet())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert not source_lines_shown(app)
        assert "sources 6/6 ok" in top_line(app)


def _twins_fleet() -> list[ScriptedProbe]:
    """The primary also seen through postgres_exporter, and `hello` probed over HTTP as
    well as counted in the service's /metrics."""
    return healthy_fleet() + [
        ScriptedProbe("postgres-prom", "prometheus", [replica("postgres-prom", "primary")]),
        ScriptedProbe("hello", "http", [Reading(Kind.EDGE, "hello", {"status_code": 200, "latency_ms": 12.0})],
                      Kind.EDGE),
    ]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_rows_seen_through_a_metric_source_are_told_apart_from_probed_ones(size):
    app = make_app(probes=_twins_fleet())
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        exporter = row_line(app, "replica", "postgres-prom").plain
        assert exporter.startswith("↳") and exporter.rstrip().endswith("prom")
        assert row_line(app, "replica", "primary").plain.startswith("primary ")
        probed, scraped = row_line(app, "edge", "hello", "http").plain, row_line(app, "edge", "hello", "scrape").plain
        assert probed.startswith("hello ") and scraped.startswith("↳hello ")
        # A scraped row with no probed twin needs no mark: its Src says where it is from.
        assert row_line(app, "cache", "items").plain.startswith("item")


async def test_names_sharing_a_prefix_never_read_the_same_in_a_narrow_column():
    fleet = healthy_fleet()
    service = next(p for p in fleet if p.target == "service")
    service.readings = service.readings + [
        Reading(Kind.CACHE, "items", {"layer": "memory-2", "hits_total": 1.0, "misses_total": 1.0}, detail="memory-2")]
    app = make_app(probes=fleet)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.query_one("#table-cache", RowTable)
        names = {key.split("|")[3]: line.plain[:10].rstrip() for key, line in zip(table._keys, table._lines)
                 if key.split("|")[2] == "items"}
        assert len(set(names.values())) == len(names) == 3, names
        assert names["memory-2"].endswith("ory-2") and names["redis"].endswith("redis")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_a_row_whose_probe_fails_shows_its_last_figures_dimmed_and_live_rows_do_not(size):
    app = make_app(probes=healthy_fleet())
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        live = row_line(app, "replica", "replica-1")
        assert not dimmed(app, live, "2.0 KiB")

        probe_of(app.engine, "replica-1").failure = ProbeError(Failure.DOWN, "connection refused")
        await advance(app.engine, 3, step=4.0)
        app.refresh_view()
        dead = row_line(app, "replica", "replica-1")
        assert "DOWN 8s " in dead.plain
        assert dimmed(app, dead, "2.0 KiB") and not dimmed(app, dead, "DOWN")
        paused = row_line(app, "replica", "replica-2")      # DEGRADED, but its figures are live
        assert "DEGRADED" in paused.plain and not dimmed(app, paused, "4.3 MiB")


async def test_a_down_that_the_target_answered_is_live_not_last_known():
    app = make_app(probes=healthy_fleet())
    cdn = probe_of(app.engine, "static")
    cdn.readings = [Reading(Kind.CDN, "static", {"cache_status": "MISS", "latency_ms": 3.0}, state=State.DOWN,
                            reason="HTTP 503")]
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app.engine, 3)
        app.refresh_view()
        await pilot.pause()
        line = row_line(app, "edge", "static")
        assert "DOWN" in line.plain and not dimmed(app, line, "MISS") and not dimmed(app, line, "3.0ms")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_the_age_of_a_stale_row_stays_whole_in_its_cell(size):
    app = make_app(probes=healthy_fleet())
    service = probe_of(app.engine, "service")
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        service.readings = [r for r in service.readings if r.name != "database"]   # no longer reported
        table = app.query_one("#table-breaker", RowTable)
        state_at = table._widths[0]
        state_width = table._widths[1]
        for step, age in ((6.0, "12s"), (60.0, "2m")):
            await advance(app.engine, 3, step=step)
            app.refresh_view()
            line = row_line(app, "breaker", "database")
            cell = line.plain[state_at:state_at + state_width]
            assert cell == f"STALE {age}".ljust(state_width), cell
            assert dimmed(app, line, "closed") and not dimmed(app, row_line(app, "breaker", "upstream"), "open")


async def test_a_warning_marks_its_row_and_its_text_is_in_the_details():
    app = make_app(probes=healthy_fleet())
    with_warnings(app.engine, {"upstream": "PromQL warning: [/bold] 3 series dropped"})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        warned, quiet = row_line(app, "breaker", "upstream"), row_line(app, "breaker", "database")
        assert "DEGRADED!" in warned.plain
        assert "OK " in quiet.plain and "!" not in quiet.plain
        app.query_one("#table-breaker", RowTable).focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        app.refresh_view()
        await pilot.pause(0.1)
        assert isinstance(app.screen, DetailScreen)
        assert "PromQL warning: [/bold] 3 series dropped" in screen_text(app)


async def test_the_header_says_starting_until_every_target_has_answered_once():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.refresh_view()
        await pilot.pause()
        header = top_line(app)
        assert "starting" in header and "UNKNOWN" not in header and "NO_DATA" not in header
        assert "sources 0/7 in" in header

        last = app.engine.targets.pop()          # every target but one answers
        await app.engine.poll_round()
        app.engine.targets.append(last)
        app.refresh_view()
        await pilot.pause()
        header = top_line(app)
        assert "starting" in header and "sources 6/7 in" in header and "STALE" not in header
        assert "replica-3" in screen_text(app)      # what is known already has its line

        await settle(app, pilot)
        header = top_line(app)
        assert "starting" not in header and "DOWN" in header and "sources 6/7 ok" in header


async def test_a_source_that_answers_with_a_warning_has_a_line_with_the_warning():
    fleet = healthy_fleet()
    prom = ScriptedProbe("postgres-prom", "prometheus", [replica("postgres-prom", "primary")])
    fleet.append(prom)
    app = make_app(probes=fleet)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "postgres-prom" not in "\n".join(screen_text(app).splitlines()[:4])

        prom.warning = "PromQL: query hit the sample limit"
        await settle(app, pilot)
        line = next(line for line in screen_text(app).splitlines() if "postgres-prom " in line)
        assert line.lstrip().startswith("OK!") and "sample limit" in line
        assert "sources 7/7 ok" in top_line(app)


async def test_the_details_of_a_dead_row_say_its_figures_are_last_known():
    app = make_app(probes=healthy_fleet())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(app, pilot)
        app.query_one("#table-replica", RowTable).focus()
        await pilot.press("down", "enter")            # replica-1
        await pilot.pause(0.1)
        app.refresh_view()
        await pilot.pause(0.1)
        assert "replica-1" in screen_text(app) and "raw figures" in screen_text(app)

        probe_of(app.engine, "replica-1").failure = ProbeError(Failure.DOWN, "connection refused")
        await advance(app.engine, 3, step=4.0)
        app.refresh_view()
        await pilot.pause(0.1)
        assert "last known figures (8.0s old)" in screen_text(app)


async def test_a_probe_that_fails_is_drawn_at_once_not_at_the_next_repaint():
    """Fault -> state on screen was the engine's time plus up to a repaint interval
    (tests/bench/detection.py); a failure, and an answer after failures, now redraw in
    the same loop turn. An answer like the one before redraws nothing extra."""
    app = make_app(readonly=True, probes=healthy_fleet())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        drawn = app.snapshot
        await advance(app.engine, rounds=1)          # every target answers as before
        await pilot.pause()
        assert app.snapshot is drawn, "a round like the last one redrew before its tick"
        probe_of(app.engine, "replica-1").failure = ProbeError(Failure.DOWN, "connection refused")
        await advance(app.engine, rounds=1)
        await pilot.pause()
        assert app.snapshot is not drawn
        row = next(c for c in app.snapshot.components if c.name == "replica-1")
        assert row.state is not State.OK and "connection refused" in screen_text(app)
        drawn = app.snapshot
        probe_of(app.engine, "replica-1").failure = None
        await advance(app.engine, rounds=1)          # it answers again: drawn at once too
        await pilot.pause()
        assert app.snapshot is not drawn
