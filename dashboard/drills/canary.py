"""Canary writes through the service: how long writes failed, and whether any was lost.

The failover drill writes numbered rows at a steady rate through the service's
`POST /canary` (the path real writes take) while it crashes the primary. Each write
is sent on its own schedule, so one write hanging on a dead primary does not delay
the next, and at most MAX_IN_FLIGHT are open. Afterwards the rows the new primary
holds (`GET /admin/canary?run=`) are compared with the writes that were
acknowledged:

    failover_seconds  last write acknowledged by the old primary -> first by the new one
    failed_writes     writes answered with an error or not at all
    lost_writes       acknowledged writes missing on the new primary (target 0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from dashboard.config_types import ServiceTarget
from dashboard.redact import describe_error

WRITE_TIMEOUT_S = 2.0
MAX_IN_FLIGHT = 64
MAX_WRITES = 10_000          # a run writes at most this many rows (the service caps reads too)


@dataclass
class Write:
    seq: int
    sent: float
    acked: float | None = None
    node: str | None = None
    error: str | None = None


class CanaryWriter:
    def __init__(self, service: ServiceTarget, run: str, rate: float = 50.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.run = run[:64]
        self.interval = 1.0 / max(1.0, min(rate, 1000.0))
        self.clock = clock
        self.writes: list[Write] = []
        self._task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()
        self._client = None
        self._acked = asyncio.Event()

    def start(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=WRITE_TIMEOUT_S, trust_env=False,
                                         limits=httpx.Limits(max_connections=MAX_IN_FLIGHT))
        self._task = asyncio.create_task(self._loop(), name="canary")

    async def _loop(self) -> None:
        next_at = self.clock()
        while len(self.writes) < MAX_WRITES:
            if len(self._in_flight) < MAX_IN_FLIGHT:
                write = Write(len(self.writes), self.clock())
                self.writes.append(write)
                task = asyncio.create_task(self._send(write))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - self.clock()))

    async def _send(self, write: Write) -> None:
        try:
            response = await self._client.post(f"{self.service.url}/canary", json={"run": self.run, "seq": write.seq})
            if response.status_code == 200:
                write.node = str(response.json().get("node"))
                write.acked = self.clock()
                self._acked.set()
            else:
                write.error = f"HTTP {response.status_code}"
        except Exception as exc:  # noqa: BLE001 - a failed write is a figure, not a crash
            write.error = describe_error(exc, 80) or type(exc).__name__

    def acked(self) -> list[Write]:
        return sorted((w for w in self.writes if w.acked is not None), key=lambda w: w.acked)

    async def first_ack(self, deadline_s: float) -> tuple[bool, str]:
        try:
            await asyncio.wait_for(self._acked.wait(), deadline_s)
        except asyncio.TimeoutError:
            errors = [w.error for w in self.writes if w.error]
            return False, errors[-1] if errors else f"no answer within {deadline_s:g}s"
        return True, self.acked()[0].node or "?"

    async def ack_from(self, node: str, deadline_s: float, abort: asyncio.Event) -> tuple[bool, str]:
        end = self.clock() + deadline_s
        while self.clock() < end and not abort.is_set():
            if any(w.node == node for w in self.writes if w.acked is not None):
                return True, f"first write acknowledged by {node}"
            await asyncio.sleep(0.02)
        return False, f"no write acknowledged by {node} within {deadline_s:g}s"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=WRITE_TIMEOUT_S + 0.5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def finish(self) -> dict:
        """Stop writing, read back what the writable node holds, and the figures."""
        await self.stop()
        stored, read_error = await self._stored()
        return figures(self.writes, stored, read_error)

    async def _stored(self) -> tuple[set[int] | None, str | None]:
        import httpx

        headers = {"Authorization": f"Bearer {self.service.admin_token.reveal()}"} if self.service.admin_token else {}
        for _ in range(3):          # the new primary may still be settling
            try:
                async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
                    response = await client.get(f"{self.service.url}/admin/canary", params={"run": self.run},
                                                headers=headers)
                if response.status_code == 200:
                    seqs = response.json().get("seqs")
                    if isinstance(seqs, list):
                        return {s for s in seqs if isinstance(s, int)}, None
                error = f"HTTP {response.status_code}"
            except Exception as exc:  # noqa: BLE001
                error = describe_error(exc, 80)
            await asyncio.sleep(0.5)
        return None, error


def figures(writes: list[Write], stored: set[int] | None, read_error: str | None = None) -> dict:
    acked = sorted((w for w in writes if w.acked is not None), key=lambda w: w.acked)
    out: dict = {"writes": len(writes), "acknowledged": len(acked),
                 "failed_writes": sum(1 for w in writes if w.acked is None),
                 "failover_seconds": None, "lost_writes": None, "old_node": None, "new_node": None}
    if acked:
        old = out["old_node"] = acked[0].node
        first_new = next((w for w in acked if w.node != old), None)
        if first_new is not None:
            last_old = max(w.acked for w in acked if w.node == old and w.acked <= first_new.acked)
            out["new_node"] = first_new.node
            out["failover_seconds"] = round(first_new.acked - last_old, 3)
    if stored is not None:
        out["lost_writes"] = sum(1 for w in acked if w.seq not in stored)
    elif read_error:
        out["read_back_error"] = read_error
    return out
