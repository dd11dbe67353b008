"""A URL behind a CDN: hit or miss from X-Cache / CF-Cache-Status / Age, and latency."""

from __future__ import annotations

import collections
import time

import httpx

from dashboard.config import CdnTarget
from dashboard.model import Kind, Reading, State
from dashboard.probes.http import make_client, read_capped, resolved_headers, transport_failure


def cache_status(headers: httpx.Headers) -> str | None:
    """HIT, MISS, or the CDN's own word (EXPIRED, BYPASS, DYNAMIC...); None when silent."""
    for name in ("cf-cache-status", "x-cache", "x-cache-status", "cdn-cache"):
        value = headers.get(name)
        if value:
            word = value.split(",")[-1].strip().split(" ")[0].upper()
            return word or None
    age = headers.get("age", "")
    if age.isdigit():
        return "HIT" if int(age) > 0 else "MISS"
    return None


class CdnProbe:
    source = "http"
    kind = Kind.CDN

    def __init__(self, target: CdnTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        self._config = target
        self.insecure = target.insecure        # shown as a badge wherever this target is
        self._client = make_client(deadline, target.insecure)
        self._statuses: collections.deque[str] = collections.deque(maxlen=60)

    async def collect(self) -> list[Reading]:
        started = time.perf_counter()
        try:
            async with self._client.stream("GET", self._config.url,
                                           headers=resolved_headers(self._config.headers)) as response:
                await read_capped(response)
                status, headers = response.status_code, response.headers
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        word = cache_status(headers)
        if word:
            self._statuses.append(word)
        age = headers.get("age", "")
        figures = {
            "cache_status": word, "latency_ms": round(latency_ms, 3), "status_code": status,
            "age_header_s": int(age) if age.isdigit() else None,
            "probe_hits": sum(1 for s in self._statuses if s == "HIT"),
            "probes_with_status": len(self._statuses),
        }
        if status >= 400:
            return [Reading(Kind.CDN, self.target, figures, state=State.DOWN, reason=f"HTTP {status}")]
        return [Reading(Kind.CDN, self.target, figures)]

    async def close(self) -> None:
        await self._client.aclose()
