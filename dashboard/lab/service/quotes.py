"""GET /quote: the flaky upstream behind the `upstream` breaker, with a stale fallback.

When the upstream fails or the breaker is open, the last good quote answers,
marked `"stale": true` with its age; that is a served request, not an error.  Only
before the first good quote is there nothing to fall back to (503).  The admin
switch `quote_fallback` (on by default) turns the stale answer off, so a failing
upstream shows as failed requests: the error-rate target missed on purpose.  The
switch `breaker_bypass` goes further, to a service without the breaker pattern: every
request calls the upstream and its failure is the answer (502).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web

from dashboard.lab.service.breakers import Breaker, BreakerOpen

UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=1.0, connect=0.5)
ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=2.0, connect=0.5)
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ValueError)


class UpstreamError(Exception):
    """The upstream answered with something other than a quote."""


class QuoteClient:
    def __init__(self, upstream_url: str, session: aiohttp.ClientSession, breaker: Breaker,
                 admin_token: str) -> None:
        self._url = upstream_url
        self._session = session
        self._breaker = breaker
        self._admin_token = admin_token
        self._last_good: tuple[dict, float] | None = None
        self.fallback_enabled = True

    async def _fetch(self) -> dict:
        async with self._session.get(f"{self._url}/quote", timeout=UPSTREAM_TIMEOUT) as resp:
            if resp.status != 200:
                raise UpstreamError(f"upstream answered {resp.status}")
            quote = await resp.json()
        if not isinstance(quote, dict):
            raise UpstreamError("upstream quote is not a JSON object")
        return quote

    async def handle(self, request: web.Request) -> web.Response:
        try:
            quote = await self._breaker.call(self._fetch)
        except (BreakerOpen, UpstreamError, *UPSTREAM_ERRORS):
            return self._fallback()
        self._last_good = (quote, time.monotonic())
        return web.json_response({"quote": quote, "stale": False})

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    def _fallback(self) -> web.Response:
        if self._breaker.bypassed:
            return web.json_response({"error": "upstream failed", "detail": "breaker bypassed: no fallback"},
                                     status=502)
        if not self.fallback_enabled:
            return web.json_response({"error": "upstream unavailable", "detail": "fallback switched off",
                                      "breaker": self._breaker.state}, status=503)
        if self._last_good is None:
            return web.json_response({"error": "upstream unavailable", "detail": "no good quote seen yet",
                                      "breaker": self._breaker.state}, status=503)
        self._breaker.fallback()
        quote, at = self._last_good
        return web.json_response({"quote": quote, "stale": True, "age_s": round(time.monotonic() - at, 1),
                                  "breaker": self._breaker.state})

    async def set_faults(self, faults: dict) -> tuple[int, dict]:
        """Pass fault settings to the upstream's admin endpoint; (status, its JSON or an error)."""
        headers = {"Authorization": f"Bearer {self._admin_token}"}
        try:
            async with self._session.post(f"{self._url}/admin/faults", json=faults, headers=headers,
                                          timeout=ADMIN_TIMEOUT) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, {"error": "upstream answered non-JSON"}
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 502, {"error": f"upstream admin unreachable ({type(exc).__name__})"}
