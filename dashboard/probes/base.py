"""The Probe contract every source implements, and the error type probes raise.

A probe owns its connection (pooled across rounds: a new PostgreSQL connection per
poll costs 20x a pooled query) and does one thing: `collect()` one round of readings.
The engine owns time: it bounds every call with `asyncio.wait_for`, classifies what a
probe raises, and turns it into a failed `Sample`.
"""

from __future__ import annotations

import asyncio
import errno
import re
import ssl
from dataclasses import replace
from typing import Protocol

from dashboard.model import Failure, Kind, Reading


class ProbeError(Exception):
    """A failure the probe understood: `failure` says whether the target or its data failed."""

    def __init__(self, failure: Failure, message: str):
        super().__init__(message)
        self.failure = failure


MID_RESPONSE = "connection broken mid-response"


def broken_mid_response(prefix: str = "") -> ProbeError:
    """ERROR: the connection was up and the target had started answering (a handshake or
    earlier answers on it), then a read failed (reset, or closed before the answer was
    whole). Not DOWN: the target answered, and what came is unusable (model.Failure).
    Every driver says it its own way (httpx ReadError, urllib3 ProtocolError, redis-py
    ConnectionError, asyncpg ConnectionDoesNotExistError); each probe that can tell an
    established connection from one that never answered says it in these words."""
    return ProbeError(Failure.ERROR, prefix + MID_RESPONSE)


class Probe(Protocol):
    """One target of one source (a DSN, a Redis, a /metrics URL, a Prometheus, a URL).

    Attributes: `target` (the config name), `source` (postgres, redis, scrape,
    prometheus, http), `deadline` (seconds; the engine cancels a call at this point).
    Optional `timeout_failure`: how the engine classifies a call it cut at the deadline
    (default Failure.DOWN; a metric source that is not the target sets Failure.ERROR).
    Optional `times_round_trip = True`: the call is one short round trip whose latency
    is shown (its own `latency_ms`, or the engine's timing of the call); the engine starts
    it in a slot of its own at the start of each tick, so that the figure is the
    target's and not other probes' parsing (engine.py `_phase`).
    Optional `insecure = True`: the config turned certificate checks off for this target;
    the engine carries it to the target's SourceStatus, and every view shows a badge.
    """

    target: str
    source: str
    deadline: float

    async def collect(self) -> list[Reading]:
        """One round: the readings found now.

        Raises ProbeError for understood failures, OSError / TimeoutError / driver
        errors otherwise (the engine classifies them). Must tolerate cancellation at
        any await: a cancelled call leaves no half-used connection behind (drop it).
        Never retries internally: the engine schedules the next attempt.
        """
        ...

    async def close(self) -> None:
        """Release connections. Idempotent; never raises."""
        ...


_DOWN_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH,
                errno.ETIMEDOUT, errno.EPIPE, errno.ECONNABORTED}


# OpenSSL's words, wherever a driver copied them into its own message (requests nests the
# ssl error three exceptions deep, redis-py keeps only its text).
_VERIFY_TEXT = re.compile(r"certificate verify failed: ([^()\[\]'\"]+)")
_MAX_CHAIN = 12


def tls_verification_failure(exc: BaseException) -> ProbeError | None:
    """ERROR "TLS verification failed: <why>" if `exc` is (or wraps) a refused certificate.

    Every driver reports it its own way (asyncpg raises the ssl error itself, httpx and
    redis-py wrap it in a connection error that reads like the target is down, requests
    in a chain of three), so each probe asks here and all say the same thing: a
    certificate problem is fixed in the config (a CA, or `insecure = true`), not by
    waiting for the target to come back.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack and len(seen) < _MAX_CHAIN:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            why = current.verify_message or current.reason or "certificate refused"
            return ProbeError(Failure.ERROR, f"TLS verification failed: {why}")
        found = _VERIFY_TEXT.search(str(current))
        if found:
            return ProbeError(Failure.ERROR, f"TLS verification failed: {found.group(1).strip()}")
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None),
                      *(a for a in current.args if isinstance(a, BaseException))])
    return None


def classify(exc: BaseException) -> tuple[Failure, str]:
    """Map an exception from a probe to (failure kind, short reason)."""
    from dashboard.redact import describe_error

    if isinstance(exc, ProbeError):
        return exc.failure, describe_error(exc)
    tls = tls_verification_failure(exc)
    if tls is not None:
        return tls.failure, describe_error(tls)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Failure.DOWN, "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return Failure.DOWN, "connection refused"
    if isinstance(exc, ssl.SSLError):
        return Failure.ERROR, f"TLS error: {describe_error(exc)}"
    if isinstance(exc, (ConnectionError, EOFError)):
        return Failure.DOWN, describe_error(exc) or "connection lost"
    if isinstance(exc, OSError):
        if exc.errno in _DOWN_ERRNOS or "Connect call failed" in str(exc):
            reason = "connection refused" if exc.errno == errno.ECONNREFUSED or "Connect call failed" in str(exc) \
                else describe_error(exc)
            return Failure.DOWN, reason
        return Failure.DOWN, describe_error(exc)
    return Failure.ERROR, f"{type(exc).__name__}: {describe_error(exc)}"


def with_hit_rate_floor(readings: list[Reading], floor: float | None) -> list[Reading]:
    """A source's `min_hit_rate` on every cache row it found, as the Redis probe gives its own:
    a Redis that is a second cache layer only sees the misses above it."""
    if floor is None:
        return readings
    return [replace(r, figures={**r.figures, "min_hit_rate": floor}) if r.kind is Kind.CACHE else r
            for r in readings]
