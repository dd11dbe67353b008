"""Wire the service together: parts, routes, request metrics and lifecycle.

`build_app(settings)` is the single place that knows every part; each part lives
in its own module and receives only what it needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from dashboard.lab.service.admin import AdminHandlers, bearer_guard
from dashboard.lab.service.batcher import RealtimeBatcher
from dashboard.lab.service.breakers import Breakers
from dashboard.lab.service.canary import CanaryHandlers
from dashboard.lab.service.cache import LayeredCache, make_redis
from dashboard.lab.service.cdn import EdgeCache
from dashboard.lab.service.database import Database
from dashboard.lab.service.edge import EdgeFunctions
from dashboard.lab.service.items import ItemHandlers
from dashboard.lab.service.metrics import CONTENT_TYPE, ServiceMetrics
from dashboard.lab.service.quotes import QuoteClient
from dashboard.lab.service.settings import ServiceSettings

log = logging.getLogger("lab.service")

SERVICE_KEY = web.AppKey("service", object)
# Route names double as the `route` label: a fixed, small set.
ITEM_READ_ROUTE = "items"


@dataclass
class Service:
    settings: ServiceSettings
    metrics: ServiceMetrics
    breakers: Breakers
    db: Database
    cache: LayeredCache
    batcher: RealtimeBatcher
    edge: EdgeFunctions
    quotes: QuoteClient
    session: aiohttp.ClientSession
    redis: Redis
    tasks: list[asyncio.Task]


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    return getattr(route, "name", None) or "other"


def metrics_middleware(metrics: ServiceMetrics):
    @web.middleware
    async def observe(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route_name(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away before the answer
            raise
        except Exception:
            log.exception("unhandled error on route %s", route)
            response = web.json_response({"error": "internal error"}, status=500)
        finally:
            metrics.http_requests.labels(route, str(status)).inc()
        cache = response.headers.get("X-Cache")
        if route == ITEM_READ_ROUTE and cache and status == 200:
            cached = "false" if cache == "MISS" else "true"
            metrics.http_duration.labels(route, cached).observe(time.perf_counter() - started)
        return response

    return observe


async def _build_service(settings: ServiceSettings) -> Service:
    metrics = ServiceMetrics()
    breakers = Breakers(metrics)
    db = Database(settings, metrics, breakers.register("database"))
    redis = make_redis(settings.redis_url, settings.redis_password)
    # limit bounds concurrent upstream calls; per-call timeouts live in quotes.py.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20))
    return Service(
        settings=settings, metrics=metrics, breakers=breakers, db=db,
        cache=LayeredCache(metrics, redis, breakers.register("redis")),
        batcher=RealtimeBatcher(db.writer_dsn, settings.pg_password, metrics, settings.batch_window_ms),
        edge=EdgeFunctions(metrics),
        quotes=QuoteClient(settings.upstream_url, session, breakers.register("upstream"), settings.admin_token),
        session=session, redis=redis, tasks=[])


async def _start(app: web.Application) -> None:
    service: Service = app[SERVICE_KEY]
    await service.db.start()
    service.tasks += [asyncio.create_task(service.batcher.listen(), name="batcher-listen"),
                      asyncio.create_task(service.batcher.flush_forever(), name="batcher-flush")]
    log.info("started: %d replicas, batch window %d ms", len(service.db.replicas),
             service.settings.batch_window_ms)


async def _shutdown(app: web.Application) -> None:
    await app[SERVICE_KEY].batcher.close_subscribers()


async def _cleanup(app: web.Application) -> None:
    service: Service = app[SERVICE_KEY]
    for task in service.tasks:
        task.cancel()
    await asyncio.gather(*service.tasks, return_exceptions=True)
    await service.db.close()
    await service.session.close()
    try:
        await asyncio.wait_for(service.redis.aclose(), 1.0)
    except Exception:
        pass
    log.info("stopped")


async def build_app(settings: ServiceSettings) -> web.Application:
    service = await _build_service(settings)
    app = web.Application(middlewares=[metrics_middleware(service.metrics)], client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    items = ItemHandlers(service.db, service.cache)
    canary = CanaryHandlers(service.db)
    admin = AdminHandlers(service)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(body=service.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    router = app.router
    router.add_get("/items/{id}", items.read, name=ITEM_READ_ROUTE, allow_head=False)
    router.add_put("/items/{id}", items.write, name="items_write")
    router.add_post("/items/prices", items.write_prices, name="items_prices")
    router.add_post("/canary", canary.write, name="canary")
    router.add_get("/quote", service.quotes.handle, name="quote", allow_head=False)
    functions = router.add_resource("/functions/v1/{name}", name="functions")
    functions.add_route("GET", service.edge.handle)
    functions.add_route("POST", service.edge.handle)
    router.add_get("/realtime", service.batcher.handle, name="realtime", allow_head=False)
    router.add_get("/static/{name}", EdgeCache(service.metrics).handle, name="static", allow_head=False)
    router.add_get("/metrics", metrics_handler, name="metrics", allow_head=False)
    router.add_get("/healthz", healthz, name="healthz", allow_head=False)
    router.add_post("/admin/faults", bearer_guard(settings.admin_token, admin.faults), name="admin_faults")
    router.add_get("/admin/state", bearer_guard(settings.admin_token, admin.state), name="admin_state",
                   allow_head=False)
    router.add_get("/admin/canary", bearer_guard(settings.admin_token, canary.seqs), name="admin_canary",
                   allow_head=False)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app
