"""A direct /metrics scrape: Prometheus text, parsed, then read by the source's preset."""

from __future__ import annotations

import httpx

from dashboard.config import SourceTarget
from dashboard.model import Failure, Reading
from dashboard.presets import get as get_preset
from dashboard.presets.exposition import ExpositionError, family_prefixes, parse_text, prefilter
from dashboard.probes.base import ProbeError, with_hit_rate_floor
from dashboard.probes.http import basic_auth, make_client, read_capped, transport_failure
from dashboard.redact import sanitize


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

    async def collect(self) -> list[Reading]:
        try:
            async with self._client.stream("GET", self._config.scrape,
                                           headers={"Accept": "text/plain;version=0.0.4"}) as response:
                body = await read_capped(response)
                status = response.status_code
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        if status != 200:
            raise ProbeError(Failure.ERROR, f"HTTP {status}: {sanitize(body[:200].decode('utf-8', 'replace'), 60)}")
        text = body.decode("utf-8", "replace")
        if text.lstrip().startswith("<"):
            raise ProbeError(Failure.ERROR, f"not Prometheus text (HTML?): {sanitize(text.strip(), 40)}")
        try:
            series = parse_text(prefilter(text, self._families))
        except ExpositionError as exc:
            raise ProbeError(Failure.ERROR, str(exc)) from None
        readings = with_hit_rate_floor(self._preset.interpret(series, self.target), self._config.min_hit_rate)
        if not readings:
            raise ProbeError(Failure.NO_DATA, f"no series for preset {self._config.preset}")
        return readings

    async def close(self) -> None:
        await self._client.aclose()
