"""A direct /metrics scrape: Prometheus text, parsed, then read by the source's preset.

A body is at most 5 MB (body.py), ~100k lines: parsing that on the event loop stalled
every other target and the keyboard for seconds. A large body is parsed in a worker
thread; a small one (the usual few KB) stays on the loop, where a thread hop would
cost more than the parse. A body with more series than the source's `max_series` is
refused while it streams, once past the cap (SeriesWatch), and never decoded or split.
"""

from __future__ import annotations

import httpx

from dashboard.config import SourceTarget
from dashboard.model import Failure, Reading
from dashboard.presets import get as get_preset
from dashboard.presets.exposition import (ExpositionError, SeriesWatch, TooManySeries, count_series, family_prefixes,
                                          parse_text, select)
from dashboard.presets.base import too_many_series
from dashboard.probes.base import ProbeError, with_hit_rate_floor
from dashboard.probes.http import basic_auth, make_client, read_capped, transport_failure
from dashboard.probes.offloop import OneThread
from dashboard.redact import sanitize

# Above this a body is parsed off the event loop. The fast path parses ~0.3 MB (~6k
# lines) in ~20-30 ms on the loaded 2-core bench machine: below the keys' 250 ms by far.
PARSE_IN_THREAD_BYTES = 256 * 1024


class ScrapeProbe:
    source = "scrape"

    def __init__(self, target: SourceTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        self._config = target
        self._preset = get_preset(target.preset)
        self._families = family_prefixes(self._preset.METRICS)
        self.insecure = target.insecure        # shown as a badge wherever this target is
        self._client = make_client(deadline, target.insecure, basic_auth(target))
        self._parser = OneThread(f"scrape:{self.target}", "previous body still being parsed (skipped)")

    async def collect(self) -> list[Reading]:
        try:
            async with self._client.stream("GET", self._config.scrape,
                                           headers={"Accept": "text/plain;version=0.0.4"}) as response:
                watch = SeriesWatch(self._families, self._config.max_series) if response.status_code == 200 else None
                body = await read_capped(response, watch=watch)
                status = response.status_code
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        except TooManySeries as exc:
            raise ProbeError(Failure.ERROR, str(exc)) from None
        if status != 200:
            raise ProbeError(Failure.ERROR, f"HTTP {status}: {sanitize(body[:200].decode('utf-8', 'replace'), 60)}")
        if len(body) > PARSE_IN_THREAD_BYTES:
            return await self._parser.run(lambda: self._read(body))
        return self._read(body)

    def _read(self, body: bytes) -> list[Reading]:
        """The readings of one body (on the loop or in a thread: touches no shared state)."""
        head = body[:4096].decode("utf-8", "replace")
        if head.lstrip().startswith("<"):
            raise ProbeError(Failure.ERROR, f"not Prometheus text (HTML?): {sanitize(head.strip(), 40)}")
        cap = self._config.max_series
        if body.count(b"\n") >= cap:       # enough lines to be over: count the samples
            count = count_series(body, self._families)
            if count > cap:
                raise ProbeError(Failure.ERROR, too_many_series(count, cap))
        kept, _ = select(body.decode("utf-8", "replace"), self._families)
        try:
            series = parse_text(kept, cap)
        except ExpositionError as exc:
            raise ProbeError(Failure.ERROR, str(exc)) from None
        readings = with_hit_rate_floor(self._preset.interpret(series, self.target), self._config.min_hit_rate)
        if not readings:
            raise ProbeError(Failure.NO_DATA, f"no series for preset {self._config.preset}")
        return readings

    async def close(self) -> None:
        await self._client.aclose()
