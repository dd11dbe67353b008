"""The dashboard's keys, screens and layout, driven with Pilot.

Layout and keys run on scripted, fixed-clock data (see scripted.py) so that the
snapshots are deterministic; live behaviour against real servers is in
test_tui_live.py.
"""

from __future__ import annotations

import time

import pytest

from dashboard.app import ScaledashApp, build_app
from dashboard.model import State
from dashboard.screens import DetailScreen, HelpScreen
from scripted import advance, scripted_engine

pytestmark = pytest.mark.anyio

HOSTILE = "[/bold]\x1b[31mred\x1b]52;c;ZXZpbA==\x07\u202eevil\x00" + "x" * 300


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def make_app(readonly: bool = False, hostile: str | None = None, extra_replicas: int = 0) -> ScaledashApp:
    engine = scripted_engine(hostile, extra_replicas)
    return build_app(engine.config, readonly=readonly, engine=engine, autostart=False)


async def settle(app: ScaledashApp, pilot) -> None:
    await advance(app.engine)
    await pilot.pause()          # the first layout is done: panels know their heights
    app.refresh_view()
    await pilot.pause()


def screen_text(app: ScaledashApp) -> str:
    """Every character currently on the screen, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_main_screen_shows_every_kind_with_state_words():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        for word in ("Replicas", "Breakers", "Caches", "Batchers", "Edge & CDN", "Events",
                     "replica-2", "DEGRADED", "DOWN", "upstream", "open", "items/mem", "realtime",
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

        calls = app.engine.targets[0].probe.calls
        app.engine.start()
        await pilot.press("r")
        await pilot.pause(0.5)
        assert app.engine.targets[0].probe.calls > calls

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


async def test_suite_and_drill_keys_are_reserved_and_say_so_in_read_only_mode():
    app = make_app(readonly=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("d")
        await pilot.press("t")
        messages = [n.message for n in app._notifications]
        assert any("read-only" in m and "drills" in m for m in messages)
        assert any("read-only" in m and "suites" in m for m in messages)
        assert "RO" in screen_text(app)


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
