"""Render the real app against a running lab into SVG screenshots for the README.

    scaledash lab up --dir .lab
    .venv/bin/python screenshots/export.py --config .lab/scaledash.toml

Uses the same app factory as the CLI and the tests, at 80x24 and 160x48, plus the
detail screen of the first replica, the help screen, the suites screen after a run
of the shipped `scaling` suite against the lab (`--only suites` shoots just that one),
and a drill running beside the panels (`--only drills`: `upstream-fault`, aborted with
rollback once shot, so the lab is left as it was). From a recording of the lab
(`scaledash daemon FILE`): `--only replay --recording FILE` (the replay at its first
state change) and `--only serve --recording FILE` (the browser view, a PNG from
Debian's Chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.app import build_app  # noqa: E402
from dashboard.config import load  # noqa: E402


async def shoot(config_path: str, out: Path, settle: float) -> list[Path]:
    written = []
    for size, name in (((80, 24), "main-80x24"), ((160, 48), "main-160x48")):
        app = build_app(load(config_path), readonly=True)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(settle)
            app.refresh_view()
            await pilot.pause(0.3)
            written.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(out))))
            if name == "main-160x48":
                await pilot.press("tab")
                await pilot.press("enter")
                await pilot.pause(1.2)
                written.append(Path(app.save_screenshot(filename="detail-160x48.svg", path=str(out))))
                await pilot.press("escape")
                await pilot.press("question_mark")
                await pilot.pause(0.3)
                written.append(Path(app.save_screenshot(filename="help-160x48.svg", path=str(out))))
    return written


async def shoot_suites(config_path: str, out: Path, suite: str, wait: float) -> list[Path]:
    """The suites screen once `suite` has run: the list, its result and its output (not
    read-only: read-only mode runs no suite)."""
    app = build_app(load(config_path))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("t")
        await pilot.pause(0.3)
        names = [s.name for s in app.suite_session.specs]
        await pilot.press(*["down"] * names.index(suite), "enter")
        for _ in range(int(wait / 0.5)):
            await pilot.pause(0.5)
            if app.suite_session.last(suite) is not None:
                break
        await pilot.pause(0.6)
        return [Path(app.save_screenshot(filename="suites-160x48.svg", path=str(out)))]


async def shoot_drill(config_path: str, out: Path, drill: str, target: str) -> list[Path]:
    """The main screen while `drill` runs: its timeline beside the panels."""
    from textual.widgets import Input

    app = build_app(load(config_path))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(4.0)
        await pilot.press("d")
        await pilot.pause(0.3)
        names = [d.name for d in app.drill_session.drills]
        await pilot.press(*["down"] * names.index(drill), "enter")
        await pilot.pause(0.5)
        app.screen.query_one(Input).focus()
        await pilot.press(*target, "enter")
        await pilot.press("escape")
        follow = app.drill_session.live()[-1]
        for _ in range(120):
            await pilot.pause(0.5)
            if any(e.text.startswith("step 3") for e in follow.entries):
                break
        await pilot.pause(3.0)
        written = [Path(app.save_screenshot(filename="drill-160x48.svg", path=str(out)))]
        await pilot.press("a")
        for _ in range(120):
            await pilot.pause(0.5)
            if follow.end is not None:
                break
        return written


async def shoot_replay(recording: str, out: Path) -> list[Path]:
    """A replay of a lab recording, at the first state change to a state not OK (`n`)."""
    from dashboard.config_schema import validate
    from dashboard.recording import Recording
    from dashboard.recording.replay import ReplayFeed
    from dashboard.replay_app import ReplayApp

    feed = ReplayFeed(Recording(recording))
    app = ReplayApp(validate({"name": feed.recording.meta.get("name") or "recording"}), feed)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("space")
        for _ in range(10):
            await pilot.press("n")
            await pilot.pause(0.3)
            if app.feed.snapshot().overall.value != "OK":
                break
        app.refresh_view()
        await pilot.pause(0.3)
        return [Path(app.save_screenshot(filename="replay-160x48.svg", path=str(out)))]


def shoot_serve(recording: str, out: Path) -> list[Path]:
    """`scaledash serve --replay` in Debian's Chromium, at 1600x1000: the recording from
    its start (a recording no longer written would say so in attach mode)."""
    import re
    import signal
    import subprocess
    import time
    import urllib.request

    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Browser
    from dashboard.lab.servers import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", recording, "--replay", "--port",
                               str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        browser = Browser(size=(1600, 1000))
        browser.open(f"http://127.0.0.1:{port}/")
        browser.wait("the panels", lambda: "Replicas (" in re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "",
                                                                  browser.received()))
        time.sleep(6.0)             # a few seconds into the replay: sparklines with some history
        return [browser.screenshot(out / "serve-1600x1000.png")]
    finally:
        if browser is not None:
            browser.close()
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the lab's config (every shot but replay and serve)")
    parser.add_argument("--recording", help="a recording of the lab, for --only replay and --only serve")
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--settle", type=float, default=6.0, help="seconds of live data before the shot")
    parser.add_argument("--only", choices=("all", "suites", "drills", "replay", "serve"), default="all")
    parser.add_argument("--suite", default="scaling", help="the suite run for the suites screen")
    parser.add_argument("--suite-wait", type=float, default=300.0, help="seconds to wait for its result")
    args = parser.parse_args()
    if args.only in ("replay", "serve"):
        if not args.recording:
            parser.error(f"--only {args.only} needs --recording FILE")
        written = asyncio.run(shoot_replay(args.recording, Path(args.out))) if args.only == "replay" else \
            shoot_serve(args.recording, Path(args.out))
        for path in written:
            print(path)
        return 0
    if not args.config:
        parser.error("--config is needed")
    written = [] if args.only != "all" else asyncio.run(shoot(args.config, Path(args.out), args.settle))
    if args.only in ("all", "suites"):
        written += asyncio.run(shoot_suites(args.config, Path(args.out), args.suite, args.suite_wait))
    if args.only in ("all", "drills"):
        written += asyncio.run(shoot_drill(args.config, Path(args.out), "upstream-fault", "service"))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
