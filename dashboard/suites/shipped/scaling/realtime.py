"""A WebSocket subscriber to the service's /realtime, for the batching checks.

aiohttp is the lab's dependency (`pip install scaledash[lab]`), not the dashboard's:
without it the WebSocket checks are skipped with that reason.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from dashboard.suites.stack import Stack

TIMEOUT = 5.0


def ws_url(stack: Stack) -> str:
    base = str(stack.service.base_url).rstrip("/")
    return ("ws" + base[4:] if base.startswith("http") else base) + "/realtime"


def aiohttp():
    try:
        import aiohttp as module
    except ImportError:
        pytest.skip("aiohttp is not installed (pip install 'scaledash[lab]'): no WebSocket client")
    return module


async def frames_until(ws, done, deadline_s: float = 10.0) -> list[list]:
    """Frames (each a JSON list of events) until `done(frames)` or the deadline."""
    frames: list[list] = []
    deadline = time.monotonic() + deadline_s
    while not done(frames):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            message = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if message.type.name != "TEXT":
            break
        frame = json.loads(message.data)
        assert isinstance(frame, list), f"a /realtime frame is not a JSON list: {message.data[:200]}"
        frames.append(frame)
    return frames


def events_for(frames: list[list], ids: set[int]) -> list[list[dict]]:
    """Per frame, the events about `ids` (frames without any are left out)."""
    mine = [[e for e in frame if isinstance(e, dict) and e.get("id") in ids] for frame in frames]
    return [events for events in mine if events]
