"""The items cache: memory (bounded LRU with TTL) -> Redis -> the database.

Every lookup counts once per layer it reaches (`cache_requests_total`), so a
memory miss is exactly one Redis lookup -- the dashboard's hit rate relies on that.
Redis is optional at run time: its calls have a 40 ms socket deadline, no retries,
and run through the `redis` breaker, so a dead Redis turns into misses answered by
the database, not into errors or slow requests.

Two races are closed here rather than hoped away:
- A reader that loaded a value just before a write must not put it back into a
  cache after the write invalidated it: every invalidation is stamped with an
  epoch, and a fill is dropped (or undone in Redis) when the key was invalidated
  after the fill's load began.
- A write whose Redis DEL failed (Redis down or the breaker open) cannot leave a
  stale value behind for when Redis returns: it moves the cache to a new key
  generation, so every older Redis entry is simply never read again (and expires).
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
MEMORY_TTL = 10.0
REDIS_TTL_SECONDS = 60
REDIS_TIMEOUT = 0.04
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

MEMORY, REDIS = "memory", "redis"


def make_redis(url: str, password: str | None) -> Redis:
    """A Redis client that fails fast: 40 ms deadlines, no retries, at most 16 connections."""
    pool = BlockingConnectionPool.from_url(
        url, password=password, max_connections=16, timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0), retry_on_error=[],
        # No CLIENT SETINFO round trip on every new connection.
        lib_name=None, lib_version=None)
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
        value = self.memory.get(key)
        self._count(MEMORY, value is not None)
        if value is not None:
            return value, MEMORY
        value = await self._redis_get(key)
        self._count(REDIS, value is not None)
        if value is not None:
            self._fill_memory(key, value, self._epoch)
            return value, REDIS
        started = self._epoch
        value = await load()
        if value is not None:
            self._fill_memory(key, value, started)
            await self._fill_redis(key, value, started)
        return value, None

    async def invalidate(self, key: object) -> None:
        """Remove `key` from every layer before returning (see the module docstring)."""
        self._epoch += 1
        self._invalidated_at[key] = self._epoch
        self._invalidated_at.move_to_end(key)
        while len(self._invalidated_at) > 10_000:
            self._invalidated_at.popitem(last=False)
        self.memory.delete(key)
        self._metrics.cache_invalidations.labels(self.name).inc()
        if not await self._redis_delete(key):
            self._generation += 1
            log.warning("redis invalidation failed; cache moved to key generation %d", self._generation)

    def _stale(self, key: object, started: int) -> bool:
        return self._invalidated_at.get(key, 0) > started

    def _fill_memory(self, key: object, value: bytes, started: int) -> None:
        if not self._stale(key, started):
            self.memory.put(key, value)

    async def _fill_redis(self, key: object, value: bytes, started: int) -> None:
        if self._stale(key, started):
            return
        redis_key = self._key(key)
        await self._redis_call(lambda: self._redis.set(redis_key, value, ex=REDIS_TTL_SECONDS))
        if self._stale(key, started):
            # A write invalidated the key while our SET was in flight; its DEL may have landed first.
            await self._redis_delete(key)

    async def _redis_get(self, key: object) -> bytes | None:
        redis_key = self._key(key)
        return await self._redis_call(lambda: self._redis.get(redis_key), fallback=True)

    async def _redis_delete(self, key: object) -> bool:
        redis_key = self._key(key)
        return await self._redis_call(lambda: self._redis.delete(redis_key), failed=False) is not False

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
                "redis_breaker": self._breaker.state}
