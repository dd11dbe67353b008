"""Suites run from the TUI for real: a configured [[suite]] that is a tiny pytest
directory in tmp, started with keys, its output live on screen, its parsed result,
the session history and the event log; a slow suite cancelled mid-run, or left
running when the app quits, leaves no process in its group (/proc is read); a load
suite runs only once confirmed; the dashboard keeps polling while a suite runs.

The polled fleet is scripted (the engine's real clock, scripted probes): what is under
test here is the suite's process and the app around it, not the probes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from dashboard.app import ScaledashApp, build_app
from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.suite_session import SuiteSession
from dashboard.suites.catalog import all_suites
from dashboard.suites.results import SuiteResult, Verdict
from dashboard.suites_screen import ConfirmLoad, SuitesScreen
from fakes import ScriptedProbe
from scripted import replica
from tests.conftest import CANARY
from tests.integration.test_suite_runs import SLEEPY_TESTS, alive, group_members, make_suite

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEMO = '''
import time

def test_passes():
    print("live-marker: the suite is talking", flush=True)
    time.sleep(1.5)

def test_fails():
    assert 1 == 2, "one is not two"
'''


def screen_text(app: ScaledashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot, predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def app_with_suites(tmp_path: Path, suites: dict[str, Path], **tables) -> ScaledashApp:
    """The app with one configured pytest [[suite]] per directory, over a polling engine."""
    path = tmp_path / "scaledash.toml"
    path.write_text('name = "suites"\n')
    config = validate({"name": "suites", "interval": "1s", **tables, "suite": [
        {"name": name, "command": [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:looptime_plugin",
                                   str(directory)]} for name, directory in suites.items()]}, str(path))
    engine = Engine(config, [ScriptedProbe("primary", "postgres", [replica("primary", "primary")])])
    return build_app(config, engine=engine, autostart=False)


async def open_suite(app: ScaledashApp, pilot, name: str) -> None:
    await pilot.press("t")
    await pilot.pause()
    assert isinstance(app.screen, SuitesScreen)
    index = [s.name for s in app.suite_session.specs].index(name)
    await pilot.press(*["down"] * index)
    assert app.screen.selected().name == name


async def start_suite(app: ScaledashApp, pilot, name: str, marker: Path, what: str) -> int:
    """Run the suite `name` with keys until it writes `marker`; its process group id."""
    await open_suite(app, pilot, name)
    await pilot.press("enter")
    await until(pilot, marker.exists, what=what)
    return app.suite_session.live[name].run.pgid


async def test_a_suite_run_with_keys_shows_live_output_then_failed_naming_the_test_in_history_and_events(
        tmp_path):
    demo = make_suite(tmp_path, "demo", {"test_demo.py": DEMO})
    app = app_with_suites(tmp_path, {"demo": demo})
    async with app.run_test(size=(140, 44)) as pilot:
        await open_suite(app, pilot, "demo")
        await pilot.press("enter")
        await until(pilot, lambda: "demo" in app.suite_session.live, what="the run to start")
        await until(pilot, lambda: "live-marker: the suite is talking" in screen_text(app)
                    and "demo" in app.suite_session.live, what="live output while it runs")
        assert "RUNNING" in screen_text(app)
        result = await until(pilot, lambda: app.suite_session.last("demo"), what="the result")
        await pilot.pause()
        assert isinstance(result, SuiteResult) and result.verdict is Verdict.FAILED
        text = screen_text(app)
        assert "FAILED" in text and "test_fails" in text and "one is not two" in text
        assert "1 passed, 1 failed" in text
        await pilot.press("h")
        await pilot.pause()
        assert "History of demo" in screen_text(app)
        assert app.suite_session.results("demo") == (result,)

        events = [e for e in app.engine.events if "suite demo" in e.message]
        assert len(events) == 1 and "FAILED" in events[0].message and "test_fails" in events[0].message
        await pilot.press("escape")
        await pilot.pause()
        app.refresh_view()
        await pilot.pause()
        assert "suite demo: FAILED" in screen_text(app)


async def test_cancel_mid_run_leaves_no_process_while_the_dashboard_keeps_polling_and_answering(tmp_path):
    sleepy = make_suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY_TESTS})
    other = make_suite(tmp_path, "other", {"test_ok.py": "def test_ok():\n    pass\n"})
    app = app_with_suites(tmp_path, {"sleepy": sleepy, "other": other})
    async with app.run_test(size=(140, 44)) as pilot:
        app.engine.start()
        pgid = await start_suite(app, pilot, "sleepy", sleepy / "child.pid", "the suite's child")
        child = int((sleepy / "child.pid").read_text())
        assert alive(child) and group_members(pgid)
        await until(pilot, lambda: "0/1 tests" in screen_text(app), what="the progress line")

        probe = app.engine.targets[0].probe
        calls = len(probe.calls)
        await until(pilot, lambda: len(probe.calls) >= calls + 2, what="engine rounds during the run")
        await pilot.press("down")            # keys answer: the selection moves, the run goes on
        assert app.screen.selected().name == "other" and "sleepy" in app.suite_session.live
        await pilot.press("up", "c")
        result = await until(pilot, lambda: app.suite_session.last("sleepy"), what="the cancelled result")
        assert result.verdict is Verdict.CANCELLED
        assert group_members(pgid) == [] and not alive(child)
        assert not [e for e in app.engine.events if "suite sleepy" in e.message], "a cancel is not news"


async def test_leaving_the_screen_keeps_the_run_and_quitting_the_app_stops_its_whole_group(tmp_path):
    sleepy = make_suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY_TESTS})
    app = app_with_suites(tmp_path, {"sleepy": sleepy})
    async with app.run_test(size=(140, 44)) as pilot:
        pgid = await start_suite(app, pilot, "sleepy", sleepy / "child.pid", "the suite's child")
        child = int((sleepy / "child.pid").read_text())
        await pilot.press("escape")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, SuitesScreen)
        assert "sleepy" in app.suite_session.live and alive(child)
        await pilot.press("t")
        await pilot.pause()
        assert "RUNNING" in screen_text(app)
        await pilot.press("escape", "q")
    assert group_members(pgid) == [] and not alive(child)



STUBBORN_TESTS = '''
import os, signal, time
from pathlib import Path

def test_ignores_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(__file__).with_name("stubborn.pid").write_text(str(os.getpid()))
    time.sleep(300)
'''


async def test_a_hang_up_stops_a_suite_that_ignores_sigterm_within_case_39s_five_seconds(tmp_path):
    """Quitting gives a suite 5 s from SIGTERM to SIGKILL; once the terminal is gone the
    whole process has 5 s (RELIABILITY.md 39), so a suite gets 1 s, and none outlives the app."""
    stubborn = make_suite(tmp_path, "stubborn", {"test_stubborn.py": STUBBORN_TESTS})
    app = app_with_suites(tmp_path, {"stubborn": stubborn})
    async with app.run_test(size=(140, 44)) as pilot:
        pgid = await start_suite(app, pilot, "stubborn", stubborn / "stubborn.pid", "the suite ignoring SIGTERM")
        hung_up = time.monotonic()
        app._hang_up()              # what SIGHUP or the dead terminal calls (dashboard/hangup.py)
    assert time.monotonic() - hung_up < 5.0
    assert group_members(pgid) == []


async def test_a_load_suite_runs_once_confirmed_and_its_result_lands_with_the_screen_closed(tmp_path):
    shipped = tmp_path / "shipped"
    make_suite(shipped, "hammer", {"test_hammer.py": "import time\nfrom pathlib import Path\n\ndef test_mark():\n"
                                                     "    time.sleep(1)\n"
                                                     "    Path(__file__).with_name('ran').write_text('x')\n"},
               suite='SUITE = {"kind": "pytest", "description": "hammers", "generates_load": True}\n')
    app = app_with_suites(tmp_path, {})
    app.suite_session = SuiteSession(all_suites(None, shipped))
    async with app.run_test(size=(140, 44)) as pilot:
        await open_suite(app, pilot, "hammer")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmLoad)
        await pilot.click("#confirm-run")
        await until(pilot, lambda: "hammer" in app.suite_session.live, what="the run to start")
        await pilot.press("escape")          # the result lands in the history with the screen closed
        result = await until(pilot, lambda: app.suite_session.last("hammer"), what="the result")
        assert result.verdict is Verdict.PASSED, result.reason
        assert not isinstance(app.screen, SuitesScreen)
        await pilot.press("t")
        await pilot.pause()
        assert "PASSED" in screen_text(app)
    assert (shipped / "hammer" / "ran").exists()


async def test_a_secret_the_suite_prints_never_reaches_the_screen(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEDASH_TEST_PG_PASSWORD", CANARY)
    leaky = make_suite(tmp_path, "leaky", {"test_leaky.py": (
        "import os\n\ndef test_leaks():\n    secret = os.environ['SCALEDASH_TEST_PG_PASSWORD']\n"
        "    print('printed', secret, flush=True)\n    assert secret == 'x', f'said {secret}'\n")})
    app = app_with_suites(tmp_path, {"leaky": leaky}, replica=[
        {"name": "p", "dsn": "postgresql://u@127.0.0.1:1/db", "password": "env:SCALEDASH_TEST_PG_PASSWORD"}])
    async with app.run_test(size=(140, 44)) as pilot:
        await open_suite(app, pilot, "leaky")
        await pilot.press("enter")
        result = await until(pilot, lambda: app.suite_session.last("leaky"), what="the result")
        await pilot.pause()
        assert result.verdict is Verdict.FAILED
        text = screen_text(app)
        assert "printed ***" in text and "said ***" in text
        assert CANARY not in text
        assert not [e for e in app.engine.events if CANARY in e.message]
