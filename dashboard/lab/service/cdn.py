"""A small edge cache in front of the service's static assets: the lab's CDN.

It caches each asset for `ttl_s` and answers the way CDNs do, with `X-Cache:
HIT|MISS` and `Age`, so the dashboard's CDN probe reads real headers from a real
cache. Lookups are counted as `cache_requests_total{cache="cdn",layer="edge"}`.
"""

from __future__ import annotations

import hashlib
import time

from aiohttp import web

ASSETS = {"app.js": "application/javascript", "app.css": "text/css"}


def _origin(name: str) -> bytes:
    """The asset as the origin builds it (a few KB of deterministic content)."""
    seed = hashlib.sha256(name.encode()).hexdigest()
    return (f"/* {name} */\n" + "\n".join(f"const k{i} = '{seed}';" for i in range(64))).encode()


class EdgeCache:
    def __init__(self, metrics, ttl_s: float = 60.0):
        self.metrics = metrics
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, bytes]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            return web.Response(status=404, text="no such asset")
        now = time.monotonic()
        cached = self._entries.get(name)
        if cached is not None and now - cached[0] < self.ttl_s:
            self.metrics.cache_requests.labels("cdn", "edge", "hit").inc()
            return self._answer(name, cached[1], "HIT", int(now - cached[0]))
        self.metrics.cache_requests.labels("cdn", "edge", "miss").inc()
        body = _origin(name)
        self._entries[name] = (now, body)
        return self._answer(name, body, "MISS", 0)

    @staticmethod
    def _answer(name: str, body: bytes, status: str, age: int) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": ASSETS[name], "X-Cache": status,
                                                "Age": str(age), "Cache-Control": "public, max-age=60"})
