"""Admin endpoints under /admin/, guarded by `Authorization: Bearer <admin_token>`.

POST /admin/faults sets edge function faults (latency, error rate, a 200 answer of
the wrong shape), passes upstream faults through to the upstream's own admin
endpoint, and flips the service's switches (SWITCHES);
GET /admin/state shows the routing table, breaker states, healthy replicas and the
switches. (GET /admin/canary, a drill's read-back of its canary rows, lives with the
canary writes in canary.py, behind the same guard.)  The token is compared in constant time and never logged or echoed.

The switches exist so that each target the dashboard judges can be seen missed on a
real stack, not only met: each breaks one mechanism the target depends on, and
setting it back to its default restores the service.
"""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

from dashboard.lab.service.settings import MAX_BATCH_WINDOW_MS

log = logging.getLogger("lab.service.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_DELAY_MS = 10_000
# name -> (type, maximum for numbers). What each breaks, away from its default:
#   quote_fallback (true)      false: a failing upstream answers 503, not the stale quote
#   cache_bypass (false)       true: every cache lookup misses and nothing is stored
#   cache_hit_delay_ms (0)     > 0: every cache hit waits this long
#   replica_reads (true)       false: every read goes to the primary
#   batch_window_ms (settings) 0: no batching, one frame per change event
#   breaker_bypass (false)     true: /quote calls the upstream without its breaker or fallback
SWITCHES: dict[str, tuple[type, int | None]] = {
    "quote_fallback": (bool, None),
    "cache_bypass": (bool, None),
    "cache_hit_delay_ms": (int, MAX_DELAY_MS),
    "replica_reads": (bool, None),
    "batch_window_ms": (int, MAX_BATCH_WINDOW_MS),
    "breaker_bypass": (bool, None),
}


def bearer_guard(token: str, handler: Handler) -> Handler:
    """Wrap `handler` so that it runs only for `Authorization: Bearer <token>` (else 401)."""
    expected = f"Bearer {token}".encode()

    async def guarded(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="scaledash-lab"'})
        return await handler(request)

    return guarded


class AdminHandlers:
    def __init__(self, service) -> None:
        # `service` is app.Service; typed loosely to keep this module free of the wiring.
        self._service = service

    async def state(self, request: web.Request) -> web.Response:
        s = self._service
        return web.json_response({
            "routing": s.db.routing_table(),
            "healthy_replicas": s.db.healthy_replicas(),
            "breakers": s.breakers.snapshot(),
            "cache": s.cache.state(),
            "batcher": s.batcher.state(),
            "edge_faults": s.edge.state(),
            "switches": self.switches(),
        })

    def switches(self) -> dict:
        s = self._service
        return {"quote_fallback": s.quotes.fallback_enabled, "cache_bypass": s.cache.bypass,
                "cache_hit_delay_ms": s.cache.hit_delay_ms, "replica_reads": s.db.replica_reads,
                "batch_window_ms": s.batcher.state()["window_ms"], "breaker_bypass": s.quotes.breaker.bypassed}

    def set_switches(self, values: object) -> dict:
        """Check every given switch, then apply them all (none when one is bad: ValueError)."""
        if not isinstance(values, dict) or not set(values) <= set(SWITCHES):
            raise ValueError(f'"switches" must map some of {", ".join(SWITCHES)} to values')
        for name, value in values.items():
            kind, maximum = SWITCHES[name]
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"switch {name} must be true or false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)
                                or not 0 <= value <= maximum):
                raise ValueError(f"switch {name} must be an integer from 0 to {maximum}")
        s = self._service
        apply = {
            "quote_fallback": lambda v: setattr(s.quotes, "fallback_enabled", v),
            "cache_bypass": lambda v: setattr(s.cache, "bypass", v),
            "cache_hit_delay_ms": lambda v: setattr(s.cache, "hit_delay_ms", v),
            "replica_reads": lambda v: setattr(s.db, "replica_reads", v),
            "batch_window_ms": s.batcher.set_window,
            "breaker_bypass": lambda v: setattr(s.quotes.breaker, "bypassed", v),
        }
        for name, value in values.items():
            apply[name](value)
        return self.switches()

    async def faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict) or not set(body) <= {"edge", "upstream", "switches"}:
            return web.json_response({"error": 'body must be {"edge": {...}, "upstream": {...}, '
                                               '"switches": {...}}'}, status=400)
        edge = body.get("edge") or {}
        if not isinstance(edge, dict) or not all(isinstance(v, dict) for v in edge.values()):
            return web.json_response(
                {"error": '"edge" must map function names to {latency_ms, error_rate, wrong_shape}'}, status=400)
        try:
            for name, values in edge.items():
                self._service.edge.set_fault(name, values)
            switches = self.set_switches(body["switches"]) if "switches" in body else self.switches()
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        answer: dict = {"edge": self._service.edge.state(), "switches": switches}
        status = 200
        if body.get("upstream") is not None:
            status, answer["upstream"] = await self._service.quotes.set_faults(body["upstream"])
        log.info("faults set: edge=%s upstream=%s switches=%s", answer["edge"], answer.get("upstream"),
                 switches)
        return web.json_response(answer, status=status)
