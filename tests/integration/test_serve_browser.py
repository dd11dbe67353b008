"""`scaledash serve`: the dashboard in a real headless browser (Debian's Chromium).

The page loads, textual-serve starts an `attach` process for the tab, and the page is
sent the panels of the recording it follows: a fleet with a replica DOWN shows DOWN, a
healthy one does not (both sides, read from what the page's WebSocket received, since
the terminal is drawn on a canvas). A screenshot of each is kept in the test's tmp dir.
The token guard is tested over real HTTP: without the token 403, with it the page, a
cookie, and then the WebSocket and static files on that cookie.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import CANARY, ROOT, run_cli, wait_for
from dashboard.lab.servers import free_port
from dashboard.model import State
from dashboard.recording import Recorder
from test_recording import fleet

pytest.importorskip("textual_serve", reason="textual-serve is not installed (pip install 'scaledash[serve]')")
import browser as browser_mod  # noqa: E402  (tests/browser.py)
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def recording(path, replica: State) -> str:
    rec = Recorder(path, name="war-room")
    for i in range(5):
        rec.write(fleet(time.time() - 5 + i, lag=100.0 * i, replica=replica,
                        reason=None if replica is State.OK else "connection refused"))
    rec.close()
    return str(path)


class Served:
    def __init__(self, path: str, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", path, "--port", str(self.port),
                                      *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}/"
        wait_for(lambda: _answers(self.url), timeout=30)

    def stop(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return out, err


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def browser():
    if browser_mod.chromium() is None:
        pytest.skip("no Chromium: `make test` installs Debian's chromium as root; else apt-get install chromium")
    b = browser_mod.Browser()
    yield b
    b.close()


@pytest.mark.parametrize("replica", [State.DOWN, State.OK], ids=["replica-down", "healthy"])
def test_the_browser_shows_the_panels_of_the_recording_it_follows(browser, tmp_path, replica):
    served = Served(recording(tmp_path / "fleet.sqlite", replica))
    try:
        browser.open(served.url)
        browser.wait("the first bytes of the app", lambda: browser.evaluate(
            "document.body && document.body.classList.contains('-first-byte')"))
        text = browser.wait("the panels", lambda: (lambda t: t if "Replicas (" in t and "replica-1" in t else None)(
            ANSI.sub("", browser.received())))
        time.sleep(1.0)              # the rest of the first frame, for the screenshot
        text = ANSI.sub("", browser.received())
        shot = browser.screenshot(tmp_path / f"serve-{replica.value}.png")
        assert shot.stat().st_size > 20_000, "the screenshot is (nearly) blank"
        assert "war-room" in text and "ATTACHED" in text and "Caches (" in text
        assert ("DOWN" in text) is (replica is State.DOWN), text[-2000:]
        assert CANARY not in text
    finally:
        out, err = served.stop()
    assert served.proc.returncode == 0, err
    wait_for(lambda: not _attached_to(tmp_path / "fleet.sqlite"), timeout=10)   # the tabs' apps went too
    assert f"serving the dashboard attached to {tmp_path / 'fleet.sqlite'} on {served.url}" in out
    assert "Traceback" not in out + err and "token" not in out


def test_off_loopback_a_token_opens_the_page_and_a_cookie_carries_it(tmp_path):
    """The guard itself, over real HTTP on loopback (the tests bind nothing else)."""
    import asyncio

    import aiohttp

    from dashboard.serve import COOKIE, make_server

    path = recording(tmp_path / "fleet.sqlite", State.OK)
    server = make_server(path, "127.0.0.1", 0, token="t0k3n-abcdefgh")

    async def scenario():
        from aiohttp.test_utils import TestServer

        async with TestServer(await server._make_app(), host="127.0.0.1") as http:
            base = f"http://127.0.0.1:{http.port}"
            async with aiohttp.ClientSession() as plain:
                for path_ in ("/", "/static/js/textual.js", "/ws"):
                    async with plain.get(base + path_) as resp:
                        assert resp.status == 403, path_
                async with plain.get(base + "/?token=wrong") as resp:
                    assert resp.status == 403
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as user:  # as a browser: IP hosts too
                async with user.get(base + "/?token=t0k3n-abcdefgh") as resp:
                    assert resp.status == 200 and "textual-terminal" in await resp.text()
                    assert resp.cookies[COOKIE]["httponly"] and resp.cookies[COOKIE]["samesite"] == "Strict"
                async with user.get(base + "/static/js/textual.js") as resp:
                    assert resp.status == 200
                async with user.ws_connect(base + "/ws?width=100&height=30") as ws:
                    message = await ws.receive(timeout=30)
                    assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                    assert tab_apps(), "no attach process started for the tab"
                    await ws.close()
                # The tab's app quits with its WebSocket (textual-serve tells it to).
                for _ in range(100):
                    if not tab_apps():
                        break
                    await asyncio.sleep(0.1)
                assert not tab_apps(), "the tab's attach process outlived its WebSocket"

    asyncio.run(scenario())


def _attached_to(path) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if str(path) in " ".join(p.info["cmdline"] or ()) and "attach" in " ".join(p.info["cmdline"] or ())]


def tab_apps() -> list:
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if "attach" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE]


def test_serve_answers_bad_input_in_one_line(tmp_path):
    missing = run_cli("serve", str(tmp_path / "nope.sqlite"))
    assert missing.code == 3 and "no such recording" in missing.err and len(missing.err.strip().splitlines()) == 1
    port = run_cli("serve", recording(tmp_path / "r.sqlite", State.OK), "--port", "70000")
    assert port.code == 3 and "--port must be 1-65535" in port.err


def test_a_tabs_app_ends_when_the_server_is_killed(tmp_path):
    """A server that dies (SIGKILL, OOM) must not leave its tabs' apps behind: their pipes
    close with it, and each app ends on its input's end (one was once seen rendering at
    80 % CPU for an hour after a server was killed in its old 60 s shutdown wait)."""
    import asyncio

    import aiohttp

    path = recording(tmp_path / "fleet.sqlite", State.OK)
    served = Served(path)

    async def open_tab():
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"ws://127.0.0.1:{served.port}/ws?width=100&height=30")
        await ws.receive(timeout=30)             # the tab's app has drawn its first frame
        return session, ws

    loop = asyncio.new_event_loop()
    try:
        session, ws = loop.run_until_complete(open_tab())
        assert wait_for(lambda: _attached_to(tmp_path / "fleet.sqlite"), timeout=10)
        served.proc.kill()
        served.proc.wait(10)
        wait_for(lambda: not _attached_to(tmp_path / "fleet.sqlite"), timeout=8)
        loop.run_until_complete(session.close())
    finally:
        loop.close()
