"""The stack under test, as a shipped suite reaches it: read from the dashboard's config.

A suite runs as a pytest subprocess with `SCALEDASH_CONFIG` naming the config the
dashboard uses, so any stack configured that way can be checked, the lab being one.
This module turns that config into clients: the service (`[service] url`), its admin
endpoints (`[service] admin_token`), each PostgreSQL node (`[[replica]]` DSNs, the
primary told apart by asking each node, not by its name) and Redis (`[[cache]]`).

What a stack does not expose is a skip with the reason (`require`), never a pass: a
production service without admin endpoints cannot have its breaker tripped on
purpose, and a suite that claimed it checked that would be lying.

Every call has a bounded timeout: a suite that hangs on a dead dependency would hide
exactly the failure it is meant to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard import config as config_module
from dashboard.config_types import CacheTarget, Config, ConfigError, ReplicaTarget
from dashboard.redact import describe_error, safe_message

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
SQL_TIMEOUT = 5.0
SQL_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

T = TypeVar("T")


def require(condition: object, reason: str) -> None:
    """Skip the calling test with `reason` unless `condition` holds."""
    if not condition:
        pytest.skip(reason)


def wait_until(what: str, probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = 15.0,
               interval: float = 0.5) -> T:
    """Call `probe()` until `accept(value)`; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s; last seen {value!r}", pytrace=False)
        time.sleep(interval)


# ------------------------------------------------------------------ metrics

class Metrics:
    """One /metrics scrape: sample values looked up by name and a subset of labels."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample `name` whose labels include `labels` (0 when none)."""
        return sum(v for n, ls, v in self.samples if n == name and labels.items() <= ls.items())

    def has(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.samples)

    def label_values(self, name: str, label: str) -> set[str]:
        return {ls[label] for n, ls, _ in self.samples if n == name and label in ls}


# ------------------------------------------------------------------ PostgreSQL

@dataclass(frozen=True)
class Node:
    """One PostgreSQL node from the config, and whether it is in recovery (a replica)."""

    target: ReplicaTarget
    is_replica: bool

    @property
    def name(self) -> str:
        return self.target.name

    def fetchval(self, query: str, *args: Any) -> Any:
        """Run one query on a fresh connection (so statistics are never a cached snapshot)."""
        return asyncio.run(self._fetchval(query, args))

    async def _fetchval(self, query: str, args: tuple) -> Any:
        password = self.target.password.reveal() if self.target.password else None
        conn = await asyncpg.connect(self.target.dsn, password=password, timeout=SQL_TIMEOUT)
        try:
            return await conn.fetchval(query, *args, timeout=SQL_TIMEOUT)
        finally:
            await asyncio.wait_for(conn.close(), SQL_TIMEOUT)


def _classify(target: ReplicaTarget) -> Node | str:
    """The node with its role, or why it cannot be reached (a string)."""
    node = Node(target, False)
    try:
        return Node(target, bool(node.fetchval("SELECT pg_is_in_recovery()")))
    except SQL_ERRORS as exc:
        return f"{target.name}: {describe_error(exc, 120)}"


# ------------------------------------------------------------------ the service

class Admin:
    """The service's /admin/ endpoints with the configured bearer token."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}

    def state(self) -> dict:
        response = self._http.get("/admin/state", headers=self._headers)
        assert response.status_code == 200, f"GET /admin/state answered {response.status_code}"
        return response.json()

    def faults(self, body: dict) -> dict:
        response = self._http.post("/admin/faults", json=body, headers=self._headers)
        assert response.status_code == 200, \
            f"POST /admin/faults {sorted(body)} answered {response.status_code}: {safe_message(response.text)}"
        return response.json()

    @contextlib.contextmanager
    def switched(self, **values: Any) -> Iterator[dict]:
        """Set switches for the block, then put back what they were before, whatever happens."""
        before = self.state()["switches"]
        answer = self.faults({"switches": values})
        try:
            yield answer
        finally:
            self.faults({"switches": {name: before[name] for name in values}})

    @contextlib.contextmanager
    def upstream_fault(self, **values: Any) -> Iterator[dict]:
        """Set the upstream's faults for the block; back to no failures and no latency after."""
        answer = self.faults({"upstream": values})
        try:
            yield answer
        finally:
            self.faults({"upstream": {"failure_rate": 0.0, "latency_ms": 0}})


