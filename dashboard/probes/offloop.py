"""A probe's blocking work, off the event loop, one call at a time, in a thread that never
holds the process open.

`asyncio.to_thread` runs in the loop's default executor, and a process waits for those
threads when it ends (`asyncio.run` shuts the executor down, the interpreter joins its
workers). A Prometheus answer trickling in a byte at a time outlives every socket
timeout: after an SSH drop the dashboard stayed for as long as it trickled, its terminal
gone (RELIABILITY.md 39). Here each call gets a daemon thread of its own. A thread cannot
be cancelled, so a call that finds the previous one still running is refused with a
ProbeError instead of piling threads up.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Callable, TypeVar

from dashboard.model import Failure
from dashboard.probes.base import ProbeError

T = TypeVar("T")


class OneThread:
    """Runs `fn()` in a daemon thread, at most one at a time; `busy` says why a call was refused."""

    def __init__(self, name: str, busy: str) -> None:
        self.name = name
        self.busy = busy
        self._running = threading.Lock()

    async def run(self, fn: Callable[[], T]) -> T:
        if not self._running.acquire(blocking=False):
            raise ProbeError(Failure.ERROR, self.busy)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        context = contextvars.copy_context()

        def work() -> None:
            try:
                result, error = context.run(fn), None
            except Exception as exc:  # handed to the awaiting task as it is
                result, error = None, exc
            finally:
                self._running.release()
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:       # the loop is closed: nobody waits for this any more
                pass

        threading.Thread(target=work, name=self.name, daemon=True).start()
        return await future


def _settle(future: asyncio.Future, result, error: Exception | None) -> None:
    if future.done():                  # the caller gave up (deadline, cancel)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
