"""The items cache: memory (bounded LRU with TTL) -> Redis -> the database.

Every lookup counts once per layer it reaches (`cache_requests_total`), so a
memory miss is exactly one Redis lookup -- the dashboard's hit rate relies on that.
Redis is optional at run time: its calls have a 35 ms socket deadline, no retries,
and run through the `redis` breaker, so a dead Redis turns into misses answered by
the database, not into errors or slow requests.

Two races are closed here rather than hoped away:
- A reader that loaded a value just before a write must not put it back into a
  cache after the write invalidated it: every invalidation is stamped with an
  epoch, and a fill is dropped (or undone in Redis) when the key was invalidated
  after the fill's load began.
- A write whose Redis DEL failed (Redis down or the breaker open) cannot leave a
  stale value behind for when Redis returns: the key is remembered as "dirty in
  Redis" until a fresh value overwrites it there or the old one has surely expired
  (REDIS_TTL_SECONDS), and Redis is not asked for it meanwhile.  Should that list
  overflow, the cache moves to a new key generation instead, so every older Redis
  entry is never read again.

Two admin switches break the cache on purpose, so that its targets can be seen
missed: `bypass` makes every lookup a miss in both layers and stores nothing (the
hit rate of a cache that holds nothing), and `hit_delay_ms` makes every hit wait
that long (a cache across a slow link: hits, but no faster than the database).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from dashboard.lab.service.breakers import Breaker, BreakerOpen
from dashboard.lab.service.metrics import ServiceMetrics

log = logging.getLogger("lab.service.cache")

CACHE_NAME = "items"
MEMORY_ENTRIES = 256
MEMORY_TTL = 30.0
REDIS_TTL_SECONDS = 300
# A hung Redis costs one such timeout per request until the breaker opens (a stopped
# one costs a refused connect, well under a millisecond).
REDIS_TIMEOUT = 0.035
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
MAX_TRACKED_KEYS = 10_000

MEMORY, REDIS = "memory", "redis"


def make_redis(url: str, password: str | None) -> Redis:
    """A Redis client that fails fast: 35 ms deadlines, no retries, at most 16 connections."""
    pool = BlockingConnectionPool.from_url(
        url, password=password, max_connections=16, timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0), retry_on_error=[])
    return Redis(connection_pool=pool)


class MemoryLRU:
    """A bounded LRU map whose entries also expire after `ttl` seconds."""

    def __init__(self, max_entries: int = MEMORY_ENTRIES, ttl: float = MEMORY_TTL) -> None:
        self._entries: OrderedDict[object, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl

    def get(self, key: object) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: object, value: bytes) -> None:
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def delete(self, key: object) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class LayeredCache:
    """memory -> Redis -> `load()`; values are the response bodies (bytes)."""

    def __init__(self, metrics: ServiceMetrics, redis: Redis, breaker: Breaker,
                 memory: MemoryLRU | None = None, name: str = CACHE_NAME) -> None:
        self.name = name
        self.memory = memory or MemoryLRU()
        self._redis = redis
        self._breaker = breaker
        self._metrics = metrics
        # A fresh prefix per process: entries a previous run left behind are never trusted.
        self._run = secrets.token_hex(4)
        self._generation = 0
        self._epoch = 0
        self._invalidated_at: OrderedDict[object, int] = OrderedDict()
        # key -> monotonic time its Redis DEL failed; oldest first.
        self._dirty_in_redis: OrderedDict[object, float] = OrderedDict()
        self.bypass = False
        self.hit_delay_ms = 0
        for layer in (MEMORY, REDIS):
            for result in ("hit", "miss"):
                metrics.cache_requests.labels(name, layer, result)
        metrics.cache_invalidations.labels(name)

    def _key(self, key: object) -> str:
        return f"{self.name}:{self._run}:{self._generation}:{key}"

    def _count(self, layer: str, hit: bool) -> None:
        self._metrics.cache_requests.labels(self.name, layer, "hit" if hit else "miss").inc()

    async def get(self, key: object, load: Callable[[], Awaitable[bytes | None]]) -> tuple[bytes | None, str | None]:
        """The value and the layer that answered (None: loaded from the database, or absent).

        `load()` may raise; nothing is cached then.
        """
        if self.bypass:
            self._count(MEMORY, False)
            self._count(REDIS, False)
            return await load(), None
        value = self.memory.get(key)
        self._count(MEMORY, value is not None)
        if value is not None:
            await self._delay_hit()
            return value, MEMORY
        value, redis_answered = await self._redis_get(key)
        self._count(REDIS, value is not None)
        if value is not None:
            self._fill_memory(key, value, self._epoch)
            await self._delay_hit()
            return value, REDIS
        started = self._epoch
        value = await load()
        if value is not None:
            self._fill_memory(key, value, started)
            # Redis that just failed this request is not asked again: one timeout per request at most.
            if redis_answered:
                await self._fill_redis(key, value, started)
        return value, None

    async def _delay_hit(self) -> None:
        if self.hit_delay_ms:
            await asyncio.sleep(self.hit_delay_ms / 1000)

    async def invalidate(self, *keys: object) -> None:
        """Remove `keys` from every layer before returning (see the module docstring)."""
        for key in keys:
            self._epoch += 1
            self._invalidated_at[key] = self._epoch
            self._invalidated_at.move_to_end(key)
            self.memory.delete(key)
        while len(self._invalidated_at) > MAX_TRACKED_KEYS:
            self._invalidated_at.popitem(last=False)
        self._metrics.cache_invalidations.labels(self.name).inc(len(keys))
        if keys and not await self._redis_delete(*keys):
            self._mark_dirty(keys)

    def _mark_dirty(self, keys: tuple) -> None:
        now = time.monotonic()
        for key in keys:
            self._dirty_in_redis[key] = now
            self._dirty_in_redis.move_to_end(key)
        if len(self._dirty_in_redis) > MAX_TRACKED_KEYS:
            self._dirty_in_redis.clear()
            self._generation += 1
            log.warning("redis unreachable for %d invalidations; cache moved to key generation %d",
                        MAX_TRACKED_KEYS, self._generation)

    def _dirty(self, key: object) -> bool:
        """True while Redis may still hold a value older than the last write to `key`."""
        expired_before = time.monotonic() - REDIS_TTL_SECONDS
        while self._dirty_in_redis and next(iter(self._dirty_in_redis.values())) < expired_before:
            self._dirty_in_redis.popitem(last=False)
        return key in self._dirty_in_redis

    def _stale(self, key: object, started: int) -> bool:
        return self._invalidated_at.get(key, 0) > started

    def _fill_memory(self, key: object, value: bytes, started: int) -> None:
        if not self._stale(key, started):
            self.memory.put(key, value)

    async def _fill_redis(self, key: object, value: bytes, started: int) -> None:
        if self._stale(key, started):
            return
        redis_key = self._key(key)
        stored = await self._redis_call(lambda: self._redis.set(redis_key, value, ex=REDIS_TTL_SECONDS))
        if self._stale(key, started):
            # A write invalidated the key while our SET was in flight; its DEL may have landed first.
            if not await self._redis_delete(key):
                self._mark_dirty((key,))
        elif stored:
            # The fresh value replaced whatever stale one Redis held.
            self._dirty_in_redis.pop(key, None)

    async def _redis_get(self, key: object) -> tuple[bytes | None, bool]:
        """(value or None, whether Redis answered at all)."""
        if self._dirty(key):
            return None, True
        redis_key = self._key(key)
        value = await self._redis_call(lambda: self._redis.get(redis_key), fallback=True, failed=False)
        return (None, False) if value is False else (value, True)

    async def _redis_delete(self, *keys: object) -> bool:
        redis_keys = [self._key(key) for key in keys]
        return await self._redis_call(lambda: self._redis.delete(*redis_keys), failed=False) is not False

    async def _redis_call(self, call, *, fallback: bool = False, failed=None):
        """Run one Redis command through the breaker; `failed` when Redis could not answer.

        fallback=True counts a breaker fallback: the caller answers from the database.
        """
        try:
            return await self._breaker.call(call)
        except (BreakerOpen, *REDIS_ERRORS):
            if fallback:
                self._breaker.fallback()
            return failed

    def state(self) -> dict:
        return {"memory_entries": len(self.memory), "redis_generation": self._generation,
                "keys_dirty_in_redis": len(self._dirty_in_redis), "redis_breaker": self._breaker.state}