@dataclass
class Stack:
    """The stack one config describes, with the clients a suite needs."""

    config: Config
    http: httpx.Client | None
    admin_token: str | None
    nodes: tuple[Node, ...]
    unreachable: tuple[str, ...]

    @property
    def service(self) -> httpx.Client:
        require(self.http is not None, f"{self.config.path} has no [service] url: no service to drive")
        return self.http

    @property
    def admin(self) -> Admin:
        """The admin client; skips the test with the reason when the stack has none."""
        admin, reason = self.find_admin()
        require(admin, reason)
        return admin

    def find_admin(self) -> tuple[Admin | None, str]:
        """(the admin client, "") or (None, why not): for checks that stand without it."""
        if self.http is None:
            return None, f"{self.config.path} has no [service] url: no service to drive"
        if not self.admin_token:
            return None, (f"{self.config.path} has no [service] admin_token: the service's /admin/ "
                          "endpoints (faults, switches, routing state) cannot be used")
        probe = self.http.get("/admin/state", headers={"Authorization": f"Bearer {self.admin_token}"})
        if probe.status_code != 200:
            return None, (f"the service has no usable /admin/state (it answered {probe.status_code}): "
                          "no admin endpoint on this service")
        return Admin(self.http, self.admin_token), ""

    def metrics(self) -> Metrics:
        response = self.service.get("/metrics")
        assert response.status_code == 200, f"GET /metrics answered {response.status_code}"
        return Metrics(response.text)

    @property
    def primary(self) -> Node:
        primaries = [n for n in self.nodes if not n.is_replica]
        require(len(primaries) == 1, f"the config's [[replica]] DSNs reach {len(primaries)} primaries "
                                     f"(need exactly one){self._why_unreachable()}")
        return primaries[0]

    @property
    def replicas(self) -> tuple[Node, ...]:
        replicas = tuple(n for n in self.nodes if n.is_replica)
        require(replicas, f"the config's [[replica]] DSNs reach no replica{self._why_unreachable()}")
        return replicas

    def _why_unreachable(self) -> str:
        return f" (unreachable: {'; '.join(self.unreachable)})" if self.unreachable else ""

    @property
    def redis(self) -> CacheTarget:
        require(self.config.caches, f"{self.config.path} has no [[cache]]: no Redis to look into")
        return self.config.caches[0]

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


def config_path() -> str:
    """The config a suite checks: $SCALEDASH_CONFIG, else the dashboard's own lookup order."""
    return str(config_module.find_config(os.environ.get("SCALEDASH_CONFIG")))


def load_stack(path: str | None = None) -> Stack:
    """Read the config (raises ConfigError) and build the clients; nodes are classified now."""
    config = config_module.load(path or config_path())
    service = config.service
    http = httpx.Client(base_url=service.url, timeout=HTTP_TIMEOUT) if service else None
    token = service.admin_token.reveal() if service and service.admin_token else None
    classified = [_classify(target) for target in config.replicas]
    return Stack(config=config, http=http, admin_token=token,
                 nodes=tuple(n for n in classified if isinstance(n, Node)),
                 unreachable=tuple(n for n in classified if isinstance(n, str)))


def session_stack() -> Iterator[Stack]:
    """A suite's `stack` fixture: `stack = pytest.fixture(scope="session")(session_stack)`
    in its conftest. A config that cannot be read fails the run with its error lines."""
    try:
        the_stack = load_stack()
    except ConfigError as exc:
        pytest.fail("cannot read the stack's config: " + "; ".join(exc.lines()), pytrace=False)
    try:
        yield the_stack
    finally:
        the_stack.close()
