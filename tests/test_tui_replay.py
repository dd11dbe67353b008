"""Replay and attach, driven with Pilot over a recording.

The recording is written with the real Recorder from scripted snapshots (a replica
goes DOWN at +40 s and comes back at +70 s); the feed's clock is a fixed one that only
the test moves, so playing at a speed is exact. What must hold: the header shows the
recorded time and a REPLAY badge, every key that would act on a target is off, the
timeline's keys move the cursor where they say, the detail screen has the recorded
history, and an attached viewer sees a frame the moment it is written.
"""

from __future__ import annotations

import time

import pytest

from conftest import run_cli
from dashboard.config_schema import validate
from dashboard.recording import Recorder, Recording
from dashboard.recording.replay import ReplayFeed
from dashboard.replay_app import GoTo, ReplayApp
from dashboard.screens import DetailScreen
from dashboard.model import State
from fakes import Clock
from test_recording import fleet
from widgets.panel import ComponentSelected
from widgets.timeline import Timeline

pytestmark = pytest.mark.anyio
START = 1_796_255_700.0        # 2026-12-02T23:55:00Z


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def write_fleet(path, seconds: int = 120, start: float = START) -> None:
    rec = Recorder(path, name="prod-eu")
    for i in range(seconds):
        down = 40 <= i < 70
        rec.write(fleet(start + i, lag=1000.0 + i, replica=State.DOWN if down else State.OK,
                        reason="connection refused" if down else None))
    rec.close()


@pytest.fixture
def recording(tmp_path):
    write_fleet(tmp_path / "r.sqlite")
    return tmp_path / "r.sqlite"


def replay(path, follow: bool = False, clock: Clock | None = None, wall=None) -> ReplayApp:
    feed = ReplayFeed(Recording(path), follow=follow, clock=clock or Clock(), wall=wall or (lambda: START))
    return ReplayApp(validate({"name": "prod-eu"}), feed)


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def shown(app, pilot) -> str:
    app.refresh_view()
    await pilot.pause()
    return screen_text(app)


def replica_state(app) -> State:
    return next(c.state for c in app.snapshot.components if c.name == "replica-1")


