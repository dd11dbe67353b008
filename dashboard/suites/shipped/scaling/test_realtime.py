"""Batched updates: N changes reach a subscriber in far fewer frames than N, and a client
that unsubscribes is cleaned up (the subscriber gauge goes back down)."""

from __future__ import annotations

import asyncio

import httpx

from dashboard.suites.stack import HTTP_TIMEOUT, require, wait_until

from .moves import fresh_write_id
from .realtime import TIMEOUT, aiohttp, events_for, frames_until, ws_url

CHANGES = 40
MAX_FRAMES = CHANGES // 4       # "far fewer": at least 4 changes per frame on average
GAUGE = "batcher_subscribers"


async def _change_and_count(stack, ids: list[int]) -> list[list[dict]]:
    client_lib = aiohttp()
    async with client_lib.ClientSession() as session:
        async with session.ws_connect(ws_url(stack), timeout=client_lib.ClientWSTimeout(ws_close=TIMEOUT)) as ws:
            async with httpx.AsyncClient(base_url=stack.service.base_url, timeout=HTTP_TIMEOUT) as client:
                answers = await asyncio.gather(*(client.put(f"/items/{i}", json={"name": f"batch-{i}"})
                                                 for i in ids))
            failed = [a.status_code for a in answers if a.status_code != 200]
            assert not failed, f"{len(failed)} of {len(ids)} writes failed: {failed[:5]}"
            wanted = set(ids)
            frames = await frames_until(
                ws, lambda fs: {e["id"] for f in events_for(fs, wanted) for e in f} >= wanted)
    return events_for(frames, set(ids))


def test_batching_sends_far_fewer_frames_than_changes(stack):
    ids = [fresh_write_id() for _ in range(CHANGES)]
    frames = asyncio.run(_change_and_count(stack, ids))
    seen = {event["id"] for frame in frames for event in frame}
    assert seen == set(ids), f"{len(set(ids) - seen)} of {CHANGES} changes never reached the subscriber"
    assert len(frames) <= MAX_FRAMES, \
        f"{CHANGES} changes came in {len(frames)} frames (sizes {[len(f) for f in frames]}); " \
        f"batching should need at most {MAX_FRAMES}"


def _subscribers(stack) -> float:
    metrics = stack.metrics()
    require(metrics.has(GAUGE), f"the service exports no {GAUGE} gauge: subscribers cannot be counted")
    return metrics.value(GAUGE)


async def _subscribe_then_leave(stack, counts: dict) -> None:
    client_lib = aiohttp()
    async with client_lib.ClientSession() as session:
        ws = await session.ws_connect(ws_url(stack), timeout=client_lib.ClientWSTimeout(ws_close=TIMEOUT))
        try:
            counts["subscribed"] = await asyncio.to_thread(
                wait_until, "the subscriber gauge counts a new client", lambda: _subscribers(stack),
                lambda n: n >= counts["before"] + 1, 10)
        finally:
            await ws.close()


def test_unsubscribed_client_is_cleaned_up(stack):
    counts = {"before": _subscribers(stack)}
    asyncio.run(_subscribe_then_leave(stack, counts))
    wait_until(f"the subscriber gauge goes back to {counts['before']:g} after the client left "
               f"(it counted {counts['subscribed']:g} while subscribed)",
               lambda: _subscribers(stack), lambda n: n <= counts["before"], 10)
    # A change after it left is sent to the subscribers still there, none to the gone one.
    admin, _ = stack.find_admin()
    if admin is not None:
        subscribers = admin.state()["batcher"]["subscribers"]
        assert subscribers <= counts["before"], \
            f"/admin/state lists {subscribers} subscribers after the client left (before: {counts['before']:g})"
