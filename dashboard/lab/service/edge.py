"""Edge functions at /functions/v1/{name}, Supabase Edge Functions style.

`hello` greets (GET ?name= or POST {"name": ...}); `resize` does real CPU work (a
box-filter downscale of a generated image, in a worker thread so the event loop
keeps serving).  Each function has an adjustable latency and error rate, set by
POST /admin/faults, so drills can degrade one function and watch the dashboard, and
a `wrong_shape` switch: its answers stay 200 but come wrapped in `{"data": ...}`, the
deploy that renames a field, which only a contract on the body (the `edge` suite) sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import asdict, dataclass

from aiohttp import web

from dashboard.lab.service.metrics import ServiceMetrics

MAX_LATENCY_MS = 10_000
MAX_SIDE = 256
# Resizes run in threads; two at once is plenty on a 2-core machine and bounds the queue.
RESIZE_SLOTS = 2
FAULT_KEYS = {"latency_ms", "error_rate", "wrong_shape"}


@dataclass
class Fault:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    wrong_shape: bool = False


def _hello(params: dict) -> dict:
    name = str(params.get("name") or "world")[:64]
    return {"message": f"Hello {name}!"}


def _resize(params: dict) -> dict:
    """Downscale a generated (2w x 2h) grey image by 2 with a box filter."""
    width = max(1, min(int(params.get("width", 64)), MAX_SIDE))
    height = max(1, min(int(params.get("height", 64)), MAX_SIDE))
    src_w = 2 * width
    source = bytes((x * 7 + y * 13) & 0xFF for y in range(2 * height) for x in range(src_w))
    out = bytearray(width * height)
    for y in range(height):
        row, below = 2 * y * src_w, (2 * y + 1) * src_w
        for x in range(width):
            out[y * width + x] = (source[row + 2 * x] + source[row + 2 * x + 1]
                                  + source[below + 2 * x] + source[below + 2 * x + 1]) >> 2
    return {"width": width, "height": height, "sha256": hashlib.sha256(out).hexdigest()[:16]}


class EdgeFunctions:
    FUNCTIONS = {"hello": _hello, "resize": _resize}

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self.faults = {name: Fault() for name in self.FUNCTIONS}
        self._resize_slots = asyncio.Semaphore(RESIZE_SLOTS)
        for name in self.FUNCTIONS:
            metrics.edge_invocations.labels(name, "200")
            metrics.edge_duration.labels(name)

    def set_fault(self, name: str, values: dict) -> Fault:
        """Update one function's fault; raises ValueError (a message for the caller) when invalid."""
        if name not in self.faults:
            raise ValueError(f"unknown edge function {name!r}")
        if not set(values) <= FAULT_KEYS:
            raise ValueError(f"an edge fault sets some of {', '.join(sorted(FAULT_KEYS))}")
        fault = self.faults[name]
        latency = values.get("latency_ms", fault.latency_ms)
        rate = values.get("error_rate", fault.error_rate)
        wrong_shape = values.get("wrong_shape", fault.wrong_shape)
        if not isinstance(latency, (int, float)) or isinstance(latency, bool) or not 0 <= latency <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be a number from 0 to {MAX_LATENCY_MS}")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ValueError("error_rate must be a number from 0 to 1")
        if not isinstance(wrong_shape, bool):
            raise ValueError("wrong_shape must be true or false")
        fault.latency_ms, fault.error_rate, fault.wrong_shape = float(latency), float(rate), wrong_shape
        return fault

    def state(self) -> dict:
        return {name: asdict(fault) for name, fault in self.faults.items()}

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.FUNCTIONS.get(name)
        if function is None:
            # Not counted per name: arbitrary names would grow the label set without bound.
            return web.json_response({"error": f"no edge function {name[:64]!r}"}, status=404)
        started = time.perf_counter()
        status, body = await self._invoke(name, function, request)
        if status == 200 and self.faults[name].wrong_shape:
            body = {"data": body}
        self._metrics.edge_invocations.labels(name, str(status)).inc()
        self._metrics.edge_duration.labels(name).observe(time.perf_counter() - started)
        return web.json_response(body, status=status)

    async def _invoke(self, name: str, function, request: web.Request) -> tuple[int, dict]:
        params = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            try:
                payload = await request.json()
            except ValueError:
                return 400, {"error": "body must be JSON"}
            if isinstance(payload, dict):
                params.update(payload)
        fault = self.faults[name]
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.error_rate and random.random() < fault.error_rate:
            return 500, {"error": "injected fault", "function": name}
        try:
            if name == "resize":
                async with self._resize_slots:
                    return 200, await asyncio.to_thread(function, params)
            return 200, function(params)
        except (TypeError, ValueError):
            return 400, {"error": "invalid parameters"}
