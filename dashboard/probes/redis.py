"""Redis through redis-py's asyncio client: INFO counters for windowed hit rate and ops.

redis-py's default retry policy turns a 0.2 s timeout against a hung server into ~7 s
and 11 connections, so retries are off and the client holds one socket.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError as RedisTimeoutError
from redis.retry import Retry

from dashboard.config import CacheTarget
from dashboard.model import Failure, Kind, Reading
from dashboard.probes.base import ProbeError, tls_verification_failure


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
            **extra,
        )

    async def collect(self) -> list[Reading]:
        if self._client is None:
            self._client = self._make_client()
        try:
            info = await self._client.info()
        except AuthenticationError as exc:
            await self.close()
            raise ProbeError(Failure.ERROR, f"authentication failed: {exc}") from None
        except ResponseError as exc:
            await self.close()
            message = str(exc)
            failure = Failure.ERROR if "NOAUTH" in message or "WRONGPASS" in message else Failure.ERROR
            raise ProbeError(failure, message) from None
        except RedisTimeoutError:
            await self.close()
            raise TimeoutError("timeout") from None
        except RedisConnectionError as exc:
            await self.close()
            text = str(exc)
            # The same words as every probe (not DOWN: the server answered, its certificate
            # was refused); `insecure = true` or a CA the system trusts is the way past it.
            tls = tls_verification_failure(exc)
            if tls is not None:
                raise tls from None
            reason = "connection refused" if "refused" in text.lower() or "111" in text else text
            raise ProbeError(Failure.DOWN, reason) from None
        except BaseException:
            await self.close()
            raise
        figures = dict(self._figures(info), min_hit_rate=self._config.min_hit_rate)
        return [Reading(Kind.CACHE, self.target, figures, detail=None)]

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
