"""Circuit breakers (purgatory) that report the scaledash breaker metrics.

purgatory owns the state machine (closed -> open after `threshold` consecutive
failures, half-open after `ttl` seconds, closed again on the first success there).
This module adds what the dashboard reads: the state gauge, driven by purgatory's
state-change events rather than by polling, and a count of every call by outcome.
Callers decide what a fallback is; they report it with `fallback()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from dashboard.lab.service.metrics import BREAKER_STATES, ServiceMetrics
from dashboard.redact import describe_error

T = TypeVar("T")
log = logging.getLogger("lab.service.breakers")

# Small on purpose: a drill should see a breaker open within a few seconds.
FAILURE_THRESHOLD = 5
RECOVERY_SECONDS = 5.0

# purgatory's state names -> the convention's.
_STATE_NAMES = {"closed": "closed", "opened": "open", "half-opened": "half_open"}


class BreakerOpen(Exception):
    """The breaker rejected the call without running it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker {name!r} is open")
        self.name = name


class Breakers:
    """A family of named breakers sharing one purgatory factory and one metrics object."""

    def __init__(self, metrics: ServiceMetrics, threshold: int = FAILURE_THRESHOLD,
                 recovery_seconds: float = RECOVERY_SECONDS) -> None:
        # A cancelled call (client went away, shutdown) says nothing about the dependency.
        self._factory = AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=recovery_seconds,
                                                   exclude=[asyncio.CancelledError])
        self._factory.add_listener(self._on_event)
        self._metrics = metrics
        self._states: dict[str, str] = {}
        self._since: dict[str, float] = {}
        self._last_failure: dict[str, str] = {}

    def register(self, name: str) -> "Breaker":
        """Create the breaker `name` with its metrics at zero (so the dashboard sees it at once)."""
        self._set_state(name, "closed")
        for outcome in ("success", "failure", "rejected", "fallback"):
            self._metrics.breaker_calls.labels(name, outcome)
        return Breaker(name, self)

    def state(self, name: str) -> str:
        """closed | open | half_open, as last reported by purgatory."""
        return self._states.get(name, "closed")

    def snapshot(self) -> dict[str, dict]:
        now = time.monotonic()
        return {name: {"state": state, "seconds_in_state": round(now - self._since[name], 1)}
                for name, state in self._states.items()}

    def _on_event(self, name: str, event_type: str, event) -> None:
        if event_type == "state_changed":
            self._set_state(name, _STATE_NAMES.get(event.state, "closed"))

    def _set_state(self, name: str, state: str) -> None:
        previous = self._states.get(name)
        self._states[name] = state
        self._metrics.breaker_state.labels(name).set(BREAKER_STATES[state])
        if previous != state:
            self._since[name] = time.monotonic()
            if previous is not None:
                why = f" (last failure: {self._last_failure.get(name)})" if state == "open" else ""
                log.warning("breaker %s: %s -> %s%s", name, previous, state, why)

    def count(self, name: str, outcome: str) -> None:
        self._metrics.breaker_calls.labels(name, outcome).inc()

    async def call(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call()` through breaker `name`.

        Returns its result (outcome success). Re-raises its exception (outcome
        failure), or raises BreakerOpen without calling it (outcome rejected).
        """
        try:
            breaker = await self._factory.get_breaker(name)
            async with breaker:
                result = await call()
        except OpenedState:
            self.count(name, "rejected")
            raise BreakerOpen(name) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._last_failure[name] = f"{type(exc).__name__}: {describe_error(exc, 120)}"
            self.count(name, "failure")
            raise
        self.count(name, "success")
        return result


class Breaker:
    """One named breaker: `await breaker.call(fn)`, and `breaker.fallback()` when a fallback answered."""

    def __init__(self, name: str, family: Breakers) -> None:
        self.name = name
        self._family = family
        # Admin switch `breaker_bypass`: calls go straight through, as in a service without
        # the breaker pattern; callers give no fallback then (a failure is the client's).
        self.bypassed = False

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.bypassed:
            return await call()
        return await self._family.call(self.name, call)

    def fallback(self) -> None:
        self._family.count(self.name, "fallback")

    @property
    def state(self) -> str:
        return self._family.state(self.name)
