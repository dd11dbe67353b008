"""One change followed through the stack: write -> every cache layer invalidated -> read
from a replica once it has replayed the write -> cached -> pushed to a subscriber in a
batch (a frame that is a JSON list of events)."""

from __future__ import annotations

import asyncio
import time

from dashboard.suites.stack import require, wait_until

from .moves import fresh_write_id, wait_replayed, write_item
from .realtime import TIMEOUT, aiohttp, events_for, frames_until, ws_url

# The service learns a replica's replay position from its health check (once a second in
# the lab). With an admin endpoint the check's age is read; without, two periods are given.
HEALTH_CHECK_PERIOD_S = 2.0


def _read(stack, item_id: int):
    response = stack.service.get(f"/items/{item_id}")
    assert response.status_code == 200, f"GET /items/{item_id} answered {response.status_code}"
    return response.headers.get("X-Cache"), response.headers.get("X-Db-Node"), response.json()


async def _write_and_watch(stack, item_id: int, price: float) -> list[list[dict]]:
    client_lib = aiohttp()
    async with client_lib.ClientSession() as session:
        async with session.ws_connect(ws_url(stack), timeout=client_lib.ClientWSTimeout(ws_close=TIMEOUT)) as ws:
            await asyncio.to_thread(write_item, stack, item_id, price=price)
            frames = await frames_until(ws, lambda fs: bool(events_for(fs, {item_id})))
    return events_for(frames, {item_id})


def _service_saw_the_replay(stack, replayed_at: float) -> None:
    """Until the service has checked every replica since PostgreSQL showed the replay."""
    admin, _ = stack.find_admin()
    if admin is None:
        time.sleep(HEALTH_CHECK_PERIOD_S)
        return

    def ages() -> dict:
        return {name: health.get("age_s") for name, health in admin.state()["routing"]["replicas"].items()}

    wait_until("the service checks every replica after the replay (seconds since each check)", ages,
               lambda seen: all(age is not None and age + 0.1 < time.monotonic() - replayed_at
                                for age in seen.values()), interval=0.2)


def test_write_invalidates_replays_caches_and_pushes_in_a_batch(stack):
    replicas = {node.name for node in stack.replicas}
    item_id = fresh_write_id()
    write_item(stack, item_id, name="scaling-suite e2e", price=1.0)
    _read(stack, item_id)
    layer, _, body = _read(stack, item_id)
    assert layer == "HIT-memory" and body["price"] == 1.0, f"item not cached before the change: {layer} {body}"

    pushed = asyncio.run(_write_and_watch(stack, item_id, 2.0))
    assert pushed and any(e.get("price") == 2.0 for e in pushed[0]), \
        f"no /realtime frame carried the change of item {item_id} to price 2.0 (frames about it: {pushed})"

    wait_replayed(stack, f"the write to item {item_id}")
    _service_saw_the_replay(stack, time.monotonic())
    layer, node, body = _read(stack, item_id)
    require(node is not None, "the service sets no X-Db-Node header: the answering node cannot be seen")
    assert layer == "MISS" and body["price"] == 2.0, \
        f"the read after the write answered {layer} {body}; expected a database read of price 2.0"
    assert node in replicas, f"the read after every replica replayed the write was served by {node}, " \
                             f"not by a replica ({sorted(replicas)})"
    layer, _, body = _read(stack, item_id)
    assert layer == "HIT-memory" and body["price"] == 2.0, f"the new value was not cached: {layer} {body}"
