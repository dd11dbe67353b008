"""Admin endpoints under /admin/, guarded by `Authorization: Bearer <admin_token>`.

POST /admin/faults sets edge function faults and passes upstream faults through to
the upstream's own admin endpoint; GET /admin/state shows the routing table,
breaker states and healthy replicas.  The token is compared in constant time and
never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("lab.service.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        })

    async def faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict) or not set(body) <= {"edge", "upstream"}:
            return web.json_response({"error": 'body must be {"edge": {...}, "upstream": {...}}'}, status=400)
        edge = body.get("edge") or {}
        if not isinstance(edge, dict) or not all(isinstance(v, dict) for v in edge.values()):
            return web.json_response({"error": '"edge" must map function names to {latency_ms, error_rate}'},
                                     status=400)
        try:
            for name, values in edge.items():
                self._service.edge.set_fault(name, values)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        answer: dict = {"edge": self._service.edge.state()}
        status = 200
        if body.get("upstream") is not None:
            status, answer["upstream"] = await self._service.quotes.set_faults(body["upstream"])
        log.info("faults set: edge=%s upstream=%s", answer["edge"], answer.get("upstream"))
        return web.json_response(answer, status=status)