async def test_the_header_shows_the_recorded_time_and_acting_keys_are_off(recording):
    app = replay(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        text = await shown(app, pilot)
        top = text.splitlines()[0]
        assert "prod-eu" in top and "REPLAY 1x" in top and "2026-12-02 23:55:00 UTC" in top and "RO" in top
        timeline = str(app.query_one(Timeline).render())
        assert "23:55:00" in timeline and "23:56:59" in timeline and "2 changes" in timeline
        for key in ("d", "t", "a", "A", "r"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is app.screen_stack[0], f"{key} opened {app.screen}"
        footer = screen_text(app).splitlines()[-1]
        assert "Drills" not in footer and "Suites" not in footer and "Refresh" not in footer
        assert "Play/pause" in footer and "Next change" in footer and "palette" in footer   # nothing pushed off


async def test_state_changes_are_found_both_ways_and_steps_move_one_frame(recording):
    app = replay(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        await shown(app, pilot)
        assert replica_state(app) is State.OK
        await pilot.press("n")
        text = await shown(app, pilot)
        assert app.feed.cursor == START + 40 and replica_state(app) is State.DOWN
        assert "23:55:40" in text.splitlines()[0] and "DOWN" in text
        await pilot.press("n")
        await shown(app, pilot)
        assert app.feed.cursor == START + 70 and replica_state(app) is State.OK
        await pilot.press("N")
        assert app.feed.cursor == START + 40
        await pilot.press("N")         # nothing before the first change: it says so and stays
        await pilot.pause()
        assert app.feed.cursor == START + 40
        await pilot.press("left")
        await shown(app, pilot)
        assert app.feed.cursor == START + 39 and replica_state(app) is State.OK and app.feed.paused
        await pilot.press("right", "right")
        assert app.feed.cursor == START + 41
        await pilot.press("right_square_bracket")
        assert app.feed.cursor == START + 101
        await pilot.press("right_square_bracket")      # never past the end
        assert app.feed.cursor == START + 119
        await pilot.press("left_square_bracket")
        assert app.feed.cursor == START + 59


async def test_playing_moves_at_the_chosen_speed_and_stops_at_the_end(recording):
    clock = Clock()
    app = replay(recording, clock=clock)
    async with app.run_test(size=(160, 40)) as pilot:
        await shown(app, pilot)
        assert not app.feed.paused               # a replay starts playing, at 1x
        clock.now += 10
        assert app.feed.cursor == START + 10
        await pilot.press("plus", "plus")
        assert app.feed.speed == 5
        clock.now += 10
        assert app.feed.cursor == START + 60
        text = await shown(app, pilot)
        assert "REPLAY 5x >" in text.splitlines()[0]
        await pilot.press("space")
        clock.now += 100
        assert app.feed.cursor == START + 60 and app.feed.paused
        await pilot.press("space")
        clock.now += 100                          # 500 s at 5x: it stops at the last frame
        assert app.feed.cursor == START + 119 and app.feed.paused
        await pilot.press("minus", "minus", "minus")
        assert app.feed.speed == 1


async def test_go_to_reads_every_form_of_check_at_and_refuses_the_rest(recording):
    app = replay(recording)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await shown(app, pilot)
        await go_to(app, pilot, "23:56:05")
        assert app.feed.cursor == START + 65 and replica_state(app) is State.DOWN
        await go_to(app, pilot, "start+5s")
        assert app.feed.cursor == START + 5
        await go_to(app, pilot, "whenever")
        assert app.feed.cursor == START + 5
        assert any("cannot read the time 'whenever'" in n.message for n in app._notifications)
        await pilot.press("g", "escape")
        await pilot.pause()
        assert app.feed.cursor == START + 5 and not isinstance(app.screen, GoTo)


async def go_to(app, pilot, text: str) -> None:
    await pilot.press("g")
    await pilot.pause()
    assert isinstance(app.screen, GoTo) and app.focused is app.screen.query_one("#goto-time")
    app.screen.query_one("#goto-time").value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_the_detail_screen_shows_the_recorded_history_up_to_the_cursor(recording):
    app = replay(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        app.feed.seek_to(START + 30)
        await shown(app, pilot)
        replica = next(c for c in app.snapshot.components if c.name == "replica-1")
        assert replica.history["lag_bytes"] == tuple(1000.0 + i for i in range(31))
        app.post_message(ComponentSelected("|".join(replica.key)))
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        text = await shown(app, pilot)
        assert "lag_bytes" in text and "no history yet" not in text


async def test_an_attached_viewer_follows_the_recording_as_it_grows(tmp_path):
    path = tmp_path / "live.sqlite"
    write_fleet(path, seconds=5)
    app = replay(path, follow=True)
    async with app.run_test(size=(160, 40)) as pilot:
        text = await shown(app, pilot)
        assert "ATTACHED" in text.splitlines()[0] and replica_state(app) is State.OK
        rec = Recorder(path)
        rec.write(fleet(START + 5, replica=State.DOWN, reason="timeout"))
        rec.close()
        await shown(app, pilot)
        assert replica_state(app) is State.DOWN and app.feed.cursor == START + 5
        await pilot.press("space")               # pausing leaves the live edge...
        rec = Recorder(path)
        rec.write(fleet(START + 6))
        rec.close()
        await shown(app, pilot)
        assert app.feed.cursor == START + 5 and replica_state(app) is State.DOWN
        await pilot.press("f")                   # ...and f goes back to it
        text = await shown(app, pilot)
        assert app.feed.cursor == START + 6 and "ATTACHED" in text.splitlines()[0]


@pytest.mark.parametrize("quiet, says", [(2.0, False), (60.0, True)], ids=["fresh", "daemon-gone"])
async def test_an_attached_viewer_says_so_when_the_recording_stops_growing(tmp_path, quiet, says):
    """The newest frame shown as if it were now, after the daemon died, would be a green
    screen over a fleet nobody watches: past three intervals the header says how long."""
    path = tmp_path / "live.sqlite"
    write_fleet(path, seconds=5)
    app = replay(path, follow=True, wall=lambda: START + 4 + quiet)
    async with app.run_test(size=(160, 40)) as pilot:
        top = (await shown(app, pilot)).splitlines()[0]
        assert ("NO NEW FRAME FOR 1m (daemon stopped?)" in top) is says and "ATTACHED" in top, top


@pytest.mark.parametrize("args, message", [
    (["replay", "{missing}"], "no such recording"),
    (["attach", "{missing}"], "no such recording"),
    (["replay", "{recording}", "--at", "later"], "--at: cannot read the time 'later'"),
    (["replay", "{recording}", "--speed", "3"], "invalid choice"),
])
def test_replay_and_attach_answer_bad_input_in_one_line(recording, tmp_path, args, message):
    values = {"missing": tmp_path / "nope.sqlite", "recording": recording}
    run = run_cli(*[a.format(**values) for a in args])
    assert run.code == 3 and message in run.err and len(run.err.strip().splitlines()) == 1, run.text


async def test_a_recorded_drill_shows_its_timeline_beside_the_panels_up_to_the_cursor(recording):
    from test_recording import drill_entries

    rec = Recorder(recording)
    rec.add_drill_entries("run-1", "failover", "primary", drill_entries(START + 50))
    rec.close()
    app = replay(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        app.feed.seek_to(START + 40)
        text = await shown(app, pilot)
        assert not app.screen.has_class("drilling") and "Drill failover" not in text
        app.feed.seek_to(START + 51.5)
        text = await shown(app, pilot)
        assert app.screen.has_class("drilling")
        assert "Drill failover on primary" in text and "RUNNING (recorded)" in text
        assert "kill the primary" in text and "promote replica-1" not in text     # not yet, at the cursor
        app.feed.seek_to(START + 56)
        text = await shown(app, pilot)
        assert "promote replica-1" in text and "passed" in text and "RUNNING" not in text
