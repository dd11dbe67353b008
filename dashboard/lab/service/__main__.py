"""`python -m dashboard.lab.service SETTINGS.json`: run the sample service until SIGTERM.

Exit codes: 0 after a clean shutdown, 1 when the service could not start (its
database never became ready, the port is taken), 2 for unusable settings.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import prometheus_client
from aiohttp import web

from dashboard.lab.service.app import build_app
from dashboard.lab.service.logs import run_process
from dashboard.lab.service.settings import ServiceSettings

SHUTDOWN_TIMEOUT = 5.0


async def serve(settings: ServiceSettings, log) -> None:
    runner = web.AppRunner(await build_app(settings), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", settings.port)
        await site.start()
        log.info("listening on http://127.0.0.1:%d", settings.port)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    # The *_created series double the scrape for nothing the dashboard reads.
    prometheus_client.disable_created_metrics()
    return run_process("service", argv, ServiceSettings.load, serve)


if __name__ == "__main__":
    sys.exit(main())
