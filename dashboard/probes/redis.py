"""Redis through redis-py's asyncio client: INFO counters for windowed hit rate and ops.

redis-py's default retry policy turns a 0.2 s timeout against a hung server into ~7 s
and 11 connections, so retries are off and the client holds one socket.

redis-py calls every lost connection ConnectionError: a refused connect, a server that
was stopped while our connection sat idle, and an answer reset half-way. The first two
are a target that did not answer (DOWN), the last a broken answer (ERROR, RELIABILITY
case 10), as asyncpg and httpx tell them apart. So the probe counts the answers read on
its connection (the handshake's too: AUTH, CLIENT SETNAME), calls a connection lost
after one a broken answer and one lost before any a target that did not answer, and
replaces a kept connection the server closed while idle before sending on it.
"""

from __future__ import annotations

import contextvars
import functools

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError as RedisTimeoutError
from redis.retry import Retry

from dashboard.config import CacheTarget
from dashboard.model import Failure, Kind, Reading
from dashboard.probes.base import ProbeError, broken_mid_response, tls_verification_failure

_UNDERSTOOD = (RedisConnectionError, ResponseError, RedisTimeoutError)


class RedisProbe:
    source = "redis"
    kind = Kind.CACHE
    times_round_trip = True       # the engine gives it a quiet slot of its tick

    def __init__(self, target: CacheTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        self._config = target
        self._client: aioredis.Redis | None = None
        self.insecure = target.insecure        # shown as a badge wherever this target is

    def _make_client(self) -> aioredis.Redis:
        extra = {"ssl_cert_reqs": "none"} if self._config.insecure and self._config.url.startswith("rediss") else {}
        return aioredis.from_url(
            self._config.url,
            password=self._config.password.reveal() if self._config.password else None,
            socket_timeout=self.deadline,
            socket_connect_timeout=self.deadline,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            single_connection_client=True,
            health_check_interval=0,
            client_name="scaledash",
            # RESP2: INFO reads the same, every Redis speaks it (RESP3's HELLO needs Redis
            # 6), and the handshake opens with a 5-byte +OK rather than HELLO's map of
            # server details, so the answers counted below start with the first bytes.
            protocol=2,
            **extra,
        )

    async def collect(self) -> list[Reading]:
        tally = [0]
        token = _ANSWERS.set(tally)
        reused = False
        try:
            client, reused = await self._connected()
            info = await client.info()
        except _UNDERSTOOD as exc:
            await self.close()
            raise _failure(exc, answered=reused or tally[0] > 0) from None
        except BaseException:
            await self.close()
            raise
        finally:
            _ANSWERS.reset(token)
        figures = dict(self._figures(info), min_hit_rate=self._config.min_hit_rate)
        return [Reading(Kind.CACHE, self.target, figures, detail=None)]

    async def _connected(self) -> tuple[aioredis.Redis, bool]:
        """The client, and whether it is the kept one (the server answered on it before).
        A kept connection the server closed while idle is dropped first, without a round
        trip (what asyncpg and httpx's pool do on their own): a stopped Redis must read
        "connection refused", not a broken answer."""
        if self._client is not None and await _closed_by_server(self._client):
            await self.close()
        if self._client is not None:
            return self._client, True
        client = self._client = self._make_client()     # close() reaches it if the connect is cancelled
        pool = client.connection_pool
        pool.connection_class = _counting(pool.connection_class)
        await client.initialize()                      # connect and handshake
        return client, False

    @staticmethod
    def _figures(info: dict) -> dict:
        return {
            "layer": "redis",
            "hits_total": info.get("keyspace_hits"),
            "misses_total": info.get("keyspace_misses"),
            "ops_total": info.get("total_commands_processed"),
            "evictions_total": info.get("evicted_keys"),
            "memory_bytes": info.get("used_memory"),
            "role": info.get("role"),
            "connected_clients": info.get("connected_clients"),
        }

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing a broken socket may raise; it is gone either way
                pass


async def _closed_by_server(client: aioredis.Redis) -> bool:
    """True when the kept connection has seen the server's end of stream (or unread
    bytes: not ours to guess at). redis-py's pool asks the same before lending one out;
    a single-connection client never goes back to the pool, so we ask."""
    conn = client.connection
    if conn is None or not conn.is_connected:
        return True
    try:
        return await conn.can_read()
    except RedisConnectionError:
        return True


# Answers read during the running collect() (a list, so the connection can add to it).
_ANSWERS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("scaledash_redis_answers")


@functools.cache
def _counting(base: type) -> type:
    """redis-py's connection class of the URL (TCP, TLS or Unix socket), counting every
    answer it reads into the running collect()'s tally; an error reply is an answer too
    (an older server refusing the handshake's CLIENT SETINFO)."""

    class Counting(base):
        async def read_response(self, *args, **kwargs):
            try:
                response = await super().read_response(*args, **kwargs)
            except ResponseError:
                _ANSWERS.get([0])[0] += 1
                raise
            _ANSWERS.get([0])[0] += 1
            return response

    return Counting


def _failure(exc: BaseException, answered: bool) -> BaseException:
    """What a redis-py error means for this probe; `answered`: the server had answered
    on this connection before the read that failed."""
    if isinstance(exc, AuthenticationError):        # a ConnectionError to redis-py: test it first
        return ProbeError(Failure.ERROR, f"authentication failed: {exc}")
    if isinstance(exc, ResponseError):
        return ProbeError(Failure.ERROR, str(exc))
    if isinstance(exc, RedisTimeoutError):
        return TimeoutError("timeout")
    # The same words as every probe (not DOWN: the server answered, its certificate was
    # refused); `insecure = true` or a CA the system trusts is the way past it.
    tls = tls_verification_failure(exc)
    if tls is not None:
        return tls
    if answered:
        return broken_mid_response()
    text = str(exc)
    return ProbeError(Failure.DOWN, "connection refused" if "refused" in text.lower() or "111" in text else text)
