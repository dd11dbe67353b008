"""The dashboard on real servers: live figures within 2 s on the lab, a replica that
dies mid-session turns STALE, then DOWN, while the app keeps running, and a metric
source that never answers is on screen with its reason."""

from __future__ import annotations

import socket
import time

import pytest

from dashboard.app import build_app
from dashboard.config import load
from dashboard.model import Kind, State
from metric_texts import scaledash_metrics

pytestmark = pytest.mark.anyio


def _screen(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _replica(app, name: str):
    return next(c for c in app.snapshot.components
                if c.kind is Kind.REPLICA and c.name == name and c.source == "postgres")


async def _until(pilot, predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        await pilot.pause(0.05)
    raise AssertionError(f"not within {timeout}s")


@pytest.mark.slow
async def test_dashboard_on_the_lab_is_live_and_survives_a_dying_replica(disposable_lab):
    app = build_app(load(str(disposable_lab.config_path)))
    async with app.run_test(size=(160, 48)) as pilot:
        first_data = await _until(pilot, lambda: app.snapshot is not None and all(
            _replica(app, n).state is State.OK for n in ("primary", "replica-1", "replica-2")), timeout=2.0)
        print(f"first live data after {first_data:.2f}s")
        await _until(pilot, lambda: any(c.kind is Kind.BATCHER and c.metrics.get("messages_in_per_s")
                                        for c in app.snapshot.components), timeout=5.0)

        victim = next(e for e in disposable_lab.entries() if e.name == "postgres-replica-2")
        victim.process().kill()
        killed = time.monotonic()
        seen: list[State] = []

        def down() -> bool:
            state = _replica(app, "replica-2").state
            if not seen or seen[-1] is not state:
                seen.append(state)
            return state is State.DOWN

        await _until(pilot, down, timeout=8.0)
        print(f"states after the kill: {[s.value for s in seen]} in {time.monotonic() - killed:.2f}s")
        assert State.DOWN in seen
        assert _replica(app, "replica-1").state is State.OK     # the others keep updating
        assert app.is_running
        screen = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "replica-2" in screen and "DOWN" in screen


async def test_a_source_that_never_answers_is_on_screen_with_its_reason(http, write_config):
    http.routes["/metrics"] = scaledash_metrics()
    config = write_config(f"""
name = "live"
interval = "1s"
timeout = "800ms"

[[source]]
name = "app"
scrape = "{http.url('/metrics')}"

[[source]]
name = "billing"
scrape = "http://127.0.0.1:{_closed_port()}/metrics"
""")
    app = build_app(load(str(config)))
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: "billing" in _screen(app) and "upstream" in _screen(app), timeout=8.0)
        text = _screen(app)
        line = next(line for line in text.splitlines() if "billing" in line)
        print(line)
        assert "never answered" in line and "refused" in line
        assert any(word in line for word in ("DOWN", "ERROR", "STALE"))
        assert "sources 1/2 ok" in text.splitlines()[0]
