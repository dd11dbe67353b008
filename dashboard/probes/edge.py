"""HTTP edge functions probed directly: status, latency, error rate over recent probes."""

from __future__ import annotations

import collections
import time

import httpx

from dashboard.config import EdgeTarget
from dashboard.model import Kind, Reading, State
from dashboard.probes.http import make_client, read_capped, resolved_headers, transport_failure

WINDOW_S = 60.0


class EdgeProbe:
    source = "http"
    kind = Kind.EDGE

    def __init__(self, target: EdgeTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        self._config = target
        self.insecure = target.insecure        # shown as a badge wherever this target is
        self._client = make_client(deadline, target.insecure)
        self._recent: collections.deque[tuple[float, bool]] = collections.deque(maxlen=600)

    async def collect(self) -> list[Reading]:
        started = time.perf_counter()
        try:
            async with self._client.stream(self._config.method, self._config.url,
                                           headers=resolved_headers(self._config.headers)) as response:
                await read_capped(response, 1024 * 1024)
                status = response.status_code
        except httpx.HTTPError as exc:
            self._record(False)
            raise transport_failure(exc) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        ok = status == self._config.expect_status
        self._record(ok)
        figures = {
            "status_code": status, "latency_ms": round(latency_ms, 3),
            "expect_status": self._config.expect_status,
            "probes": len(self._recent), "probe_errors": sum(1 for _, good in self._recent if not good),
        }
        if ok:
            return [Reading(Kind.EDGE, self.target, figures)]
        reason = f"HTTP {status} (expected {self._config.expect_status})"
        return [Reading(Kind.EDGE, self.target, figures, state=State.DOWN, reason=reason)]

    def _record(self, ok: bool) -> None:
        now = time.monotonic()
        self._recent.append((now, ok))
        while self._recent and self._recent[0][0] < now - WINDOW_S:
            self._recent.popleft()

    async def close(self) -> None:
        await self._client.aclose()
