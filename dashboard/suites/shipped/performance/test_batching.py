"""WebSocket frames for the same changes, with the stack's batching and with none.

One subscriber on /realtime counts the frames that carry the workload's changes
(frames of other traffic are left out) while the same seeded ids get new prices in
a burst of price-feed ticks (`POST /items/prices`, sent at once): the bursts of
changes batching is for, and a workload whose timing does not hang on how fast a
shared machine runs single writes. The "off" side sets `batch_window_ms` to 0 (one
frame per change).
"""

from __future__ import annotations

import asyncio

import httpx

from dashboard.suites.shipped.scaling.realtime import TIMEOUT, aiohttp, events_for, frames_until, ws_url
from dashboard.suites.stack import HTTP_TIMEOUT

from .workload import pct, reduction, switch_admin, write_ids

CHANGES, TICKS = 40, 4
PRICES = (11.5, 12.5, 13.5, 14.5)
TARGET = 0.80


async def _frames(stack, ids: list[int], side: str) -> int:
    client_lib = aiohttp()
    async with client_lib.ClientSession() as session:
        async with session.ws_connect(ws_url(stack), timeout=client_lib.ClientWSTimeout(ws_close=TIMEOUT)) as ws:
            async with httpx.AsyncClient(base_url=stack.service.base_url, timeout=HTTP_TIMEOUT) as client:
                ticks = [{str(i): price for i in ids[n::TICKS]} for n, price in enumerate(PRICES)]
                answers = await asyncio.gather(*(client.post("/items/prices", json={"prices": tick})
                                                 for tick in ticks))
            failed = [a.status_code for a in answers if a.status_code != 200]
            assert not failed, f"{side}: {len(failed)} of {TICKS} price ticks failed: {failed}"
            wanted = set(ids)
            frames = events_for(await frames_until(
                ws, lambda fs: {e["id"] for f in events_for(fs, wanted) for e in f} >= wanted), wanted)
    seen = {event["id"] for frame in frames for event in frame}
    assert seen == wanted, f"{side}: {len(wanted - seen)} of {len(ids)} changes never reached the subscriber"
    return len(frames)


def test_batching_takes_websocket_frames_down_by_at_least_80_percent(stack, figures):
    admin = switch_admin(stack, "batch_window_ms", "WebSocket batching")
    ids = write_ids(CHANGES)
    batched = asyncio.run(_frames(stack, ids, "batched"))
    with admin.switched(batch_window_ms=0):
        unbatched = asyncio.run(_frames(stack, ids, "unbatched"))
    down = reduction(batched, unbatched)
    figures.report(f"batching: {batched} WebSocket frames with batching vs {unbatched} without for the same "
                   f"{CHANGES} changes: down {pct(down)} (target >= {pct(TARGET)})",
                   batching_frames_on=batched, batching_frames_off=unbatched, batching_frame_reduction=down)
    assert down >= TARGET, \
        f"batching took the frames for {CHANGES} changes down by {pct(down)} ({batched} frames with it vs " \
        f"{unbatched} without); target >= {pct(TARGET)}"
