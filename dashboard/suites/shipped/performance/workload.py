"""Fixed, seeded workloads and the A/B switch that turns one feature off for a side.

Honest A/B: the same workload runs twice, first against the stack as it runs (the
"on" side: whatever the stack really does, a feature broken in production included)
and then with one feature switched off through the service's admin endpoint (the
"off" side); the switch is put back in a `finally` whatever happens. Only the off
side is switched, so a stack whose feature is broken shows it on the on side.

Workloads are seeded so two runs send the same requests; sizes are a few hundred
requests per side, far more than the stack's background traffic adds meanwhile.
"""

from __future__ import annotations

import http.client
import random
import statistics
import time
from dataclasses import dataclass

from dashboard.redact import safe_message
from dashboard.suites.shipped.scaling.moves import MISSING_IDS, WRITE_IDS
from dashboard.suites.stack import HTTP_TIMEOUT, Admin, Stack, require

SEED = 20_260_902
CATALOGUE = (1, 1000)       # the ids a seeded stack holds (the lab's catalogue)
LIVE_ONLY = "live figures only (test_live_figures)"
# What turns the breakers off, preferred first: no breaker at all, else the breaker without its fallback.
BREAKER_OFF = {"breaker_bypass": True, "quote_fallback": False}


def rng(salt: str) -> random.Random:
    return random.Random(f"{SEED}:{salt}")


def missing_ids(count: int) -> list[int]:
    """Ids no stack holds: never cached, so every read of one is a database read."""
    return rng("missing").sample(range(*MISSING_IDS), count)


def catalogue_reads(keys: int, reads_per_key: int) -> list[int]:
    """`keys` catalogue ids, each read `reads_per_key` times, in a seeded order."""
    ids = rng("catalogue").sample(range(CATALOGUE[0], CATALOGUE[1] + 1), keys) * reads_per_key
    rng("order").shuffle(ids)
    return ids


def write_ids(count: int) -> list[int]:
    """Ids far above any catalogue: writing them changes nothing another reader reads."""
    return rng("writes").sample(range(*WRITE_IDS), count)


def find_switch(stack: Stack, switch: str, what: str) -> tuple[Admin | None, str]:
    """(the admin client, "") when the service has `switch`; else (None, why the A/B cannot run)."""
    admin, reason = stack.find_admin()
    if admin is None:
        return None, f"no A/B for {what}: {reason}; {LIVE_ONLY}"
    switches = admin.state().get("switches") or {}
    if switch not in switches:
        return None, (f"no A/B for {what}: the service's /admin/state has no {switch!r} switch "
                      f"(it has {sorted(switches)}); {LIVE_ONLY}")
    return admin, ""


def switch_admin(stack: Stack, switch: str, what: str) -> Admin:
    """The admin client when the service has `switch`; else skip, saying the A/B cannot run."""
    admin, reason = find_switch(stack, switch, what)
    require(admin, reason)
    return admin


@dataclass(frozen=True)
class Timed:
    seconds: float
    status: int
    cache: str | None       # the X-Cache header


class TimingClient:
    """GETs timed at the client over one kept-alive connection (http.client).

    The instrument should add as little as it can to what it measures: a full-featured
    client spends about a millisecond of its own per request on loopback, as much as a
    database read, which would hide the difference the cache makes.
    """

    def __init__(self, stack: Stack) -> None:
        url = stack.service.base_url
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._conn = kind(url.host, url.port, timeout=HTTP_TIMEOUT.read)
        self._prefix = url.path.rstrip("/")

    def get(self, path: str) -> Timed:
        started = time.perf_counter()
        self._conn.request("GET", self._prefix + path)
        response = self._conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        assert response.status < 500, \
            f"GET {path} answered {response.status}: {safe_message(body.decode(errors='replace'))}"
        return Timed(elapsed, response.status, response.getheader("X-Cache"))

    def close(self) -> None:
        self._conn.close()


def expect(response, *statuses: int) -> None:
    assert response.status_code in statuses, \
        f"GET {response.request.url.path} answered {response.status_code}: {safe_message(response.text)}"


def p50_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def reduction(on: float, off: float) -> float:
    """1 - on/off: how much less the feature costs than its absence (0 when off is 0)."""
    return 1 - on / off if off > 0 else 0.0


def pct(share: float) -> str:
    return f"{share * 100:.1f} %"
