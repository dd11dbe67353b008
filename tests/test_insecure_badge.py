"""Case 36: a target whose certificate checks the config turned off carries a badge in
the TUI, for as long as it is configured so (OK or not), and no other target does.

The engine takes the flag from the probe (set from `insecure = true`); the check table
and --json are shown against real TLS servers in tests/integration/test_tls.py.
"""

from __future__ import annotations

import pytest

from dashboard.app import build_app
from dashboard.model import Failure, Kind, Reading
from dashboard.probes.base import ProbeError
from scripted import ScriptedProbe, advance, healthy_fleet, scripted_engine

pytestmark = pytest.mark.anyio


def _screen(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def _settled(app, pilot) -> list[str]:
    await advance(app.engine)
    await pilot.pause()
    app.refresh_view()
    await pilot.pause()
    return _screen(app)


def _cdn(name: str, insecure: bool) -> ScriptedProbe:
    probe = ScriptedProbe(name, "http", [Reading(Kind.CDN, name, {"cache_status": "HIT", "latency_ms": 3.0})],
                          Kind.CDN)
    probe.insecure = insecure
    return probe


async def test_an_insecure_target_has_a_badge_line_while_ok_and_while_failing():
    unverified, verified = _cdn("unverified-cdn", True), _cdn("verified-cdn", False)
    engine = scripted_engine(probes=healthy_fleet() + [unverified, verified])
    app = build_app(engine.config, engine=engine, autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        lines = await _settled(app, pilot)
        badge = [line for line in lines if "[insecure]" in line]
        assert len(badge) == 1 and "unverified-cdn" in badge[0] and "TLS not verified" in badge[0], lines
        assert badge[0].lstrip().startswith("OK")

        unverified.failure = ProbeError(Failure.DOWN, "timeout")
        lines = await _settled(app, pilot)
        badge = [line for line in lines if "[insecure]" in line]
        assert len(badge) == 1 and "unverified-cdn" in badge[0] and "timeout" in badge[0], lines
