"""The items cache answers from each layer (memory, Redis, the database) and a write
invalidates every layer.

Which layer answered is read three ways: the service's `X-Cache` header, its
`cache_requests_total{cache,layer,result}` counters, and Redis itself (the entry for
the item exists after a database read and is gone after a write).
"""

from __future__ import annotations

import random

import redis

from dashboard.suites.stack import require

from .moves import fresh_write_id, write_item

MEMORY_EVICTING_READS = 400     # distinct cached items: more than any in-process LRU here holds
SEEDED_IDS = (1, 1000)


def _read(stack, item_id: int) -> tuple[str, dict]:
    response = stack.service.get(f"/items/{item_id}")
    assert response.status_code == 200, f"GET /items/{item_id} answered {response.status_code}"
    layer = response.headers.get("X-Cache")
    require(layer is not None, "the service sets no X-Cache header on item reads: layers cannot be told apart")
    return layer, response.json()


def _redis_keys(stack, item_id: int) -> list[bytes]:
    """The Redis entries for `item_id` (keys end in `:<id>`)."""
    target = stack.redis
    client = redis.Redis.from_url(target.url, password=target.password.reveal() if target.password else None,
                                  socket_timeout=3, socket_connect_timeout=3)
    try:
        return list(client.scan_iter(match=f"*:{item_id}", count=1000))
    finally:
        client.close()


def _lookups(stack) -> dict[tuple[str, str], float]:
    metrics = stack.metrics()
    return {(layer, result): metrics.value("cache_requests_total", layer=layer, result=result)
            for layer in ("memory", "redis") for result in ("hit", "miss")}


def _evict_from_memory(stack) -> None:
    """Fill the memory layer with other items so that the least recently used goes."""
    low, high = SEEDED_IDS
    for other in random.sample(range(low, high + 1), min(MEMORY_EVICTING_READS, high - low + 1)):
        stack.service.get(f"/items/{other}")


def test_cache_answers_from_the_database_then_memory_then_redis(stack):
    item_id = fresh_write_id()
    write_item(stack, item_id, name="scaling-suite cache", price=1.5)
    before = _lookups(stack)
    first, body = _read(stack, item_id)
    after = _lookups(stack)
    assert first == "MISS" and body["name"] == "scaling-suite cache", f"first read: {first} {body}"
    assert after[("memory", "miss")] > before[("memory", "miss")] and \
        after[("redis", "miss")] > before[("redis", "miss")], \
        f"a database read did not count a miss in both layers: {before} -> {after}"
    assert _redis_keys(stack, item_id), f"no Redis entry for item {item_id} after a database read"
    second, _ = _read(stack, item_id)
    assert second == "HIT-memory", f"second read answered {second}; expected the memory layer"
    _evict_from_memory(stack)
    before = _lookups(stack)
    third, body = _read(stack, item_id)
    after = _lookups(stack)
    assert third == "HIT-redis" and body["name"] == "scaling-suite cache", \
        f"after {MEMORY_EVICTING_READS} other reads the item answered {third} {body}; expected Redis"
    assert after[("redis", "hit")] > before[("redis", "hit")], \
        f"a Redis hit was not counted: {before} -> {after}"
    fourth, _ = _read(stack, item_id)
    assert fourth == "HIT-memory", f"the Redis hit did not refill memory: next read answered {fourth}"


def test_a_write_invalidates_every_cache_layer(stack):
    item_id = fresh_write_id()
    write_item(stack, item_id, name="before")
    _read(stack, item_id)
    layer, _ = _read(stack, item_id)
    assert layer == "HIT-memory" and _redis_keys(stack, item_id), \
        f"item {item_id} not cached in both layers before the write ({layer})"
    invalidations = stack.metrics().value("cache_invalidations_total")
    write_item(stack, item_id, name="after")
    assert not _redis_keys(stack, item_id), f"Redis still holds item {item_id} after the write"
    assert stack.metrics().value("cache_invalidations_total") > invalidations, \
        "the write counted no cache invalidation"
    layer, body = _read(stack, item_id)
    assert layer == "MISS" and body["name"] == "after", \
        f"the read after the write answered {layer} {body}; expected a database read of the new value"
