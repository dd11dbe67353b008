"""The lab's flaky upstream: `python -m dashboard.lab.upstream SETTINGS.json`.

A second small process so the service's `upstream` breaker guards a real network
call.  GET /quote answers a JSON quote, or 500 at the configured failure rate,
after the configured latency; POST /admin/faults (Bearer admin_token) changes both
at run time.  Settings: {"port", "admin_token", "failure_rate", "latency_ms"}.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time

from aiohttp import web

from dashboard.lab.service.admin import bearer_guard
from dashboard.lab.service.logs import run_process
from dashboard.lab.service.settings import SettingsError, read_private_json
from dashboard.redact import register_secret

MAX_LATENCY_MS = 30_000


class Faults:
    def __init__(self, failure_rate: float = 0.0, latency_ms: float = 0.0) -> None:
        self.failure_rate = 0.0
        self.latency_ms = 0.0
        self.update({"failure_rate": failure_rate, "latency_ms": latency_ms})

    def update(self, values: dict) -> None:
        """Apply the given keys; raises ValueError naming the first bad one (nothing applied then)."""
        rate = values.get("failure_rate", self.failure_rate)
        latency = values.get("latency_ms", self.latency_ms)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ValueError("failure_rate must be a number from 0 to 1")
        if not isinstance(latency, (int, float)) or isinstance(latency, bool) or not 0 <= latency <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be a number from 0 to {MAX_LATENCY_MS}")
        self.failure_rate, self.latency_ms = float(rate), float(latency)

    def as_dict(self) -> dict:
        return {"failure_rate": self.failure_rate, "latency_ms": self.latency_ms}


def build_app(admin_token: str, faults: Faults, log) -> web.Application:
    price = [100.0]

    async def quote(request: web.Request) -> web.Response:
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if random.random() < faults.failure_rate:
            return web.json_response({"error": "injected failure"}, status=500)
        price[0] = max(1.0, price[0] * (1 + random.gauss(0, 0.002)))
        return web.json_response({"symbol": "SCLD", "price": round(price[0], 2), "at": time.time()})

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            faults.update(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc) or "body must be JSON"}, status=400)
        log.info("faults now failure_rate=%.2f latency_ms=%.0f", faults.failure_rate, faults.latency_ms)
        return web.json_response(faults.as_dict())

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=16 * 1024)
    app.router.add_get("/quote", quote, allow_head=False)
    app.router.add_post("/admin/faults", bearer_guard(admin_token, set_faults))
    app.router.add_get("/healthz", healthz, allow_head=False)
    return app


async def serve(port: int, app: web.Application, log) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        log.info("listening on http://127.0.0.1:%d", port)
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("stopped")


def load(path: str) -> tuple[int, str, "Faults"]:
    data = read_private_json(path)
    port, token = data["port"], data["admin_token"]
    if not isinstance(port, int) or not isinstance(token, str) or len(token) < 8:
        raise SettingsError("settings need an int 'port' and an 'admin_token' of 8+ characters")
    register_secret(token)
    return port, token, Faults(data.get("failure_rate", 0.0), data.get("latency_ms", 0.0))


async def run(settings: tuple[int, str, "Faults"], log) -> None:
    port, token, faults = settings
    await serve(port, build_app(token, faults, log), log)


def main(argv: list[str] | None = None) -> int:
    return run_process("upstream", argv, load, run, run_errors=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
